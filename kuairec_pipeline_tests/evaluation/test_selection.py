"""The selection slice: its metrics, and the served model chosen on them (never on the tuning slice or test)."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from kuairec_pipeline.evaluation.baselines import RandomRecommender, UserVideoBiasRecommender
from kuairec_pipeline.evaluation.metrics import (
    EvaluationGrid,
    distinct_pairs,
    evaluate,
    ndcg_at_k,
    rank_grid,
    selection_metrics,
    sparse_ndcg_at_k,
)
from kuairec_pipeline.evaluation.selection import select_served_model
from kuairec_pipeline.target import TargetScaler
from kuairec_pipeline_tests.builders import FixedScores
from kuairec_pipeline_tests.models.contract import make_featureless_prepared_data, make_interactions, make_planted

SCALER = TargetScaler(0.0, 3.0)


def selection_data():
    """User 0 watched videos 0, 1, 2 in the selection window (video 1 twice: ratios 2.5 and 2.9, mean 2.7 > 2);
    user 1 watched video 3 (no positive: skipped by ndcg). The test grid is 2 x 2 on videos 0 and 1."""
    selection = make_interactions([0, 0, 0, 0, 1], [0, 1, 1, 2, 3], [0.5, 2.5, 2.9, 2.1, 1.0], SCALER)
    test = make_interactions([0, 0, 1, 1], [0, 1, 0, 1], [1.0, 1.0, 1.0, 1.0], SCALER)
    train = make_interactions([0, 1], [3, 2], [1.0, 1.0], SCALER)
    return make_featureless_prepared_data(2, 4, train, test=test, selection=selection, scaler=SCALER)


def test_distinct_pairs_average_repeated_views() -> None:
    pairs = distinct_pairs(selection_data().selection, 4)
    assert list(zip(pairs.user, pairs.video, strict=False)) == [(0, 0), (0, 1), (0, 2), (1, 3)]
    np.testing.assert_allclose(pairs.watch_ratio, [0.5, 2.7, 2.1, 1.0], rtol=1e-6)


def test_selection_metrics_by_hand() -> None:
    data = selection_data()
    scores = np.array([[0.9, 0.1, 0.5, 0.0], [0.2, 0.2, 0.2, 0.3]])
    metrics = selection_metrics(FixedScores(scores), data)
    # User 0 ranks videos 0, 2, 1: positives (2 and 1) at ranks 2 and 3; ideal puts them at 1 and 2.
    ideal = 1 + 1 / math.log2(3)
    assert metrics["ndcg@10"] == (pytest.approx((1 / math.log2(3) + 1 / math.log2(4)) / ideal), 1)
    cells = scores[data.selection.user, data.selection.video]
    assert metrics["mae"] == (pytest.approx(np.mean(np.abs(cells - data.selection.target))), 5)
    frame = evaluate(FixedScores(scores), data, include_selection=True)
    assert set(frame.filter(pl.col("split") == "selection")["metric"]) == {"mae", "rmse", "ndcg@10"}
    assert evaluate(FixedScores(scores), data).filter(pl.col("split") == "selection").is_empty()


def rows(model: str, split: str, metric: str, value: float) -> tuple:
    return (model, split, metric, value, 1)


def test_the_served_model_is_the_best_selection_ndcg_not_the_best_val_or_test() -> None:
    table = pl.DataFrame(
        [
            rows("linear", "selection", "ndcg@10", 0.30),
            rows("linear", "selection", "rmse", 0.20),
            rows("als", "selection", "ndcg@10", 0.35),
            rows("als", "selection", "rmse", 0.25),
            rows("als", "val", "rmse", 0.30),
            rows("linear", "val", "rmse", 0.10),
            rows("linear", "test", "ndcg@10", 0.9),
            rows("oracle", "selection", "ndcg@10", 0.99),
            rows("user_tag_profile", "selection", "ndcg@10", 0.98),
        ],
        schema=["model", "split", "metric", "value", "count"],
        orient="row",
    )
    assert select_served_model(table) == "als"  # trained models only; selection ndcg, not val rmse or test
    tied = table.with_columns(
        pl.when((pl.col("model") == "als") & (pl.col("metric") == "ndcg@10"))
        .then(pl.lit(0.30))
        .otherwise(pl.col("value"))
        .alias("value")
    )
    assert select_served_model(tied) == "linear"  # same selection ndcg: the lower selection rmse wins
    with pytest.raises(ValueError, match="selection ndcg@10"):
        select_served_model(table.filter(pl.col("split") != "selection"))


def test_sparse_ndcg_equals_the_dense_grid_ndcg_on_planted_selection_pairs() -> None:
    planted = make_planted()
    data = planted.prepared
    pairs = distinct_pairs(data.selection, data.n_videos)
    grid = EvaluationGrid.from_interactions(pairs, 1.0)  # a lower positive threshold: more users ranked
    for model in (RandomRecommender().fit(planted.data), UserVideoBiasRecommender().fit(planted.data)):
        ranking = rank_grid(model, grid, len(pairs), 10, model.name)
        ranked = ranking.n_relevant > 0
        dense = float(ndcg_at_k(ranking.hits, ranking.n_relevant, 10)[ranked].mean())
        sparse, n_ranked = sparse_ndcg_at_k(pairs, model.predict(pairs.user, pairs.video), 10, 1.0, data.n_videos)
        assert n_ranked == int(ranked.sum()) > 5
        assert sparse == pytest.approx(dense)


def test_an_ablation_is_never_served() -> None:
    rows = [
        ("als", "selection", "ndcg@10", 0.30, 10),
        ("sequential_shuffled", "selection", "ndcg@10", 0.90, 10),  # best by far, but an ablation
        ("als", "selection", "rmse", 0.20, 10),
        ("sequential_shuffled", "selection", "rmse", 0.10, 10),
    ]
    table = pl.DataFrame(rows, schema=["model", "split", "metric", "value", "count"], orient="row")
    assert select_served_model(table) == "als"
