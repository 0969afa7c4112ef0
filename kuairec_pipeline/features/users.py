"""The ``user_features`` table: one row per user of ``raw_users`` or of the interactions, categorical ids and numbers
in [0, 1].

A user with interactions but no row in user_features.csv (a side file cleaned with ``dropna()``, say) still gets a
row: its side features take the padding / unknown value and its interaction features are computed as for anyone.

Conventions read by :func:`kuairec_pipeline.models.data.build_training_data`: ``cat_*`` columns are int32 ids with
0 reserved for padding / unknown, ``num_*`` columns are float32 in [0, 1] without nulls.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from kuairec_pipeline.dataset.schema import ONEHOT_COLUMNS
from kuairec_pipeline.features.ratios import clipped_log_unit, train_target_features

FLAG_COLUMNS = ("is_lowactive_period", "is_live_streamer", "is_video_author")


@dataclass(frozen=True)
class UserFeatureConfig:
    """How ``raw_users`` and the training rows become ``user_features``."""

    # Values of user_active_degree that mean "unknown" (mapped to id 0 like a null); compared case-insensitively.
    unknown_active_degrees: tuple[str, ...] = ("UNKNOWN", "")
    # register_days is clipped at this upper quantile (over users) before log1p and min-max.
    register_days_clip_quantile: float = 0.99
    # Shrinkage of the per-user mean target: weight, in rows, of the global training mean (0 = no shrinkage).
    target_prior_weight: float = 20.0

    def __post_init__(self) -> None:
        if not 0.0 < self.register_days_clip_quantile <= 1.0:
            raise ValueError(f"register_days_clip_quantile must be in (0, 1], got {self.register_days_clip_quantile}")
        if self.target_prior_weight < 0:
            raise ValueError(f"target_prior_weight must be >= 0, got {self.target_prior_weight}")


def _given_id_with_padding(column: str) -> pl.Expr:
    """Keep a given non-negative id, shifted by one so that 0 is free for blanks (and invalid negative ids)."""
    value = pl.col(column).cast(pl.Int32)
    return pl.when(value >= 0).then(value + 1).otherwise(0).cast(pl.Int32).alias(f"cat_{column}")


def _active_degree_ids(degree: pl.Series, unknown: tuple[str, ...]) -> pl.Series:
    """Dense ids 1..K for the known degrees in sorted order (deterministic); unknown tokens and nulls -> 0."""
    normalized = degree.str.strip_chars()
    is_unknown = normalized.is_null() | normalized.str.to_uppercase().is_in([token.upper() for token in unknown])
    known = normalized.filter(~is_unknown).unique().sort()
    ids = normalized.replace_strict(known, pl.int_range(1, len(known) + 1, eager=True), default=0)
    return ids.fill_null(0).cast(pl.Int32).alias("cat_user_active_degree")


def all_ids(side_ids: pl.Series, filtered_ratios: pl.DataFrame, id_column: str) -> pl.Series:
    """The sorted union of the side file's ids and the ids in ``filtered_ratios`` (every split), as int32.

    Features must cover every id the models index, whether or not the side file lists it.
    """
    ids = pl.concat([side_ids.cast(pl.Int32), filtered_ratios[id_column].cast(pl.Int32)])
    return ids.drop_nulls().unique().sort().alias(id_column)


def build_user_features(
    raw_users: pl.DataFrame, filtered_ratios: pl.DataFrame, config: UserFeatureConfig = UserFeatureConfig()
) -> pl.DataFrame:
    """One row per user of ``raw_users`` or of ``filtered_ratios`` (any split), sorted by ``user_id``.

    Columns: ``user_id``; ``cat_user_active_degree`` (dense id, 0 = UNKNOWN or null); ``cat_is_lowactive_period``,
    ``cat_is_live_streamer``, ``cat_is_video_author`` and ``cat_onehot_feat0`` … ``cat_onehot_feat17`` (the given id
    + 1, a blank -> 0 padding); ``num_register_days`` (clipped at a quantile, log1p, min-max);
    ``num_train_mean_target`` and ``num_train_log_count`` (training rows only, see
    :func:`~kuairec_pipeline.features.ratios.train_target_features`).

    Follower, following, fan and friend counts (and their ``*_range`` columns) are left out on purpose: they measure
    popularity, and feeding them in biases the model toward already popular accounts (docs/DESIGN.md).

    A user of ``filtered_ratios`` without a row in ``raw_users`` gets the padding id 0 in every ``cat_*`` column and
    the median in ``num_register_days`` (the unknown value); its ``num_train_*`` columns come from its training rows,
    never from the side file.
    """
    if raw_users["user_id"].null_count():
        raise ValueError("raw_users has null user_id values")
    if raw_users["user_id"].is_duplicated().any():
        raise ValueError("raw_users has duplicate user_id values")
    ids = all_ids(raw_users["user_id"], filtered_ratios, "user_id")
    users = ids.to_frame().join(
        raw_users.with_columns(pl.col("user_id").cast(pl.Int32)), on="user_id", how="left", maintain_order="left"
    )
    categorical = users.select(
        pl.col("user_id").cast(pl.Int32),
        _active_degree_ids(users["user_active_degree"], config.unknown_active_degrees),
        *(_given_id_with_padding(column) for column in (*FLAG_COLUMNS, *ONEHOT_COLUMNS)),
    )
    register_days = clipped_log_unit(users["register_days"], None, config.register_days_clip_quantile)
    training = train_target_features(categorical["user_id"], filtered_ratios, config.target_prior_weight)
    return categorical.with_columns(
        num_register_days=register_days,
        num_train_mean_target=training["num_train_mean_target"],
        num_train_log_count=training["num_train_log_count"],
    )
