"""The ``filtered_ratios`` table: de-duplicated, outlier-filtered, split and scaled watch ratios.

Splits (docs/ARCHITECTURE.md):

- ``train``: big_matrix rows up to ``max timestamp - validation_days``;
- ``val``: big_matrix rows after that cut-off (strictly later, so every val row is later than every train row)
  of the users outside the selection share: the *tuning* slice models may use for early stopping and blend fitting;
- ``selection``: the same validation window's rows of a fixed share of users (``selection_share``), picked by a
  hash of the user id (:func:`selection_user_mask`): the slice no model sees, on which the served model is chosen;
- ``test``: small_matrix, one row per distinct (user, video) pair with its mean watch ratio.

Rows with a watch ratio above ``max_watch_ratio`` (replays, logging glitches; NaN counts as above) are dropped from
train, val and selection; every test pair is kept and ``passes_filter`` says whether it survives the same filter, so
that evaluation can report both the filtered and the published (unfiltered) protocol.

Why users and not days for the selection slice: both slices then cover the same last days after the training cut
(the same distance in time from training, the same weekday mix), the tuning slice keeps the whole window, and
over-fitting the tuning users' noise (early stopping, blend weights) cannot carry over to the selection users'
rows. The hash is Fibonacci hashing (Knuth, TAOCP vol. 3, 6.4): frac(user_id * 2654435761 / 2**32), a fixed
function of the id, so the split is the same on every run and machine and needs no seed.

The target is the watch ratio min-max scaled with the *training* rows' minimum and maximum
(:class:`~kuairec_pipeline.target.TargetScaler`), clipped to [0, 1] and stored as float32.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import polars as pl

from kuairec_pipeline.params import check, param
from kuairec_pipeline.target import SPLIT_SELECTION, SPLIT_TEST, SPLIT_TRAIN, SPLIT_VAL, TargetScaler

SECONDS_PER_DAY = 86_400.0

# `time` is the Beijing-time rendering of `timestamp`, so it adds nothing to an exact-duplicate test: leaving it out
# saves the one string column (the largest of the eight) without changing which rows count as duplicates.
DUPLICATE_KEY_COLUMNS = ["user_id", "video_id", "play_duration", "video_duration", "date", "timestamp", "watch_ratio"]

FILTERED_RATIOS_SCHEMA = pl.Schema(
    {
        "user_id": pl.Int32(),
        "video_id": pl.Int32(),
        "timestamp": pl.Float64(),
        "watch_ratio": pl.Float64(),
        "target": pl.Float32(),
        "split": pl.String(),
        "passes_filter": pl.Boolean(),
    }
)
SPLIT_ORDER = (SPLIT_TRAIN, SPLIT_VAL, SPLIT_SELECTION, SPLIT_TEST)
VALIDATION_SPLITS = (SPLIT_VAL, SPLIT_SELECTION)  # the two slices of the validation window
_FIBONACCI_MULTIPLIER = 2_654_435_761  # round(2**32 / golden ratio), Knuth's multiplicative hash
_HASH_MODULUS = 2**32


def selection_user_mask(user_ids: np.ndarray, share: float) -> np.ndarray:
    """bool per user id: True when the user's validation rows belong to the ``selection`` slice.

    Parameters
    ----------
    user_ids : int array, any shape
        Non-negative user ids (KuaiRec: 0..7175).
    share : float in [0, 1)
        Fraction of users (by hash) whose validation rows form the selection slice.

    Returns
    -------
    bool array, same shape: ``frac(user_id * 2654435761 / 2**32) < share`` (Fibonacci hashing, Knuth, TAOCP
    vol. 3, 6.4). Consecutive ids spread evenly over [0, 1), so the share of users picked is close to ``share``
    even for a few hundred users.
    """
    ids = np.asarray(user_ids, dtype=np.int64)
    return (ids * _FIBONACCI_MULTIPLIER) % _HASH_MODULUS < share * _HASH_MODULUS


def selection_user_expr(share: float, column: str = "user_id") -> pl.Expr:
    """:func:`selection_user_mask` as a polars expression (same rule, same users)."""
    # ids < 2**31 and the multiplier < 2**32: the product fits in Int64 without overflow.
    hashed = (pl.col(column).cast(pl.Int64) * _FIBONACCI_MULTIPLIER) % _HASH_MODULUS
    return hashed < share * _HASH_MODULUS


@dataclass(frozen=True)
class RatioConfig:
    """How raw interactions become ``filtered_ratios``. Defaults follow the original study (docs/DESIGN.md); ranges
    are enforced on construction (``params.check``)."""

    max_watch_ratio: float = param(
        3.0,
        "Rows with a larger watch ratio are outliers: dropped from train/val, passes_filter=false in test.",
        gt=0.0,
        le=1000.0,
    )
    # Early stopping, blend weights and model choice need the validation split non-empty.
    validation_days: float = param(
        7.0, "The last N days of big_matrix (back from its latest row) form the validation split.", gt=0.0, le=3650.0
    )
    # big_matrix repeats ~7.7% of its rows byte for byte: logging duplicates, not re-watches, so drop them.
    drop_exact_duplicates: bool = param(
        True, "Drop big_matrix rows repeated byte for byte; repeated views at other timestamps are kept."
    )
    # 0 leaves no selection slice.
    selection_share: float = param(
        0.5,
        "Share of users (hash of the id) whose validation rows form the selection slice (model choice only).",
        ge=0.0,
        lt=1.0,
    )

    def __post_init__(self) -> None:
        check(self)


@dataclass(frozen=True)
class RatioSummary:
    """What :func:`prepare_filtered_ratios` did, in numbers (asset metadata)."""

    big_rows_in: int  # big_matrix rows read
    big_duplicates_dropped: int  # exact duplicate rows removed from big_matrix
    small_rows_in: int  # small_matrix rows read
    small_duplicates_dropped: int  # exact duplicate rows removed from small_matrix before averaging
    train_outliers_dropped: int  # train rows with watch_ratio > max_watch_ratio
    val_outliers_dropped: int  # validation-window rows (val and selection) with watch_ratio > max_watch_ratio
    test_pairs_failing_filter: int  # test pairs kept but flagged passes_filter=False
    train_rows: int
    val_rows: int  # the tuning slice
    selection_rows: int  # the held-out slice of the validation window
    selection_users: int  # distinct users with a selection row
    test_rows: int  # distinct (user, video) pairs of small_matrix
    scaler_min: float  # minimum training watch ratio (target 0)
    scaler_max: float  # maximum training watch ratio (target 1)
    max_timestamp: float  # latest big_matrix timestamp
    validation_cutoff_timestamp: float  # train: timestamp <= this; val: timestamp > this

    @property
    def scaler(self) -> TargetScaler:
        return TargetScaler(self.scaler_min, self.scaler_max)

    def as_metadata(self) -> dict[str, int | float]:
        return asdict(self)


def _split_order_key() -> pl.Expr:
    return pl.col("split").replace_strict(list(SPLIT_ORDER), list(range(len(SPLIT_ORDER))), return_dtype=pl.UInt8)


def _distinct_rows(interactions: pl.LazyFrame, config: RatioConfig) -> pl.LazyFrame:
    selected = interactions.select(DUPLICATE_KEY_COLUMNS)
    return selected.unique() if config.drop_exact_duplicates else selected


def prepare_filtered_ratios(
    raw_interactions: pl.LazyFrame,
    raw_eval_interactions: pl.LazyFrame,
    config: RatioConfig = RatioConfig(),
) -> tuple[pl.DataFrame, RatioSummary]:
    """Build the ``filtered_ratios`` table from big_matrix (train/val/selection) and small_matrix (test).

    Duplicates and repeats:

    - *Exact duplicates* (every column equal, ``time`` being a rendering of ``timestamp``) are logging artefacts and
      are dropped when ``config.drop_exact_duplicates`` (default), in both matrices.
    - *Repeated views* (same user and video at different timestamps, or with a different play duration) are real
      re-watches: in train and val each stays a separate row. A pair may therefore appear in both train and val.
    - In test every distinct (user, video) pair becomes one row: its mean watch ratio and its first timestamp
      (null where small_matrix has no time, the forced-exposure stage), as the evaluation protocol counts a pair once.

    Only seven of the eight columns are read (``time`` is skipped) and the heavy steps run on the streaming
    engine, so the 12.5 M-row big_matrix is never held with its strings.

    Returns the table (sorted by split in train/val/selection/test order, then user, timestamp, video) and a summary.
    Raises ``ValueError`` if no training row survives, or if all training rows share one watch ratio.
    """
    max_timestamp, big_rows_in = (
        raw_interactions.select(pl.col("timestamp").max(), pl.len()).collect(engine="streaming").row(0)
    )
    if max_timestamp is None:
        raise ValueError("raw_interactions has no timestamps (is it empty?): cannot place the validation cut-off")
    cutoff = float(max_timestamp) - config.validation_days * SECONDS_PER_DAY

    passes = (pl.col("watch_ratio") <= config.max_watch_ratio).fill_null(False)
    # A row without a timestamp cannot be placed in the last days, so it stays in train.
    is_val = (pl.col("timestamp") > cutoff).fill_null(False)
    is_selection = is_val & selection_user_expr(config.selection_share)
    big = (
        _distinct_rows(raw_interactions, config)
        .select(
            "user_id",
            "video_id",
            "timestamp",
            "watch_ratio",
            split=pl.when(is_selection)
            .then(pl.lit(SPLIT_SELECTION))
            .when(is_val)
            .then(pl.lit(SPLIT_VAL))
            .otherwise(pl.lit(SPLIT_TRAIN)),
            passes_filter=passes,
        )
        .collect(engine="streaming")
    )
    counts = big.group_by("split", "passes_filter").len()

    def count(split: str, passing: bool) -> int:
        hit = counts.filter((pl.col("split") == split) & (pl.col("passes_filter") == passing))["len"]
        return int(hit.sum())

    big = big.filter(pl.col("passes_filter"))
    train_range = big.filter(pl.col("split") == SPLIT_TRAIN).select(
        pl.col("watch_ratio").min().alias("minimum"), pl.col("watch_ratio").max().alias("maximum"), pl.len()
    )
    if train_range["len"][0] == 0:
        raise ValueError(
            f"no training rows left: {big_rows_in} big_matrix rows, validation cut-off {cutoff} "
            f"(last {config.validation_days} days), max_watch_ratio {config.max_watch_ratio}"
        )
    minimum, maximum = float(train_range["minimum"][0]), float(train_range["maximum"][0])
    if not maximum > minimum:
        raise ValueError(f"all {train_range['len'][0]} training rows have watch ratio {minimum}: nothing to scale")
    scaler = TargetScaler(minimum, maximum)

    small_rows_in = int(raw_eval_interactions.select(pl.len()).collect().item())
    small_distinct = _distinct_rows(raw_eval_interactions, config)
    test = (
        small_distinct.group_by("user_id", "video_id")
        .agg(pl.col("timestamp").min(), pl.col("watch_ratio").mean(), pl.len().alias("rows"))
        .with_columns(split=pl.lit(SPLIT_TEST), passes_filter=passes)
        .collect(engine="streaming")
    )
    small_distinct_rows = int(test["rows"].sum())

    # Sorting on every column makes the row order deterministic although unique() is not order-preserving.
    table = (
        pl.concat([big.lazy(), test.lazy().drop("rows")], how="vertical")
        .with_columns(target=scaler.transform_expr().cast(pl.Float32))
        .sort(_split_order_key(), "user_id", "timestamp", "video_id", "watch_ratio", nulls_last=True)
        .select(FILTERED_RATIOS_SCHEMA.names())
        .cast(dict(FILTERED_RATIOS_SCHEMA))
        .collect()
    )
    summary = RatioSummary(
        big_rows_in=int(big_rows_in),
        big_duplicates_dropped=int(big_rows_in) - int(counts["len"].sum()),
        small_rows_in=small_rows_in,
        small_duplicates_dropped=small_rows_in - small_distinct_rows,
        train_outliers_dropped=count(SPLIT_TRAIN, False),
        val_outliers_dropped=count(SPLIT_VAL, False) + count(SPLIT_SELECTION, False),
        test_pairs_failing_filter=int((~test["passes_filter"]).sum()),
        train_rows=count(SPLIT_TRAIN, True),
        val_rows=count(SPLIT_VAL, True),
        selection_rows=count(SPLIT_SELECTION, True),
        selection_users=int(big.filter(pl.col("split") == SPLIT_SELECTION)["user_id"].n_unique()),
        test_rows=test.height,
        scaler_min=scaler.minimum,
        scaler_max=scaler.maximum,
        max_timestamp=float(max_timestamp),
        validation_cutoff_timestamp=cutoff,
    )
    return table, summary


# Shared by the user and video features: numeric columns in [0, 1] and statistics from training rows only.


def min_max_unit(values: pl.Series) -> pl.Series:
    """Min-max scale to [0, 1] as float32; a constant column maps to 0 (it carries no information)."""
    values = values.cast(pl.Float64)
    low, high = values.min(), values.max()
    if low is None or high is None or not high > low:
        return pl.Series(values.name, [0.0] * len(values), dtype=pl.Float32)
    return ((values - low) / (high - low)).clip(0.0, 1.0).cast(pl.Float32)


def clipped_log_unit(values: pl.Series, lower_quantile: float | None, upper_quantile: float | None) -> pl.Series:
    """Clip a heavy-tailed non-negative column at quantiles, take log1p, then min-max to [0, 1] (float32).

    Nulls take the median first, so the result has none. Clipping before the log keeps a handful of extreme
    values from squeezing everyone else into a corner of [0, 1].
    """
    values = values.cast(pl.Float64)
    values = values.fill_null(values.median())
    lower = values.quantile(lower_quantile, interpolation="linear") if lower_quantile is not None else None
    upper = values.quantile(upper_quantile, interpolation="linear") if upper_quantile is not None else None
    clipped = values.clip(lower, upper).clip(0.0, None)
    return min_max_unit(clipped.log1p())


def train_target_features(ids: pl.Series, filtered_ratios: pl.DataFrame, prior_weight: float) -> pl.DataFrame:
    """``num_train_mean_target`` and ``num_train_log_count`` for each of ``ids`` (same order), from train rows only.

    ``num_train_mean_target``: the id's mean scaled target over training rows (val and test never leak in), shrunk
    toward the global training mean as if ``prior_weight`` extra rows at the global mean had been seen:
    ``(sum + prior_weight * global_mean) / (count + prior_weight)``. An id seen a few times stays near the global
    mean, one seen thousands of times keeps its own; an id without training rows gets the global mean. Being a mean
    of targets in [0, 1], it needs no further scaling.

    ``num_train_log_count``: log1p of the id's training row count, min-max scaled over ``ids``.
    """
    if prior_weight < 0:
        raise ValueError(f"prior_weight must be >= 0, got {prior_weight}")
    id_column = ids.name
    train = filtered_ratios.lazy().filter(pl.col("split") == SPLIT_TRAIN)
    global_mean = train.select(pl.col("target").cast(pl.Float64).mean()).collect().item()
    if global_mean is None:
        raise ValueError("filtered_ratios has no training rows: cannot compute training statistics")
    per_id = (
        train.group_by(id_column)
        .agg(pl.col("target").cast(pl.Float64).sum().alias("target_sum"), pl.len().alias("train_rows"))
        .collect()
    )
    joined = (
        ids.to_frame()
        .join(per_id.with_columns(pl.col(id_column).cast(ids.dtype)), on=id_column, how="left", maintain_order="left")
        .with_columns(pl.col("target_sum").fill_null(0.0), pl.col("train_rows").fill_null(0))
    )
    shrunk = (joined["target_sum"] + prior_weight * global_mean) / (joined["train_rows"] + prior_weight)
    # prior_weight 0 and no rows would be 0/0: such ids get the global mean, as documented.
    shrunk = shrunk.fill_nan(global_mean).clip(0.0, 1.0).cast(pl.Float32)
    return pl.DataFrame(
        {
            id_column: ids,
            "num_train_mean_target": shrunk,
            "num_train_log_count": min_max_unit(joined["train_rows"].cast(pl.Float64).log1p()),
        }
    )
