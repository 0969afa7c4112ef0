"""user_features: categorical ids with padding 0, scaled register days, training-only mean target."""

from __future__ import annotations

import math

import polars as pl
import pytest

from kuairec_pipeline.dataset.schema import ONEHOT_COLUMNS, USER_FEATURES
from kuairec_pipeline.features.users import UserFeatureConfig, build_user_features
from kuairec_pipeline_tests.builders import raw_users


def ratios(rows: list[tuple[int, float, str]]) -> pl.DataFrame:
    """A minimal filtered_ratios: (user, target, split)."""
    users, targets, splits = (list(column) for column in zip(*rows, strict=False))
    return pl.DataFrame(
        {"user_id": users, "video_id": [0] * len(rows), "target": targets, "split": splits},
        schema_overrides={"user_id": pl.Int32, "video_id": pl.Int32, "target": pl.Float32},
    )


RATIOS = ratios([(0, 1.0, "train"), (0, 0.8, "train"), (2, 0.0, "train"), (1, 1.0, "val"), (1, 1.0, "test")])


def test_one_row_per_user_sorted_with_the_documented_columns():
    features = build_user_features(raw_users(), RATIOS)
    assert features["user_id"].to_list() == [0, 1, 2]
    expected = [
        "user_id",
        "cat_user_active_degree",
        "cat_is_lowactive_period",
        "cat_is_live_streamer",
        "cat_is_video_author",
        *(f"cat_{name}" for name in ONEHOT_COLUMNS),
        "num_register_days",
        "num_train_mean_target",
        "num_train_log_count",
    ]
    assert features.columns == expected
    assert all(features[c].dtype == pl.Int32 for c in features.columns if c.startswith("cat_") or c == "user_id")
    assert all(features[c].dtype == pl.Float32 for c in features.columns if c.startswith("num_"))


def test_popularity_counts_are_left_out():
    features = build_user_features(raw_users(), RATIOS)
    assert not [c for c in features.columns if any(word in c for word in ("follow", "fans", "friend"))]


def test_active_degree_is_a_dense_id_with_unknown_and_null_as_zero():
    users = raw_users(user_active_degree=["high_active", None, "UNKNOWN"])
    features = build_user_features(users, RATIOS)
    assert features["cat_user_active_degree"].to_list() == [0, 0, 1]
    users = raw_users(user_active_degree=["middle_active", "full_active", "high_active"])
    assert build_user_features(users, RATIOS)["cat_user_active_degree"].to_list() == [1, 2, 3]


def test_given_ids_are_shifted_by_one_and_blanks_become_padding():
    users = raw_users(onehot_feat4=[3, None, 0], onehot_feat12=[None, None, 1], is_live_streamer=[None, 0, 1])
    features = build_user_features(users, RATIOS)  # rows in user order 0, 1, 2 = input rows 1, 2, 0
    assert features["cat_onehot_feat4"].to_list() == [0, 1, 4]
    assert features["cat_onehot_feat12"].to_list() == [0, 2, 0]
    assert features["cat_is_live_streamer"].to_list() == [1, 2, 0]
    assert features["cat_is_video_author"].to_list() == [1, 1, 2]


def test_negative_ids_are_treated_as_unknown():
    features = build_user_features(raw_users(onehot_feat0=[-1, 0, 2]), RATIOS)
    assert features["cat_onehot_feat0"].to_list() == [1, 3, 0]


def test_register_days_are_log_scaled_to_the_unit_interval():
    no_clipping = UserFeatureConfig(register_days_clip_quantile=1.0)
    features = build_user_features(raw_users(register_days=[10, 100, 1000]), RATIOS, no_clipping)
    days = features["num_register_days"].to_list()  # users 0, 1, 2 registered 100, 1000, 10 days ago
    assert days[2] == 0.0 and days[1] == 1.0
    assert days[0] == pytest.approx((math.log1p(100) - math.log1p(10)) / (math.log1p(1000) - math.log1p(10)))


def test_register_days_are_clipped_at_the_configured_quantile():
    days = list(range(1, 100)) + [1_000_000]
    users = pl.DataFrame(
        {name: raw_users()[name][[0]].to_list() * 100 for name in USER_FEATURES.column_names}
    ).with_columns(user_id=pl.int_range(100, dtype=pl.Int32), register_days=pl.Series(days, dtype=pl.Int32))
    features = build_user_features(users, RATIOS, UserFeatureConfig(register_days_clip_quantile=0.9))
    scaled = features["num_register_days"]
    # The outlier is clipped to the 0.9 quantile, so ordinary users spread over [0, 1] instead of [0, 0.3].
    assert scaled[99] == 1.0 and scaled[98] == 1.0
    assert scaled[50] > 0.8


def test_mean_target_uses_training_rows_only_and_is_shrunk():
    features = build_user_features(raw_users(), RATIOS, UserFeatureConfig(target_prior_weight=1.0))
    # Global training mean 0.6. User 0: (1.8 + 0.6) / 3; user 1 only has val/test rows; user 2: (0 + 0.6) / 2.
    assert features["num_train_mean_target"].to_list() == pytest.approx([0.8, 0.6, 0.3])
    assert features["num_train_log_count"].to_list() == pytest.approx([1.0, 0.0, math.log1p(1) / math.log1p(2)])


def test_val_and_test_targets_do_not_change_the_features():
    other = RATIOS.with_columns(
        target=pl.when(pl.col("split") == "train").then(pl.col("target")).otherwise(pl.lit(0.0, dtype=pl.Float32))
    )
    assert build_user_features(raw_users(), other).equals(build_user_features(raw_users(), RATIOS))


def test_duplicate_or_null_user_ids_raise():
    with pytest.raises(ValueError, match="duplicate"):
        build_user_features(raw_users(user_id=[0, 0, 1]), RATIOS)
    with pytest.raises(ValueError, match="null"):
        build_user_features(raw_users(user_id=[0, None, 1]), RATIOS)


@pytest.mark.parametrize("config", [{"register_days_clip_quantile": 0.0}, {"target_prior_weight": -1.0}])
def test_config_rejects_nonsense(config):
    with pytest.raises(ValueError):
        UserFeatureConfig(**config)


def test_a_user_without_a_side_row_keeps_its_interaction_features_and_gets_padding():
    with_row = build_user_features(raw_users(), RATIOS)
    without = build_user_features(raw_users().filter(pl.col("user_id") != 0), RATIOS)  # user 0 has 2 train rows
    assert without["user_id"].to_list() == [0, 1, 2]
    lost = without.filter(pl.col("user_id") == 0)
    assert all(lost[c].item() == 0 for c in lost.columns if c.startswith("cat_"))
    for column in ("num_train_mean_target", "num_train_log_count"):
        assert without[column].to_list() == with_row[column].to_list(), column
    assert 0.0 <= lost["num_register_days"].item() <= 1.0  # the median of the known users: the unknown value


def test_side_file_cleaned_with_dropna_loses_no_user_features(tmp_path):
    """The issue's case: user_features.csv cleaned with pandas ``dropna()`` and written back loses users that have
    interactions; their interaction features must not change and the coverage check must say so."""
    import pandas as pd

    from kuairec_pipeline.dataset import loader, schema
    from kuairec_pipeline.dataset.synthetic import generate_twin
    from kuairec_pipeline.features.checks import MAX_MISSING_SIDE_SHARE, check_side_coverage
    from kuairec_pipeline.features.ratios import prepare_filtered_ratios

    files = loader.find_kuairec_files(generate_twin(tmp_path / "twin", "tiny", 20220705))
    big, _ = loader.scan_interactions(files[schema.BIG_MATRIX.file_name], schema.BIG_MATRIX)
    small, _ = loader.scan_interactions(files[schema.SMALL_MATRIX.file_name], schema.SMALL_MATRIX)
    ratios_table, _ = prepare_filtered_ratios(big, small)
    side = files[schema.USER_FEATURES.file_name]
    full_users = loader.read_user_features(side)
    cleaned = tmp_path / "user_features.csv"
    pd.read_csv(side).dropna().to_csv(cleaned, index=False)
    kept_users = loader.read_user_features(cleaned)
    lost = sorted(set(full_users["user_id"]) - set(kept_users["user_id"]))
    assert lost, "dropna() should drop the users with a blank one-hot in the tiny twin"

    reference = build_user_features(full_users, ratios_table)
    features = build_user_features(kept_users, ratios_table)
    assert features["user_id"].to_list() == reference["user_id"].to_list()
    for column in ("num_train_mean_target", "num_train_log_count"):
        assert features[column].to_list() == reference[column].to_list(), column
    train_counts = ratios_table.filter(pl.col("split") == "train").group_by("user_id").len()
    busiest_lost = train_counts.filter(pl.col("user_id").is_in(lost)).sort("len", descending=True).row(0)
    assert busiest_lost[1] > 0  # a lost user with training rows ...
    row = features.filter(pl.col("user_id") == busiest_lost[0])
    assert row["num_train_mean_target"].item() > 0.0  # ... keeps its own mean target (was 0.000 in the issue)
    assert all(row[c].item() == 0 for c in features.columns if c.startswith("cat_"))

    outcome = check_side_coverage(kept_users["user_id"], ratios_table, "user_id", "user_features.csv")
    with_interactions = set(ratios_table["user_id"].to_list())
    assert outcome.metadata["ids_without_side_row"] == len(set(lost) & with_interactions)
    assert outcome.passed is (outcome.metadata["share_without_side_row"] <= MAX_MISSING_SIDE_SHARE)
    assert str(lost[0]) in outcome.description and "user_features.csv" in outcome.description
