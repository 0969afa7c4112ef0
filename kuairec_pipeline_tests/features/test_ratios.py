"""filtered_ratios: duplicates, repeats, outliers, the validation cut-off, train-only scaling, test averaging."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from kuairec_pipeline.features.ratios import (
    FILTERED_RATIOS_SCHEMA,
    RatioConfig,
    clipped_log_unit,
    min_max_unit,
    prepare_filtered_ratios,
    selection_user_expr,
    selection_user_mask,
    train_target_features,
)
from kuairec_pipeline.target import TargetScaler
from kuairec_pipeline_tests.builders import DAY, T0, raw_interactions


def prepare(big_rows, small_rows, **config) -> tuple[pl.DataFrame, object]:
    return prepare_filtered_ratios(raw_interactions(big_rows), raw_interactions(small_rows), RatioConfig(**config))


# Train: days 0..2; val: day 10 (cut-off at day 3 with the default 7 validation days).
BIG = [
    (0, 10, T0, 0.5),
    (0, 11, T0 + 1 * DAY, 1.5),
    (1, 10, T0 + 2 * DAY, 0.1),
    (1, 12, T0 + 2 * DAY, 2.5),
    (1, 13, T0 + 10 * DAY, 0.7),
]
SMALL = [(0, 20, T0 + 20 * DAY, 0.4), (1, 21, None, 1.2)]


def by_split(table: pl.DataFrame, split: str) -> pl.DataFrame:
    return table.filter(pl.col("split") == split)


def test_output_has_the_contract_schema_and_sort_order():
    table, _ = prepare(BIG, SMALL)
    assert table.schema == FILTERED_RATIOS_SCHEMA
    assert table["split"].to_list() == ["train"] * 4 + ["val"] + ["test"] * 2
    expected = table.with_columns(rank=pl.col("split").replace_strict({"train": 0, "val": 1, "test": 2})).sort(
        "rank", "user_id", "timestamp", "video_id", nulls_last=True
    )
    assert table.equals(expected.drop("rank"))


def test_exact_duplicates_are_dropped_and_counted():
    table, summary = prepare(BIG + [BIG[0], BIG[0], BIG[1]], SMALL + [SMALL[0]])
    assert by_split(table, "train").height == 4
    assert summary.big_rows_in == 8
    assert summary.big_duplicates_dropped == 3
    assert summary.small_duplicates_dropped == 1
    # The duplicated test row does not pull the pair's mean: it is dropped before averaging.
    assert by_split(table, "test").filter(pl.col("video_id") == 20)["watch_ratio"].item() == pytest.approx(0.4)


def test_exact_duplicates_are_kept_when_configured():
    table, summary = prepare(BIG + [BIG[0]], SMALL, drop_exact_duplicates=False)
    assert by_split(table, "train").height == 5
    assert summary.big_duplicates_dropped == 0


def test_repeated_views_with_another_timestamp_are_separate_rows():
    rewatch = (0, 10, T0 + 1.5 * DAY, 0.9)  # same pair as BIG[0], later
    same_time_other_duration = (0, 10, T0, 0.6)  # same pair and time as BIG[0], another play duration
    table, summary = prepare(BIG + [rewatch, same_time_other_duration], SMALL)
    pair = by_split(table, "train").filter((pl.col("user_id") == 0) & (pl.col("video_id") == 10))
    assert sorted(pair["watch_ratio"].to_list()) == [0.5, 0.6, 0.9]
    assert summary.big_duplicates_dropped == 0


def test_outliers_are_dropped_from_train_and_val_and_counted_per_split():
    outliers = [(0, 14, T0, 3.5), (1, 15, T0 + 9 * DAY, 40.0), (1, 16, T0 + 9 * DAY, math.nan)]
    table, summary = prepare(BIG + outliers, SMALL)
    assert table.filter(pl.col("split") != "test")["watch_ratio"].max() <= 3.0
    assert summary.train_outliers_dropped == 1
    assert summary.val_outliers_dropped == 2  # NaN counts as an outlier
    assert (summary.train_rows, summary.val_rows) == (4, 1)


def test_the_threshold_itself_passes_the_filter():
    table, _ = prepare(BIG + [(0, 14, T0, 3.0)], SMALL)
    assert 3.0 in by_split(table, "train")["watch_ratio"].to_list()


def test_validation_cutoff_is_the_last_days_counted_from_the_latest_row():
    last = T0 + 10 * DAY
    rows = BIG + [(2, 10, last - 7 * DAY, 0.3), (2, 11, last - 7 * DAY + 0.001, 0.3)]
    table, summary = prepare(rows, SMALL)
    assert summary.max_timestamp == last
    assert summary.validation_cutoff_timestamp == pytest.approx(last - 7 * DAY)
    user_2 = table.filter(pl.col("user_id") == 2).sort("timestamp")
    # Exactly at the cut-off is train; user 2's validation rows are in the selection slice (hash 0.236 < 0.5).
    assert user_2["split"].to_list() == ["train", "selection"]
    window = table.filter(pl.col("split").is_in(["val", "selection"]))
    assert window["timestamp"].min() > by_split(table, "train")["timestamp"].max()


def test_selection_slice_is_the_validation_rows_of_a_hashed_share_of_users():
    # Users 0..5 each watch one video in the validation window; Fibonacci hashes: 0, .618, .236, .854, .472, .090
    window = [(user, 30 + user, T0 + 10 * DAY, 0.5) for user in range(6)]
    table, summary = prepare(BIG[:4] + window, SMALL)
    late = table.filter(pl.col("timestamp") > T0 + 3 * DAY)
    assert set(by_split(late, "selection")["user_id"]) == {0, 2, 4, 5}
    assert set(by_split(late, "val")["user_id"]) == {1, 3}
    assert (summary.val_rows, summary.selection_rows, summary.selection_users) == (2, 4, 4)
    table, summary = prepare(BIG[:4] + window, SMALL, selection_share=0.0)
    assert by_split(table, "selection").is_empty() and summary.val_rows == 6
    table, _ = prepare(BIG[:4] + window, SMALL, selection_share=0.3)
    assert set(by_split(table, "selection")["user_id"]) == {0, 2, 5}


def test_selection_hash_picks_the_share_evenly_and_polars_agrees_with_numpy():
    ids = np.arange(7_176)
    mask = selection_user_mask(ids, 0.5)
    assert abs(mask.mean() - 0.5) < 0.002
    assert abs(mask[:200].mean() - 0.5) < 0.02  # even on a few hundred consecutive ids
    via_polars = pl.DataFrame({"user_id": ids.astype(np.int32)}).select(selection_user_expr(0.5))
    np.testing.assert_array_equal(via_polars.to_series().to_numpy(), mask)
    assert not selection_user_mask(ids, 0.0).any()


def test_validation_days_is_configurable():
    table, _ = prepare(BIG, SMALL, validation_days=8.5)
    assert by_split(table, "val").height == 3  # days 2 and 10 are within 8.5 days of day 10


def test_target_is_scaled_with_training_minimum_and_maximum():
    table, summary = prepare(BIG, SMALL)
    train = by_split(table, "train")
    assert (summary.scaler_min, summary.scaler_max) == (0.1, 2.5)
    assert train.filter(pl.col("watch_ratio") == 0.1)["target"].item() == 0.0
    assert train.filter(pl.col("watch_ratio") == 2.5)["target"].item() == 1.0
    val = by_split(table, "val")["target"].item()
    assert val == pytest.approx((0.7 - 0.1) / 2.4, abs=1e-6)
    assert TargetScaler.from_filtered_ratios(table) == summary.scaler


def test_val_and_test_values_outside_the_training_range_are_clipped():
    rows = BIG + [(2, 10, T0 + 10 * DAY, 2.9), (2, 11, T0 + 10 * DAY, 0.0)]
    table, _ = prepare(rows, SMALL + [(2, 22, T0, 2.8)])
    targets = table.filter(pl.col("user_id") == 2).sort("watch_ratio")["target"].to_list()
    assert targets == [0.0, 1.0, 1.0]


def test_changing_val_and_test_rows_leaves_the_scaler_unchanged():
    _, base = prepare(BIG, SMALL)
    other_val = BIG[:4] + [(1, 13, T0 + 10 * DAY, 2.99), (3, 13, T0 + 9 * DAY, 0.0)]
    other_test = [(0, 20, None, 0.0), (5, 21, T0, 99.0)]
    table, changed = prepare(other_val, other_test)
    assert changed.scaler == base.scaler
    assert by_split(table, "train").equals(by_split(prepare(BIG, SMALL)[0], "train"))


def test_test_pairs_are_averaged_and_all_kept():
    small = [
        (0, 20, T0, 2.0),
        (0, 20, T0 + 60, 6.0),  # mean 4.0: kept, fails the filter
        (1, 21, None, 1.2),
        (1, 21, None, 0.4),  # mean 0.8, no time
        (1, 22, T0 + 5, 0.3),
    ]
    table, summary = prepare(BIG, small)
    test = by_split(table, "test").sort("user_id", "video_id")
    assert test.select("user_id", "video_id").rows() == [(0, 20), (1, 21), (1, 22)]
    assert test["watch_ratio"].to_list() == pytest.approx([4.0, 0.8, 0.3])
    assert test["passes_filter"].to_list() == [False, True, True]
    assert test["timestamp"].to_list() == [T0, None, T0 + 5]  # first view; null when the file had no time
    assert test["target"].to_list() == pytest.approx([1.0, (0.8 - 0.1) / 2.4, (0.3 - 0.1) / 2.4], abs=1e-6)
    assert (summary.test_rows, summary.test_pairs_failing_filter, summary.small_rows_in) == (3, 1, 5)


def test_train_and_val_rows_all_pass_the_filter():
    table, _ = prepare(BIG + [(0, 14, T0, 9.0)], SMALL)
    assert table.filter(pl.col("split") != "test")["passes_filter"].all()


def test_summary_metadata_is_flat_numbers():
    _, summary = prepare(BIG, SMALL)
    metadata = summary.as_metadata()
    assert metadata["train_rows"] == 4 and metadata["val_rows"] == 1 and metadata["test_rows"] == 2
    assert metadata["selection_rows"] == 0 and metadata["selection_users"] == 0  # user 1 is a tuning user
    assert all(isinstance(value, (int, float)) for value in metadata.values())


def test_empty_training_split_raises():
    with pytest.raises(ValueError, match="no training rows"):
        prepare([(0, 1, T0, 5.0), (0, 2, T0 + 10 * DAY, 0.5)], SMALL)
    with pytest.raises(ValueError, match="no training rows"):
        prepare(BIG, SMALL, validation_days=100.0)


def test_single_valued_training_split_raises():
    with pytest.raises(ValueError, match="nothing to scale"):
        prepare([(0, 1, T0, 0.5), (1, 2, T0, 0.5), (0, 3, T0 + 10 * DAY, 0.9)], SMALL)


def test_empty_interactions_raise():
    with pytest.raises(ValueError, match="no timestamps"):
        prepare([], SMALL)


@pytest.mark.parametrize(
    "config", [{"max_watch_ratio": 0.0}, {"validation_days": -1.0}, {"selection_share": 1.0}, {"selection_share": -0.1}]
)
def test_config_rejects_nonsense(config):
    with pytest.raises(ValueError):
        RatioConfig(**config)


def test_min_max_unit_maps_a_constant_column_to_zero():
    assert min_max_unit(pl.Series([2.0, 4.0, 3.0])).to_list() == [0.0, 1.0, 0.5]
    assert min_max_unit(pl.Series([7.0, 7.0])).to_list() == [0.0, 0.0]


def test_clipped_log_unit_clips_fills_nulls_and_keeps_order():
    scaled = clipped_log_unit(pl.Series([0.0, 1.0, None, 3.0, 1_000_000.0]), None, 0.75)
    assert scaled.null_count() == 0 and scaled.dtype == pl.Float32
    assert scaled[0] == 0.0 and scaled[4] == 1.0
    assert scaled[3] == 1.0  # the 0.75 quantile is 3.0: the outlier is clipped down to it
    assert scaled[2] == pytest.approx(math.log1p(2.0) / math.log1p(3.0))  # null takes the median (2.0)
    assert 0.0 < scaled[1] < scaled[2] < scaled[3]


def test_train_target_features_shrinks_toward_the_global_training_mean():
    table = pl.DataFrame(
        {
            "user_id": [0, 0, 1, 1, 2],
            "target": [1.0, 1.0, 0.0, 0.0, 0.9],
            "split": ["train", "train", "train", "train", "val"],
        },
        schema_overrides={"user_id": pl.Int32, "target": pl.Float32},
    )
    ids = pl.Series("user_id", [2, 1, 0], dtype=pl.Int32)
    features = train_target_features(ids, table, prior_weight=2.0)
    assert features["user_id"].to_list() == [2, 1, 0]
    # global mean 0.5; user 0: (2 + 2 * 0.5) / (2 + 2) = 0.75; user 2 has no train rows (val ignored).
    assert features["num_train_mean_target"].to_list() == pytest.approx([0.5, 0.25, 0.75])
    assert features["num_train_log_count"].to_list() == [0.0, 1.0, 1.0]
    unshrunk = train_target_features(ids, table, prior_weight=0.0)
    assert unshrunk["num_train_mean_target"].to_list() == pytest.approx([0.5, 0.0, 1.0])


def test_scaler_expression_maps_the_ends_exactly_even_for_a_subnormal_span():
    # Found by hypothesis (test_properties): polars divides by a literal through its reciprocal, 0 * inf = NaN.
    values = pl.DataFrame({"watch_ratio": [0.0, 5e-324, None]})
    scaled = values.select(TargetScaler(0.0, 5e-324).transform_expr())["watch_ratio"].to_list()
    assert scaled == [0.0, 1.0, None]
    ordinary = pl.DataFrame({"watch_ratio": [-1.0, 0.5, 1.0, 2.0, 9.0]})
    assert ordinary.select(TargetScaler(0.5, 2.0).transform_expr())["watch_ratio"].to_list() == pytest.approx(
        [0.0, 0.0, 1 / 3, 1.0, 1.0]
    )
