"""Stamp a model bundle with what it was trained with (see ``kuairec_pipeline.provenance``)."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
from dagster import AssetExecutionContext, AssetKey

from kuairec_pipeline import provenance
from kuairec_pipeline.models.data import TrainingData


def _metadata_text(value: object) -> str | None:
    raw = getattr(value, "value", value)
    return raw if isinstance(raw, str) else None


def ratio_config_of(context: AssetExecutionContext, fingerprint: str) -> dict[str, object]:
    """The config ``filtered_ratios`` was materialized with, if its latest materialization is the table with
    ``fingerprint`` (the one this step loaded); else empty (unknown)."""
    event = context.instance.get_latest_materialization_event(AssetKey("filtered_ratios"))
    materialization = event.asset_materialization if event is not None else None
    if materialization is None:
        return {}
    metadata = materialization.metadata
    if _metadata_text(metadata.get(provenance.FINGERPRINT)) != fingerprint:
        return {}
    return json.loads(_metadata_text(metadata.get(provenance.CONFIG)) or "{}")


def trained_with(context: AssetExecutionContext, data: TrainingData, **tables: pl.DataFrame) -> provenance.TrainedWith:
    """The record of a model trained on ``data``, built from the prepared ``tables`` (by asset name)."""
    inputs = {name: provenance.frame_fingerprint(frame) for name, frame in sorted(tables.items())}
    config = ratio_config_of(context, inputs["filtered_ratios"]) if "filtered_ratios" in inputs else {}
    return provenance.TrainedWith(data.scaler.minimum, data.scaler.maximum, inputs, config)


def stamped(
    context: AssetExecutionContext, bundle: dict[str, np.ndarray], data: TrainingData, **tables: pl.DataFrame
) -> dict[str, np.ndarray]:
    """``bundle`` with its :class:`~kuairec_pipeline.provenance.TrainedWith` record; also shown in the UI."""
    record = trained_with(context, data, **tables)
    context.add_output_metadata({"trained_on": record.describe()})
    return provenance.stamp(bundle, record)


def require_same_tables(
    bundles: dict[str, dict[str, np.ndarray]], **tables: pl.DataFrame
) -> dict[str, provenance.TrainedWith | None]:
    """The record of each bundle, after checking that each was trained on exactly ``tables`` (by asset name).

    Raises
    ------
    provenance.StaleArtifactError
        Naming every bundle trained on another version of one of ``tables``: evaluating or serving it with these
        tables would mix two runs' outputs.
    """
    fingerprints = {name: provenance.frame_fingerprint(frame) for name, frame in tables.items()}
    records, stale = {}, []
    for asset, bundle in bundles.items():
        record = records[asset] = provenance.trained_with_of(bundle)
        if record is None:
            continue  # written before records existed: nothing to compare
        for table, fingerprint in fingerprints.items():
            if record.inputs.get(table) not in (None, fingerprint):
                stale.append(f"{asset} was trained on {table} {record.inputs[table]}, this step loaded {fingerprint}")
    if stale:
        raise provenance.StaleArtifactError(
            "models and tables come from different runs: " + "; ".join(stale) + ". Materialize the models again "
            "on the current tables (--select 'filtered_ratios*' re-runs everything downstream of filtered_ratios)."
        )
    return records
