"""Metrics: hand-computed values on tiny arrays, and evaluate() on hand-made and planted data."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import polars as pl
import pytest

from kuairec_pipeline.evaluation.baselines import GlobalMeanRecommender, OracleRecommender, RandomRecommender
from kuairec_pipeline.evaluation.metrics import (
    EvaluationGrid,
    evaluate,
    evaluate_models,
    ndcg_at_k,
    pointwise_errors,
    precision_at_k,
    rank_candidates,
    ranking_hits,
    raw_errors,
    recall_at_k,
    seen_matrix,
    shared_inputs,
    tie_break_order,
    top_k_test_videos,
    validation_metrics,
)
from kuairec_pipeline.evaluation.report import metrics_bar_chart_png, metrics_markdown
from kuairec_pipeline.models.data import PreparedData
from kuairec_pipeline.models.linear import LinearConfig, LinearRecommender
from kuairec_pipeline.target import TargetScaler
from kuairec_pipeline_tests.builders import FixedScores
from kuairec_pipeline_tests.models.contract import make_featureless_prepared_data, make_interactions, make_planted

SCALER = TargetScaler(0.0, 3.0)


# ---- the metric formulas ------------------------------------------------------------------------------------------
def test_ndcg_by_hand() -> None:
    hits = np.array([[True, False, True], [False, False, False], [False, True, False]])
    values = ndcg_at_k(hits, np.array([2, 0, 1]), 3)
    dcg = 1 + 1 / math.log2(4)
    ideal = 1 + 1 / math.log2(3)
    np.testing.assert_allclose(values[0], dcg / ideal)
    assert np.isnan(values[1])  # no positive: no NDCG
    np.testing.assert_allclose(values[2], (1 / math.log2(3)) / 1.0)


def test_ndcg_ideal_is_capped_at_k() -> None:
    # 5 positives, top 2 both hits: a perfect top-2 list.
    np.testing.assert_allclose(ndcg_at_k(np.array([[True, True, False]]), np.array([5]), 2), [1.0])


def test_recall_and_precision_by_hand() -> None:
    hits = np.array([[True, False, True, False], [False, False, False, True]])
    n_relevant = np.array([3, 1])
    np.testing.assert_allclose(recall_at_k(hits, n_relevant, 2), [1 / 3, 0.0])
    np.testing.assert_allclose(recall_at_k(hits, n_relevant, 4), [2 / 3, 1.0])
    np.testing.assert_allclose(precision_at_k(hits, 2), [0.5, 0.0])
    np.testing.assert_allclose(precision_at_k(hits, 4), [0.5, 0.25])


def test_pointwise_and_raw_errors_by_hand() -> None:
    mae, rmse = pointwise_errors(np.array([0.1, 0.5]), np.array([0.3, 0.2]))
    assert mae == pytest.approx(0.25) and rmse == pytest.approx(math.sqrt(0.065))
    # Prediction 1.0 maps back to 3.0; truth 7.0 clips to 5; prediction 0.5 -> 1.5 vs truth 1.0.
    mae, rmse = raw_errors(np.array([1.0, 0.5]), np.array([7.0, 1.0]), SCALER)
    assert mae == pytest.approx((2.0 + 0.5) / 2) and rmse == pytest.approx(math.sqrt((4.0 + 0.25) / 2))


def test_ranking_skips_non_candidates() -> None:
    scores = np.array([[0.5, 0.9, 0.7, 0.1]])
    candidates = np.array([[True, False, True, True]])
    np.testing.assert_array_equal(rank_candidates(scores, candidates, 3), [[2, 0, 3]])
    relevant = np.array([[True, True, False, False]])
    np.testing.assert_array_equal(ranking_hits(scores, relevant, candidates, 4), [[False, True, False, False]])


def test_ties_follow_a_fixed_order_not_the_video_id() -> None:
    constant = np.full((2, 50), 0.5)
    ranked = rank_candidates(constant, None, 50)
    np.testing.assert_array_equal(ranked[0], tie_break_order(50))
    np.testing.assert_array_equal(ranked[0], ranked[1])
    assert not np.array_equal(ranked[0], np.arange(50))
    # Ties only reorder equal scores: a higher score still comes first.
    constant[:, 7] = 0.6
    assert (rank_candidates(constant, None, 1) == 7).all()


# ---- evaluate on hand-made data -----------------------------------------------------------------------------------
def hand_data() -> PreparedData:
    """3 test users x 4 test videos (user 2 lacks video 3); videos 0..3 of 5; user 1 has no positive."""
    users = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2]
    videos = [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2]
    ratios = [2.5, 0.5, 4.0, 1.0, 1.0, 1.5, 0.2, 0.4, 0.3, 2.2, 0.9]
    test = make_interactions(users, videos, ratios, SCALER, passes_filter=np.array(ratios) <= 3)
    train = make_interactions([0, 1], [4, 4], [1.0, 1.0], SCALER)
    return make_featureless_prepared_data(3, 5, train, test=test, scaler=SCALER)


def metric(frame: pl.DataFrame, name: str, split: str = "test") -> float:
    return frame.filter((pl.col("metric") == name) & (pl.col("split") == split))["value"].item()


def test_evaluate_by_hand() -> None:
    data = hand_data()
    scores = np.array(
        [
            [0.9, 0.8, 0.1, 0.2, 1.0],  # ranks 0,1,3,2 (video 4 is no test cell): positives 0 and 2 at ranks 1, 4
            [0.5, 0.5, 0.5, 0.5, 0.0],
            [0.0, 0.1, 0.2, 0.9, 0.0],  # video 3 unobserved for user 2: ranks 2,1,0; positive 1 at rank 2
        ]
    )
    frame = evaluate(FixedScores(scores), data, ndcg_at=(2, 3, 4), recall_at=(2,), precision_at=(1, 2))
    assert frame.columns == ["model", "split", "metric", "value", "count"]
    assert set(frame["model"]) == {"fixed"}

    ideal0 = 1 + 1 / math.log2(3)  # user 0 has 2 positives
    user2 = 1 / math.log2(3)  # its one positive at rank 2
    assert metric(frame, "ndcg@2") == pytest.approx((1 / ideal0 + user2) / 2)
    assert metric(frame, "ndcg@3") == pytest.approx((1 / ideal0 + user2) / 2)  # user 0's rank-4 hit not yet counted
    assert metric(frame, "ndcg@4") == pytest.approx(((1 + 1 / math.log2(5)) / ideal0 + user2) / 2)
    assert metric(frame, "recall@2") == pytest.approx((0.5 + 1.0) / 2)
    assert metric(frame, "precision@1") == pytest.approx((1 + 0) / 2)
    assert metric(frame, "precision@2") == pytest.approx((0.5 + 0.5) / 2)
    assert metric(frame, "users_without_positive") == 1 and metric(frame, "users_ranked") == 2

    cells = scores[data.test.user, data.test.video]
    kept = data.test.passes_filter
    assert metric(frame, "mae") == pytest.approx(np.mean(np.abs(cells[kept] - data.test.target[kept])), rel=1e-6)
    raw_truth = np.minimum(data.test.watch_ratio, 5.0)
    assert metric(frame, "rmse_raw5") == pytest.approx(np.sqrt(np.mean((cells * 3 - raw_truth) ** 2)), rel=1e-6)
    counts = dict(zip(frame["metric"], frame["count"], strict=False))
    assert counts["mae"] == 10 and counts["mae_raw5"] == 11 and counts["ndcg@3"] == 2


def test_perfect_ranking_scores_one_and_reversed_scores_lower() -> None:
    data = hand_data()
    relevance = np.zeros((3, 5))
    relevance[data.test.user, data.test.video] = data.test.watch_ratio
    perfect = evaluate(FixedScores(relevance / relevance.max()), data)
    reversed_ = evaluate(FixedScores(1 - relevance / relevance.max()), data)
    for name in ("ndcg@10", "ndcg@50", "recall@50"):
        assert metric(perfect, name) == pytest.approx(1.0)
    assert metric(reversed_, "ndcg@10") < metric(perfect, "ndcg@10")


def test_batches_do_not_change_the_result() -> None:
    data = hand_data()
    model = FixedScores(np.random.default_rng(0).random((3, 5)))
    whole = evaluate(model, data)
    model.calls.clear()
    one_by_one = evaluate(model, data, batch_users=1)
    assert model.calls == [1, 1, 1]
    assert whole.equals(one_by_one)


def test_non_finite_scores_are_refused() -> None:
    scores = np.full((3, 5), 0.5)
    scores[1, 2] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        evaluate(FixedScores(scores), hand_data())


def test_duplicate_test_pairs_are_refused() -> None:
    test = make_interactions([0, 0], [1, 1], [1.0, 2.0], SCALER)
    with pytest.raises(ValueError, match="twice"):
        EvaluationGrid.from_interactions(test)


def test_validation_split_is_reported_on_request() -> None:
    data = hand_data()
    data.training.val = make_interactions([0, 2], [4, 4], [1.5, 3.0], SCALER)
    frame = evaluate(FixedScores(np.full((3, 5), 0.5)), data, include_val=True, label="half")
    assert set(frame["model"]) == {"half"}
    assert metric(frame, "mae", "val") == pytest.approx(0.25)
    assert metric(frame, "rmse", "val") == pytest.approx(math.sqrt(0.125))


def test_validation_metrics_and_seen_matrix() -> None:
    data = hand_data()
    data.training.val = make_interactions([0, 2, 2], [4, 4, 4], [1.5, 3.0, 3.0], SCALER)
    scores = validation_metrics(FixedScores(np.full((3, 5), 0.5)), data.training)
    assert scores == {"mae": pytest.approx(1 / 3), "rmse": pytest.approx(math.sqrt(0.5 / 3))}
    seen = seen_matrix(data)
    assert seen.dtype == np.float32 and seen.shape == (3, 5)
    np.testing.assert_array_equal(seen.toarray(), [[0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1]])
    np.testing.assert_array_equal(seen_matrix(data, ("test",)).toarray()[2], [1, 1, 1, 0, 0])


# ---- evaluate on the planted data ---------------------------------------------------------------------------------
def test_evaluation_ranking_is_what_recommend_serves() -> None:
    data = make_planted().prepared
    model = LinearRecommender(LinearConfig(l2=1.0)).fit(data.training)
    users, evaluated = top_k_test_videos(model, data, k=10, batch_users=7)
    served, _ = model.recommend(users, k=10, video_ids=data.test_videos)
    np.testing.assert_array_equal(evaluated, served)
    # ... and the pointwise metrics use the same cells predict() returns.
    frame = evaluate(model, data)
    kept = data.test.passes_filter
    prediction = model.predict(data.test.user[kept], data.test.video[kept])
    assert metric(frame, "rmse") == pytest.approx(np.sqrt(np.mean((prediction - data.test.target[kept]) ** 2)))


def test_oracle_and_models_beat_random_and_constant_on_planted_data() -> None:
    planted = make_planted()
    data = planted.data
    oracle = OracleRecommender.from_truth(planted.truth, data.scaler, data.n_users, data.n_videos)
    models = [
        oracle,
        LinearRecommender(LinearConfig(l2=1.0)).fit(data),
        GlobalMeanRecommender().fit(data),
        RandomRecommender().fit(data),
    ]
    frame = evaluate_models(models, planted.prepared)
    assert set(frame.filter(pl.col("split") == "val")["model"]) == {"linear", "global_mean", "random"}
    assert set(frame.filter(pl.col("split") == "selection")["model"]) == {"linear", "global_mean", "random"}
    assert frame["model"].unique(maintain_order=True).to_list() == ["oracle", "linear", "global_mean", "random"]
    ndcg = {m: metric(frame.filter(pl.col("model") == m), "ndcg@10") for m in ("oracle", "linear", "random")}
    rmse = {m: metric(frame.filter(pl.col("model") == m), "rmse") for m in ("oracle", "linear", "global_mean")}
    assert ndcg["oracle"] > ndcg["random"] and ndcg["linear"] > ndcg["random"]
    assert rmse["oracle"] < rmse["linear"] < rmse["global_mean"]


def test_models_evaluated_together_get_the_rows_each_gets_alone() -> None:
    # evaluate_models computes the training popularity behind novelty once for all models; each alone must agree.
    planted = make_planted()
    data = planted.data
    models = [LinearRecommender(LinearConfig(l2=1.0)).fit(data), RandomRecommender().fit(data)]
    together = evaluate_models(models, planted.prepared)
    alone = pl.concat([evaluate(m, planted.prepared, include_val=True, include_selection=True) for m in models])
    assert together.equals(alone)
    assert together.filter(pl.col("metric") == "novelty@10")["value"].is_finite().all()
    # ... and the grid it builds once for all models: one built from other rows is refused, not silently used
    test = planted.prepared.test
    reversed_rows = dataclasses.replace(test, user=test.user[::-1].copy(), video=test.video[::-1].copy())
    for other in (
        EvaluationGrid.from_interactions(planted.prepared.training.val),  # other rows
        EvaluationGrid.from_interactions(reversed_rows),  # the same pairs, as many, in another order
        EvaluationGrid.from_interactions(test, positive_watch_ratio=0.5),  # another threshold
    ):
        with pytest.raises(ValueError, match="not built from data.test"):
            evaluate(models[0], planted.prepared, grid=other)


class CountingTimeAware(LinearRecommender):
    """A linear model declared time-aware (its ``predict_rows`` is ``predict``) that counts its test-row predictions."""

    time_aware = True
    name = "counting_time_aware"

    def __init__(self, config: LinearConfig, n_test_rows: int) -> None:
        super().__init__(config)
        self.n_test_rows, self.test_row_calls = n_test_rows, 0

    def predict_rows(self, rows, history=None):  # noqa: D102
        self.test_row_calls += len(rows) == self.n_test_rows
        return super().predict_rows(rows, history)


def test_a_reranking_reuses_its_base_models_time_aware_test_predictions() -> None:
    from kuairec_pipeline.evaluation.reranking import coverage_rows

    planted = make_planted()
    model = CountingTimeAware(LinearConfig(l2=1.0), len(planted.prepared.test)).fit(planted.data)
    kept: dict[str, np.ndarray] = {}
    together = evaluate_models(
        [model, RandomRecommender().fit(planted.data)], planted.prepared, time_aware_predictions=kept
    )
    assert list(kept) == [model.name] and model.test_row_calls == 1  # only time-aware models, each predicted once
    assert together.filter(pl.col("model") == model.name).equals(
        evaluate(model, planted.prepared, include_val=True, include_selection=True)
    )
    assert model.test_row_calls == 2
    reused, _ = coverage_rows(model, planted.prepared, None, 0.5, 1.0, test_predictions=kept[model.name])
    assert model.test_row_calls == 2  # the re-ranking's pointwise predictions are the base model's, not predicted again
    again, _ = coverage_rows(model, planted.prepared, None, 0.5, 1.0)
    assert model.test_row_calls == 3 and reused.equals(again)
    # ... and the evaluation's shared inputs: the same rows; inputs for another threshold are refused, so used
    inputs = shared_inputs(planted.prepared)
    shared, _ = coverage_rows(
        model, planted.prepared, None, 0.5, 1.0, test_predictions=kept[model.name], evaluate_inputs=inputs
    )
    assert shared.equals(again)
    with pytest.raises(ValueError, match="not built from data.test"):
        coverage_rows(model, planted.prepared, None, 0.5, 1.0, evaluate_inputs=shared_inputs(planted.prepared, 0.5))
    with pytest.raises(ValueError, match="test_predictions has shape"):
        evaluate(model, planted.prepared, test_predictions=kept[model.name][:-1])


# ---- the report ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def planted_metrics() -> pl.DataFrame:
    planted = make_planted()
    data = planted.data
    oracle = OracleRecommender.from_truth(planted.truth, data.scaler, data.n_users, data.n_videos)
    models = [
        LinearRecommender(LinearConfig(l2=1.0)).fit(data),
        GlobalMeanRecommender().fit(data),
        RandomRecommender().fit(data),
        oracle,
    ]
    return evaluate_models(models, planted.prepared, include_val=True)


def test_markdown_table_has_every_model_and_bolds_the_best(planted_metrics: pl.DataFrame) -> None:
    table = metrics_markdown(planted_metrics)
    lines = table.splitlines()
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header[:6] == ["model", "mae", "rmse", "mae_raw5", "rmse_raw5", "ndcg@10"]
    assert "rmse (val)" in header and "users_ranked" not in header
    rows = {
        line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")[1:]]
        for line in lines[2:]
        if line.startswith("|")
    }
    assert set(rows) == {"linear", "global_mean", "random", "oracle (reference)"}
    ndcg_column = header.index("ndcg@10") - 1
    rmse_column = header.index("rmse") - 1
    assert rows["linear"][rmse_column].startswith("**") and rows["linear"][ndcg_column].startswith("**")
    assert not any(cell.startswith("**") for cell in rows["oracle (reference)"])  # a ceiling, not a contender
    assert rows["oracle (reference)"][header.index("rmse (val)") - 1] == ""  # it knows test cells only
    assert not rows["global_mean"][rmse_column].startswith("**")
    assert "test users with a positive" in table


def test_bar_chart_is_a_png(planted_metrics: pl.DataFrame) -> None:
    png = metrics_bar_chart_png(planted_metrics)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
