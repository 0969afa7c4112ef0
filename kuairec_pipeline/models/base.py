"""The one contract every model and baseline implements, so one evaluation and one recommender serve them all.

A model predicts the *scaled* watch ratio (the ``target`` column, in [0, 1]). ``score_all`` is the single
scoring path: ``predict``, ``recommend`` and the evaluation all go through it, so what is measured is what is
served. Learned state round-trips through a dict of plain NumPy arrays (``to_arrays`` / ``from_arrays``), which
the NumPy IO manager stores as ``.npz`` without pickle.
"""

from __future__ import annotations

import dataclasses
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp

from kuairec_pipeline.atomic import atomic_path
from kuairec_pipeline.models.data import Interactions, TrainingData

CONFIG_KEY = "__config_json__"
NAME_KEY = "__model_name__"
SCORE_BATCH_CELLS = 16_000_000  # users x videos scored per batch: bounds memory at ~64 MB of float32


def encode_json(value: Any) -> np.ndarray:
    return np.frombuffer(json.dumps(value, sort_keys=True).encode("utf-8"), dtype=np.uint8).copy()


def decode_json(array: np.ndarray) -> Any:
    return json.loads(array.tobytes().decode("utf-8"))


class Recommender(ABC):
    """fit -> score_all -> predict / recommend; to_arrays / from_arrays; save / load."""

    name: ClassVar[str]
    n_users: int
    n_videos: int
    # True when a prediction depends on when the row happened (sequential models): evaluation then takes
    # pointwise predictions from predict_rows(rows, training history) instead of the score_all grid.
    time_aware: ClassVar[bool] = False

    # ---- what each model implements -------------------------------------------------------------------------
    @abstractmethod
    def fit(self, data: TrainingData) -> Self:
        """Learn from ``data.train`` (and ``data.val`` for early stopping / model choice only)."""

    @abstractmethod
    def score_all(self, user_ids: np.ndarray, video_ids: np.ndarray | None = None) -> np.ndarray:
        """Predicted scaled watch ratio, float32 (len(user_ids), len(video_ids) or n_videos), values in [0, 1]."""

    @abstractmethod
    def to_arrays(self) -> dict[str, np.ndarray]:
        """Everything needed to score again, as named NumPy arrays (no object dtype)."""

    @classmethod
    @abstractmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Self:
        """Inverse of :meth:`to_arrays`."""

    # ---- shared behaviour -----------------------------------------------------------------------------------
    def predict(self, user_ids: np.ndarray, video_ids: np.ndarray) -> np.ndarray:
        """Scaled watch ratio for (user, video) pairs, via :meth:`score_all` over the distinct pairs' grid rows."""
        user_ids = np.asarray(user_ids, dtype=np.int64)
        video_ids = np.asarray(video_ids, dtype=np.int64)
        if user_ids.shape != video_ids.shape:
            raise ValueError(f"user_ids {user_ids.shape} and video_ids {video_ids.shape} differ in shape")
        out = np.empty(user_ids.shape[0], dtype=np.float32)
        unique_videos, video_col = np.unique(video_ids, return_inverse=True)
        order = np.argsort(user_ids, kind="stable")
        sorted_users = user_ids[order]
        unique_users, starts = np.unique(sorted_users, return_index=True)
        batch = max(1, SCORE_BATCH_CELLS // max(1, unique_videos.size))
        bounds = np.append(starts, sorted_users.size)
        for first in range(0, unique_users.size, batch):
            last = min(first + batch, unique_users.size)
            scores = self.score_all(unique_users[first:last], unique_videos)
            rows = order[bounds[first] : bounds[last]]
            local_user = np.searchsorted(unique_users[first:last], user_ids[rows])
            out[rows] = scores[local_user, video_col[rows]]
        return out

    def predict_rows(self, rows: Interactions, history: Interactions | None = None) -> np.ndarray:
        """Pointwise predictions for ``rows``, float32 (len(rows),) in [0, 1].

        ``history``: interactions a time-aware model may read, only those strictly before each row's timestamp.
        Default (a static model): :meth:`predict` on (user, video), ``history`` unused.
        """
        return self.predict(rows.user, rows.video)

    def recommend(
        self,
        user_ids: np.ndarray,
        k: int = 50,
        exclude: sp.csr_matrix | None = None,
        video_ids: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` videos per user, best first: (video ids int32 (n, k), scores float32 (n, k)).

        ``exclude`` (users x videos, nonzero = seen) removes seen videos; ``video_ids`` restricts the candidates.
        """
        user_ids = np.asarray(user_ids, dtype=np.int64)
        candidates = np.arange(self.n_videos) if video_ids is None else np.asarray(video_ids, dtype=np.int64)
        k = min(k, candidates.size)
        top_ids = np.empty((user_ids.size, k), dtype=np.int32)
        top_scores = np.empty((user_ids.size, k), dtype=np.float32)
        batch = max(1, SCORE_BATCH_CELLS // max(1, candidates.size))
        for first in range(0, user_ids.size, batch):
            users = user_ids[first : first + batch]
            scores = self.score_all(users, None if video_ids is None else candidates).astype(np.float32, copy=True)
            if exclude is not None:
                seen = exclude[users][:, candidates] if video_ids is not None else exclude[users]
                seen = seen.tocoo()
                nonzero = seen.data != 0  # a stored explicit zero is not "seen"
                scores[seen.row[nonzero], seen.col[nonzero]] = -np.inf
            part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            part_scores = np.take_along_axis(scores, part, axis=1)
            order = np.argsort(-part_scores, axis=1, kind="stable")
            best = np.take_along_axis(part, order, axis=1)
            top_ids[first : first + users.size] = candidates[best]
            top_scores[first : first + users.size] = np.take_along_axis(part_scores, order, axis=1)
        return top_ids, top_scores

    def config_dict(self) -> dict[str, Any]:
        config = getattr(self, "config", None)
        return dataclasses.asdict(config) if dataclasses.is_dataclass(config) else {}

    def bundle(self) -> dict[str, np.ndarray]:
        """``to_arrays()`` plus the model's name and config: what an asset stores and :meth:`from_bundle` reads."""
        arrays = dict(self.to_arrays())
        arrays[NAME_KEY] = encode_json(self.name)
        arrays[CONFIG_KEY] = encode_json(self.config_dict())
        return arrays

    @classmethod
    def from_bundle(cls, arrays: dict[str, np.ndarray], where: str = "bundle") -> Self:
        """Rebuild from :meth:`bundle`; ``from_arrays`` may read the config back with ``stored_config(arrays)``."""
        stored = decode_json(arrays[NAME_KEY]) if NAME_KEY in arrays else cls.name
        if stored != cls.name:
            raise ValueError(f"{where} holds model {stored!r}, not {cls.name!r}")
        return cls.from_arrays(arrays)

    def save(self, path: str | Path) -> Path:
        """Write :meth:`bundle` to an ``.npz`` file, atomically (never pickled)."""
        target = Path(path)
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, **self.bundle())
        return target

    @classmethod
    def load(cls, path: str | Path) -> Self:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
        return cls.from_bundle(arrays, where=str(path))


def stored_config(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """The config dict saved by :meth:`Recommender.bundle` (empty if absent)."""
    return decode_json(arrays[CONFIG_KEY]) if CONFIG_KEY in arrays else {}
