"""What an artifact was made from, so that stored outputs of different runs are never mixed silently.

- Every prepared table (``filtered_ratios``, ``user_features``, ``video_features``) gets a content fingerprint: its
  Dagster data version (so the UI marks what is downstream of a changed table as stale) and a key of the Parquet
  file's key-value metadata (so the CLI reads it without scanning the table).
- Every model bundle and the ``recommendations`` table record what they were built with (:class:`TrainedWith`): the
  fingerprints of their input tables, the target scaler and the ``filtered_ratios`` config.
- :func:`check_against_tables` compares such a record with the tables on disk: a changed ``filtered_ratios`` (other
  rows, other scaling, other seen videos) is refused with :class:`StaleArtifactError`; a changed feature table only
  warns, since scores come from the bundle alone.

NumPy and polars only: the CLI imports this without Dagster.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from kuairec_pipeline.target import TargetScaler

# Dagster metadata keys under this prefix are written into the Parquet file's key-value metadata by the IO manager.
PARQUET_METADATA_PREFIX = "kuairec/"
FINGERPRINT = "kuairec/fingerprint"
CONFIG = "kuairec/config"  # the config a table was made with, JSON
TRAINED_WITH = "kuairec/trained_with"
# The days of interaction_days a filtered_ratios table appended to the archive (JSON list of YYYYMMDD), when the
# prepare step records them; the run history compares two tables' lists (orchestration/run_history.py).
APPENDED_DAYS = "kuairec/appended_days"
TRAINED_WITH_KEY = "__trained_with__"  # the bundle array holding TrainedWith as JSON (uint8)
PREPARED_TABLES = ("filtered_ratios", "user_features", "video_features")
# A different filtered_ratios changes rows, scaling and the videos a user has seen: results would be wrong.
REFUSED_WHEN_CHANGED = ("filtered_ratios",)


def frame_fingerprint(frame: pl.DataFrame) -> str:
    """A 16-hex-digit digest of a table's schema and every value, in row order.

    Parameters
    ----------
    frame : pl.DataFrame
        Any table; lists and nulls included.

    Returns
    -------
    str
        Equal for equal tables within one polars version (``hash_rows`` is not promised stable across versions:
        after an upgrade stored fingerprints read as changed, which errs on the safe side).
    """
    digest = hashlib.blake2b(digest_size=8)
    digest.update(json.dumps([[name, str(dtype)] for name, dtype in frame.schema.items()]).encode())
    digest.update(str(frame.height).encode())
    if frame.height and frame.width:
        digest.update(frame.hash_rows(seed=0).to_numpy().tobytes())
    return digest.hexdigest()


def _config_text(config: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(config.items())) or "config unknown"


@dataclass(frozen=True)
class TrainedWith:
    """What a model bundle (or a table built from one) was made from.

    ``inputs`` maps an input asset to its fingerprint; ``scaler_min`` / ``scaler_max`` are the training watch
    ratios that map to target 0 and 1 (:class:`~kuairec_pipeline.target.TargetScaler`);
    ``ratio_config`` is the ``filtered_ratios`` config (empty when unknown).
    """

    scaler_min: float
    scaler_max: float
    inputs: dict[str, str] = field(default_factory=dict)
    ratio_config: dict[str, Any] = field(default_factory=dict)

    @property
    def scaler(self) -> TargetScaler:
        return TargetScaler(self.scaler_min, self.scaler_max)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainedWith:
        values = json.loads(text)
        return cls(
            float(values["scaler_min"]),
            float(values["scaler_max"]),
            dict(values.get("inputs", {})),
            dict(values.get("ratio_config", {})),
        )

    def describe(self) -> str:
        config = _config_text(self.ratio_config)
        return (
            f"filtered_ratios {self.inputs.get('filtered_ratios', '?')} ({config}; target scaler "
            f"[{self.scaler_min:.4g}, {self.scaler_max:.4g}])"
        )


def stamp(bundle: dict[str, np.ndarray], trained_with: TrainedWith) -> dict[str, np.ndarray]:
    """``bundle`` with ``trained_with`` added under :data:`TRAINED_WITH_KEY` (JSON as uint8, no pickle)."""
    return {**bundle, TRAINED_WITH_KEY: np.frombuffer(trained_with.to_json().encode(), dtype=np.uint8).copy()}


def trained_with_of(bundle: Mapping[str, np.ndarray]) -> TrainedWith | None:
    """The record :func:`stamp` stored in ``bundle``, or None for a bundle written before records existed."""
    if TRAINED_WITH_KEY not in bundle:
        return None
    return TrainedWith.from_json(np.asarray(bundle[TRAINED_WITH_KEY]).tobytes().decode("utf-8"))


def parquet_provenance(path: str | Path) -> dict[str, str]:
    """The ``kuairec/*`` entries of a Parquet file's key-value metadata (empty if none or no file)."""
    try:
        stored = pl.read_parquet_metadata(path)
    except (OSError, pl.exceptions.ComputeError):
        return {}
    return {key: value for key, value in stored.items() if key.startswith(PARQUET_METADATA_PREFIX)}


def file_fingerprint(path: str | Path) -> str | None:
    """The fingerprint the IO manager stored in a table's Parquet metadata; None if the file has none."""
    return parquet_provenance(path).get(FINGERPRINT)


def file_trained_with(path: str | Path) -> TrainedWith | None:
    """The :class:`TrainedWith` stored in a table's Parquet metadata (``recommendations``), if any."""
    text = parquet_provenance(path).get(TRAINED_WITH)
    return TrainedWith.from_json(text) if text else None


class ProvenanceWarning(UserWarning):
    """A stored artifact and the tables differ in a way that leaves its result right (see check_against_tables)."""


class StaleArtifactError(RuntimeError):
    """A stored model or table was built from other data than the tables now on disk.

    ``table`` names the changed table and ``recorded`` / ``current`` its fingerprints then and now, when the raiser
    knows them: a caller with the run history can say more (``kuairec recommend`` names the days that differ).
    """

    def __init__(
        self, message: str, table: str | None = None, recorded: str | None = None, current: str | None = None
    ) -> None:
        super().__init__(message)
        self.table, self.recorded, self.current = table, recorded, current


def _what_changed(then: Mapping[str, Any], now: Mapping[str, Any]) -> str:
    """Why a table's content differs, as far as its config tells: the config values that changed, or none."""
    if not then or not now:
        return f"its config now: {_config_text(now)}"
    changed = sorted(key for key in {*then, *now} if then.get(key) != now.get(key))
    if changed:
        return "made with another config: " + ", ".join(f"{key} {now.get(key)}" for key in changed) + " now"
    # Same config, other rows: the interactions it read changed.
    return (
        "made with the same config, so its rows changed: a day of interaction_days added or removed, or the source "
        "files ingested again"
    )


def check_against_tables(what: str, trained_with: TrainedWith | None, assets_dir: str | Path) -> list[str]:
    """Compare what ``what`` was built with to the tables now in ``assets_dir``.

    Parameters
    ----------
    what : str
        The artifact, named in messages (``als_factors.npz``).
    trained_with : TrainedWith or None
        Its record; None (written before records existed) gives one warning.
    assets_dir : path
        The folder of the ``<asset>.parquet`` files.

    Returns
    -------
    list of str
        Warnings: a changed feature table (scores come from the artifact itself, so they stay right) or a
        missing record.

    Raises
    ------
    StaleArtifactError
        When ``filtered_ratios.parquet`` now holds another table than the one ``what`` was built from.
    """
    if trained_with is None:
        return [
            f"{what} records nothing about its training data (written by an older version): it may not match "
            "the tables now stored"
        ]
    warnings = []
    for table, recorded in sorted(trained_with.inputs.items()):
        path = Path(assets_dir) / f"{table}.parquet"
        current = file_fingerprint(path)
        if current == recorded:
            continue
        if table in REFUSED_WHEN_CHANGED:
            config = json.loads(parquet_provenance(path).get(CONFIG, "{}"))
            raise StaleArtifactError(
                f"{what} was built from {trained_with.describe()}, but {path} now holds other content (fingerprint "
                f"{recorded} then, {current or 'none'} now), {_what_changed(trained_with.ratio_config, config)}. Its "
                "scores, predicted watch ratios and the videos counted as seen would not match. Re-run the steps "
                "downstream of filtered_ratios so they match again: dagster asset materialize -m "
                "kuairec_pipeline.definitions --select 'filtered_ratios*' (with the run config you want).",
                table,
                recorded,
                current,
            )
        warnings.append(
            f"{path.name} changed since {what} was built ({recorded} -> {current}); the scores come "
            f"from {what} itself and stay as trained"
        )
    return warnings
