"""Coverage re-ranking of the served lists (evaluation/reranking.py): the penalized ranking, the list statistics
and the choice of the penalty, against hand-built scores."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from kuairec_pipeline.evaluation.metrics import evaluate, selection_metrics
from kuairec_pipeline.evaluation.reranking import (
    SPLIT_SERVING,
    CoverageReranked,
    choose_penalty,
    coverage_rows,
    list_statistics,
    served_penalty,
    video_mean_scores,
)
from kuairec_pipeline.target import TargetScaler
from kuairec_pipeline_tests.builders import FixedScores
from kuairec_pipeline_tests.models.contract import make_featureless_prepared_data, make_interactions

SCALER = TargetScaler(0.0, 3.0)
# Video 0 is everyone's best by its appeal; each user u in 0..3 likes video u+1 more than the average user does.
APPEAL = np.array([0.8, 0.5, 0.5, 0.5, 0.5])
TASTE = np.zeros((4, 5))
TASTE[np.arange(4), np.arange(1, 5)] = 0.2
SCORES = (APPEAL[None, :] + TASTE).clip(0, 1)


def data_with_selection(positive_video_of_user: list[int]):
    """Each user saw every video in the selection window; only ``positive_video_of_user[u]`` had a ratio > 2."""
    users = np.repeat(np.arange(4), 5)
    videos = np.tile(np.arange(5), 4)
    ratios = np.where(videos == np.repeat(positive_video_of_user, 5), 2.5, 1.0)
    selection = make_interactions(users, videos, ratios, SCALER)
    train = make_interactions([0, 1], [0, 1], [1.0, 1.0], SCALER)
    test = make_interactions(users, videos, ratios, SCALER)
    return make_featureless_prepared_data(4, 5, train, test=test, selection=selection, scaler=SCALER)


def test_the_penalty_subtracts_the_videos_mean_score_and_leaves_predictions_alone() -> None:
    base = FixedScores(SCORES)
    np.testing.assert_allclose(video_mean_scores(base), SCORES.mean(axis=0))
    reranked = CoverageReranked(base, 1.0)
    np.testing.assert_allclose(reranked.score_all(np.arange(4)), SCORES - SCORES.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(reranked.score_all(np.array([2]), np.array([4, 3])), [[-0.05, 0.15]], atol=1e-6)
    users, videos = np.array([0, 3, 1]), np.array([0, 4, 2])
    np.testing.assert_array_equal(reranked.predict(users, videos), base.predict(users, videos))
    np.testing.assert_array_equal(CoverageReranked(base, 0.0).score_all(np.arange(4)), base.score_all(np.arange(4)))
    with pytest.raises(ValueError, match="penalty"):
        CoverageReranked(base, -0.1)
    with pytest.raises(TypeError, match="fit the base"):
        reranked.fit(None)


def test_recommend_ranks_by_the_penalty_and_returns_the_models_predictions() -> None:
    base = FixedScores(SCORES)
    ids, scores = base.recommend(np.arange(4), k=1)
    assert ids.ravel().tolist() == [0, 0, 0, 0]  # everyone gets the video with the best appeal
    ids, scores = CoverageReranked(base, 1.0).recommend(np.arange(4), k=2)
    assert ids[:, 0].tolist() == [1, 2, 3, 4]  # each user's own favourite first
    np.testing.assert_allclose(scores, SCORES[np.arange(4)[:, None], ids])
    seen = sp.csr_matrix(np.eye(4, 5, k=1, dtype=np.float32))  # each user has seen their favourite
    ids, scores = CoverageReranked(base, 1.0).recommend(np.arange(4), k=5, exclude=seen)
    assert np.isneginf(scores[:, -1]).all() and (ids[:, -1] == np.arange(1, 5)).all()  # seen: padded last


def test_list_statistics_count_every_users_list_over_every_video() -> None:
    base = FixedScores(SCORES)
    coverage, share = list_statistics(base, np.array([0.0, 1.0]), video_mean_scores(base), None, k=1)
    np.testing.assert_allclose(coverage, [1 / 5, 4 / 5])
    np.testing.assert_allclose(share, [1.0, 1 / 4])
    seen = sp.csr_matrix(np.eye(4, 5, k=1, dtype=np.float32))
    coverage, share = list_statistics(base, np.array([1.0]), video_mean_scores(base), seen, k=1)
    assert share[0] == 1.0 and coverage[0] == 1 / 5  # with their favourites seen, all fall back to video 0


def test_the_smallest_penalty_that_reaches_the_target_within_the_selection_budget() -> None:
    base = FixedScores(SCORES)
    grid = (0.0, 0.2, 0.5, 1.0)  # the favourites overtake video 0 at 0.4 (0.8 - 0.8 p = 0.7 - 0.55 p)
    # Selection positives are each user's favourite: penalizing helps the selection ndcg, any target is allowed.
    liked = data_with_selection([1, 2, 3, 4])
    choice = choose_penalty(base, liked, None, 0.6, 0.0, penalties=grid, k=1, refine_steps=0)
    assert choice.reached_target and choice.penalty == 0.5
    np.testing.assert_allclose(choice.coverage, [0.2, 0.2, 0.8, 0.8])
    assert choice.selection_ndcg[2] > choice.selection_ndcg[0]
    # Refined between 0.2 and 0.5 (the grid's first reaching penalty and the one before): 0.44 is the first past 0.4.
    refined = choose_penalty(base, liked, None, 0.6, 0.0, penalties=grid, k=1)
    assert refined.reached_target and refined.penalty == pytest.approx(0.44)
    np.testing.assert_allclose(refined.penalties, [0.0, 0.2, 0.26, 0.32, 0.38, 0.44, 0.5, 1.0])
    np.testing.assert_allclose(refined.coverage, [0.2] * 5 + [0.8] * 3)
    assert choose_penalty(base, liked, None, 0.6, 0.0, penalties=(0.0, 0.5), k=1, refine_steps=1).penalty == 0.5
    # Selection positives are video 0: penalizing costs selection ndcg, so a 0 budget keeps the plain ranking.
    popular = data_with_selection([0, 0, 0, 0])
    kept = choose_penalty(base, popular, None, 0.6, 0.0, penalties=grid, k=1)  # never reaches: nothing to refine
    assert kept.penalty == 0.0 and not kept.reached_target
    relaxed = choose_penalty(base, popular, None, 0.6, 1.0, penalties=grid, k=1, refine_steps=0)
    assert relaxed.penalty == 0.5 and relaxed.reached_target
    assert choose_penalty(base, popular, None, 0.0, 1.0, penalties=grid, k=1).penalty == 0.0  # target 0: off
    # Coverage 0.2 is reached at 0 (every list is video 0); a top-item bound of 1/2 needs the penalty that splits them.
    wide = choose_penalty(base, liked, None, 0.2, 1.0, penalties=grid, k=1)
    bounded = choose_penalty(base, liked, None, 0.2, 1.0, penalties=grid, k=1, max_top_item_share=0.5, refine_steps=0)
    assert (wide.penalty, bounded.penalty) == (0.0, 0.5) and bounded.reached_target
    with pytest.raises(ValueError, match="max_top_item_share"):
        choose_penalty(base, liked, None, 0.2, 1.0, penalties=grid, max_top_item_share=-0.1)
    with pytest.raises(ValueError, match="ascend from 0"):
        choose_penalty(base, popular, None, 0.5, 0.1, penalties=(0.5, 1.0))
    with pytest.raises(ValueError, match="refine_steps"):
        choose_penalty(base, popular, None, 0.5, 0.1, penalties=grid, refine_steps=-1)
    with pytest.raises(ValueError, match="target_coverage"):
        choose_penalty(base, popular, None, 1.5, 0.1, penalties=grid)


def test_the_metrics_rows_evaluate_the_reranked_lists_and_keep_pointwise_errors() -> None:
    base = FixedScores(SCORES)
    base.name = "linear"
    data = data_with_selection([1, 2, 3, 4])
    rows, choice = coverage_rows(base, data, None, 1.0, 1.0, k=1)
    assert choice.penalty == 0.45 and not choice.reached_target  # the first of the most any gives (4 of 5)
    plain = evaluate(base, data, include_selection=True)

    def value(frame: pl.DataFrame, model: str, split: str, metric: str) -> float:
        (found,) = frame.filter((pl.col("model") == model) & (pl.col("split") == split) & (pl.col("metric") == metric))[
            "value"
        ]
        return found

    assert value(rows, "linear+coverage", "test", "mae") == value(plain, "linear", "test", "mae")
    assert value(rows, "linear+coverage", "test", "ndcg@10") > value(plain, "linear", "test", "ndcg@10")
    assert value(rows, "linear+coverage", "selection", "ndcg@10") == pytest.approx(
        selection_metrics(CoverageReranked(base, 0.45), data)["ndcg@10"][0]
    )
    assert value(rows, "linear+coverage", SPLIT_SERVING, "penalty") == 0.45
    assert value(rows, "linear", SPLIT_SERVING, "catalogue_coverage@1") == 0.2  # video 0 for everyone
    assert value(rows, "linear+coverage", SPLIT_SERVING, "catalogue_coverage@1") == 0.8
    assert value(rows, "linear+coverage", SPLIT_SERVING, "top_item_share@1") == 0.25
    assert served_penalty(rows, "linear") == 0.45
    with pytest.raises(ValueError, match="re-materialize metrics"):
        served_penalty(plain, "linear")
    # Re-ranking off (target 0): the serving rows say penalty 0, and no "+coverage" rows repeat the served model's.
    off, _ = coverage_rows(base, data, None, 0.0, 1.0, k=1)
    assert served_penalty(off, "linear") == 0.0
    assert off.filter(pl.col("split") != SPLIT_SERVING).is_empty()
    assert value(off, "linear+coverage", SPLIT_SERVING, "catalogue_coverage@1") == 0.2
