"""benchmarks/run_full.py on the tiny twin: every asset step timed, memory peaks consistent, figures written."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from kuairec_pipeline.definitions import build_definitions
from kuairec_pipeline_tests.builders import QUICK_TRAINING, REPO, pipeline_env


@pytest.mark.slow
@pytest.mark.scale
def test_run_full_times_every_step_on_tiny(tmp_path):
    out = tmp_path / "figures.json"
    quick = tmp_path / "quick.json"  # the pipeline tests' short training; also proves --config reaches the run
    quick.write_text(json.dumps({"ops": {op: {"config": config} for op, config in QUICK_TRAINING.items()}}))
    env = pipeline_env(tmp_path)  # only for a clean environment: the script sets its own KUAIREC_HOME
    result = subprocess.run(
        [
            sys.executable,
            "benchmarks/run_full.py",
            "--profile",
            "tiny",
            "--workdir",
            str(tmp_path / "run"),
            "--json",
            str(out),
            "--config",
            str(quick),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-6000:]
    figures = json.loads(out.read_text())
    steps = {step["step"]: step for step in figures["steps"]}
    assets = {
        key.to_user_string() for key in build_definitions(environ={}).resolve_asset_graph().materializable_asset_keys
    }
    assert assets <= set(steps)  # plus the asset-check steps
    for step in steps.values():
        assert step["seconds"] >= 0 and 0 < step["rss_start_mib"] <= step["peak_rss_mib"] <= figures["peak_rss_mib"]
    assert sum(step["seconds"] for step in steps.values()) <= figures["run_s"] <= figures["total_s"]
    assert (tmp_path / "run" / "home" / "assets" / "metrics.parquet").is_file()  # a real run, kept in --workdir
    assert "total" in result.stdout and "two_tower_embeddings" in result.stdout
    assert figures["ops_config"]["sequential_model"] == {"config": {"max_epochs": 2}}
    rerun = subprocess.run(
        [sys.executable, "benchmarks/run_full.py", "--workdir", str(tmp_path / "run")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rerun.returncode == 2 and "is not empty" in rerun.stderr  # never measures on leftovers
