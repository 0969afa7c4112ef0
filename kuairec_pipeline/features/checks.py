"""Pure checks on the prepared-data tables; the Dagster asset checks only wrap these.

Each returns a :class:`CheckOutcome`: whether it passed, one sentence saying what was found, and a few numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from kuairec_pipeline.features.scaling import SPLIT_SELECTION, SPLIT_TEST, SPLIT_TRAIN, SPLIT_VAL


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    description: str
    metadata: dict[str, int | float] = field(default_factory=dict)


def _split(filtered_ratios: pl.DataFrame, name: str) -> pl.DataFrame:
    return filtered_ratios.filter(pl.col("split") == name)


def check_targets_in_unit_interval(filtered_ratios: pl.DataFrame) -> CheckOutcome:
    """Targets are never null or NaN, all lie in [0, 1], and every train and val row passes the outlier filter."""
    target = pl.col("target")
    counts = filtered_ratios.select(
        null_or_nan=(target.is_null() | target.is_nan()).sum(),
        outside=((target < 0) | (target > 1)).sum(),
        train_val_failing=(pl.col("split").is_in([SPLIT_TRAIN, SPLIT_VAL, SPLIT_SELECTION])
                           & ~pl.col("passes_filter")).sum(),
        minimum=target.min(),
        maximum=target.max(),
    ).row(0, named=True)
    problems = int(counts["null_or_nan"]) + int(counts["outside"]) + int(counts["train_val_failing"])
    metadata = {
        "null_or_nan_targets": int(counts["null_or_nan"]),
        "targets_outside_unit_interval": int(counts["outside"]),
        "train_val_rows_failing_filter": int(counts["train_val_failing"]),
        "target_min": float(counts["minimum"]) if counts["minimum"] is not None else float("nan"),
        "target_max": float(counts["maximum"]) if counts["maximum"] is not None else float("nan"),
    }
    if problems:
        description = (
            f"{metadata['null_or_nan_targets']} null/NaN targets, {metadata['targets_outside_unit_interval']} "
            f"outside [0, 1], {metadata['train_val_rows_failing_filter']} train/val rows failing the outlier filter"
        )
    else:
        description = f"all {filtered_ratios.height} targets in [0, 1]; train and val rows all pass the filter"
    return CheckOutcome(problems == 0, description, metadata)


def check_ids_in_range(filtered_ratios: pl.DataFrame, n_users: int, n_videos: int) -> CheckOutcome:
    """Every user id is in 0..n_users-1 and every video id in 0..n_videos-1 (models use ids as row indices)."""
    bad_users = int(
        filtered_ratios.select(
            (pl.col("user_id").is_null() | (pl.col("user_id") < 0) | (pl.col("user_id") >= n_users)).sum()
        ).item()
    )
    bad_videos = int(
        filtered_ratios.select(
            (pl.col("video_id").is_null() | (pl.col("video_id") < 0) | (pl.col("video_id") >= n_videos)).sum()
        ).item()
    )
    metadata = {
        "rows_with_bad_user_id": bad_users,
        "rows_with_bad_video_id": bad_videos,
        "n_users": n_users,
        "n_videos": n_videos,
    }
    passed = bad_users == 0 and bad_videos == 0
    description = (
        f"all ids within {n_users} users and {n_videos} videos"
        if passed
        else f"{bad_users} rows with a user id outside 0..{n_users - 1}, "
        f"{bad_videos} rows with a video id outside 0..{n_videos - 1}"
    )
    return CheckOutcome(passed, description, metadata)


def check_train_test_disjoint(filtered_ratios: pl.DataFrame) -> CheckOutcome:
    """No (user, video) pair appears in both train and test (small_matrix's pairs were removed from big_matrix)."""
    pairs = ["user_id", "video_id"]
    train_pairs = _split(filtered_ratios, SPLIT_TRAIN).select(pairs).unique()
    test_pairs = _split(filtered_ratios, SPLIT_TEST).select(pairs).unique()
    overlap = train_pairs.join(test_pairs, on=pairs, how="inner").height
    metadata = {"overlapping_pairs": overlap, "train_pairs": train_pairs.height, "test_pairs": test_pairs.height}
    description = (
        "train and test share no (user, video) pair"
        if overlap == 0
        else f"{overlap} (user, video) pairs are in both train and test"
    )
    return CheckOutcome(overlap == 0, description, metadata)


def check_validation_after_training(filtered_ratios: pl.DataFrame) -> CheckOutcome:
    """The earliest validation timestamp is later than the latest training timestamp (a time split, no look-back)."""
    last_train = _split(filtered_ratios, SPLIT_TRAIN)["timestamp"].max()
    first_val = filtered_ratios.filter(pl.col("split").is_in([SPLIT_VAL, SPLIT_SELECTION]))["timestamp"].min()
    metadata = {
        "max_train_timestamp": float(last_train) if last_train is not None else float("nan"),
        "min_val_timestamp": float(first_val) if first_val is not None else float("nan"),
    }
    if last_train is None or first_val is None:
        return CheckOutcome(False, "train or val has no timestamped rows", metadata)
    passed = first_val > last_train
    description = (
        f"validation starts {first_val - last_train:.3f} s after the last training row"
        if passed
        else f"validation starts at {first_val}, not after the last training row at {last_train}"
    )
    return CheckOutcome(passed, description, metadata)


def check_feature_table(frame: pl.DataFrame, id_column: str) -> CheckOutcome:
    """Ids are unique and non-null; ``cat_*`` are non-negative integers; ``num_*`` are in [0, 1], no null or NaN."""
    problems: list[str] = []
    metadata: dict[str, int | float] = {"rows": frame.height}
    ids = frame[id_column]
    metadata["null_ids"] = ids.null_count()
    metadata["duplicate_ids"] = frame.height - ids.n_unique()
    if metadata["null_ids"] or metadata["duplicate_ids"]:
        problems.append(f"{id_column}: {metadata['null_ids']} null, {metadata['duplicate_ids']} duplicated")
    categorical = [c for c in frame.columns if c.startswith("cat_")]
    numeric = [c for c in frame.columns if c.startswith("num_")]
    metadata["categorical_columns"] = len(categorical)
    metadata["numeric_columns"] = len(numeric)
    for column in categorical:
        values = frame[column]
        if not values.dtype.is_integer():
            problems.append(f"{column}: dtype {values.dtype} is not an integer")
            continue
        bad = values.null_count() + int((values < 0).sum())
        if bad:
            problems.append(f"{column}: {bad} null or negative ids")
    for column in numeric:
        values = frame[column]
        if not values.dtype.is_float():
            problems.append(f"{column}: dtype {values.dtype} is not a float")
            continue
        bad = values.null_count() + int((values.is_nan() | (values < 0) | (values > 1)).sum())
        if bad:
            problems.append(f"{column}: {bad} values null, NaN or outside [0, 1]")
    metadata["problems"] = len(problems)
    description = "; ".join(problems) if problems else (
        f"{frame.height} unique {id_column}s, {len(categorical)} cat_* and {len(numeric)} num_* columns valid"
    )
    return CheckOutcome(not problems, description, metadata)
