"""The `kuairec` command: -k validated and capped the same way on every path, honest `generate`, `summary`."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from kuairec_pipeline.cli import main
from kuairec_pipeline.models.linear import LinearConfig, LinearRecommender
from kuairec_pipeline.models.registry import SERVED_ALIASES, TRAINED_MODELS
from kuairec_pipeline.recommend import build_recommendations
from kuairec_pipeline_tests.models.contract import make_planted


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """An asset folder with a stored top-8 table (labelled hybrid), the linear bundle and what the CLI reads."""
    planted = make_planted()
    data = planted.data
    model = LinearRecommender(LinearConfig(l2=1.0)).fit(data)
    root = tmp_path_factory.mktemp("home")
    assets = root / "assets"
    assets.mkdir()
    build_recommendations(model, data.n_users, k=8, label="hybrid").write_parquet(assets / "recommendations.parquet")
    pl.DataFrame(
        {"video_id": np.arange(data.n_videos, dtype=np.int32), "tag_ids": data.video_tags.tolist()}
    ).write_parquet(assets / "video_features.parquet")
    pl.DataFrame(
        {
            "user_id": data.train.user,
            "video_id": data.train.video,
            "watch_ratio": data.train.watch_ratio,
            "split": ["train"] * len(data.train),
        }
    ).write_parquet(assets / "filtered_ratios.parquet")
    model.save(assets / "linear_baseline.npz")
    pl.DataFrame(
        {
            "model": ["linear", "linear", "oracle", "global_mean"],
            "split": ["test"] * 4,
            "metric": ["rmse", "ndcg@10", "rmse", "rmse"],
            "value": [0.16, 0.28, 0.14, 0.19],
        }
    ).write_parquet(assets / "metrics.parquet")
    return root


@pytest.fixture(autouse=True)
def _env(home: Path, monkeypatch):
    monkeypatch.setenv("KUAIREC_HOME", str(home))
    # summary and metrics read the run history: an instance of its own, never the repository's data/dagster
    (home / "dagster_home").mkdir(exist_ok=True)
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster_home"))


def _rows(text: str) -> int:
    return len(text.strip().splitlines()) - 3  # title, header, rule


@pytest.mark.parametrize("k", ["0", "-1", "two"])
@pytest.mark.parametrize("model", [[], ["--model", "linear"]])
def test_k_below_one_or_not_a_number_is_refused_on_every_path(k, model, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["recommend", "--user", "3", "-k", k, *model])
    assert stop.value.code == 2
    assert "argument -k" in capsys.readouterr().err


@pytest.mark.parametrize("model", [[], ["--model", "linear"]])
def test_k_above_the_stored_depth_is_capped_the_same_on_every_path(model, capsys):
    assert main(["recommend", "--user", "3", "-k", "5000", *model]) == 0
    captured = capsys.readouterr()
    assert _rows(captured.out) == 8
    assert "-k 5000 capped at 8" in captured.err
    assert main(["recommend", "--user", "3", "-k", "5", *model]) == 0
    captured = capsys.readouterr()
    assert _rows(captured.out) == 5 and "capped" not in captured.err  # (the fixture has no provenance records)


def test_recommend_help_lists_every_model_of_the_registry(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["recommend", "--help"])
    assert stop.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps the help text
    names = [*TRAINED_MODELS, *SERVED_ALIASES]
    assert "sequential_shuffled" in names and "hybrid" in names
    assert [name for name in names if not re.search(rf"\b{name}\b", text)] == []


def test_generate_says_when_it_wrote_nothing(tmp_path, capsys):
    out = tmp_path / "twin"
    assert main(["generate", "--profile", "tiny", "--out", str(out)]) == 0
    assert "wrote the tiny twin" in capsys.readouterr().out
    assert main(["generate", "--profile", "tiny", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "nothing written" in said and "wrote" not in said


def test_summary_names_files_metrics_and_next_commands(home, capsys):
    assert main(["summary"]) == 0
    captured = capsys.readouterr()
    text = captured.out
    assert captured.err == ""  # no run history of these files: nothing to warn about
    assert str(home / "reports" / "report.html") in text and "missing" in text  # no report written here
    assert "top 8 per user, model hybrid" in text
    assert "0.1600*" in text and "0.1400 " in text  # best non-reference rmse starred; the oracle never is
    assert "kuairec recommend --user" in text and "dagster dev" in text


def test_summary_before_any_run_says_what_to_do(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KUAIREC_HOME", str(tmp_path))
    assert main(["summary"]) == 2
    assert "Materialize the pipeline first" in capsys.readouterr().err


def test_summary_and_recommend_say_when_the_served_lists_are_reranked(home, tmp_path, monkeypatch, capsys):
    reranked = tmp_path / "home"
    shutil.copytree(home, reranked)
    metrics = pl.read_parquet(reranked / "assets" / "metrics.parquet")
    serving = pl.DataFrame(
        {
            "model": ["hybrid", "hybrid+coverage", "hybrid+coverage"],
            "split": ["serving"] * 3,
            "metric": ["catalogue_coverage@10", "catalogue_coverage@10", "penalty"],
            "value": [0.05, 0.25, 0.7],
        }
    )
    pl.concat([metrics, serving], how="diagonal").write_parquet(reranked / "assets" / "metrics.parquet")
    monkeypatch.setenv("KUAIREC_HOME", str(reranked))
    assert main(["summary"]) == 0
    assert "model hybrid, re-ranked for coverage: penalty 0.7, top-10 coverage of all videos 0.050 -> 0.250" in (
        capsys.readouterr().out
    )
    assert main(["recommend", "--user", "0", "-k", "3"]) == 0
    assert "ranked with the coverage penalty 0.7" in capsys.readouterr().out
    assert main(["recommend", "--user", "0", "-k", "3", "--model", "linear"]) == 0
    assert "coverage penalty" not in capsys.readouterr().out  # scored on the fly: the model's own ranking
    assert main(["metrics", "--split", "serving"]) == 0
    assert "hybrid+coverage" in capsys.readouterr().out
    # Before: no serving rows, no note.
    monkeypatch.setenv("KUAIREC_HOME", str(home))
    assert main(["summary"]) == 0
    assert "re-ranked" not in capsys.readouterr().out
