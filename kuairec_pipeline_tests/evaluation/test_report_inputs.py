"""Inputs of the HTML report: catalogue coverage, example users with their latest views and top-k, video labels."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from kuairec_pipeline.evaluation.metrics import seen_matrix
from kuairec_pipeline.evaluation.report_inputs import catalogue_coverage, example_users, user_examples, video_labels
from kuairec_pipeline.models.linear import LinearConfig, LinearRecommender
from kuairec_pipeline_tests.models.contract import PlantedData, make_planted


@pytest.fixture(scope="module")
def planted() -> PlantedData:
    return make_planted()


@pytest.fixture(scope="module")
def model(planted: PlantedData) -> LinearRecommender:
    return LinearRecommender(LinearConfig(l2=1.0)).fit(planted.data)


def test_coverage_counts_distinct_videos_of_the_test_users_top_k(planted, model):
    data = planted.prepared
    ids, scores = model.recommend(data.test_users, k=3, exclude=seen_matrix(data))
    expected = np.unique(ids[np.isfinite(scores)]).size / data.n_videos
    assert catalogue_coverage([model], data, k=3) == {"linear": pytest.approx(expected)}
    assert 0 < expected < 1
    with pytest.raises(ValueError, match="k must be >= 1"):
        catalogue_coverage([model], data, k=0)


def test_examples_show_latest_views_and_unseen_top_k_with_labels(planted, model):
    data = planted.prepared
    users = example_users(data, 3)
    assert len(users) == 3 and users == sorted(users) and set(users) <= set(data.test_users.tolist())
    labels = pl.DataFrame(
        {
            "video_id": np.arange(data.n_videos, dtype=np.int32),
            "caption": [f"caption {v}" for v in range(data.n_videos)],
            "tags": [f"tag {v % 3}" for v in range(data.n_videos)],
        }
    )
    seen = seen_matrix(data)
    for example in user_examples(model, data, labels, users, k=4, history=5):
        rows = np.concatenate(
            [
                data.training.train.timestamp[data.training.train.user == example.user_id],
                data.training.val.timestamp[data.training.val.user == example.user_id],
                data.selection.timestamp[data.selection.user == example.user_id],
            ]
        )
        assert example.history.height == min(5, rows.size)
        kept = example.history["video_id"].to_list()
        assert example.history["caption"].to_list() == [f"caption {v}" for v in kept]
        assert example.top_k["rank"].to_list() == [1, 2, 3, 4]
        videos = example.top_k["video_id"].to_numpy()
        assert not seen[example.user_id, videos].toarray().any()  # seen videos are never recommended
        ids, scores = model.recommend(np.array([example.user_id]), k=4, exclude=seen)
        assert videos.tolist() == ids[0].tolist()
        np.testing.assert_allclose(
            example.top_k["predicted_watch_ratio"].to_numpy(), data.scaler.inverse(scores[0]), rtol=1e-6
        )


def test_history_is_newest_first(planted, model):
    data = planted.prepared
    user = int(data.test_users[0])
    (example,) = user_examples(
        model,
        data,
        pl.DataFrame(schema={"video_id": pl.Int32, "caption": pl.String, "tags": pl.String}),
        [user],
        k=1,
        history=3,
    )
    by_time = {}
    for part in (data.training.train, data.training.val, data.selection):
        for video, stamp in zip(part.video[part.user == user], part.timestamp[part.user == user], strict=False):
            by_time.setdefault(float(stamp), []).append(int(video))
    newest = sorted(by_time, reverse=True)
    allowed_first = set(by_time[newest[0]])
    assert example.history["video_id"][0] in allowed_first


def test_video_labels_fall_back_to_tag_ids_without_the_daily_file():
    raw = pl.DataFrame(
        {"video_id": [0, 1], "tags": [[3], [1, 2]], "caption": ["a", None]},
        schema_overrides={"video_id": pl.Int32, "tags": pl.List(pl.Int8)},
    )
    labels = video_labels(raw)
    assert labels.to_dicts() == [
        {"video_id": 0, "caption": "a", "tags": "tag ids 3"},
        {"video_id": 1, "caption": "", "tags": "tag ids 1, 2"},
    ]
