"""Data preparation: filtered and scaled watch ratios with train/val/test splits, user and video features."""

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import polars as pl
from dagster import AssetCheckResult, AssetExecutionContext, Output, asset

from kuairec_pipeline import provenance
from kuairec_pipeline.dataset import loader
from kuairec_pipeline.features import checks as table_checks
from kuairec_pipeline.features import plots, ratios, users, videos
from kuairec_pipeline.orchestration import checks
from kuairec_pipeline.orchestration.config_gen import dagster_config, to_source
from kuairec_pipeline.orchestration.metadata import png_markdown, rounded_floats, versioned_output
from kuairec_pipeline.orchestration.versions import code_version
from kuairec_pipeline.target import SPLIT_TRAIN

GROUP = "prepare"


def _table_output(table: pl.DataFrame, metadata: dict[str, Any]) -> Output:
    # The content fingerprint is the data version (the UI marks what is downstream of a changed table as stale, a
    # config change included) and goes into the Parquet metadata (the CLI and the models compare it).
    fingerprint = provenance.frame_fingerprint(table)
    return versioned_output(table, fingerprint, {**metadata, provenance.FINGERPRINT: fingerprint})


FilteredRatiosConfig = dagster_config(ratios.RatioConfig, "FilteredRatiosConfig")


@asset(
    group_name=GROUP,
    kinds={"polars", "parquet"},
    code_version=code_version("filtered_ratios"),
    check_specs=checks.specs("filtered_ratios", checks.FILTERED_RATIOS_CHECKS),
)
def filtered_ratios(
    context: AssetExecutionContext,
    config: FilteredRatiosConfig,
    raw_interactions: pl.LazyFrame,
    interaction_days: pl.LazyFrame | None,
    raw_eval_interactions: pl.LazyFrame,
    raw_users: pl.DataFrame,
    raw_videos: pl.DataFrame,
) -> Iterator[Output | AssetCheckResult]:
    """Train (big_matrix before its last days), validation (its last days) and test (small_matrix) rows with the
    raw watch ratio and the min-max scaled target (training statistics only). big_matrix is the initial archive
    (``raw_interactions``) followed by every stored day of ``interaction_days`` (new logs), if any.

    Duplicates: exact duplicate rows of big_matrix are dropped (configurable); the same (user, video) watched again
    at another time stays a separate row. Test holds one row per distinct pair with its mean watch ratio, all pairs
    kept, ``passes_filter`` marking those inside the outlier filter (pointwise metrics use those; ranking uses all).
    The checks run before the file is written: a failed blocking check keeps the previous file.
    """
    ratio_config = to_source(config, ratios.RatioConfig)
    interactions, appended = loader.append_days(raw_interactions, interaction_days)
    table, summary = ratios.prepare_filtered_ratios(interactions, raw_eval_interactions, ratio_config)
    n_users = int(raw_users["user_id"].max()) + 1
    n_videos = int(raw_videos["video_id"].max()) + 1
    yield from checks.evaluate(
        "filtered_ratios",
        "filtered_ratios.parquet",
        checks.FILTERED_RATIOS_CHECKS,
        {
            "splits_not_empty": table_checks.check_splits_not_empty(table),
            "targets_in_unit_interval": table_checks.check_targets_in_unit_interval(table),
            "ids_in_range": table_checks.check_ids_in_range(table, n_users, n_videos),
            "train_test_disjoint": table_checks.check_train_test_disjoint(table),
            "validation_after_training": table_checks.check_validation_after_training(table),
        },
    )
    # exact counts over every row (streamed), so the chart's totals are the true ones
    before = plots.histogram_counts(interactions)
    after = plots.histogram_counts(table.lazy().filter(pl.col("split") == SPLIT_TRAIN))
    png = plots.watch_ratio_histogram_png(before, after, config.max_watch_ratio)
    yield _table_output(
        table,
        {
            **rounded_floats(summary.as_metadata()),
            "appended_days": len(appended),
            "last_appended_day": appended[-1] if appended else 0,
            provenance.APPENDED_DAYS: json.dumps(appended),
            provenance.CONFIG: json.dumps(dataclasses.asdict(ratio_config), sort_keys=True),
            "watch_ratio_histogram": png_markdown(png, "watch ratio before and after filtering"),
        },
    )


@asset(
    group_name=GROUP,
    kinds={"polars", "parquet"},
    code_version=code_version("user_features"),
    check_specs=checks.specs("user_features", checks.USER_FEATURES_CHECKS),
)
def user_features(
    context: AssetExecutionContext, raw_users: pl.DataFrame, filtered_ratios: pl.DataFrame
) -> Iterator[Output | AssetCheckResult]:
    """One row per user of user_features.csv or of the interactions: one-hot ids kept (blank or no side row ->
    padding id 0), activity level, log register days, and the user's training-only mean target. Follower and fan
    counts are left out on purpose (popularity bias)."""
    table = users.build_user_features(raw_users, filtered_ratios, users.UserFeatureConfig())
    coverage = table_checks.check_side_coverage(raw_users["user_id"], filtered_ratios, "user_id", "user_features.csv")
    yield from checks.evaluate(
        "user_features",
        "user_features.parquet",
        checks.USER_FEATURES_CHECKS,
        {
            "user_features_valid": table_checks.check_feature_table(table, "user_id"),
            "user_side_coverage": coverage,
        },
    )
    yield _table_output(
        table,
        {
            "users_without_side_row": int(coverage.metadata["ids_without_side_row"]),
            "share_without_side_row": float(coverage.metadata["share_without_side_row"]),
        },
    )


@asset(
    group_name=GROUP,
    kinds={"polars", "parquet"},
    code_version=code_version("video_features"),
    check_specs=checks.specs("video_features", checks.VIDEO_FEATURES_CHECKS),
)
def video_features(
    context: AssetExecutionContext,
    raw_videos: pl.DataFrame,
    filtered_ratios: pl.DataFrame,
    raw_interactions: pl.LazyFrame,
    interaction_days: pl.LazyFrame | None,
) -> Iterator[Output | AssetCheckResult]:
    """One row per video of item_categories.csv or of the interactions: padded tag ids and a 31-tag multi-hot, log
    duration, author id, and the training-only mean target. Views and likes are left out on purpose (popularity
    bias). The interactions are the archive followed by the appended days, as for ``filtered_ratios``."""
    interactions, _ = loader.append_days(raw_interactions, interaction_days)
    table = videos.build_video_features(raw_videos, filtered_ratios, interactions, videos.VideoFeatureConfig())
    coverage = table_checks.check_side_coverage(
        raw_videos["video_id"], filtered_ratios, "video_id", "item_categories.csv"
    )
    yield from checks.evaluate(
        "video_features",
        "video_features.parquet",
        checks.VIDEO_FEATURES_CHECKS,
        {
            "video_features_valid": table_checks.check_feature_table(table, "video_id"),
            "video_side_coverage": coverage,
        },
    )
    yield _table_output(
        table,
        {
            "videos_without_side_row": int(coverage.metadata["ids_without_side_row"]),
            "share_without_side_row": float(coverage.metadata["share_without_side_row"]),
        },
    )
