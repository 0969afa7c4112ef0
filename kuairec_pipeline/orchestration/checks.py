"""Asset checks on the prepared data. Blocking where downstream would be garbage: a failed blocking check stops
the run (and makes ``dagster asset materialize`` exit non-zero) before any model trains on bad data."""


import polars as pl
from dagster import AssetCheckResult, AssetCheckSeverity, AssetIn, asset_check

from kuairec_pipeline.features import checks
from kuairec_pipeline.orchestration.assets.prepare import filtered_ratios, user_features, video_features


def _result(outcome: checks.CheckOutcome) -> AssetCheckResult:
    return AssetCheckResult(passed=bool(outcome.passed), description=outcome.description,
                            metadata=dict(outcome.metadata), severity=AssetCheckSeverity.ERROR)


@asset_check(asset=filtered_ratios, blocking=True, description="Targets in [0, 1], no nulls; train/val pass the filter.")
def targets_in_unit_interval(filtered_ratios: pl.DataFrame) -> AssetCheckResult:
    return _result(checks.check_targets_in_unit_interval(filtered_ratios))


@asset_check(asset=filtered_ratios, blocking=True, additional_ins={"raw_users": AssetIn("raw_users"), "raw_videos": AssetIn("raw_videos")},
             description="Every user and video id is a known id.")
def ids_in_range(filtered_ratios: pl.DataFrame, raw_users: pl.DataFrame, raw_videos: pl.DataFrame) -> AssetCheckResult:
    n_users = int(raw_users["user_id"].max()) + 1
    n_videos = int(raw_videos["video_id"].max()) + 1
    return _result(checks.check_ids_in_range(filtered_ratios, n_users, n_videos))


@asset_check(asset=filtered_ratios, blocking=True, description="No (user, video) pair is both trained on and tested.")
def train_test_disjoint(filtered_ratios: pl.DataFrame) -> AssetCheckResult:
    return _result(checks.check_train_test_disjoint(filtered_ratios))


@asset_check(asset=filtered_ratios, blocking=True, description="Validation rows are strictly later than training rows.")
def validation_after_training(filtered_ratios: pl.DataFrame) -> AssetCheckResult:
    return _result(checks.check_validation_after_training(filtered_ratios))


@asset_check(asset=user_features, blocking=True, description="Unique ids, categorical ids >= 0, numerics in [0, 1].")
def user_features_valid(user_features: pl.DataFrame) -> AssetCheckResult:
    return _result(checks.check_feature_table(user_features, "user_id"))


@asset_check(asset=video_features, blocking=True, description="Unique ids, categorical ids >= 0, numerics in [0, 1].")
def video_features_valid(video_features: pl.DataFrame) -> AssetCheckResult:
    return _result(checks.check_feature_table(video_features, "video_id"))


ALL_CHECKS = [targets_in_unit_interval, ids_in_range, train_test_disjoint, validation_after_training,
              user_features_valid, video_features_valid]
