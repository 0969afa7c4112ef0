"""Stamp a model bundle with what it was trained with, and refuse inputs of different runs (see
``kuairec_pipeline.provenance``).

The prepared arrays (``training_arrays``, ``evaluation_arrays``) record the fingerprints of the tables they were
built from; a model bundle records the fingerprints of the tables its training arrays came from. A step that reads
arrays and bundles compares all of them with the *latest* fingerprint of each table in the Dagster instance (the
tables' data versions), so a table re-made after the arrays or the models were is caught even though the step never
loads the table itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
from dagster import AssetExecutionContext, AssetKey

from kuairec_pipeline import provenance
from kuairec_pipeline.models.data import TrainingData
from kuairec_pipeline.models.data_store import tables_of


def _metadata_text(value: object) -> str | None:
    raw = getattr(value, "value", value)
    return raw if isinstance(raw, str) else None


def _latest_metadata(context: AssetExecutionContext, table: str) -> Mapping[str, object]:
    event = context.instance.get_latest_materialization_event(AssetKey(table))
    materialization = event.asset_materialization if event is not None else None
    return materialization.metadata if materialization is not None else {}


def latest_fingerprints(context: AssetExecutionContext, tables: tuple[str, ...]) -> dict[str, str]:
    """Table name -> the fingerprint its latest materialization in the instance recorded (tables the instance has
    no record of are left out: nothing to compare)."""
    # One query for every table (each query opens its own connection to the event log).
    events = context.instance.get_latest_materialization_events([AssetKey(table) for table in tables])
    found = {}
    for table in tables:
        event = events.get(AssetKey(table))
        materialization = event.asset_materialization if event is not None else None
        fingerprint = _metadata_text(materialization.metadata.get(provenance.FINGERPRINT)) if materialization else None
        if fingerprint is not None:
            found[table] = fingerprint
    return found


def ratio_config_of(context: AssetExecutionContext, fingerprint: str) -> dict[str, object]:
    """The config ``filtered_ratios`` was materialized with, if its latest materialization is the table with
    ``fingerprint`` (the one the arrays were built from); else empty (unknown)."""
    metadata = _latest_metadata(context, "filtered_ratios")
    if _metadata_text(metadata.get(provenance.FINGERPRINT)) != fingerprint:
        return {}
    return json.loads(_metadata_text(metadata.get(provenance.CONFIG)) or "{}")


def trained_with(
    context: AssetExecutionContext, data: TrainingData, tables: Mapping[str, str]
) -> provenance.TrainedWith:
    """The record of a model trained on ``data``, built from the prepared tables with these fingerprints."""
    inputs = dict(sorted(tables.items()))
    config = ratio_config_of(context, inputs["filtered_ratios"]) if "filtered_ratios" in inputs else {}
    return provenance.TrainedWith(data.scaler.minimum, data.scaler.maximum, inputs, config)


def stamped(
    context: AssetExecutionContext, bundle: dict[str, np.ndarray], data: TrainingData, tables: Mapping[str, str]
) -> dict[str, np.ndarray]:
    """``bundle`` with its :class:`~kuairec_pipeline.provenance.TrainedWith` record; also shown in the UI.

    Parameters
    ----------
    context : the model asset's context (reads the ``filtered_ratios`` config from the instance).
    bundle : the model's arrays.
    data : the training data it was fitted on (its scaler is recorded).
    tables : table name -> fingerprint of the tables ``data`` was built from (the training arrays' record).
    """
    record = trained_with(context, data, tables)
    context.add_output_metadata({"trained_on": record.describe()})
    return provenance.stamp(bundle, record)


def require_current(
    context: AssetExecutionContext,
    arrays: Mapping[str, Mapping[str, np.ndarray]],
    bundles: Mapping[str, Mapping[str, np.ndarray]] | None = None,
) -> dict[str, provenance.TrainedWith | None]:
    """The record of each bundle, after checking that every input comes from the same, current tables.

    Parameters
    ----------
    context : the step's context (the instance holds each table's latest fingerprint).
    arrays : asset name -> stored prepared arrays (``training_arrays`` / ``evaluation_arrays``), each with its
        ``__tables__`` record.
    bundles : asset name -> model bundle, each with its ``__trained_with__`` record (bundles written before records
        existed are not compared).

    Returns
    -------
    dict: bundle asset name -> its :class:`~kuairec_pipeline.provenance.TrainedWith` (or None).

    Raises
    ------
    provenance.StaleArtifactError
        Naming every input built from another version of a table than the latest one (or, when the instance has no
        record of a table, than the first array part's): evaluating or serving with them would mix two runs.
    """
    bundles = bundles or {}
    built_from = {name: tables_of(part) for name, part in arrays.items()}
    reference = next(iter(built_from.values()), {}) | latest_fingerprints(context, provenance.PREPARED_TABLES)
    stale = []
    for name, tables in built_from.items():
        stale += [
            f"{name} was built from {table} {fingerprint}"
            for table, fingerprint in tables.items()
            if reference.get(table, fingerprint) != fingerprint
        ]
    records = {}
    for name, bundle in bundles.items():
        record = records[name] = provenance.trained_with_of(bundle)
        if record is None:
            continue  # written before records existed: nothing to compare
        stale += [
            f"{name} was trained on {table} {fingerprint}"
            for table, fingerprint in record.inputs.items()
            if reference.get(table, fingerprint) != fingerprint
        ]
    if stale:
        current = ", ".join(f"{table} {fingerprint}" for table, fingerprint in sorted(reference.items()))
        raise provenance.StaleArtifactError(
            "inputs come from different runs: " + "; ".join(stale) + f"; the current tables are {current}. "
            "Materialize everything downstream of the tables again, with the run config you want (--select "
            "'filtered_ratios*' re-runs it all)."
        )
    return records
