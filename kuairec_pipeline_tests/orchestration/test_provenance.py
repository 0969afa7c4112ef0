"""Fingerprints, the record a model bundle keeps of its training data, and the comparison with stored tables."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from kuairec_pipeline import provenance
from kuairec_pipeline.provenance import StaleArtifactError, TrainedWith

TABLE = pl.DataFrame({"user_id": [0, 1, 2], "watch_ratio": [0.5, 1.5, None], "tags": [[1], [], [2, 3]]})


def test_the_fingerprint_follows_every_value_and_the_schema():
    same = provenance.frame_fingerprint(TABLE.clone())
    assert provenance.frame_fingerprint(TABLE) == same
    assert provenance.frame_fingerprint(TABLE.with_columns(pl.col("watch_ratio").fill_null(0.0))) != same
    assert provenance.frame_fingerprint(TABLE.with_columns(pl.col("user_id").cast(pl.Int32))) != same
    assert provenance.frame_fingerprint(TABLE.reverse()) != same
    assert provenance.frame_fingerprint(TABLE.head(0)) != same


def test_a_bundle_keeps_its_record_without_pickle():
    record = TrainedWith(0.0, 3.0, {"filtered_ratios": "abc"}, {"max_watch_ratio": 3.0})
    bundle = provenance.stamp({"weights": np.ones(2)}, record)
    assert bundle[provenance.TRAINED_WITH_KEY].dtype == np.uint8
    assert provenance.trained_with_of(bundle) == record
    assert provenance.trained_with_of({"weights": np.ones(2)}) is None
    assert record.scaler.inverse(np.array([0.5]))[0] == 1.5


def _store(folder, name: str, table: pl.DataFrame, config: dict | None = None) -> str:
    fingerprint = provenance.frame_fingerprint(table)
    metadata = {provenance.FINGERPRINT: fingerprint, **({provenance.CONFIG: json.dumps(config)} if config else {})}
    table.write_parquet(folder / f"{name}.parquet", metadata=metadata)
    return fingerprint


def test_a_changed_filtered_ratios_is_refused_and_a_changed_feature_table_warns(tmp_path):
    ratios = _store(tmp_path, "filtered_ratios", TABLE, {"max_watch_ratio": 3.0})
    users = _store(tmp_path, "user_features", TABLE.select("user_id"))
    record = TrainedWith(0.5, 1.5, {"filtered_ratios": ratios, "user_features": users}, {"max_watch_ratio": 3.0})
    assert provenance.check_against_tables("als_factors.npz", record, tmp_path) == []

    _store(tmp_path, "user_features", TABLE.select("user_id").head(2))
    (warning,) = provenance.check_against_tables("als_factors.npz", record, tmp_path)
    assert "user_features.parquet changed" in warning

    _store(tmp_path, "filtered_ratios", TABLE.head(2), {"max_watch_ratio": 5.0})
    with pytest.raises(StaleArtifactError) as caught:
        provenance.check_against_tables("als_factors.npz", record, tmp_path)
    assert "max_watch_ratio 3.0" in str(caught.value) and "max_watch_ratio 5.0" in str(caught.value)
    assert "target scaler [0.5, 1.5]" in str(caught.value)


def test_a_filtered_ratios_with_other_rows_but_the_same_config_is_refused_naming_both_fingerprints(tmp_path):
    """A day added or removed: the config is the same, so the message says that the content differs and how."""
    config = {"max_watch_ratio": 3.0, "validation_days": 7.0}
    then = _store(tmp_path, "filtered_ratios", TABLE, config)
    record = TrainedWith(0.5, 1.5, {"filtered_ratios": then}, config)
    now = _store(tmp_path, "filtered_ratios", TABLE.head(2), config)
    with pytest.raises(StaleArtifactError) as caught:
        provenance.check_against_tables("als_factors.npz", record, tmp_path)
    message = str(caught.value)
    assert f"other content (fingerprint {then} then, {now} now)" in message
    assert "same config, so its rows changed" in message and "interaction_days" in message
    assert message.count("validation_days 7.0") == 1  # the config is shown once, not twice as if it differed
    assert (caught.value.table, caught.value.recorded, caught.value.current) == ("filtered_ratios", then, now)


def test_an_artifact_without_a_record_only_warns(tmp_path):
    (warning,) = provenance.check_against_tables("old.npz", None, tmp_path)
    assert "records nothing" in warning
