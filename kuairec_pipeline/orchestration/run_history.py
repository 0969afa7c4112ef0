"""What the Dagster instance's run history says about the stored files, for the ``kuairec`` command: whether the
stored metrics still describe the stored models and tables (``kuairec summary`` and ``kuairec metrics`` warn when
they do not), and which appended days two ``filtered_ratios`` tables read (``kuairec recommend`` names them when it
refuses a model built from another one).

Stale metrics: nothing new is recorded for it. Every materialization of ``metrics`` already carries, for each input,
the storage id of the input's materialization it read and that input's data version (Dagster's
``dagster/input_event_pointer/*`` and ``dagster/input_data_version/*`` tags, read through
:class:`dagster.DataProvenance`). An input materialized again after that one was re-made after the metrics were
computed. Whether its content changed: a prepared table's data version is its content fingerprint
(``provenance.frame_fingerprint``, user-provided), and the prepared arrays' a digest of their tables' fingerprints,
so a table or arrays re-made with the same content do not count; a table re-made after the arrays the metrics read
shows as that table (the arrays record which table versions they were built from); a
model's data version is Dagster's own (code version and inputs, not the model's config: two models of one code and
data share it), so every re-materialization of a model counts.

Days: a ``filtered_ratios`` materialization's metadata holds its fingerprint, how many days of ``interaction_days``
it appended to the archive and the last one; and, where the prepare step records it, the list of those days
(``provenance.APPENDED_DAYS``).

Only materializations of files in the asset location being read count (their ``path`` metadata), so an instance
shared by several homes is not mistaken for this one's history.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, DataProvenance, EventLogRecord

from kuairec_pipeline.models.bundle import decode_json
from kuairec_pipeline.models.data_store import TABLES_KEY
from kuairec_pipeline.provenance import APPENDED_DAYS, FINGERPRINT, PREPARED_TABLES

METRICS = "metrics"
ARRAYS = ("training_arrays", "evaluation_arrays")  # what metrics reads the prepared tables through
# Inputs whose data version is a digest of their content (a re-make with the same content is no change).
CONTENT_VERSIONED = (*PREPARED_TABLES, *ARRAYS)
FILTERED_RATIOS = "filtered_ratios"
# Metadata the prepare step has always written on filtered_ratios (orchestration/assets/prepare.py).
APPENDED_COUNT, LAST_APPENDED = "appended_days", "last_appended_day"
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
    # Seconds: a model re-made in the minute after the metrics would otherwise read as made at the same time.
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


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
        fingerprinted = (
            key.to_user_string() in CONTENT_VERSIONED and pointer is not None and None not in (before, after)
        )
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
    flagged = {item.asset for item in changed}
    for table, fingerprint in _tables_of_stored_arrays(location).items():
        newest = _newest_in_location(instance, AssetKey(table), location)
        latest = _value(newest, FINGERPRINT) if newest is not None else None
        if table not in flagged and isinstance(latest, str) and latest != fingerprint:
            changed.append(ChangedInput(table, newest.timestamp, fingerprint, latest))
    return MetricsInputs(metrics.timestamp, sorted(changed, key=lambda item: item.asset))


def _tables_of_stored_arrays(location: str) -> dict[str, str]:
    """Table -> fingerprint the stored prepared arrays were built from (their ``__tables__`` record; read lazily, not
    the arrays). The metrics read the tables only through the arrays, so a table re-made after them shows here.
    Local locations only (empty for an fsspec URL, whose files ``kuairec summary`` does not read either)."""
    found: dict[str, str] = {}
    for name in ARRAYS:
        path = Path(location) / f"{name}.npz"
        if "://" in location or not path.is_file():
            continue
        with np.load(path, allow_pickle=False) as stored:
            if TABLES_KEY in stored.files:
                found.update(decode_json(stored[TABLES_KEY]))
    return found


def stale_metrics_warning(instance: DagsterInstance, location: str) -> str | None:
    """One line saying which inputs of the stored metrics changed since they were computed and what to run; None
    when none did (or the instance cannot tell, see :func:`changed_metrics_inputs`)."""
    found = changed_metrics_inputs(instance, location)
    if found is None or not found.changed:
        return None
    tables = [item.asset for item in found.changed if item.asset in PREPARED_TABLES]
    # Everything downstream of what changed: models trained on former tables would be refused, and a re-made model
    # is the start or a component of others (linear_baseline of ALS, the two-tower and the sequential models; every
    # model of the hybrids), which still hold the former one.
    roots = (["filtered_ratios"] if "filtered_ratios" in tables else tables) or [item.asset for item in found.changed]
    command = f"{RUN} '{','.join(f'{root}*' for root in roots)}' (with the run config you want)"
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


def _value(record: EventLogRecord, key: str) -> object:
    materialization = record.asset_materialization
    entry = materialization.metadata.get(key) if materialization is not None else None
    return getattr(entry, "value", entry)


def _day(date: int) -> str:
    text = str(date)  # YYYYMMDD, as the date column
    return f"{text[:4]}-{text[4:6]}-{text[6:]}"


def _days_read(record: EventLogRecord) -> list[int] | None:
    listed = _value(record, APPENDED_DAYS)
    return [int(day) for day in json.loads(listed)] if isinstance(listed, str) else None


def _count_and_last(record: EventLogRecord) -> str:
    count, last = _value(record, APPENDED_COUNT), _value(record, LAST_APPENDED)
    if not isinstance(count, int):
        return "an unrecorded number of day(s)"
    return f"{count} day(s) (the last {_day(last)})" if count and isinstance(last, int) else f"{count} day(s)"


def _with_fingerprint(instance: DagsterInstance, location: str, fingerprint: str) -> EventLogRecord | None:
    records = instance.fetch_materializations(AssetKey(FILTERED_RATIOS), limit=SCANNED_MATERIALIZATIONS).records
    return next(
        (r for r in records if _in_location(r, location) and _value(r, FINGERPRINT) == fingerprint),
        None,
    )


def appended_days_difference(instance: DagsterInstance, location: str, then: str, now: str) -> str | None:
    """Which appended days the ``filtered_ratios`` table with fingerprint ``then`` read and the one with ``now`` did
    not, and the reverse, as a sentence.

    Parameters
    ----------
    instance : DagsterInstance
        The instance the runs were recorded in.
    location : str
        The asset location (``Settings.asset_location``) whose ``filtered_ratios.parquet`` is meant.
    then, now : str
        Content fingerprints (``provenance.FINGERPRINT``) of the former and of the current table.

    Returns
    -------
    str or None
        The days by name when both materializations list them (``provenance.APPENDED_DAYS``), else how many days
        each appended and the last one; None when both read the same days, or when the instance holds no
        materialization with one of the two fingerprints in ``location``.
    """
    former, latest = _with_fingerprint(instance, location, then), _with_fingerprint(instance, location, now)
    if former is None or latest is None:
        return None
    days_then, days_now = _days_read(former), _days_read(latest)
    if days_then is None or days_now is None:
        return (
            f"filtered_ratios {then} appended {_count_and_last(former)} of interaction_days to the archive, {now} "
            f"appends {_count_and_last(latest)}"
        )
    gone, added = sorted(set(days_then) - set(days_now)), sorted(set(days_now) - set(days_then))
    if not gone and not added:
        # Same days: the difference is elsewhere (config, the archive, small_matrix), which the caller's message
        # already names as far as it can tell; claiming one here would guess.
        return None
    parts = [
        *([f"no longer read: {', '.join(_day(day) for day in gone)}"] if gone else []),
        *([f"read now, not then: {', '.join(_day(day) for day in added)}"] if added else []),
    ]
    return "appended days of interaction_days " + "; ".join(parts)


def appended_days_difference_for(location: str, folder: Path, then: str, now: str) -> str | None:
    """:func:`appended_days_difference` on the Dagster instance configured in ``folder``."""
    with DagsterInstance.from_config(str(folder)) as instance:
        return appended_days_difference(instance, location, then, now)
