"""benchmarks/quality.py: the gap share and the served-list figures it prints, on hand-made tables."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import polars as pl
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "quality.py"


@pytest.fixture(scope="module")
def quality():
    spec = importlib.util.spec_from_file_location("quality", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gap_closed_is_the_share_of_the_bias_to_oracle_ndcg_gap(quality) -> None:
    rows = [
        (model, "test", "ndcg@10", value, 1)
        for model, value in [("user_video_bias", 0.2), ("oracle", 0.6), ("als", 0.3), ("random", 0.1)]
    ]
    rows += [("als", "test", "mae", 0.11, 1), ("als", "selection", "ndcg@10", 0.5, 1)]
    metrics = pl.DataFrame(rows, schema=["model", "split", "metric", "value", "count"], orient="row")
    table = quality.seed_table(metrics)
    gap = dict(zip(table["model"], table["gap_closed"], strict=False))
    assert gap == pytest.approx({"user_video_bias": 0.0, "oracle": 1.0, "als": 0.25, "random": -0.25})
    als = table.filter(pl.col("model") == "als").row(0, named=True)
    assert als["mae"] == 0.11 and als["ndcg@10 (selection)"] == 0.5
    assert "| als | 0.3000 | 0.1100 |" in quality.markdown(table)


def test_served_list_metrics_cover_the_top_10_of_every_user(quality) -> None:
    recs = pl.DataFrame(
        {
            "user_id": [0] * 11 + [1] * 11,
            "rank": list(range(1, 12)) * 2,
            "video_id": list(range(11)) + [0] + list(range(20, 30)),
            "model": ["als"] * 22,
        }
    )
    served = quality.served_list_metrics(recs, n_videos=100)
    # Rank 11 is outside the top 10; video 0 is in both lists; 10 + 10 - 1 distinct videos.
    assert served == {"model": "als", "coverage": 0.19, "top_item_share": 1.0, "users": 2}
