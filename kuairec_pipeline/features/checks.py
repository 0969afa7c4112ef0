"""Pure checks on the prepared-data tables; the Dagster asset checks only wrap these.

Each returns a :class:`CheckOutcome`: whether it passed, one sentence saying what was found (with the column and
example ids when it failed), and a few numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from kuairec_pipeline.target import SPLIT_SELECTION, SPLIT_TEST, SPLIT_TRAIN, SPLIT_VAL


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    description: str
    metadata: dict[str, int | float | str] = field(default_factory=dict)


# Share of the ids with interactions that may lack a row in their side file before check_side_coverage warns.
# KuaiRec's own files cover every id (share 0), so 1 % already means a damaged or over-cleaned side file; below it
# the features stay usable (missing side values take the padding / unknown value).
MAX_MISSING_SIDE_SHARE = 0.01
EXAMPLE_IDS = 5  # ids quoted in a check's description
SPLIT_SOURCE_FILES = "train and val come from big_matrix.csv, test from small_matrix.csv)"


def example_ids(ids: pl.Series, limit: int = EXAMPLE_IDS) -> str:
    """The first ``limit`` distinct ids, sorted, as text (for messages naming the culprit)."""
    values = ids.drop_nulls().unique().sort().head(limit).to_list()
    more = ", ..." if ids.drop_nulls().n_unique() > limit else ""
    return ", ".join(str(v) for v in values) + more


def _split(filtered_ratios: pl.DataFrame, name: str) -> pl.DataFrame:
    return filtered_ratios.filter(pl.col("split") == name)


def check_targets_in_unit_interval(filtered_ratios: pl.DataFrame) -> CheckOutcome:
    """Targets are never null or NaN, all lie in [0, 1], and every train and val row passes the outlier filter."""
    target = pl.col("target")
    counts = filtered_ratios.select(
        null_or_nan=(target.is_null() | target.is_nan()).sum(),
        outside=((target < 0) | (target > 1)).sum(),
        train_val_failing=(
            pl.col("split").is_in([SPLIT_TRAIN, SPLIT_VAL, SPLIT_SELECTION]) & ~pl.col("passes_filter")
        ).sum(),
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
        bad = filtered_ratios.filter(
            target.is_null()
            | target.is_nan()
            | (target < 0)
            | (target > 1)
            | (pl.col("split").is_in([SPLIT_TRAIN, SPLIT_VAL]) & ~pl.col("passes_filter"))
        )
        metadata["example_user_ids"] = example_ids(bad["user_id"])
        description = (
            f"column target: {metadata['null_or_nan_targets']} null/NaN targets, "
            f"{metadata['targets_outside_unit_interval']} outside [0, 1], {metadata['train_val_rows_failing_filter']} "
            f"train/val rows failing the outlier filter (e.g. user ids {metadata['example_user_ids']})"
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
    metadata: dict[str, int | float | str] = {
        "rows_with_bad_user_id": bad_users,
        "rows_with_bad_video_id": bad_videos,
        "n_users": n_users,
        "n_videos": n_videos,
    }
    passed = bad_users == 0 and bad_videos == 0
    if passed:
        return CheckOutcome(True, f"all ids within {n_users} users and {n_videos} videos", metadata)
    problems = []
    for column, bad, n in (("user_id", bad_users, n_users), ("video_id", bad_videos, n_videos)):
        if bad:
            ids = filtered_ratios[column]
            wrong = (ids.is_null() | (ids < 0) | (ids >= n)).fill_null(True)
            examples = example_ids(ids.filter(wrong))
            splits = ", ".join(sorted(filtered_ratios["split"].filter(wrong).unique().to_list()))
            metadata[f"example_bad_{column}s"] = examples
            problems.append(
                f"column {column}: {bad} rows outside 0..{n - 1} (e.g. ids {examples or 'null'}; "
                f"split {splits}: {SPLIT_SOURCE_FILES}"
            )
    return CheckOutcome(False, "; ".join(problems), metadata)


def check_train_test_disjoint(filtered_ratios: pl.DataFrame) -> CheckOutcome:
    """No (user, video) pair appears in both train and test (small_matrix's pairs were removed from big_matrix)."""
    pairs = ["user_id", "video_id"]
    train_pairs = _split(filtered_ratios, SPLIT_TRAIN).select(pairs).unique()
    test_pairs = _split(filtered_ratios, SPLIT_TEST).select(pairs).unique()
    overlap = train_pairs.join(test_pairs, on=pairs, how="inner").height
    metadata: dict[str, int | float | str] = {
        "overlapping_pairs": overlap,
        "train_pairs": train_pairs.height,
        "test_pairs": test_pairs.height,
    }
    if overlap == 0:
        description = "train and test share no (user, video) pair"
    else:
        shared = train_pairs.join(test_pairs, on=pairs, how="inner").sort(pairs).head(EXAMPLE_IDS)
        metadata["example_pairs"] = ", ".join(f"({u}, {v})" for u, v in shared.iter_rows())
        description = (
            f"columns user_id, video_id: {overlap} (user, video) pairs are in both train and test "
            f"(e.g. {metadata['example_pairs']})"
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
    metadata: dict[str, int | float | str] = {"rows": frame.height}
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
        wrong = values.is_null() | (values < 0)
        if bad := int(wrong.sum()):
            problems.append(f"{column}: {bad} null or negative ids ({id_column} {example_ids(ids.filter(wrong))})")
    for column in numeric:
        values = frame[column]
        if not values.dtype.is_float():
            problems.append(f"{column}: dtype {values.dtype} is not a float")
            continue
        wrong = (values.is_null() | values.is_nan() | (values < 0) | (values > 1)).fill_null(True)
        if bad := int(wrong.sum()):
            problems.append(
                f"{column}: {bad} values null, NaN or outside [0, 1] ({id_column} {example_ids(ids.filter(wrong))})"
            )
    metadata["problems"] = len(problems)
    description = (
        "; ".join(problems)
        if problems
        else (f"{frame.height} unique {id_column}s, {len(categorical)} cat_* and {len(numeric)} num_* columns valid")
    )
    return CheckOutcome(not problems, description, metadata)


def check_side_coverage(
    side_ids: pl.Series,
    filtered_ratios: pl.DataFrame,
    id_column: str,
    side_file: str,
    max_share: float = MAX_MISSING_SIDE_SHARE,
) -> CheckOutcome:
    """How many ids with interactions (any split of ``filtered_ratios``) have no row in their side file.

    Parameters
    ----------
    side_ids : pl.Series
        The ids the side file lists (``raw_users.user_id`` or ``raw_videos.video_id``).
    filtered_ratios : pl.DataFrame
        The interactions; its ``id_column`` gives the ids the models index.
    id_column : str
        ``"user_id"`` or ``"video_id"``.
    side_file : str
        The file name quoted in the description (``user_features.csv``).
    max_share : float
        Passes while the share of interaction ids without a side row is at most this (in [0, 1]).

    Returns
    -------
    CheckOutcome
        Metadata ``ids_with_interactions``, ``ids_without_side_row``, ``share_without_side_row`` and, when any is
        missing, ``example_ids_without_side_row``.
    """
    if not 0.0 <= max_share <= 1.0:
        raise ValueError(f"max_share must be in [0, 1], got {max_share}")
    needed = filtered_ratios[id_column].cast(pl.Int64).drop_nulls().unique()
    missing = needed.filter(~needed.is_in(side_ids.cast(pl.Int64).drop_nulls().implode()))
    share = missing.len() / needed.len() if needed.len() else 0.0
    metadata: dict[str, int | float | str] = {
        "ids_with_interactions": needed.len(),
        "ids_without_side_row": missing.len(),
        "share_without_side_row": share,
        "max_share": max_share,
    }
    if missing.len() == 0:
        return CheckOutcome(
            True, f"all {needed.len()} {id_column}s with interactions have a row in {side_file}", metadata
        )
    metadata["example_ids_without_side_row"] = example_ids(missing)
    description = (
        f"{missing.len()} of {needed.len()} {id_column}s with interactions ({share:.1%}) have no row in {side_file} "
        f"(e.g. {metadata['example_ids_without_side_row']}): their side features take the padding / unknown value"
        + (f", above the {max_share:.0%} tolerated" if share > max_share else "")
    )
    return CheckOutcome(share <= max_share, description, metadata)


def check_splits_not_empty(filtered_ratios: pl.DataFrame) -> CheckOutcome:
    """Train and val hold rows and test holds rows passing the outlier filter: every later step needs all three
    (training, early stopping / blend weights / model choice, pointwise test metrics)."""
    counts = {name: _split(filtered_ratios, name).height for name in (SPLIT_TRAIN, SPLIT_VAL)}
    counts[f"{SPLIT_TEST}_passing_filter"] = _split(filtered_ratios, SPLIT_TEST).filter(pl.col("passes_filter")).height
    empty = [name for name, count in counts.items() if count == 0]
    metadata: dict[str, int | float | str] = {f"{name}_rows": count for name, count in counts.items()}
    if empty:
        return CheckOutcome(
            False,
            f"column split: no {', no '.join(empty)} rows (the filter and validation "
            "settings leave nothing for the steps that need them)",
            metadata,
        )
    return CheckOutcome(True, ", ".join(f"{count} {name} rows" for name, count in counts.items()), metadata)
