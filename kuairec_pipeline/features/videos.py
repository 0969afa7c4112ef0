"""The ``video_features`` table: one row per video of ``raw_videos`` or of the interactions, tags, author, duration
and training means. A video with interactions but no side row gets the padding / unknown side values.

Conventions read by :func:`kuairec_pipeline.models.data.build_training_data`: ``tag_ids`` is a fixed-length list of
tag id + 1 with 0 as padding, ``tag_multi_hot`` a 0/1 list over all tags, ``cat_*`` int32 ids with 0 = padding /
unknown, ``num_*`` float32 in [0, 1] without nulls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from kuairec_pipeline.dataset.schema import MAX_TAGS_PER_VIDEO, NUM_TAGS
from kuairec_pipeline.errors import KuaiRecDataError
from kuairec_pipeline.features.ratios import clipped_log_unit, train_target_features
from kuairec_pipeline.features.users import all_ids


@dataclass(frozen=True)
class VideoFeatureConfig:
    """How ``raw_videos`` and the training rows become ``video_features``."""

    # Length of the padded tag id sequence; videos with more tags keep their first max_tags (KuaiRec has at most 4).
    max_tags: int = MAX_TAGS_PER_VIDEO
    # Number of distinct tags (ids 0..num_tags-1): the length of tag_multi_hot.
    num_tags: int = NUM_TAGS
    # Authors with fewer videos than this share id 0: an author id seen once only duplicates the video id.
    min_author_videos: int = 2
    # Duration (seconds) is clipped at these quantiles (over videos) before log1p and min-max.
    duration_clip_lower_quantile: float = 0.01
    duration_clip_upper_quantile: float = 0.99
    # Shrinkage of the per-video mean target: weight, in rows, of the global training mean (0 = no shrinkage).
    target_prior_weight: float = 20.0

    def __post_init__(self) -> None:
        if self.max_tags < 1 or self.num_tags < 1 or self.min_author_videos < 1:
            raise ValueError("max_tags, num_tags and min_author_videos must be >= 1")
        if not 0.0 <= self.duration_clip_lower_quantile < self.duration_clip_upper_quantile <= 1.0:
            raise ValueError("duration clip quantiles must satisfy 0 <= lower < upper <= 1")
        if self.target_prior_weight < 0:
            raise ValueError(f"target_prior_weight must be >= 0, got {self.target_prior_weight}")


def resolve_durations_ms(videos: pl.DataFrame, raw_interactions: pl.LazyFrame | None) -> pl.Series:
    """``video_duration_ms`` per video (same order), never null.

    The value from ``raw_videos`` where present; else the median ``video_duration`` of the video's rows in
    ``raw_interactions`` (non-positive durations ignored); else the median over the videos resolved so far.
    """
    durations = videos["video_duration_ms"].cast(pl.Float64)
    missing = videos.filter(durations.is_null())["video_id"]
    if missing.len() and raw_interactions is not None:
        from_rows = (
            raw_interactions.select("video_id", "video_duration")
            .filter(pl.col("video_id").is_in(missing.implode()) & (pl.col("video_duration") > 0))
            .group_by("video_id")
            .agg(pl.col("video_duration").cast(pl.Float64).median().alias("row_median"))
            .collect(engine="streaming")
            .with_columns(pl.col("video_id").cast(videos["video_id"].dtype))
        )
        row_median = videos.select("video_id").join(from_rows, on="video_id", how="left", maintain_order="left")
        durations = durations.fill_null(row_median["row_median"])
    global_median = durations.median()
    if global_median is None:
        raise ValueError("no video duration known: raw_videos has none and raw_interactions gives none")
    return durations.fill_null(global_median).alias("video_duration_ms")


def _checked_tags(videos: pl.DataFrame, num_tags: int) -> pl.Series:
    tags = videos["tags"].fill_null([]).cast(pl.List(pl.Int32))
    flat = tags.explode(empty_as_null=False).drop_nulls()
    invalid = flat.filter((flat < 0) | (flat >= num_tags))
    if invalid.len():
        raise KuaiRecDataError(f"tag ids must be in 0..{num_tags - 1}", column="tags", value=int(invalid[0]))
    # A tag listed twice for one video says nothing more than once.
    return tags.list.drop_nulls().list.unique(maintain_order=True)


def padded_tag_ids(tags: pl.Series, max_tags: int) -> pl.Series:
    """Fixed-length ``list[i32]``: the first ``max_tags`` tags as tag + 1, padded with 0."""
    padding = pl.lit([0] * max_tags, dtype=pl.List(pl.Int32))
    shifted = pl.col("tags").list.head(max_tags).list.eval(pl.element() + 1)
    return (
        tags.to_frame("tags").select(pl.concat_list(shifted, padding).list.head(max_tags).alias("tag_ids")).to_series()
    )


def tag_multi_hot(tags: pl.Series, num_tags: int) -> pl.Series:
    """``list[f32]`` of length ``num_tags``: 1.0 for each tag the video carries (all, beyond ``max_tags`` too)."""
    lengths = tags.list.len().to_numpy()
    rows = np.repeat(np.arange(len(tags)), lengths)
    columns = tags.explode(empty_as_null=False).drop_nulls().to_numpy().astype(np.int64)
    matrix = np.zeros((len(tags), num_tags), dtype=np.float32)
    matrix[rows, columns] = 1.0
    return pl.Series("tag_multi_hot", matrix).cast(pl.List(pl.Float32))


def author_ids(author: pl.Series, min_author_videos: int) -> pl.Series:
    """Dense ids 1..K (by ascending author id) for authors with at least ``min_author_videos`` videos; others -> 0."""
    counts = author.drop_nulls().value_counts()
    frequent = counts.filter(pl.col("count") >= min_author_videos).get_column(author.name).sort()
    ids = author.replace_strict(frequent, pl.int_range(1, len(frequent) + 1, eager=True), default=0)
    return ids.fill_null(0).cast(pl.Int32).alias("cat_author")


def build_video_features(
    raw_videos: pl.DataFrame,
    filtered_ratios: pl.DataFrame,
    raw_interactions: pl.LazyFrame | None = None,
    config: VideoFeatureConfig = VideoFeatureConfig(),
) -> pl.DataFrame:
    """One row per video of ``raw_videos`` or of ``filtered_ratios`` (any split), sorted by ``video_id``.

    Columns: ``video_id``; ``author_id`` (raw, may be null); ``video_duration_ms`` (see :func:`resolve_durations_ms`);
    ``tag_ids`` (:func:`padded_tag_ids`); ``tag_multi_hot`` (:func:`tag_multi_hot`); ``cat_author``
    (:func:`author_ids`); ``num_log_duration`` (seconds clipped at quantiles, log1p, min-max);
    ``num_train_mean_target`` and ``num_train_log_count`` (training rows only, see
    :func:`~kuairec_pipeline.features.ratios.train_target_features`).

    View and like counts are left out on purpose: they measure popularity, and a model fed them learns to recommend
    what is already popular (docs/DESIGN.md).

    A video of ``filtered_ratios`` without a row in ``raw_videos`` gets no tags (all padding), a null ``author_id``
    and ``cat_author`` 0, the duration fallback of :func:`resolve_durations_ms`; its ``num_train_*`` columns come
    from its training rows, never from the side files.
    """
    if raw_videos["video_id"].null_count():
        raise ValueError("raw_videos has null video_id values")
    if raw_videos["video_id"].is_duplicated().any():
        raise ValueError("raw_videos has duplicate video_id values")
    ids = all_ids(raw_videos["video_id"], filtered_ratios, "video_id")
    videos = ids.to_frame().join(
        raw_videos.with_columns(pl.col("video_id").cast(pl.Int32)), on="video_id", how="left", maintain_order="left"
    )
    durations = resolve_durations_ms(videos, raw_interactions)
    tags = _checked_tags(videos, config.num_tags)
    training = train_target_features(videos["video_id"], filtered_ratios, config.target_prior_weight)
    return pl.DataFrame(
        {
            "video_id": videos["video_id"].cast(pl.Int32),
            "author_id": videos["author_id"].cast(pl.Int32),
            "video_duration_ms": durations,
            "tag_ids": padded_tag_ids(tags, config.max_tags),
            "tag_multi_hot": tag_multi_hot(tags, config.num_tags),
            "cat_author": author_ids(videos["author_id"], config.min_author_videos),
            "num_log_duration": clipped_log_unit(
                durations / 1000.0, config.duration_clip_lower_quantile, config.duration_clip_upper_quantile
            ),
            "num_train_mean_target": training["num_train_mean_target"],
            "num_train_log_count": training["num_train_log_count"],
        }
    )
