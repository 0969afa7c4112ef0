"""video_features: padded tags, multi-hot, author ids, duration fallback and scaling, training-only mean target."""

from __future__ import annotations

import math

import polars as pl
import pytest

from kuairec_pipeline.errors import KuaiRecDataError
from kuairec_pipeline.features.videos import (
    VideoFeatureConfig,
    author_ids,
    build_video_features,
    padded_tag_ids,
    resolve_durations_ms,
    tag_multi_hot,
)
from kuairec_pipeline_tests.builders import T0, raw_interactions, raw_videos

RATIOS = pl.DataFrame(
    {
        "video_id": [0, 0, 0, 3, 1, 2],
        "target": [1.0, 1.0, 1.0, 0.0, 0.2, 0.9],
        "split": ["train", "train", "train", "train", "val", "test"],
    },
    schema_overrides={"video_id": pl.Int32, "target": pl.Float32},
)


def test_one_row_per_video_sorted_with_the_documented_columns():
    features = build_video_features(raw_videos(), RATIOS, None)
    assert features["video_id"].to_list() == [0, 1, 2, 3]
    assert features.columns == [
        "video_id",
        "author_id",
        "video_duration_ms",
        "tag_ids",
        "tag_multi_hot",
        "cat_author",
        "num_log_duration",
        "num_train_mean_target",
        "num_train_log_count",
    ]
    assert features.schema["tag_ids"] == pl.List(pl.Int32)
    assert features.schema["tag_multi_hot"] == pl.List(pl.Float32)
    assert features["author_id"].to_list() == [7, None, 9, 7]
    assert not [c for c in features.columns if "view" in c or "like" in c or "play" in c]


def test_tag_ids_are_shifted_padded_and_truncated_to_a_fixed_length():
    features = build_video_features(raw_videos(), RATIOS, None)
    assert features["tag_ids"].to_list() == [[1, 31, 0, 0], [0, 0, 0, 0], [2, 3, 4, 5], [6, 0, 0, 0]]
    assert set(features["tag_ids"].list.len().to_list()) == {4}


def test_tag_padding_length_is_configurable_and_repeated_tags_count_once():
    tags = pl.Series("tags", [[3, 3, 1], []], dtype=pl.List(pl.Int32))
    assert padded_tag_ids(tags.list.unique(maintain_order=True), 6).to_list() == [[4, 2, 0, 0, 0, 0], [0] * 6]
    features = build_video_features(
        raw_videos(tags=[[3, 3, 1], None, [], [2]]), RATIOS, None, VideoFeatureConfig(max_tags=2)
    )
    assert features["tag_ids"].to_list() == [[0, 0], [0, 0], [3, 0], [4, 2]]


def test_multi_hot_marks_every_tag_of_a_video():
    features = build_video_features(raw_videos(), RATIOS, None)
    multi_hot = features["tag_multi_hot"].to_list()
    assert {len(row) for row in multi_hot} == {31}
    assert [i for i, value in enumerate(multi_hot[0]) if value] == [0, 30]
    assert sum(multi_hot[1]) == 0.0
    assert [i for i, value in enumerate(multi_hot[2]) if value] == [1, 2, 3, 4, 6]  # beyond max_tags too
    assert tag_multi_hot(pl.Series([[2, 2]], dtype=pl.List(pl.Int32)), 4).to_list() == [[0.0, 0.0, 1.0, 0.0]]


def test_out_of_range_tags_raise():
    with pytest.raises(KuaiRecDataError, match="tags"):
        build_video_features(raw_videos(tags=[[31], None, None, None]), RATIOS, None)


def test_authors_with_few_videos_and_null_authors_share_padding():
    author = pl.Series("author_id", [9, 5, None, 9, 5, 1, 5], dtype=pl.Int32)
    assert author_ids(author, 2).to_list() == [2, 1, 0, 2, 1, 0, 1]
    assert author_ids(author, 3).to_list() == [0, 1, 0, 0, 1, 0, 1]
    assert author_ids(author, 1).to_list() == [3, 2, 0, 3, 2, 1, 2]
    features = build_video_features(raw_videos(), RATIOS, None)
    assert features["cat_author"].to_list() == [1, 0, 0, 1]


def test_duration_falls_back_to_the_interactions_median_then_the_global_median():
    videos = raw_videos(video_duration_ms=[None, 10_000.0, None, None]).sort("video_id")
    interactions = pl.concat(
        [
            raw_interactions([(0, 3, T0, 1.0), (1, 3, T0, 1.0)], video_duration=3_000),
            raw_interactions([(2, 3, T0, 1.0)], video_duration=4_000),
            raw_interactions([(2, 2, T0, 1.0)], video_duration=0),  # unusable: ignored
        ]
    )
    durations = resolve_durations_ms(videos, interactions)
    # video 0: raw; 1 and 2: median of known (10 s, 3 s) = 6.5 s; 3: median of its rows 3, 3, 4 s.
    assert durations.to_list() == [10_000.0, 6_500.0, 6_500.0, 3_000.0]
    assert resolve_durations_ms(videos, None).to_list() == [10_000.0] * 4


def test_no_known_duration_raises():
    videos = raw_videos(video_duration_ms=[None] * 4)
    with pytest.raises(ValueError, match="no video duration"):
        build_video_features(videos, RATIOS, None)


def test_log_duration_is_monotone_in_the_unit_interval():
    config = VideoFeatureConfig(duration_clip_lower_quantile=0.0, duration_clip_upper_quantile=1.0)
    features = build_video_features(raw_videos(), RATIOS, None, config).sort("video_duration_ms")
    scaled = features["num_log_duration"].to_list()
    assert scaled[0] == 0.0 and scaled[-1] == 1.0 and scaled == sorted(scaled)
    seconds = features["video_duration_ms"].to_list()
    expected = (math.log1p(seconds[1] / 1000) - math.log1p(2)) / (math.log1p(60) - math.log1p(2))
    assert scaled[1] == pytest.approx(expected)


def test_mean_target_uses_training_rows_only_and_is_shrunk():
    features = build_video_features(raw_videos(), RATIOS, None, VideoFeatureConfig(target_prior_weight=1.0))
    # Global training mean 0.75. Video 0: (3 + 0.75) / 4; 1 and 2 have no train rows; video 3: (0 + 0.75) / 2.
    assert features["num_train_mean_target"].to_list() == pytest.approx([0.9375, 0.75, 0.75, 0.375])
    assert features["num_train_log_count"].to_list() == pytest.approx([1.0, 0.0, 0.0, math.log1p(1) / math.log1p(3)])


def test_val_and_test_targets_do_not_change_the_features():
    other = RATIOS.with_columns(
        target=pl.when(pl.col("split") == "train").then(pl.col("target")).otherwise(pl.lit(0.5, dtype=pl.Float32))
    )
    assert build_video_features(raw_videos(), other, None).equals(build_video_features(raw_videos(), RATIOS, None))


def test_duplicate_video_ids_raise():
    with pytest.raises(ValueError, match="duplicate"):
        build_video_features(raw_videos(video_id=[0, 0, 1, 2]), RATIOS, None)


@pytest.mark.parametrize(
    "config",
    [
        {"max_tags": 0},
        {"min_author_videos": 0},
        {"duration_clip_lower_quantile": 0.9, "duration_clip_upper_quantile": 0.1},
        {"target_prior_weight": -1.0},
    ],
)
def test_config_rejects_nonsense(config):
    with pytest.raises(ValueError):
        VideoFeatureConfig(**config)


def test_a_video_without_a_side_row_keeps_its_interaction_features_and_gets_padding():
    with_row = build_video_features(raw_videos(), RATIOS)
    without = build_video_features(raw_videos().filter(pl.col("video_id") != 0), RATIOS)  # video 0: 3 train rows
    assert without["video_id"].to_list() == [0, 1, 2, 3]
    for column in ("num_train_mean_target", "num_train_log_count"):
        assert without[column].to_list() == with_row[column].to_list(), column
    lost = without.filter(pl.col("video_id") == 0).row(0, named=True)
    assert lost["tag_ids"] == [0] * len(lost["tag_ids"]) and sum(lost["tag_multi_hot"]) == 0.0
    assert lost["cat_author"] == 0 and lost["author_id"] is None
    assert lost["video_duration_ms"] > 0  # the median fallback, never null
