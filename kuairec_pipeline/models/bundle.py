"""The bundle format: a model's learned arrays plus its name and config as JSON bytes, all plain NumPy arrays.

:meth:`kuairec_pipeline.models.base.Recommender.bundle` writes it and ``from_bundle`` reads it; keeping the
format here lets code read a stored config without the model classes.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

CONFIG_KEY = "__config_json__"
NAME_KEY = "__model_name__"


def encode_json(value: Any) -> np.ndarray:
    """``value`` as sorted-key JSON in a uint8 array, so configs and names travel in ``.npz`` without pickle.

    Parameters
    ----------
    value : anything ``json.dumps`` accepts.

    Returns
    -------
    uint8 ndarray (n_bytes,): the UTF-8 JSON text.
    """
    return np.frombuffer(json.dumps(value, sort_keys=True).encode("utf-8"), dtype=np.uint8).copy()


def decode_json(array: np.ndarray) -> Any:
    """Inverse of :func:`encode_json`.

    Parameters
    ----------
    array : uint8 ndarray (n_bytes,) of UTF-8 JSON text.

    Returns
    -------
    The decoded value (dicts, lists, str, numbers).

    Raises
    ------
    json.JSONDecodeError, UnicodeDecodeError
        If the bytes are not UTF-8 JSON.
    """
    return json.loads(array.tobytes().decode("utf-8"))


def stored_config(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """The config dict saved by :meth:`kuairec_pipeline.models.base.Recommender.bundle`.

    Parameters
    ----------
    arrays : a bundle.

    Returns
    -------
    dict of config field -> value; empty if the bundle has none.
    """
    return decode_json(arrays[CONFIG_KEY]) if CONFIG_KEY in arrays else {}
