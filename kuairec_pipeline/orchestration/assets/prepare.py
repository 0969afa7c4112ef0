"""Data preparation: filtered and scaled watch ratios with train/val/test splits, user and video features."""


import polars as pl
from dagster import AssetExecutionContext, Config, asset
from pydantic import Field

from kuairec_pipeline.features import plots, ratios, users, videos
from kuairec_pipeline.features.scaling import SPLIT_TRAIN
from kuairec_pipeline.orchestration.metadata import png_markdown, rounded_floats

GROUP = "prepare"


class FilteredRatiosConfig(Config):
    max_watch_ratio: float = Field(default=3.0, description="Rows with a larger watch ratio are outliers: dropped "
                                   "from train/val, flagged (passes_filter=false) in test.")
    validation_days: float = Field(default=7.0, description="The last N days of big_matrix form the validation split.")
    drop_exact_duplicates: bool = Field(default=True, description="Drop big_matrix rows repeated byte for byte "
                                        "(logging duplicates); repeated views with other timestamps are kept.")
    selection_share: float = Field(default=0.5, ge=0.0, lt=1.0, description="Share of users (by a hash of the "
                                   "user id) whose validation-window rows form the selection slice no model "
                                   "sees; the served model is chosen on it.")


@asset(group_name=GROUP, kinds={"polars", "parquet"})
def filtered_ratios(context: AssetExecutionContext, config: FilteredRatiosConfig,
                    raw_interactions: pl.LazyFrame, raw_eval_interactions: pl.LazyFrame) -> pl.DataFrame:
    """Train (big_matrix before its last days), validation (its last days) and test (small_matrix) rows with the
    raw watch ratio and the min-max scaled target (training statistics only).

    Duplicates: exact duplicate rows of big_matrix are dropped (configurable); the same (user, video) watched again
    at another time stays a separate row. Test holds one row per distinct pair with its mean watch ratio, all pairs
    kept, ``passes_filter`` marking those inside the outlier filter (pointwise metrics use those; ranking uses all).
    """
    ratio_config = ratios.RatioConfig(max_watch_ratio=config.max_watch_ratio,
                                      validation_days=config.validation_days,
                                      drop_exact_duplicates=config.drop_exact_duplicates,
                                      selection_share=config.selection_share)
    table, summary = ratios.prepare_filtered_ratios(raw_interactions, raw_eval_interactions, ratio_config)
    # exact counts over every row (streamed), so the chart's totals are the true ones
    before = plots.histogram_counts(raw_interactions)
    after = plots.histogram_counts(table.lazy().filter(pl.col("split") == SPLIT_TRAIN))
    png = plots.watch_ratio_histogram_png(before, after, config.max_watch_ratio)
    context.add_output_metadata({
        **rounded_floats(summary.as_metadata()),
        "watch_ratio_histogram": png_markdown(png, "watch ratio before and after filtering"),
    })
    return table


@asset(group_name=GROUP, kinds={"polars", "parquet"})
def user_features(context: AssetExecutionContext, raw_users: pl.DataFrame,
                  filtered_ratios: pl.DataFrame) -> pl.DataFrame:
    """One row per user: one-hot ids kept (blank -> padding id 0), activity level, log register days, and the
    user's training-only mean target. Follower and fan counts are left out on purpose (popularity bias)."""
    return users.build_user_features(raw_users, filtered_ratios, users.UserFeatureConfig())


@asset(group_name=GROUP, kinds={"polars", "parquet"})
def video_features(context: AssetExecutionContext, raw_videos: pl.DataFrame, filtered_ratios: pl.DataFrame,
                   raw_interactions: pl.LazyFrame) -> pl.DataFrame:
    """One row per video: padded tag ids and a 31-tag multi-hot, log duration, author id, and the training-only
    mean target. Views and likes are left out on purpose (popularity bias)."""
    return videos.build_video_features(raw_videos, filtered_ratios, raw_interactions, videos.VideoFeatureConfig())
