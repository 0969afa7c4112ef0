"""One evaluation for every model and baseline, through ``score_all``: the path recommendations are served from.

Protocol (docs/DESIGN.md, "Evaluation protocol"):
- the test set is the small matrix, one row per distinct (user, video) pair with its mean watch ratio;
- pointwise ``mae`` / ``rmse`` on the normalized target over the test rows that pass the training outlier filter;
  ``mae_raw5`` / ``rmse_raw5`` on the raw watch ratio, truth and prediction (mapped back with the training scaler)
  clipped at 5, over all test rows, as published results report it;
- a time-aware model (``time_aware``, the sequential ones) predicts each pointwise row from the user's *training*
  rows strictly before the row's timestamp (``predict_rows``; a row without a timestamp reads the whole training
  history), never from the row itself, later rows or other test rows; its ranking uses the state after the whole
  training history, like every other model's ``score_all``;
- ranking over all test rows: every test user ranks all test videos (full ranking, no sampled negatives; only
  cells of the test matrix are candidates), positive = raw watch ratio > 2; ``ndcg@k`` with binary gains,
  ``recall@k`` = hits / positives, ``precision@k`` = hits / k. Users without a positive are skipped and counted
  (``users_without_positive``). Tied scores are ordered by a fixed pseudo-random permutation of the candidate
  columns, so a constant model ranks like a random one rather than by video id (ids may follow popularity).

The result is a long polars frame: ``model``, ``split``, ``metric``, ``value``, ``count`` (the rows or users the
value averages over).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp

from kuairec_pipeline.features.scaling import SPLIT_TEST, SPLIT_TRAIN, SPLIT_VAL, TargetScaler
from kuairec_pipeline.models.base import SCORE_BATCH_CELLS, Recommender
from kuairec_pipeline.models.data import Interactions, TrainingData

POSITIVE_WATCH_RATIO = 2.0  # the KuaiRec paper's positive: watched more than twice over
RAW_CLIP = 5.0  # published raw-ratio errors clip truth and prediction here
TIE_BREAK_SEED = 20_200_705  # fixes the order of tied scores

METRICS_SCHEMA = {"model": pl.String, "split": pl.String, "metric": pl.String, "value": pl.Float64,
                  "count": pl.Int64}
LOWER_IS_BETTER = frozenset({"mae", "rmse", "mae_raw5", "rmse_raw5"})
RANKING_PREFIXES = ("ndcg@", "recall@", "precision@")
COUNT_METRICS = frozenset({"users_ranked", "users_without_positive"})


def higher_is_better(metric: str) -> bool:
    return metric.startswith(RANKING_PREFIXES)


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
    def from_interactions(cls, test: Interactions, positive_watch_ratio: float = POSITIVE_WATCH_RATIO
                          ) -> EvaluationGrid:
        if len(test) == 0:
            raise ValueError("the test split is empty: nothing to evaluate")
        users, row_user = np.unique(test.user.astype(np.int64), return_inverse=True)
        videos, row_video = np.unique(test.video.astype(np.int64), return_inverse=True)
        shape = (users.size, videos.size)
        cells = sp.csr_matrix((np.ones(len(test)), (row_user, row_video)), shape=shape)
        if cells.nnz != len(test):
            raise ValueError("the test split holds a (user, video) pair twice; it must be one row per pair")
        positive = test.watch_ratio > positive_watch_ratio
        relevant = sp.csr_matrix((np.ones(int(positive.sum()), dtype=bool), (row_user[positive], row_video[positive])),
                                 shape=shape)
        rows_by_user = np.argsort(row_user, kind="stable")
        starts = np.searchsorted(row_user[rows_by_user], np.arange(users.size + 1))
        return cls(users, videos, row_user, row_video, starts, rows_by_user, cells.astype(bool), relevant)


def iter_grid_scores(model: Recommender, grid: EvaluationGrid, batch_users: int | None = None
                     ) -> Iterator[tuple[int, int, np.ndarray]]:
    """(first, last, scores of grid users first..last-1 x all grid videos), in user batches bounded in memory."""
    batch = batch_users or max(1, SCORE_BATCH_CELLS // max(1, grid.videos.size))
    for first in range(0, grid.users.size, batch):
        last = min(first + batch, grid.users.size)
        scores = np.asarray(model.score_all(grid.users[first:last], grid.videos))
        if scores.shape != (last - first, grid.videos.size):
            raise ValueError(f"{model.name}.score_all returned shape {scores.shape}, "
                             f"expected {(last - first, grid.videos.size)}")
        yield first, last, scores


def tie_break_order(n_columns: int) -> np.ndarray:
    """The fixed column order that settles tied scores (seeded, so every model and run sees the same one)."""
    return np.random.default_rng(TIE_BREAK_SEED).permutation(n_columns)


def rank_candidates(scores: np.ndarray, candidates: np.ndarray | None, k: int) -> np.ndarray:
    """Column indices of the top ``k`` per row, best first; non-candidates last; ties in tie_break_order."""
    ranked = np.where(candidates, scores, -np.inf) if candidates is not None else scores
    order = tie_break_order(ranked.shape[1])
    # A stable sort of the permuted columns keeps tied columns in permutation order.
    return order[np.argsort(-ranked[:, order], axis=1, kind="stable")[:, :k]]


def ranking_hits(scores: np.ndarray, relevant: np.ndarray, candidates: np.ndarray | None, k: int) -> np.ndarray:
    """bool (n_users, k): whether the item at each rank is relevant (a non-candidate never is)."""
    top = rank_candidates(scores, candidates, k)
    hits = np.take_along_axis(relevant, top, axis=1)
    if candidates is not None:
        hits &= np.take_along_axis(candidates, top, axis=1)
    return hits


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2))


def ndcg_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Binary-gain NDCG@k per user; the ideal ranking puts min(n_relevant, k) positives on top. NaN if none."""
    discounts = _discounts(k)
    dcg = hits[:, :k].astype(np.float64) @ discounts[: min(k, hits.shape[1])]
    ideal_prefix = np.concatenate([[0.0], np.cumsum(discounts)])
    ideal = ideal_prefix[np.minimum(n_relevant, k)]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_relevant > 0, dcg / ideal, np.nan)


def recall_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Positives in the top k over all the user's positives; NaN for a user without positives."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_relevant > 0, hits[:, :k].sum(axis=1) / n_relevant, np.nan)


def precision_at_k(hits: np.ndarray, k: int) -> np.ndarray:
    """Positives in the top k over k (a short list still divides by k)."""
    return hits[:, :k].sum(axis=1) / k


def pointwise_errors(prediction: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(MAE, RMSE) in float64; NaN for no rows."""
    if prediction.size == 0:
        return float("nan"), float("nan")
    error = prediction.astype(np.float64) - truth.astype(np.float64)
    return float(np.mean(np.abs(error))), float(np.sqrt(np.mean(error**2)))


def raw_errors(prediction: np.ndarray, watch_ratio: np.ndarray, scaler: TargetScaler, clip: float = RAW_CLIP
               ) -> tuple[float, float]:
    """(MAE, RMSE) of the raw watch ratio, prediction mapped back with ``scaler``; both sides clipped at ``clip``."""
    predicted = np.minimum(scaler.inverse(prediction), clip)
    return pointwise_errors(predicted, np.minimum(watch_ratio.astype(np.float64), clip))


def evaluate(
    model: Recommender,
    data: TrainingData,
    *,
    ndcg_at: Sequence[int] = (10, 50),
    recall_at: Sequence[int] = (50,),
    precision_at: Sequence[int] = (10,),
    positive_watch_ratio: float = POSITIVE_WATCH_RATIO,
    raw_clip: float = RAW_CLIP,
    include_val: bool = False,
    label: str | None = None,
    batch_users: int | None = None,
) -> pl.DataFrame:
    """All metrics of ``model`` on ``data.test`` (and pointwise ones on ``data.val`` when ``include_val``).

    ``label`` names the model in the frame (default ``model.name``), for two configs of one model class.
    """
    name = label or model.name
    test = data.test
    grid = EvaluationGrid.from_interactions(test, positive_watch_ratio)
    max_k = max([*ndcg_at, *recall_at, *precision_at, 1])
    predictions = np.empty(len(test), dtype=np.float32)
    hits = np.zeros((grid.users.size, max_k), dtype=bool)
    for first, last, scores in iter_grid_scores(model, grid, batch_users):
        observed = grid.observed[first:last].toarray()
        if not np.isfinite(scores[observed]).all():
            raise ValueError(f"{name}: score_all returned a non-finite score for a test cell")
        rows = grid.rows_by_user[grid.user_row_starts[first]:grid.user_row_starts[last]]
        predictions[rows] = scores[grid.row_user[rows] - first, grid.row_video[rows]]
        hits[first:last, : min(max_k, grid.videos.size)] = ranking_hits(
            scores, grid.relevant[first:last].toarray(), observed, max_k)

    if model.time_aware:  # from the training rows strictly before each test row (DESIGN.md, sequential models)
        predictions = model.predict_rows(test, data.train)

    records: list[tuple[str, str, float, int]] = []
    kept = test.passes_filter
    mae, rmse = pointwise_errors(predictions[kept], test.target[kept])
    records += [(SPLIT_TEST, "mae", mae, int(kept.sum())), (SPLIT_TEST, "rmse", rmse, int(kept.sum()))]
    mae_raw, rmse_raw = raw_errors(predictions, test.watch_ratio, data.scaler, raw_clip)
    records += [(SPLIT_TEST, "mae_raw5", mae_raw, len(test)), (SPLIT_TEST, "rmse_raw5", rmse_raw, len(test))]

    n_relevant = np.asarray(grid.relevant.sum(axis=1)).ravel().astype(np.int64)
    ranked = n_relevant > 0
    n_ranked = int(ranked.sum())

    def mean_over_ranked(values: np.ndarray) -> float:
        return float(values[ranked].mean()) if n_ranked else float("nan")

    records += [(SPLIT_TEST, f"ndcg@{k}", mean_over_ranked(ndcg_at_k(hits, n_relevant, k)), n_ranked)
                for k in ndcg_at]
    records += [(SPLIT_TEST, f"recall@{k}", mean_over_ranked(recall_at_k(hits, n_relevant, k)), n_ranked)
                for k in recall_at]
    records += [(SPLIT_TEST, f"precision@{k}", mean_over_ranked(precision_at_k(hits, k)), n_ranked)
                for k in precision_at]
    records += [(SPLIT_TEST, "users_ranked", float(n_ranked), grid.users.size),
                (SPLIT_TEST, "users_without_positive", float(grid.users.size - n_ranked), grid.users.size)]

    # A model that knows test cells only (the oracle) would score 0 on val: no meaningful val row.
    if include_val and len(data.val) and not getattr(model, "covers_test_cells_only", False):
        records += [(SPLIT_VAL, metric, value, len(data.val))
                    for metric, value in validation_metrics(model, data).items()]

    return pl.DataFrame(
        [(name, split, metric, value, count) for split, metric, value, count in records],
        schema=METRICS_SCHEMA,
        orient="row",
    )


def evaluate_models(models: Sequence[Recommender], data: TrainingData, *, include_val: bool = True, **options
                    ) -> pl.DataFrame:
    """:func:`evaluate` for each model, stacked into one long frame (same options for all); with the validation
    rows by default, since model choice reads them."""
    return pl.concat([evaluate(model, data, include_val=include_val, **options) for model in models],
                     how="vertical")


def validation_metrics(model: Recommender, data: TrainingData) -> dict[str, float]:
    """Pointwise ``mae`` and ``rmse`` on the validation rows (all pass the filter): for early stopping and model
    choice, never for the reported test results."""
    if len(data.val) == 0:
        return {}
    mae, rmse = pointwise_errors(model.predict_rows(data.val, data.train), data.val.target)
    return {"mae": mae, "rmse": rmse}


def seen_matrix(data: TrainingData, splits: Sequence[str] = (SPLIT_TRAIN, SPLIT_VAL)) -> sp.csr_matrix:
    """float32 (n_users, n_videos), 1 where the user has a row in one of ``splits``: what recommending excludes."""
    parts = {SPLIT_TRAIN: data.train, SPLIT_VAL: data.val, SPLIT_TEST: data.test}
    users = np.concatenate([parts[s].user for s in splits]).astype(np.int64)
    videos = np.concatenate([parts[s].video for s in splits]).astype(np.int64)
    matrix = sp.csr_matrix((np.ones(users.size, dtype=np.float32), (users, videos)),
                           shape=(data.n_users, data.n_videos))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def top_k_test_videos(model: Recommender, data: TrainingData, k: int, batch_users: int | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(test users, their top ``k`` test video ids best first) exactly as :func:`evaluate` ranks them."""
    grid = EvaluationGrid.from_interactions(data.test)
    top = np.empty((grid.users.size, min(k, grid.videos.size)), dtype=np.int64)
    for first, last, scores in iter_grid_scores(model, grid, batch_users):
        top[first:last] = grid.videos[rank_candidates(scores, grid.observed[first:last].toarray(), k)]
    return grid.users, top
