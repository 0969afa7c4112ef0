"""The three prepared tables feed models.data.build_training_data and give consistent arrays."""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest

from kuairec_pipeline.features.checks import (
    check_feature_table,
    check_ids_in_range,
    check_targets_in_unit_interval,
    check_train_test_disjoint,
    check_validation_after_training,
)
from kuairec_pipeline.features.ratios import RatioConfig, prepare_filtered_ratios
from kuairec_pipeline.features.users import build_user_features
from kuairec_pipeline.features.videos import build_video_features
from kuairec_pipeline.models.data import PreparedData, TrainingData, build_prepared_data, build_training_data
from kuairec_pipeline_tests.builders import DAY, T0, raw_interactions, raw_users, raw_videos
from kuairec_pipeline_tests.models.contract import make_planted, planted_tables

# Users 0..2, videos 0..3. Train: days 0..3; val: days 8..10; test: videos 2 and 3 (never in big_matrix for
# users 0 and 1, as small_matrix's pairs were removed from big_matrix).
BIG = [
    (0, 0, T0, 0.4),
    (0, 1, T0 + DAY, 1.2),
    (0, 0, T0 + 2 * DAY, 0.9),  # re-watch
    (1, 0, T0 + DAY, 2.0),
    (1, 1, T0 + 3 * DAY, 0.2),
    (1, 1, T0 + 3 * DAY, 0.2),  # exact duplicate
    (2, 1, T0 + 2 * DAY, 5.0),  # outlier
    (2, 3, T0 + 2 * DAY, 1.5),
    (0, 2, T0 + 9 * DAY, 0.7),
    (2, 0, T0 + 10 * DAY, 2.2),
]
SMALL = [(0, 3, T0 + 20 * DAY, 0.3), (1, 2, None, 3.4), (1, 3, T0 + 21 * DAY, 1.0), (1, 3, T0 + 22 * DAY, 2.0)]


@pytest.fixture(scope="module")
def tables() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    big = raw_interactions(BIG)
    filtered, _ = prepare_filtered_ratios(big, raw_interactions(SMALL), RatioConfig())
    users = build_user_features(raw_users(), filtered)
    videos = build_video_features(raw_videos(video_duration_ms=[None, 10_000.0, 60_000.0, None]), filtered, big)
    return filtered, users, videos


def test_the_checks_pass_on_the_prepared_tables(tables):
    filtered, users, videos = tables
    for outcome in (
        check_targets_in_unit_interval(filtered),
        check_ids_in_range(filtered, users.height, videos.height),
        check_train_test_disjoint(filtered),
        check_validation_after_training(filtered),
        check_feature_table(users, "user_id"),
        check_feature_table(videos, "video_id"),
    ):
        assert outcome.passed, outcome.description


def test_training_data_has_consistent_shapes(tables):
    filtered, users, videos = tables
    prepared = build_prepared_data(filtered, users, videos)
    data = prepared.training
    assert (data.n_users, data.n_videos) == (3, 4)
    # Both validation-window users (0 and 2) hash into the selection slice: the tuning slice is empty here.
    assert (len(data.train), len(data.val), len(prepared.selection), len(prepared.test)) == (6, 0, 2, 3)
    assert data.user_categorical.shape == (3, 22) and data.user_categorical.dtype == np.int32
    assert data.user_numeric.shape == (3, 3) and data.user_numeric.dtype == np.float32
    assert data.video_categorical.shape == (4, 1)
    assert data.video_numeric.shape == (4, 3)
    assert data.video_tags.shape == (4, 4) and data.video_tag_multi_hot.shape == (4, 31)
    assert data.user_numeric_names == ["num_register_days", "num_train_mean_target", "num_train_log_count"]
    assert data.video_categorical_names == ["cat_author"]
    assert all(c == int(data.user_categorical[:, i].max()) + 1 for i, c in enumerate(data.user_categorical_cardinality))
    for numeric in (data.user_numeric, data.video_numeric):
        assert np.isfinite(numeric).all() and numeric.min() >= 0.0 and numeric.max() <= 1.0
    assert np.array_equal(prepared.test_users, [0, 1]) and np.array_equal(prepared.test_videos, [2, 3])


def test_training_data_holds_no_test_or_selection_rows(tables):
    fields = {field.name for field in dataclasses.fields(TrainingData)}
    assert not fields & {"test", "selection"}
    filtered, users, videos = tables
    data = build_training_data(filtered, users, videos)
    prepared = build_prepared_data(filtered, users, videos)
    for name in ("train", "val"):
        for column in ("user", "video", "target"):
            np.testing.assert_array_equal(
                getattr(getattr(data, name), column), getattr(getattr(prepared.training, name), column)
            )
    held_out = {
        (int(u), int(v))
        for rows in (prepared.selection, prepared.test)
        for u, v in zip(rows.user, rows.video, strict=False)
    }
    seen = {(int(u), int(v)) for rows in (data.train, data.val) for u, v in zip(rows.user, rows.video, strict=False)}
    assert held_out and not held_out & seen
    assert isinstance(prepared, PreparedData) and prepared.n_users == data.n_users and prepared.scaler == data.scaler


def test_the_planted_tables_rebuild_the_planted_data():
    planted = make_planted()
    rebuilt = build_prepared_data(*planted_tables(planted))
    pairs = [
        (rebuilt.training.train, planted.data.train),
        (rebuilt.training.val, planted.data.val),
        (rebuilt.selection, planted.prepared.selection),
        (rebuilt.test, planted.prepared.test),
    ]
    for got, want in pairs:
        for column in ("user", "video", "target", "watch_ratio", "passes_filter"):
            np.testing.assert_array_equal(getattr(got, column), getattr(want, column))
    np.testing.assert_array_equal(rebuilt.training.video_tag_multi_hot, planted.data.video_tag_multi_hot)
    np.testing.assert_array_equal(rebuilt.training.user_categorical, planted.data.user_categorical)


def test_arrays_are_indexed_by_id(tables):
    _, users, videos = tables
    data = build_training_data(tables[0], users, videos)
    video_3 = videos.filter(pl.col("video_id") == 3)
    assert data.video_tags[3].tolist() == video_3["tag_ids"].item().to_list()
    assert data.video_tag_multi_hot[3].tolist() == video_3["tag_multi_hot"].item().to_list()
    user_1 = users.filter(pl.col("user_id") == 1)
    assert data.user_numeric[1, 1] == user_1["num_train_mean_target"].item()


def test_scaler_round_trips_the_watch_ratio(tables):
    filtered, users, videos = tables
    prepared = build_prepared_data(filtered, users, videos)
    data, test = prepared.training, prepared.test
    assert (data.scaler.minimum, data.scaler.maximum) == (0.2, 2.0)
    np.testing.assert_allclose(data.scaler.inverse(data.train.target), data.train.watch_ratio, rtol=1e-6, atol=1e-6)
    passing = test.passes_filter
    # Sorted by user, then time with the untimed pair last; user 1 / video 2 has mean 3.4.
    assert passing.tolist() == [True, True, False]
    np.testing.assert_allclose(test.watch_ratio, [0.3, 1.5, 3.4], rtol=1e-6)
    np.testing.assert_allclose(data.scaler.transform(test.watch_ratio), test.target, atol=1e-6)
    assert data.train.passes_filter.all() and prepared.selection.passes_filter.all()
    assert np.isnan(test.timestamp[2])  # no time in small_matrix: NaN, not a fake instant
