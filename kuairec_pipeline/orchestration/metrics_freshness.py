"""Whether the stored metrics table still describes the stored models and tables (``kuairec summary`` and
``kuairec metrics`` warn when it does not).

Nothing new is recorded for this: every materialization of ``metrics`` already carries, for each input, the storage
id of the input's materialization it read and that input's data version (Dagster's ``dagster/input_event_pointer/*``
and ``dagster/input_data_version/*`` tags, read through :class:`dagster.DataProvenance`). An input materialized
again after that one was re-made after the metrics were computed. Whether its content changed: a prepared table's
data version is its content fingerprint (``provenance.frame_fingerprint``, user-provided), so a table re-made with
the same content does not count; a model's data version is Dagster's own (code version and inputs, not the model's
config: two models of one code and data share it), so every re-materialization of a model counts.

Only materializations of files in the asset location being read count (their ``path`` metadata), so an instance
shared by several homes is not mistaken for this one's history.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, DataProvenance, EventLogRecord

from kuairec_pipeline.provenance import PREPARED_TABLES

METRICS = "metrics"
DATA_VERSION_TAG = "dagster/data_version"  # dagster._core.definitions.data_version.DATA_VERSION_TAG
# Newer materializations of one input looked at; only the newest one in this asset location is used.
SCANNED_MATERIALIZATIONS = 100
RUN = "dagster asset materialize -m kuairec_pipeline.definitions --select"


@dataclass(frozen=True)
class ChangedInput:
    """An input of ``metrics`` materialized again after the metrics were computed.

    ``asset`` is its key; ``when`` the newer materialization's time (UTC seconds); ``before`` / ``after`` its
    content fingerprints when it has one (a prepared table), else empty.
    """

    asset: str
    when: float
    before: str = ""
    after: str = ""

    def describe(self) -> str:
        content = f"content {self.before} -> {self.after}, " if self.before else ""
        return f"{self.asset} ({content}{_utc(self.when)})"


@dataclass(frozen=True)
class MetricsInputs:
    """When the stored metrics were computed (UTC seconds) and which of their inputs changed since."""

    computed_at: float
    changed: list[ChangedInput]


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _folder_of(path: str) -> str:
    if "://" in path:
        return path.rsplit("/", 1)[0]
    return os.path.dirname(os.path.abspath(path))


def _in_location(record: EventLogRecord, location: str) -> bool:
    materialization = record.asset_materialization
    value = materialization.metadata.get("path") if materialization is not None else None
    path = getattr(value, "value", value)
    expected = location.rstrip("/") if "://" in location else os.path.abspath(location)
    return isinstance(path, str) and _folder_of(path) == expected


def _newest_in_location(
    instance: DagsterInstance, key: AssetKey, location: str, after_storage_id: int | None = None
) -> EventLogRecord | None:
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=key, after_storage_id=after_storage_id), limit=SCANNED_MATERIALIZATIONS
    ).records  # newest first
    return next((record for record in records if _in_location(record, location)), None)


def changed_metrics_inputs(instance: DagsterInstance, location: str) -> MetricsInputs | None:
    """The inputs of the newest ``metrics`` materialization in ``location`` that were materialized again since.

    Parameters
    ----------
    instance : DagsterInstance
        The instance the runs were recorded in.
    location : str
        The asset location (``Settings.asset_location``: a folder or an fsspec URL) whose ``metrics.parquet`` is read.

    Returns
    -------
    MetricsInputs (its ``changed`` sorted by asset key), or None when the instance records no materialization of
    metrics in ``location`` (nothing to compare: e.g. files copied from another machine).
    """
    metrics = _newest_in_location(instance, AssetKey(METRICS), location)
    if metrics is None:
        return None
    read = DataProvenance.from_tags(metrics.event_log_entry.tags or {})
    if read is None:
        return None
    changed = []
    for key, pointer in sorted(read.input_storage_ids.items(), key=lambda item: item[0].to_user_string()):
        # An input the run did not find in this instance (NULL pointer: a copied home) was read from the file that
        # existed when metrics ran: whatever came after the metrics materialization is newer.
        newer = _newest_in_location(instance, key, location, pointer if pointer is not None else metrics.storage_id)
        if newer is None:
            continue
        tags = newer.event_log_entry.tags or {}
        before, after = read.input_data_versions.get(key), tags.get(DATA_VERSION_TAG)
        # Content known on both sides only when the run read a recorded materialization (not a NULL pointer).
        fingerprinted = key.to_user_string() in PREPARED_TABLES and pointer is not None and None not in (before, after)
        if fingerprinted and before.value == after:
            continue  # made again with the same content
        changed.append(
            ChangedInput(
                key.to_user_string(),
                newer.timestamp,
                before.value if fingerprinted else "",
                after if fingerprinted else "",
            )
        )
    return MetricsInputs(metrics.timestamp, changed)


def stale_metrics_warning(instance: DagsterInstance, location: str) -> str | None:
    """One line saying which inputs of the stored metrics changed since they were computed and what to run; None
    when none did (or the instance cannot tell, see :func:`changed_metrics_inputs`)."""
    found = changed_metrics_inputs(instance, location)
    if found is None or not found.changed:
        return None
    tables = [item.asset for item in found.changed if item.asset in PREPARED_TABLES]
    if tables:
        # Models trained on the former tables would be refused: everything downstream of the changed tables.
        roots = ["filtered_ratios"] if "filtered_ratios" in tables else tables
        command = f"{RUN} '{','.join(f'{table}*' for table in roots)}' (with the run config you want)"
    else:
        command = f"{RUN} 'metrics*'"
    return (
        f"the stored metrics are out of date: {', '.join(item.describe() for item in found.changed)} materialized "
        f"again after metrics.parquet was computed ({_utc(found.computed_at)}), which describes the former "
        f"version(s). Re-run: {command}"
    )


def stale_metrics_warning_for(location: str, folder: Path) -> str | None:
    """:func:`stale_metrics_warning` on the Dagster instance configured in ``folder`` (a DAGSTER_HOME, or a folder
    holding a ``dagster.yaml``)."""
    with DagsterInstance.from_config(str(folder)) as instance:
        return stale_metrics_warning(instance, location)
