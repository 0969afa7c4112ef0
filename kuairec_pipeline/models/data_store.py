"""The prepared arrays as plain NumPy arrays, so they can be built once per run and stored (``.npz``).

:func:`build_training_data` / :func:`build_prepared_data` turn the three prepared tables into arrays on every call;
this module writes those arrays out and reads them back without the tables, keeping the type boundary of
:mod:`.data`: the *training* part (what ``Recommender.fit`` receives: train, val, side features, scaler) and the
*evaluation* part (the ``selection`` and ``test`` rows, which ``fit`` never receives) are separate dicts, so whatever
stores the first cannot leak the second into a fit. Each part records the fingerprints of the tables it was built
from (``__tables__``), so a reader can refuse arrays of another run. Plain arrays and JSON only: nothing is pickled.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from kuairec_pipeline.models.bundle import decode_json, encode_json
from kuairec_pipeline.models.data import Interactions, PreparedData, TrainingData
from kuairec_pipeline.target import TargetScaler

TABLES_KEY = "__tables__"  # JSON {table name: fingerprint} of the tables the arrays were built from
META_KEY = "__meta__"  # JSON: sizes, scaler, cardinalities, column names
TRAINING_SPLITS = ("train", "val")
_ROWS = tuple(f.name for f in dataclasses.fields(Interactions))
_FEATURES = (
    "user_categorical",
    "user_numeric",
    "video_categorical",
    "video_numeric",
    "video_tags",
    "video_tag_multi_hot",
)
_LISTS = (
    "user_categorical_cardinality",
    "video_categorical_cardinality",
    "user_categorical_names",
    "user_numeric_names",
    "video_categorical_names",
    "video_numeric_names",
)


def _rows_to_arrays(split: str, rows: Interactions) -> dict[str, np.ndarray]:
    return {f"{split}.{name}": getattr(rows, name) for name in _ROWS}


def _rows_from_arrays(split: str, arrays: Mapping[str, np.ndarray]) -> Interactions:
    missing = [f"{split}.{name}" for name in _ROWS if f"{split}.{name}" not in arrays]
    if missing:
        raise KeyError(f"stored arrays lack {missing}")
    return Interactions(*(np.asarray(arrays[f"{split}.{name}"]) for name in _ROWS))


def training_to_arrays(data: TrainingData, tables: Mapping[str, str]) -> dict[str, np.ndarray]:
    """The arrays of ``data`` (no selection or test row exists in it), stamped with the tables' fingerprints.

    Parameters
    ----------
    data : the training data (:func:`kuairec_pipeline.models.data.build_training_data`).
    tables : table name -> fingerprint of each table ``data`` was built from (``provenance.frame_fingerprint``).

    Returns
    -------
    dict of arrays: ``train.<field>`` / ``val.<field>`` (the :class:`Interactions` fields, same dtypes), the
    feature matrices by field name, and the JSON records ``__meta__`` and ``__tables__``.
    """
    arrays = {
        key: value for split in TRAINING_SPLITS for key, value in _rows_to_arrays(split, getattr(data, split)).items()
    }
    arrays.update({name: getattr(data, name) for name in _FEATURES})
    meta = {"n_users": data.n_users, "n_videos": data.n_videos}
    meta["scaler"] = [data.scaler.minimum, data.scaler.maximum]
    meta.update({name: list(getattr(data, name)) for name in _LISTS})
    arrays[META_KEY] = encode_json(meta)
    arrays[TABLES_KEY] = encode_json(dict(tables))
    return arrays


def training_from_arrays(arrays: Mapping[str, np.ndarray]) -> TrainingData:
    """The :class:`TrainingData` stored by :func:`training_to_arrays` (equal field by field).

    Raises
    ------
    KeyError
        If an array or the ``__meta__`` record is missing (e.g. an evaluation part was passed).
    """
    if META_KEY not in arrays:
        raise KeyError(f"stored arrays lack {META_KEY}: not a training part")
    meta = decode_json(arrays[META_KEY])
    return TrainingData(
        train=_rows_from_arrays("train", arrays),
        val=_rows_from_arrays("val", arrays),
        n_users=int(meta["n_users"]),
        n_videos=int(meta["n_videos"]),
        scaler=TargetScaler(*(float(value) for value in meta["scaler"])),
        **{name: np.asarray(arrays[name]) for name in _FEATURES},
        **{name: list(meta[name]) for name in _LISTS},
    )


def evaluation_to_arrays(
    selection: Interactions, test: Interactions, tables: Mapping[str, str]
) -> dict[str, np.ndarray]:
    """The ``selection`` and ``test`` rows (never given to ``fit``), stamped like the training part.

    Parameters
    ----------
    selection, test : the held-out rows (:func:`kuairec_pipeline.models.data.build_evaluation_rows`).
    tables : table name -> fingerprint of the table they were cut from.

    Returns
    -------
    dict of arrays: ``selection.<field>`` / ``test.<field>`` and ``__tables__``.
    """
    arrays = {**_rows_to_arrays("selection", selection), **_rows_to_arrays("test", test)}
    arrays[TABLES_KEY] = encode_json(dict(tables))
    return arrays


def tables_of(arrays: Mapping[str, np.ndarray]) -> dict[str, str]:
    """The ``{table: fingerprint}`` record of a stored part (empty when it has none)."""
    return dict(decode_json(arrays[TABLES_KEY])) if TABLES_KEY in arrays else {}


def prepared_from_arrays(training: Mapping[str, np.ndarray], evaluation: Mapping[str, np.ndarray]) -> PreparedData:
    """The :class:`PreparedData` of a stored training part and evaluation part.

    Raises
    ------
    ValueError
        If the two parts were built from different versions of a table both record (mixing two runs' rows).
    KeyError
        As :func:`training_from_arrays`, or an evaluation array is missing.
    """
    trained, held_out = tables_of(training), tables_of(evaluation)
    if any(trained.get(table, fingerprint) != fingerprint for table, fingerprint in held_out.items()):
        raise ValueError(
            f"the training and evaluation arrays come from different tables: {tables_of(training)} vs "
            f"{tables_of(evaluation)}"
        )
    return PreparedData(
        training=training_from_arrays(training),
        selection=_rows_from_arrays("selection", evaluation),
        test=_rows_from_arrays("test", evaluation),
    )
