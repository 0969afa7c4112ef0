"""The one contract every model and baseline implements, so one evaluation and one recommender serve them all.

A model predicts the *scaled* watch ratio (the ``target`` column, in [0, 1]). ``score_all`` is the single
scoring path: ``predict``, ``recommend`` and the evaluation all go through it, so what is measured is what is
served. Every id is checked against ``[0, n_users)`` / ``[0, n_videos)`` before it indexes anything
(:class:`~kuairec_pipeline.models.errors.UnknownIdError`); an unfitted model raises
:class:`~kuairec_pipeline.models.errors.NotFittedError`. Learned state round-trips through a dict of plain
NumPy arrays (``to_arrays`` / ``from_arrays``), which the NumPy IO manager stores as ``.npz`` without pickle.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp

from kuairec_pipeline.atomic import atomic_path
from kuairec_pipeline.models.bundle import CONFIG_KEY, NAME_KEY, decode_json, encode_json, stored_config
from kuairec_pipeline.models.data import Interactions, TrainingData
from kuairec_pipeline.models.errors import (
    ConvergenceWarning,
    NotFittedError,
    SolverDivergedError,
    UnknownIdError,
    check_ids,
)
from kuairec_pipeline.models.hooks import PipelineHooks

__all__ = [
    "CONFIG_KEY",
    "NAME_KEY",
    "ConvergenceWarning",
    "NotFittedError",
    "Recommender",
    "SolverDivergedError",
    "UnknownIdError",
    "decode_json",
    "encode_json",
    "stored_config",
]

SCORE_BATCH_CELLS = 16_000_000  # users x videos scored per batch: bounds memory at ~64 MB of float32


class Recommender(PipelineHooks, ABC):
    """fit -> score_all -> predict / recommend; to_arrays / from_arrays; save / load.

    The contract every implementation keeps (``kuairec_pipeline_tests/models/contract.py`` checks it):

    - ids are integers in ``[0, n_users)`` and ``[0, n_videos)``; anything else raises
      :class:`~kuairec_pipeline.models.errors.UnknownIdError` (an ``IndexError``) from ``score_all``, ``predict``
      and ``recommend``, never a silent wrap-around of a negative id;
    - before ``fit`` or ``from_arrays``, scoring and ``to_arrays`` raise
      :class:`~kuairec_pipeline.models.errors.NotFittedError` (a ``RuntimeError``);
    - a bundle restores through one path: :meth:`from_bundle` checks the stored name, then :meth:`from_arrays`
      reads the arrays and the stored config;
    - iterative solvers report non-convergence with a
      :class:`~kuairec_pipeline.models.errors.ConvergenceWarning` and raise
      :class:`~kuairec_pipeline.models.errors.SolverDivergedError` on non-finite results.
    """

    name: ClassVar[str]
    n_users: int
    n_videos: int
    # True when a prediction depends on when the row happened (sequential models): evaluation then takes
    # pointwise predictions from predict_rows(rows, training history) instead of the score_all grid.
    time_aware: ClassVar[bool] = False
    # False when score_all ranks by something other than the predicted target (a re-ranking,
    # evaluation/reranking.py): pointwise metrics then come from predict_rows, not the score_all grid.
    scores_are_predictions: ClassVar[bool] = True

    # ---- what each model implements -------------------------------------------------------------------------
    @abstractmethod
    def fit(self, data: TrainingData) -> Self:
        """Learn from ``data.train`` (and ``data.val`` for early stopping / model choice only).

        Parameters
        ----------
        data : the prepared training arrays; ``data.train.target`` is the scaled watch ratio in [0, 1].

        Returns
        -------
        ``self``, fitted.
        """

    @abstractmethod
    def score_all(self, user_ids: np.ndarray, video_ids: np.ndarray | None = None) -> np.ndarray:
        """Predicted scaled watch ratio for every (user, video) cell of a grid.

        Parameters
        ----------
        user_ids : int (n,) user ids in ``[0, n_users)``.
        video_ids : int (m,) video ids in ``[0, n_videos)``; ``None`` means every video (m = ``n_videos``).

        Returns
        -------
        float32 (n, m), values in [0, 1] (the target scale).

        Raises
        ------
        NotFittedError
            Before ``fit`` / ``from_arrays``.
        UnknownIdError
            If an id is outside its range (implementations call :meth:`_check_ids`).
        """

    @abstractmethod
    def to_arrays(self) -> dict[str, np.ndarray]:
        """Everything needed to score again, as named NumPy arrays (no object dtype).

        Returns
        -------
        dict of name -> ndarray, the input of :meth:`from_arrays`.

        Raises
        ------
        NotFittedError
            Before ``fit`` / ``from_arrays``.
        """

    @classmethod
    @abstractmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Self:
        """Inverse of :meth:`to_arrays`; reads the config with :func:`stored_config` when the bundle has one.

        Parameters
        ----------
        arrays : what :meth:`to_arrays` (or :meth:`bundle`) returned.

        Returns
        -------
        A fitted model that scores exactly as the one saved.

        Raises
        ------
        KeyError
            If a required array is missing.
        """

    # ---- shared behaviour -----------------------------------------------------------------------------------
    def _check_ids(
        self, user_ids: np.ndarray, video_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``user_ids`` and ``video_ids`` as int64, checked against ``n_users`` / ``n_videos``.

        Parameters
        ----------
        user_ids : int (n,) user ids.
        video_ids : int (m,) video ids, or ``None`` (every video; passed through).

        Returns
        -------
        (int64 (n,), int64 (m,) or None).

        Raises
        ------
        UnknownIdError
            If an id is negative or not below the model's size; the message names the ids and the valid range.
        """
        users = check_ids(user_ids, self.n_users, "user")
        videos = None if video_ids is None else check_ids(video_ids, self.n_videos, "video")
        return users, videos

    def predict(self, user_ids: np.ndarray, video_ids: np.ndarray) -> np.ndarray:
        """Scaled watch ratio for (user, video) pairs, via :meth:`score_all` over the distinct pairs' grid rows.

        Parameters
        ----------
        user_ids : int (n,) user ids in ``[0, n_users)``.
        video_ids : int (n,) video ids in ``[0, n_videos)``, paired with ``user_ids``.

        Returns
        -------
        float32 (n,), values in [0, 1].

        Raises
        ------
        ValueError
            If the two arrays differ in shape.
        UnknownIdError
            If an id is outside its range.
        NotFittedError
            Before ``fit`` / ``from_arrays``.
        """
        user_ids = np.asarray(user_ids, dtype=np.int64)
        video_ids = np.asarray(video_ids, dtype=np.int64)
        if user_ids.shape != video_ids.shape:
            raise ValueError(f"user_ids {user_ids.shape} and video_ids {video_ids.shape} differ in shape")
        self._check_ids(user_ids, video_ids)
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
        """Pointwise predictions for ``rows``.

        Parameters
        ----------
        rows : the interactions to score (their ``user`` and ``video`` columns; ``timestamp`` in epoch seconds
            for a time-aware model).
        history : interactions a time-aware model may read, only those strictly before each row's timestamp.
            Default (a static model): :meth:`predict` on (user, video), ``history`` unused.

        Returns
        -------
        float32 (len(rows),), values in [0, 1].

        Raises
        ------
        UnknownIdError, NotFittedError
            As :meth:`predict`.
        """
        return self.predict(rows.user, rows.video)

    def recommend(
        self,
        user_ids: np.ndarray,
        k: int = 50,
        exclude: sp.csr_matrix | None = None,
        video_ids: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` videos per user, best first, ranked by :meth:`score_all`.

        Parameters
        ----------
        user_ids : int (n,) user ids in ``[0, n_users)``.
        k : videos per user; capped at the number of candidates.
        exclude : csr (n_users, n_videos), nonzero = seen: those videos get score ``-inf`` so they rank last. A
            stored explicit zero is not "seen".
        video_ids : int (m,) candidate video ids in ``[0, n_videos)``; ``None`` = every video.

        Returns
        -------
        (video ids int32 (n, k'), scores float32 (n, k')) with ``k' = min(k, number of candidates)``, sorted by
        score, best first. Padding: when a user has fewer than ``k'`` unexcluded candidates, the tail of the row
        is filled with excluded videos whose score is ``-inf``; callers that must not show seen videos drop the
        entries with ``scores == -inf``.

        Raises
        ------
        UnknownIdError
            If a user or candidate id is outside its range.
        NotFittedError
            Before ``fit`` / ``from_arrays``.
        """
        user_ids, checked = self._check_ids(user_ids, video_ids)
        candidates = np.arange(self.n_videos) if checked is None else checked
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

    def ranking_scores(self, user_ids: np.ndarray, video_ids: np.ndarray, predicted: np.ndarray) -> np.ndarray:
        """What ranks the (user, video) pairs whose :meth:`predict` values are ``predicted`` (float (n,) each):
        the predictions themselves, unless the model ranks by something else (a re-ranking overrides this)."""
        return predicted

    def config_dict(self) -> dict[str, Any]:
        """The model's config dataclass as a plain dict (empty for a model without one).

        Returns
        -------
        dict of field name -> value, as ``dataclasses.asdict`` gives it.
        """
        config = getattr(self, "config", None)
        return dataclasses.asdict(config) if dataclasses.is_dataclass(config) else {}

    def bundle(self) -> dict[str, np.ndarray]:
        """``to_arrays()`` plus the model's name and config: what an asset stores and :meth:`from_bundle` reads.

        Returns
        -------
        dict of name -> ndarray (no object dtype).

        Raises
        ------
        NotFittedError
            Before ``fit`` / ``from_arrays``.
        """
        arrays = dict(self.to_arrays())
        arrays[NAME_KEY] = encode_json(self.name)
        arrays[CONFIG_KEY] = encode_json(self.config_dict())
        return arrays

    @classmethod
    def from_bundle(cls, arrays: dict[str, np.ndarray], where: str = "bundle") -> Self:
        """Rebuild from :meth:`bundle`: the one restore path (name check, then :meth:`from_arrays`).

        Parameters
        ----------
        arrays : what :meth:`bundle` returned (or an ``.npz`` file's arrays).
        where : names the source in the error message.

        Returns
        -------
        The restored, fitted model.

        Raises
        ------
        ValueError
            If the bundle holds another model.
        """
        stored = decode_json(arrays[NAME_KEY]) if NAME_KEY in arrays else cls.name
        if stored != cls.name:
            raise ValueError(f"{where} holds model {stored!r}, not {cls.name!r}")
        return cls.from_arrays(arrays)

    def save(self, path: str | Path) -> Path:
        """Write :meth:`bundle` to an ``.npz`` file, atomically (never pickled).

        Parameters
        ----------
        path : the target file.

        Returns
        -------
        The path written.

        Raises
        ------
        NotFittedError
            Before ``fit`` / ``from_arrays``.
        """
        target = Path(path)
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, **self.bundle())
        return target

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Read a file written by :meth:`save` (``allow_pickle=False``) through :meth:`from_bundle`.

        Parameters
        ----------
        path : an ``.npz`` file.

        Returns
        -------
        The restored, fitted model.

        Raises
        ------
        ValueError
            If the file holds another model, or an object array (pickle is refused).
        """
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
        return cls.from_bundle(arrays, where=str(path))
