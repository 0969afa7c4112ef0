"""No silently mixed state, through the real Dagster CLI and the real ``kuairec`` command on copies of the session's
materialization: a re-made filtered_ratios is not served with models trained on the old one, a failed blocking check
keeps the previous file, and bad run config is refused before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
from dagster import AssetKey, DagsterInstance

from kuairec_pipeline import provenance
from kuairec_pipeline_tests.builders import (
    Baseline,
    assets_dir,
    copy_home,
    digests,
    kuairec_cli,
    materialize,
    output,
)


def run_config(path: Path, ops: dict) -> str:
    path.write_text(json.dumps({"ops": {op: {"config": config} for op, config in ops.items()}}))
    return str(path)


def test_models_and_tables_of_different_runs_are_never_mixed(baseline: Baseline, tmp_path: Path) -> None:
    """The issue's case: filtered_ratios re-made with max_watch_ratio 5.0, then ``kuairec recommend --model als``."""
    env = copy_home(baseline, tmp_path / "case")
    folder = assets_dir(env)
    with np.load(folder / "als_factors.npz", allow_pickle=False) as stored:
        record = provenance.trained_with_of({name: stored[name] for name in stored.files})
    train = pl.read_parquet(folder / "filtered_ratios.parquet").filter(pl.col("split") == "train")["watch_ratio"]
    assert record is not None and (record.scaler_min, record.scaler_max) == (train.min(), train.max())
    assert record.ratio_config["max_watch_ratio"] == 3.0
    assert record.inputs["filtered_ratios"] == provenance.file_fingerprint(folder / "filtered_ratios.parquet")
    before = kuairec_cli(env, "recommend", "--user", "13", "-k", "3", "--model", "als")
    assert before.returncode == 0, output(before)

    model_files = digests(folder, skip=lambda p: p.suffix != ".npz")
    rerun = materialize(
        env,
        select="filtered_ratios",
        extra=("-c", run_config(tmp_path / "five.json", {"filtered_ratios": {"max_watch_ratio": 5.0}})),
    )
    assert rerun.returncode == 0, output(rerun)[-6000:]
    assert digests(folder, skip=lambda p: p.suffix != ".npz") == model_files  # the models are the old ones
    with DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:  # the UI's staleness follows the content
        event = instance.get_latest_materialization_event(AssetKey("filtered_ratios"))
        version = event.asset_materialization.tags["dagster/data_version"]
    assert (
        version == provenance.file_fingerprint(folder / "filtered_ratios.parquet") != record.inputs["filtered_ratios"]
    )

    for args in (("--model", "als"), ()):
        answer = kuairec_cli(env, "recommend", "--user", "13", "-k", "3", *args)
        assert answer.returncode == 2, output(answer)
        assert "max_watch_ratio 3.0" in answer.stderr and "max_watch_ratio 5.0" in answer.stderr, answer.stderr
        assert "filtered_ratios*" in answer.stderr  # what to run to get consistent again
        assert "Top 3" not in answer.stdout

    metrics_only = materialize(env, select="metrics")
    assert metrics_only.returncode != 0
    assert "different runs" in output(metrics_only) and "als_factors was trained on filtered_ratios" in output(
        metrics_only
    )
    # the stored arrays are the old run's too: named, though the step never loads filtered_ratios itself
    assert "evaluation_arrays was built from filtered_ratios" in output(metrics_only)
    # a model trained after its arrays are rebuilt is current again, and stamped with the new table
    retrain = materialize(env, select="training_arrays,linear_baseline")
    assert retrain.returncode == 0, output(retrain)[-6000:]
    with np.load(folder / "linear_baseline.npz", allow_pickle=False) as stored:
        linear = provenance.trained_with_of({name: stored[name] for name in stored.files})
    assert linear is not None and linear.inputs["filtered_ratios"] == version
    assert linear.ratio_config["max_watch_ratio"] == 5.0


def test_a_failed_blocking_check_keeps_the_previous_file_and_names_the_culprit(
    baseline: Baseline, tmp_path: Path
) -> None:
    env = copy_home(baseline, tmp_path / "case")
    folder = assets_dir(env)
    users = pl.read_parquet(folder / "raw_users.parquet")
    cut = int(users["user_id"].max()) - 4  # users above the cut are now unknown to the side file
    users.filter(pl.col("user_id") < cut).write_parquet(folder / "raw_users.parquet")
    before = digests(folder)
    result = materialize(env, select="filtered_ratios+")
    text = output(result)
    assert result.returncode != 0
    assert digests(folder) == before  # filtered_ratios.parquet and everything downstream untouched
    assert "ids_in_range" in text and "filtered_ratios.parquet was not written" in text
    assert "column user_id" in text and f"outside 0..{cut - 1}" in text
    assert str(cut) in text.split("column user_id", 1)[1][:200]  # an example id


def test_bad_run_config_is_refused_before_anything_is_written(baseline: Baseline, tmp_path: Path) -> None:
    cases = {
        "range": {"filtered_ratios": {"max_watch_ratio": -1.0}, "als_factors": {"factors": 0}},
        "empty_train": {"filtered_ratios": {"validation_days": 3000.0}},
    }
    envs = {name: copy_home(baseline, tmp_path / name) for name in cases}
    before = {name: digests(Path(env["KUAIREC_HOME"])) for name, env in envs.items()}
    results = [  # one after another, as in test_bad_input.py
        materialize(envs[name], select="*", extra=("-c", run_config(tmp_path / f"{name}.json", cases[name])))
        for name in cases
    ]
    range_text, empty_text = (output(r) for r in results)
    assert all(r.returncode != 0 for r in results)
    assert "ops.filtered_ratios.config.max_watch_ratio = -1.0: allowed > 0.0" in range_text
    assert "ops.als_factors.config.factors = 0: allowed >= 1" in range_text
    assert "validation_days 3000.0 leave no train rows" in empty_text
    for name, env in envs.items():
        after = digests(Path(env["KUAIREC_HOME"]))
        assert after == before[name], name  # nothing written: not the twin, not one asset


def test_summary_and_metrics_warn_when_a_model_or_table_is_newer_than_the_metrics(
    baseline: Baseline, tmp_path: Path
) -> None:
    for command in ("summary", "metrics"):  # the session's run: every input as the metrics read it
        answer = kuairec_cli(baseline.env, command)
        assert answer.returncode == 0 and answer.stderr == "", output(answer)

    env = copy_home(baseline, tmp_path / "case")  # its own instance: the history starts with these runs
    assert materialize(env, select="filtered_ratios,video_features,metrics").returncode == 0
    quiet = kuairec_cli(env, "summary")
    assert quiet.returncode == 0 and quiet.stderr == "", output(quiet)

    other_l2 = run_config(tmp_path / "l2.json", {"linear_baseline": {"l2": 3.0}})
    assert materialize(env, select="linear_baseline", extra=("-c", other_l2)).returncode == 0
    assert materialize(env, select="video_features").returncode == 0  # made again with the same content: unchanged
    for command in ("summary", "metrics"):
        answer = kuairec_cli(env, command)
        assert answer.returncode == 0 and answer.stdout, output(answer)  # the table is still printed
        (line,) = answer.stderr.splitlines()
        assert line.startswith(f"kuairec {command}: warning: the stored metrics are out of date: linear_baseline (")
        # Downstream of the re-made model: the models that start from it and the hybrids hold the former one.
        assert "video_features" not in line and "--select 'linear_baseline*'" in line

    five = run_config(tmp_path / "five.json", {"filtered_ratios": {"max_watch_ratio": 5.0}})
    before = provenance.file_fingerprint(assets_dir(env) / "filtered_ratios.parquet")
    assert materialize(env, select="filtered_ratios", extra=("-c", five)).returncode == 0
    after = provenance.file_fingerprint(assets_dir(env) / "filtered_ratios.parquet")
    (line,) = kuairec_cli(env, "summary").stderr.splitlines()
    assert f"filtered_ratios (content {before} -> {after}, " in line and "linear_baseline (" in line
    assert "--select 'filtered_ratios*'" in line
