"""Beyond-accuracy metrics by hand, and in evaluate() over the same top-10 lists the ndcg ranks."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from kuairec_pipeline.evaluation.baselines import PopularityRecommender, RandomRecommender
from kuairec_pipeline.evaluation.beyond_accuracy import (
    beyond_accuracy_metrics,
    catalogue_coverage,
    exposure_counts,
    gini_index,
    novelty,
    self_information,
    top_item_share,
)
from kuairec_pipeline.evaluation.metrics import evaluate, top_k_test_videos
from kuairec_pipeline.evaluation.report import metrics_markdown
from kuairec_pipeline.target import TargetScaler
from kuairec_pipeline_tests.models.contract import make_interactions, make_planted

LISTS = np.array([[1, 2], [1, 3], [1, 2]])  # 3 users' top-2 lists
CANDIDATES = np.array([1, 2, 3, 4])


def test_coverage_share_and_gini_by_hand() -> None:
    assert catalogue_coverage(LISTS, CANDIDATES) == pytest.approx(3 / 4)
    assert top_item_share(LISTS) == pytest.approx(1.0)  # video 1 is in every list
    assert top_item_share(np.array([[1, 2], [3, 4]])) == pytest.approx(0.5)
    np.testing.assert_array_equal(exposure_counts(LISTS, CANDIDATES), [3, 2, 1, 0])
    # ascending x = 0, 1, 2, 3 (n = 4, sum 6): sum (2i - 5) x_i = -1*1 + 1*2 + 3*3 = 10 -> 10 / 24
    assert gini_index(np.array([3, 2, 1, 0])) == pytest.approx(10 / 24)
    assert gini_index(np.array([2, 2, 2])) == pytest.approx(0.0)
    assert gini_index(np.array([0, 0, 0, 5])) == pytest.approx(3 / 4)  # (n - 1) / n: one video takes all
    with pytest.raises(ValueError, match="not among the candidates"):
        exposure_counts(np.array([[9]]), CANDIDATES)


def test_self_information_counts_distinct_training_users_with_add_one_smoothing() -> None:
    # 3 training users; video 0 watched by users 0 and 1 (user 0 twice), video 1 by user 2, video 2 by nobody.
    train = make_interactions([0, 0, 1, 2], [0, 0, 0, 1], [1.0] * 4, TargetScaler(0.0, 3.0))
    information = self_information(train, 3)
    np.testing.assert_allclose(information, [-math.log2(3 / 4), -math.log2(2 / 4), -math.log2(1 / 4)])
    assert novelty(np.array([[0, 2], [1, 2]]), information) == pytest.approx(
        (information[0] + 2 * information[2] + information[1]) / 4
    )


def test_all_four_metrics_cover_the_first_k_columns() -> None:
    information = np.arange(5, dtype=np.float64)
    metrics = beyond_accuracy_metrics(LISTS, CANDIDATES, information, k=1)
    assert metrics == {
        "catalogue_coverage@1": 0.25,
        "top_item_share@1": 1.0,
        "novelty@1": 1.0,
        "gini@1": pytest.approx(0.75),
    }


def test_evaluate_reports_them_over_the_lists_it_ranks() -> None:
    planted = make_planted()
    data = planted.prepared
    model = RandomRecommender().fit(planted.data)
    frame = evaluate(model, data)
    users, top = top_k_test_videos(model, data, k=10)
    information = self_information(planted.data.train, data.n_videos)
    expected = beyond_accuracy_metrics(top, data.test_videos, information, 10)
    test = frame.filter(pl.col("split") == "test")
    for name, value in expected.items():
        row = test.filter(pl.col("metric") == name)
        assert row["value"].item() == pytest.approx(value) and row["count"].item() == users.size
    # A popularity ranking gives everyone the same list: minimal coverage, one video in every list.
    popular = evaluate(PopularityRecommender().fit(planted.data), data).filter(pl.col("split") == "test")
    value = dict(zip(popular["metric"], popular["value"], strict=False))
    assert value["top_item_share@10"] == 1.0
    assert value["catalogue_coverage@10"] == pytest.approx(10 / data.test_videos.size)
    assert value["catalogue_coverage@10"] < expected["catalogue_coverage@10"]
    assert value["gini@10"] > expected["gini@10"]


def test_the_markdown_table_shows_them_unbolded() -> None:
    planted = make_planted()
    frames = [evaluate(m.fit(planted.data), planted.prepared) for m in (RandomRecommender(), PopularityRecommender())]
    table = metrics_markdown(pl.concat(frames))
    header = [cell.strip() for cell in table.splitlines()[0].strip("|").split("|")]
    for name in ("catalogue_coverage@10", "top_item_share@10", "novelty@10", "gini@10"):
        assert name in header
        column = header.index(name)
        assert not any(line.split("|")[column + 1].strip().startswith("**") for line in table.splitlines()[2:4])
