"""The raw_videos transform: one row per video from item_categories, item_daily_features and the captions."""

from __future__ import annotations

import polars as pl

from kuairec_pipeline.dataset.schema import MISSING_CATEGORY_ID

RAW_VIDEOS_SCHEMA: dict[str, pl.DataType] = {
    "video_id": pl.Int32(),
    "tags": pl.List(pl.Int8()),
    "author_id": pl.Int32(),
    "video_duration_ms": pl.Float64(),
    "video_type": pl.String(),
    "upload_dt": pl.String(),
    "first_level_category_id": pl.Int32(),
    "caption": pl.String(),
}


def build_raw_videos(
    item_categories: pl.DataFrame,
    daily: pl.LazyFrame | None,
    captions: pl.DataFrame | None,
) -> pl.DataFrame:
    """One row per video of ``item_categories`` (the video universe), with the columns of ``RAW_VIDEOS_SCHEMA``.

    From ``daily`` (item_daily_features): the earliest non-null author_id, video_type and upload_dt, and the
    median of the non-null daily durations. From ``captions``: first_level_category_id (``-124`` -> null) and
    the caption. A missing optional source leaves its columns null.
    """
    videos = item_categories.select(pl.col("video_id").cast(pl.Int32), pl.col("tags").cast(pl.List(pl.Int8())))
    if daily is not None:
        duration = pl.col("video_duration")

        def earliest(name: str) -> pl.Expr:
            return pl.col(name).sort_by("date").drop_nulls().first()

        per_video = (
            daily.group_by("video_id")
            .agg(
                earliest("author_id"),
                duration.filter(duration.is_not_null() & duration.is_finite()).median().alias("video_duration_ms"),
                earliest("video_type"),
                earliest("upload_dt"),
            )
            .with_columns(pl.col("video_id").cast(pl.Int32))
            .collect(engine="streaming")
        )
        videos = videos.join(per_video, on="video_id", how="left", maintain_order="left")
    if captions is not None:
        category = pl.col("first_level_category_id")
        per_caption = captions.select(
            pl.col("video_id").cast(pl.Int32),
            pl.when(category == MISSING_CATEGORY_ID).then(None).otherwise(category).alias("first_level_category_id"),
            pl.col("caption"),
        )
        videos = videos.join(per_caption, on="video_id", how="left", maintain_order="left")
    return videos.select(
        (pl.col(name) if name in videos.columns else pl.lit(None)).cast(dtype).alias(name)
        for name, dtype in RAW_VIDEOS_SCHEMA.items()
    )
