"""Properties of data preparation on generated interactions and tag lists (hypothesis)."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kuairec_pipeline.features.ratios import SECONDS_PER_DAY, RatioConfig, prepare_filtered_ratios, selection_user_mask
from kuairec_pipeline.features.videos import padded_tag_ids, tag_multi_hot
from kuairec_pipeline.target import TargetScaler
from kuairec_pipeline_tests.builders import T0, raw_interactions

SETTINGS = settings(max_examples=50, deadline=None)
CONFIG = RatioConfig()  # max 3, last 7 days, duplicates dropped

watch_ratios = st.one_of(
    st.sampled_from([0.0, 0.5, 1.0, 3.0, 3.5]), st.floats(0.0, 10.0, allow_nan=False, allow_infinity=False)
)
# Whole hours over 20 days: repeats of a timestamp are likely, so are exact duplicate rows.
timestamps = st.integers(0, 20 * 24).map(lambda hours: T0 + hours * 3600.0)


@st.composite
def interaction_rows(draw, videos: tuple[int, int], with_time: bool = True):
    row = st.tuples(
        st.integers(0, 3),
        st.integers(*videos),
        timestamps if with_time else st.one_of(st.none(), timestamps),
        watch_ratios,
    )
    rows = draw(st.lists(row, min_size=6, max_size=30))
    return rows + draw(st.lists(st.sampled_from(rows), max_size=5))  # exact duplicates


def expected_train_val(big_rows) -> tuple[list, list]:
    """The split, computed the slow obvious way: distinct rows, cut-off from the latest row, outliers dropped."""
    cutoff = max(row[2] for row in big_rows) - CONFIG.validation_days * SECONDS_PER_DAY
    kept = [row for row in set(big_rows) if row[3] <= CONFIG.max_watch_ratio]
    return sorted(row for row in kept if row[2] <= cutoff), sorted(row for row in kept if row[2] > cutoff)


def prepare_or_skip(big_rows, small_rows):
    train, _ = expected_train_val(big_rows)
    if len({row[3] for row in train}) < 2:
        with pytest.raises(ValueError):
            prepare_filtered_ratios(raw_interactions(big_rows), raw_interactions(small_rows), CONFIG)
        return None
    return prepare_filtered_ratios(raw_interactions(big_rows), raw_interactions(small_rows), CONFIG)


def as_rows(frame: pl.DataFrame) -> list:
    return sorted(frame.select("user_id", "video_id", "timestamp", "watch_ratio").rows())


@SETTINGS
@given(interaction_rows((0, 5)), interaction_rows((10, 15), with_time=False))
def test_targets_stay_in_the_unit_interval_and_keep_the_order_of_watch_ratios(big_rows, small_rows):
    prepared = prepare_or_skip(big_rows, small_rows)
    if prepared is None:
        return
    table, _ = prepared
    assert table["target"].null_count() == 0
    assert table["target"].min() >= 0.0 and table["target"].max() <= 1.0
    ordered = table.sort("watch_ratio")["target"]
    assert (ordered.diff().drop_nulls() >= 0).all()
    train = table.filter(pl.col("split") == "train")
    assert train["target"].min() == 0.0 and train["target"].max() == 1.0


@SETTINGS
@given(
    interaction_rows((0, 5)),
    interaction_rows((10, 15), with_time=False),
    st.lists(watch_ratios, min_size=1, max_size=10),
)
def test_scaling_statistics_come_from_training_rows_only(big_rows, small_rows, other_ratios):
    prepared = prepare_or_skip(big_rows, small_rows)
    if prepared is None:
        return
    table, summary = prepared
    train, _ = expected_train_val(big_rows)
    assert summary.scaler == TargetScaler(min(row[3] for row in train), max(row[3] for row in train))

    # Replace every val and test watch ratio (outliers included): the scaler and the training rows must not move.
    def swapped(row, i):
        return (*row[:3], other_ratios[i % len(other_ratios)])

    cutoff = summary.validation_cutoff_timestamp
    big_changed = [swapped(row, i) if row[2] > cutoff else row for i, row in enumerate(big_rows)]
    small_changed = [swapped(row, i) for i, row in enumerate(small_rows)]
    table_changed, summary_changed = prepare_filtered_ratios(
        raw_interactions(big_changed), raw_interactions(small_changed), CONFIG
    )
    assert summary_changed.scaler == summary.scaler
    assert table_changed.filter(pl.col("split") == "train").equals(table.filter(pl.col("split") == "train"))


@SETTINGS
@given(interaction_rows((0, 5)), interaction_rows((10, 15), with_time=False))
def test_splits_partition_the_rows_and_val_follows_train(big_rows, small_rows):
    prepared = prepare_or_skip(big_rows, small_rows)
    if prepared is None:
        return
    table, summary = prepared
    train, val = expected_train_val(big_rows)
    assert as_rows(table.filter(pl.col("split") == "train")) == train
    window = table.filter(pl.col("split").is_in(["val", "selection"]))
    assert as_rows(window) == val  # the validation window, split by user into the tuning and selection slices
    picked = selection_user_mask(window["user_id"].to_numpy(), CONFIG.selection_share)
    assert ((window["split"] == "selection").to_numpy() == picked).all()
    test = table.filter(pl.col("split") == "test")
    assert sorted(test.select("user_id", "video_id").rows()) == sorted({(u, v) for u, v, _, _ in small_rows})
    assert summary.train_rows + summary.val_rows + summary.selection_rows + summary.test_rows == table.height
    if val:
        assert min(row[2] for row in val) > max(row[2] for row in train)
    train_pairs = {(u, v) for u, v, _, _ in train}
    assert not train_pairs & set(test.select("user_id", "video_id").rows())


tag_lists = st.lists(st.one_of(st.none(), st.lists(st.integers(0, 30), max_size=8)), min_size=1, max_size=20)


@SETTINGS
@given(tag_lists, st.integers(1, 6))
def test_tag_padding_has_the_documented_length_and_content(tags, max_tags):
    series = pl.Series("tags", tags, dtype=pl.List(pl.Int32)).fill_null([]).list.unique(maintain_order=True)
    padded = padded_tag_ids(series, max_tags).to_list()
    multi_hot = tag_multi_hot(series, 31).to_list()
    for given_tags, ids, hot in zip(tags, padded, multi_hot, strict=False):
        distinct = list(dict.fromkeys(given_tags or []))
        assert len(ids) == max_tags
        assert ids == [tag + 1 for tag in distinct[:max_tags]] + [0] * (max_tags - min(len(distinct), max_tags))
        assert len(hot) == 31
        assert [i for i, value in enumerate(hot) if value == 1.0] == sorted(distinct)
