"""A generated synthetic twin turned into TrainingData in-process, through the same plain modules the assets call.

generate_twin -> loader (big/small matrices, users, videos) -> features (ratios, users, videos) ->
build_training_data, plus the planted truth for the oracle. Cached per (profile, seed) under ``root``.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from kuairec_pipeline.dataset import loader, schema
from kuairec_pipeline.dataset.synthetic import generate_twin, truth_dir, twin_is_complete
from kuairec_pipeline.features import ratios, users, videos
from kuairec_pipeline.models.data import TrainingData, build_training_data

TRUTH_FILE = "expected_small.parquet"


def twin_training_data(root: Path, profile: str, seed: int) -> tuple[TrainingData, pl.DataFrame]:
    """(TrainingData, planted truth) of the twin ``profile`` / ``seed``, generated under ``root`` if absent."""
    out = Path(root) / f"{profile}_{seed}"
    if not twin_is_complete(out, profile, seed):
        generate_twin(out, profile, seed)
    files = loader.find_kuairec_files(out)
    big_parquet = Path(root) / f"{profile}_{seed}.big.parquet"
    if not big_parquet.exists():
        loader.convert_interactions(files.require(schema.BIG_MATRIX), big_parquet, schema.BIG_MATRIX)
    big = pl.scan_parquet(big_parquet)
    small, _ = loader.scan_interactions(files.require(schema.SMALL_MATRIX), schema.SMALL_MATRIX)
    raw_users = loader.read_user_features(files.require(schema.USER_FEATURES))
    daily = files.paths.get(schema.ITEM_DAILY_FEATURES.file_name)
    captions = files.paths.get(schema.CAPTION_CATEGORY.file_name)
    raw_videos = loader.build_raw_videos(
        loader.read_item_categories(files.require(schema.ITEM_CATEGORIES)),
        loader.scan_item_daily_features(daily) if daily else None,
        loader.read_captions(captions) if captions else None,
    )
    filtered, _ = ratios.prepare_filtered_ratios(big, small, ratios.RatioConfig())
    user_table = users.build_user_features(raw_users, filtered, users.UserFeatureConfig())
    video_table = videos.build_video_features(raw_videos, filtered, big, videos.VideoFeatureConfig())
    truth = pl.read_parquet(truth_dir(out) / TRUTH_FILE)
    return build_training_data(filtered, user_table, video_table), truth
