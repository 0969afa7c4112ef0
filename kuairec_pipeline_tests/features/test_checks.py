"""Asset-check functions: each passes on prepared data and fails on data broken in its own way."""

from __future__ import annotations

import math

import polars as pl
import pytest

from kuairec_pipeline.features.checks import (
    CheckOutcome,
    check_feature_table,
    check_ids_in_range,
    check_targets_in_unit_interval,
    check_train_test_disjoint,
    check_validation_after_training,
)
from kuairec_pipeline.features.ratios import FILTERED_RATIOS_SCHEMA


def filtered_ratios(rows: list[tuple]) -> pl.DataFrame:
    """(user, video, timestamp, watch_ratio, target, split, passes_filter) rows in the contract's dtypes."""
    return pl.DataFrame(rows, schema=FILTERED_RATIOS_SCHEMA, orient="row")


GOOD = filtered_ratios(
    [
        (0, 1, 100.0, 0.5, 0.2, "train", True),
        (1, 2, 200.0, 2.5, 1.0, "train", True),
        (0, 1, 300.0, 0.1, 0.0, "val", True),  # a re-watch of a train pair in val is fine
        (0, 3, None, 7.0, 1.0, "test", False),
        (1, 4, 50.0, 1.0, 0.4, "test", True),
    ]
)


def replaced(frame: pl.DataFrame, row: int, **values) -> pl.DataFrame:
    rows = frame.rows(named=True)
    rows[row] = {**rows[row], **values}
    return pl.DataFrame(rows, schema=frame.schema)


def assert_outcome(outcome: CheckOutcome, passed: bool) -> None:
    assert outcome.passed is passed, outcome.description
    assert outcome.description
    assert all(isinstance(value, (int, float, str)) for value in outcome.metadata.values())


def test_all_checks_pass_on_good_data():
    assert_outcome(check_targets_in_unit_interval(GOOD), True)
    assert_outcome(check_ids_in_range(GOOD, n_users=2, n_videos=5), True)
    assert_outcome(check_train_test_disjoint(GOOD), True)
    assert_outcome(check_validation_after_training(GOOD), True)


@pytest.mark.parametrize(
    "row, values, metadata_key",
    [
        (0, {"target": 1.5}, "targets_outside_unit_interval"),
        (0, {"target": -0.1}, "targets_outside_unit_interval"),
        (1, {"target": None}, "null_or_nan_targets"),
        (1, {"target": math.nan}, "null_or_nan_targets"),
        (2, {"passes_filter": False}, "train_val_rows_failing_filter"),
    ],
)
def test_targets_check_fails_on_bad_targets(row, values, metadata_key):
    outcome = check_targets_in_unit_interval(replaced(GOOD, row, **values))
    assert_outcome(outcome, False)
    assert outcome.metadata[metadata_key] == 1


def test_ids_check_fails_on_ids_outside_the_feature_tables():
    outcome = check_ids_in_range(GOOD, n_users=1, n_videos=5)
    assert_outcome(outcome, False)
    assert outcome.metadata["rows_with_bad_user_id"] == 2
    outcome = check_ids_in_range(replaced(GOOD, 0, video_id=-1), n_users=2, n_videos=5)
    assert_outcome(outcome, False)
    assert outcome.metadata["rows_with_bad_video_id"] == 1


def test_disjoint_check_fails_when_a_train_pair_is_in_test():
    outcome = check_train_test_disjoint(replaced(GOOD, 4, user_id=1, video_id=2))
    assert_outcome(outcome, False)
    assert outcome.metadata["overlapping_pairs"] == 1


def test_validation_check_fails_when_val_overlaps_training_time():
    assert_outcome(check_validation_after_training(replaced(GOOD, 2, timestamp=150.0)), False)
    assert_outcome(check_validation_after_training(replaced(GOOD, 2, timestamp=200.0)), False)  # not strictly later


def test_validation_check_fails_without_validation_rows():
    assert_outcome(check_validation_after_training(GOOD.filter(pl.col("split") != "val")), False)


FEATURES = pl.DataFrame(
    {
        "user_id": [0, 1, 2],
        "cat_a": [0, 3, 1],
        "num_b": [0.0, 0.5, 1.0],
        "tag_ids": [[1, 0], [0, 0], [2, 3]],
    },
    schema_overrides={"user_id": pl.Int32, "cat_a": pl.Int32, "num_b": pl.Float32},
)


def test_feature_table_check_passes_on_a_valid_table():
    outcome = check_feature_table(FEATURES, "user_id")
    assert_outcome(outcome, True)
    assert outcome.metadata["categorical_columns"] == 1 and outcome.metadata["numeric_columns"] == 1


@pytest.mark.parametrize(
    "column, values",
    [
        ("user_id", [0, 0, 2]),
        ("user_id", [0, None, 2]),
        ("cat_a", [0, -1, 1]),
        ("cat_a", [0, None, 1]),
        ("cat_a", [0.0, 1.0, 1.0]),
        ("num_b", [0.0, 1.5, 1.0]),
        ("num_b", [0.0, None, 1.0]),
        ("num_b", [0.0, math.nan, 1.0]),
        ("num_b", [0, 1, 1]),
    ],
)
def test_feature_table_check_fails_on_bad_columns(column, values):
    broken = FEATURES.with_columns(pl.Series(column, values, strict=False))
    outcome = check_feature_table(broken, "user_id")
    assert_outcome(outcome, False)
    assert column in outcome.description


def test_ids_check_names_the_column_and_example_ids():
    outcome = check_ids_in_range(replaced(GOOD, 1, video_id=99), n_users=2, n_videos=5)
    assert not outcome.passed
    assert "column video_id" in outcome.description and "99" in outcome.description
    assert outcome.metadata["example_bad_video_ids"] == "99"


def test_side_coverage_counts_ids_without_a_side_row_and_warns_above_the_share():
    from kuairec_pipeline.features.checks import check_side_coverage

    full = check_side_coverage(pl.Series([0, 1, 2]), GOOD, "user_id", "user_features.csv")
    assert_outcome(full, True)
    assert full.metadata["ids_without_side_row"] == 0
    missing = check_side_coverage(pl.Series([1]), GOOD, "user_id", "user_features.csv", max_share=0.4)
    assert_outcome(missing, False)  # user 0 of 2 (50 %) lacks a row: above 40 %
    assert missing.metadata["ids_without_side_row"] == 1 and missing.metadata["share_without_side_row"] == 0.5
    assert "user_features.csv" in missing.description and missing.metadata["example_ids_without_side_row"] == "0"
    assert check_side_coverage(pl.Series([1]), GOOD, "user_id", "f.csv", max_share=0.5).passed
    with pytest.raises(ValueError, match="max_share"):
        check_side_coverage(pl.Series([1]), GOOD, "user_id", "f.csv", max_share=1.5)
