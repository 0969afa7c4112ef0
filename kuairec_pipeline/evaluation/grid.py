"""The test matrix as a grid of test users x test videos, and one pass of a model over it through ``score_all``
(per-row predictions and each user's ranked candidates), in user batches bounded in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from kuairec_pipeline.evaluation.ranking_metrics import POSITIVE_WATCH_RATIO, _hits_of, rank_candidates
from kuairec_pipeline.models.base import SCORE_BATCH_CELLS, Recommender
from kuairec_pipeline.models.data import Interactions


@dataclass(frozen=True)
class EvaluationGrid:
    """The test matrix: sorted test users x sorted test videos, with where each test row sits in it."""

    users: np.ndarray  # int64 (n_users,), sorted distinct test user ids
    videos: np.ndarray  # int64 (n_videos,), sorted distinct test video ids
    row_user: np.ndarray  # int64 per test row: index into ``users``
    row_video: np.ndarray  # int64 per test row: index into ``videos``
    user_row_starts: np.ndarray  # int64 (n_users + 1,): rows of grid user i are rows_by_user[starts[i]:starts[i+1]]
    rows_by_user: np.ndarray  # int64: test row numbers ordered by grid user
    observed: sp.csr_matrix  # bool (n_users, n_videos): the cell is a test row (a candidate)
    relevant: sp.csr_matrix  # bool (n_users, n_videos): raw watch ratio > the positive threshold

    @classmethod
    def from_interactions(
        cls, test: Interactions, positive_watch_ratio: float = POSITIVE_WATCH_RATIO
    ) -> EvaluationGrid:
        """The grid of the test rows: their distinct users x distinct videos.

        Parameters
        ----------
        test : the test interactions, one row per (user, video) pair.
        positive_watch_ratio : a row is relevant (a positive) when its raw watch ratio exceeds this (unitless).

        Returns
        -------
        EvaluationGrid over the sorted distinct test users and videos.

        Raises
        ------
        ValueError
            If ``test`` is empty or holds a (user, video) pair twice.
        """
        if len(test) == 0:
            raise ValueError("the test split is empty: nothing to evaluate")
        users, row_user = np.unique(test.user.astype(np.int64), return_inverse=True)
        videos, row_video = np.unique(test.video.astype(np.int64), return_inverse=True)
        shape = (users.size, videos.size)
        cells = sp.csr_matrix((np.ones(len(test)), (row_user, row_video)), shape=shape)
        if cells.nnz != len(test):
            raise ValueError("the test split holds a (user, video) pair twice; it must be one row per pair")
        positive = test.watch_ratio > positive_watch_ratio
        relevant = sp.csr_matrix(
            (np.ones(int(positive.sum()), dtype=bool), (row_user[positive], row_video[positive])), shape=shape
        )
        rows_by_user = np.argsort(row_user, kind="stable")
        starts = np.searchsorted(row_user[rows_by_user], np.arange(users.size + 1))
        return cls(users, videos, row_user, row_video, starts, rows_by_user, cells.astype(bool), relevant)


def iter_grid_scores(
    model: Recommender, grid: EvaluationGrid, batch_users: int | None = None
) -> Iterator[tuple[int, int, np.ndarray]]:
    """``model.score_all`` over the grid, in user batches bounded in memory.

    Parameters
    ----------
    model : a fitted recommender.
    grid : the evaluation grid.
    batch_users : grid users per batch; default: as many as fit in ``SCORE_BATCH_CELLS`` cells.

    Yields
    ------
    (first, last, scores): grid user indices [first, last) and float (last - first, n_grid_videos) scores.

    Raises
    ------
    ValueError
        If ``score_all`` returns the wrong shape.
    """
    batch = batch_users or max(1, SCORE_BATCH_CELLS // max(1, grid.videos.size))
    for first in range(0, grid.users.size, batch):
        last = min(first + batch, grid.users.size)
        scores = np.asarray(model.score_all(grid.users[first:last], grid.videos))
        if scores.shape != (last - first, grid.videos.size):
            raise ValueError(
                f"{model.name}.score_all returned shape {scores.shape}, expected {(last - first, grid.videos.size)}"
            )
        yield first, last, scores


@dataclass(frozen=True)
class GridRanking:
    """One pass of a model over an :class:`EvaluationGrid`: its prediction per row and each user's ranked list."""

    predictions: np.ndarray  # float32 per grid row (the Interactions the grid was built from)
    top: np.ndarray  # int64 (n_grid_users, min(k, n_grid_videos)): video ids, best first, candidates only first
    hits: np.ndarray  # bool (n_grid_users, k): the video at each rank is a positive
    n_relevant: np.ndarray  # int64 (n_grid_users,): positives per user


def rank_grid(
    model: Recommender, grid: EvaluationGrid, n_rows: int, k: int, name: str, batch_users: int | None = None
) -> GridRanking:
    """Score ``grid`` in user batches through ``score_all``: per-row predictions and the top ``k`` per user.

    Parameters
    ----------
    model : a fitted recommender.
    grid : the evaluation grid built from the same ``n_rows`` interactions.
    n_rows : number of interactions behind ``grid``.
    k : longest cut-off needed.
    name : the model's label in error messages.
    batch_users : grid users per batch (default: bounded by ``SCORE_BATCH_CELLS``).

    Returns
    -------
    GridRanking: float32 (n_rows,) predictions, int64 top video ids, bool (n_grid_users, k) hits, positives per user.

    Raises
    ------
    ValueError
        If a score of an evaluated cell is not finite, or ``score_all`` returns the wrong shape.
    """
    predictions = np.empty(n_rows, dtype=np.float32)
    width = min(k, grid.videos.size)
    top = np.empty((grid.users.size, width), dtype=np.int64)
    hits = np.zeros((grid.users.size, k), dtype=bool)
    for first, last, scores in iter_grid_scores(model, grid, batch_users):
        observed = grid.observed[first:last].toarray()
        if not np.isfinite(scores[observed]).all():
            raise ValueError(f"{name}: score_all returned a non-finite score for an evaluated cell")
        rows = grid.rows_by_user[grid.user_row_starts[first] : grid.user_row_starts[last]]
        predictions[rows] = scores[grid.row_user[rows] - first, grid.row_video[rows]]
        columns = rank_candidates(scores, observed, k)
        hits[first:last, :width] = _hits_of(columns, grid.relevant[first:last].toarray(), observed)
        top[first:last] = grid.videos[columns]
    n_relevant = np.asarray(grid.relevant.sum(axis=1)).ravel().astype(np.int64)
    return GridRanking(predictions, top, hits, n_relevant)
