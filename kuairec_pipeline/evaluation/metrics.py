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
  columns, so a constant model ranks like a random one rather than by video id (ids may follow popularity);
- beyond accuracy over the same top-10 lists (``beyond_accuracy.py``): ``catalogue_coverage@10``,
  ``top_item_share@10``, ``novelty@10`` (self-information from training popularity), ``gini@10``, over every test
  user (with or without a positive);
- ``selection`` rows (model choice, a slice no model saw): ``mae`` / ``rmse`` over its rows, and ``ndcg@10`` over
  each selection user's own selection videos (one candidate per distinct pair, its mean watch ratio, positive > 2);
- ``val`` rows (the tuning slice models stopped early on): pointwise ``mae`` / ``rmse``, shown, never used to choose.

The result is a long polars frame: ``model``, ``split``, ``metric``, ``value``, ``count`` (the rows or users the
value averages over).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp

from kuairec_pipeline.evaluation.beyond_accuracy import beyond_accuracy_metrics, self_information
from kuairec_pipeline.models.base import SCORE_BATCH_CELLS, Recommender
from kuairec_pipeline.models.data import Interactions, PreparedData, TrainingData
from kuairec_pipeline.target import SPLIT_SELECTION, SPLIT_TEST, SPLIT_TRAIN, SPLIT_VAL, TargetScaler

POSITIVE_WATCH_RATIO = 2.0  # the KuaiRec paper's positive: watched more than twice over
RAW_CLIP = 5.0  # published raw-ratio errors clip truth and prediction here
TIE_BREAK_SEED = 20_200_705  # fixes the order of tied scores

METRICS_SCHEMA = {"model": pl.String, "split": pl.String, "metric": pl.String, "value": pl.Float64, "count": pl.Int64}
LOWER_IS_BETTER = frozenset({"mae", "rmse", "mae_raw5", "rmse_raw5"})
RANKING_PREFIXES = ("ndcg@", "recall@", "precision@")
SELECTION_NDCG_AT = 10  # the served model is chosen on the selection slice's ndcg@10
COUNT_METRICS = frozenset({"users_ranked", "users_without_positive"})


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better (ranking metrics: ndcg@k, recall@k, precision@k).

    Parameters
    ----------
    metric : a metric name of the metrics table, e.g. ``"ndcg@10"`` or ``"rmse"``.

    Returns
    -------
    True for ranking metrics, False otherwise (errors, where lower is better, and counts).
    """
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


def tie_break_order(n_columns: int) -> np.ndarray:
    """The fixed column order that settles tied scores (seeded, so every model and run sees the same one).

    Parameters
    ----------
    n_columns : number of candidate columns.

    Returns
    -------
    int64 (n_columns,): a permutation of ``range(n_columns)``.
    """
    return np.random.default_rng(TIE_BREAK_SEED).permutation(n_columns)


def rank_candidates(scores: np.ndarray, candidates: np.ndarray | None, k: int) -> np.ndarray:
    """Column indices of the top ``k`` per row, best first; non-candidates last; ties in :func:`tie_break_order`.

    Parameters
    ----------
    scores : float (n_users, n_columns).
    candidates : bool (n_users, n_columns), True = may be ranked; None = every column.
    k : list length (<= n_columns).

    Returns
    -------
    int64 (n_users, k) column indices.
    """
    ranked = np.where(candidates, scores, -np.inf) if candidates is not None else scores
    order = tie_break_order(ranked.shape[1])
    # A stable sort of the permuted columns keeps tied columns in permutation order.
    return order[np.argsort(-ranked[:, order], axis=1, kind="stable")[:, :k]]


def _hits_of(top: np.ndarray, relevant: np.ndarray, candidates: np.ndarray | None) -> np.ndarray:
    hits = np.take_along_axis(relevant, top, axis=1)
    if candidates is not None:
        hits &= np.take_along_axis(candidates, top, axis=1)
    return hits


def ranking_hits(scores: np.ndarray, relevant: np.ndarray, candidates: np.ndarray | None, k: int) -> np.ndarray:
    """Whether the item at each rank of the top ``k`` is relevant (a non-candidate never is).

    Parameters
    ----------
    scores : float (n_users, n_columns).
    relevant : bool (n_users, n_columns).
    candidates : bool (n_users, n_columns) or None (every column).
    k : list length (<= n_columns).

    Returns
    -------
    bool (n_users, k).
    """
    return _hits_of(rank_candidates(scores, candidates, k), relevant, candidates)


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2))


def ndcg_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Binary-gain NDCG@k per user (Järvelin & Kekäläinen, "Cumulated gain-based evaluation of IR
    techniques", ACM TOIS 2002): DCG of the ranked hits with 1 / log2(rank + 1) discounts over the DCG of the ideal
    ranking, which puts min(n_relevant, k) positives on top.

    Parameters
    ----------
    hits : bool (n_users, >= k or fewer columns for a short list): relevance at each rank.
    n_relevant : int (n_users,): the user's positives among the candidates.
    k : cut-off.

    Returns
    -------
    float64 (n_users,) in [0, 1]; NaN for a user without positives.
    """
    discounts = _discounts(k)
    dcg = hits[:, :k].astype(np.float64) @ discounts[: min(k, hits.shape[1])]
    ideal_prefix = np.concatenate([[0.0], np.cumsum(discounts)])
    ideal = ideal_prefix[np.minimum(n_relevant, k)]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_relevant > 0, dcg / ideal, np.nan)


def recall_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Positives in the top ``k`` over all the user's positives.

    Parameters
    ----------
    hits : bool (n_users, >= k): relevance at each rank.
    n_relevant : int (n_users,): the user's positives.
    k : cut-off.

    Returns
    -------
    float64 (n_users,) in [0, 1]; NaN for a user without positives.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_relevant > 0, hits[:, :k].sum(axis=1) / n_relevant, np.nan)


def precision_at_k(hits: np.ndarray, k: int) -> np.ndarray:
    """Positives in the top ``k`` over ``k`` (a short list still divides by ``k``).

    Parameters
    ----------
    hits : bool (n_users, >= k): relevance at each rank.
    k : cut-off.

    Returns
    -------
    float64 (n_users,) in [0, 1].
    """
    return hits[:, :k].sum(axis=1) / k


def pointwise_errors(prediction: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Mean absolute and root mean squared error.

    Parameters
    ----------
    prediction : float (n,).
    truth : float (n,), same units as ``prediction``.

    Returns
    -------
    (MAE, RMSE) as floats (float64 arithmetic); NaN for n = 0.
    """
    if prediction.size == 0:
        return float("nan"), float("nan")
    error = prediction.astype(np.float64) - truth.astype(np.float64)
    return float(np.mean(np.abs(error))), float(np.sqrt(np.mean(error**2)))


def raw_errors(
    prediction: np.ndarray, watch_ratio: np.ndarray, scaler: TargetScaler, clip: float = RAW_CLIP
) -> tuple[float, float]:
    """(MAE, RMSE) on the raw watch-ratio scale: the prediction mapped back with ``scaler``, both sides clipped.

    Parameters
    ----------
    prediction : float (n,), scaled watch ratio in [0, 1].
    watch_ratio : float (n,), raw watch ratio (play time over duration).
    scaler : the target scaler the model was trained with.
    clip : upper clip of both sides, in raw watch ratio.

    Returns
    -------
    (MAE, RMSE) in raw watch ratio; NaN for n = 0.
    """
    predicted = np.minimum(scaler.inverse(prediction), clip)
    return pointwise_errors(predicted, np.minimum(watch_ratio.astype(np.float64), clip))


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


def _mean_over_ranked(values: np.ndarray, ranked: np.ndarray) -> float:
    return float(values[ranked].mean()) if ranked.any() else float("nan")


def evaluate(
    model: Recommender,
    data: PreparedData,
    *,
    ndcg_at: Sequence[int] = (10, 50),
    recall_at: Sequence[int] = (50,),
    precision_at: Sequence[int] = (10,),
    beyond_accuracy_at: Sequence[int] = (10,),
    positive_watch_ratio: float = POSITIVE_WATCH_RATIO,
    raw_clip: float = RAW_CLIP,
    include_val: bool = False,
    include_selection: bool = False,
    label: str | None = None,
    batch_users: int | None = None,
) -> pl.DataFrame:
    """All metrics of ``model`` on ``data.test``; with ``include_selection`` the selection rows (model choice),
    with ``include_val`` the pointwise tuning-slice rows.

    Parameters
    ----------
    model : a fitted Recommender (scores in [0, 1], the scaled watch ratio)
    data : the prepared data; ``data.training.train`` gives the popularity behind ``novelty@k``
    ndcg_at, recall_at, precision_at, beyond_accuracy_at : list lengths k of each metric family
    positive_watch_ratio : a test cell is a positive when its raw watch ratio exceeds this (KuaiRec: 2)
    raw_clip : truth and prediction clip here for ``mae_raw5`` / ``rmse_raw5``
    label : the model's name in the frame (default ``model.name``), for two configs of one model class

    Returns
    -------
    Long frame ``model, split, metric, value, count`` (see the module docstring).
    """
    name = label or model.name
    test = data.test
    grid = EvaluationGrid.from_interactions(test, positive_watch_ratio)
    max_k = max([*ndcg_at, *recall_at, *precision_at, *beyond_accuracy_at, 1])
    ranking = rank_grid(model, grid, len(test), max_k, name, batch_users)
    predictions, hits, n_relevant = ranking.predictions, ranking.hits, ranking.n_relevant

    if model.time_aware:  # from the training rows strictly before each test row (DESIGN.md, sequential models)
        predictions = model.predict_rows(test, data.training.train)

    records: list[tuple[str, str, float, int]] = []
    kept = test.passes_filter
    mae, rmse = pointwise_errors(predictions[kept], test.target[kept])
    records += [(SPLIT_TEST, "mae", mae, int(kept.sum())), (SPLIT_TEST, "rmse", rmse, int(kept.sum()))]
    mae_raw, rmse_raw = raw_errors(predictions, test.watch_ratio, data.scaler, raw_clip)
    records += [(SPLIT_TEST, "mae_raw5", mae_raw, len(test)), (SPLIT_TEST, "rmse_raw5", rmse_raw, len(test))]

    ranked = n_relevant > 0
    n_ranked = int(ranked.sum())
    records += [
        (SPLIT_TEST, f"ndcg@{k}", _mean_over_ranked(ndcg_at_k(hits, n_relevant, k), ranked), n_ranked) for k in ndcg_at
    ]
    records += [
        (SPLIT_TEST, f"recall@{k}", _mean_over_ranked(recall_at_k(hits, n_relevant, k), ranked), n_ranked)
        for k in recall_at
    ]
    records += [
        (SPLIT_TEST, f"precision@{k}", _mean_over_ranked(precision_at_k(hits, k), ranked), n_ranked)
        for k in precision_at
    ]
    information = self_information(data.training.train, data.n_videos)
    for k in beyond_accuracy_at:
        records += [
            (SPLIT_TEST, metric, value, grid.users.size)
            for metric, value in beyond_accuracy_metrics(ranking.top, grid.videos, information, k).items()
        ]
    records += [
        (SPLIT_TEST, "users_ranked", float(n_ranked), grid.users.size),
        (SPLIT_TEST, "users_without_positive", float(grid.users.size - n_ranked), grid.users.size),
    ]

    # A model that knows test cells only (the oracle) would score 0 elsewhere: no meaningful val/selection row.
    knows_only_test = getattr(model, "covers_test_cells_only", False)
    if include_selection and len(data.selection) and not knows_only_test:
        records += [
            (SPLIT_SELECTION, metric, value, count)
            for metric, (value, count) in selection_metrics(model, data, positive_watch_ratio).items()
        ]
    if include_val and len(data.training.val) and not knows_only_test:
        records += [
            (SPLIT_VAL, metric, value, len(data.training.val))
            for metric, value in validation_metrics(model, data.training).items()
        ]

    return pl.DataFrame(
        [(name, split, metric, value, count) for split, metric, value, count in records],
        schema=METRICS_SCHEMA,
        orient="row",
    )


def evaluate_models(
    models: Sequence[Recommender],
    data: PreparedData,
    *,
    include_val: bool = True,
    include_selection: bool = True,
    **options,
) -> pl.DataFrame:
    """:func:`evaluate` for each model, stacked into one long frame (same options for all); with the selection
    and tuning rows by default, since model choice reads the selection rows."""
    return pl.concat(
        [
            evaluate(model, data, include_val=include_val, include_selection=include_selection, **options)
            for model in models
        ],
        how="vertical",
    )


def validation_metrics(model: Recommender, data: TrainingData) -> dict[str, float]:
    """Pointwise ``mae`` and ``rmse`` on the tuning validation rows (all pass the filter): what a model may stop
    early on; never the reported results nor the model choice."""
    if len(data.val) == 0:
        return {}
    mae, rmse = pointwise_errors(model.predict_rows(data.val, data.train), data.val.target)
    return {"mae": mae, "rmse": rmse}


def _pair_index(rows: Interactions, n_videos: int) -> tuple[np.ndarray, np.ndarray]:
    keys = rows.user.astype(np.int64) * n_videos + rows.video.astype(np.int64)
    return np.unique(keys, return_inverse=True)


def distinct_pairs(rows: Interactions, n_videos: int) -> Interactions:
    """One row per distinct (user, video) pair of ``rows``: mean target and watch ratio, first timestamp, and
    whether every row of the pair passes the filter. Sorted by user, then video."""
    unique, inverse = _pair_index(rows, n_videos)
    counts = np.bincount(inverse, minlength=unique.size).astype(np.float64)

    def mean(values: np.ndarray) -> np.ndarray:
        return np.bincount(inverse, weights=values.astype(np.float64), minlength=unique.size) / counts

    first_time = np.full(unique.size, np.inf)
    np.minimum.at(first_time, inverse, np.where(np.isnan(rows.timestamp), np.inf, rows.timestamp))
    failing = np.bincount(inverse, weights=(~rows.passes_filter).astype(np.float64), minlength=unique.size)
    return Interactions(
        user=(unique // n_videos).astype(np.int32),
        video=(unique % n_videos).astype(np.int32),
        target=mean(rows.target).astype(np.float32),
        watch_ratio=mean(rows.watch_ratio).astype(np.float32),
        timestamp=np.where(np.isinf(first_time), np.nan, first_time),
        passes_filter=failing == 0,
    )


def sparse_ndcg_at_k(
    pairs: Interactions, scores: np.ndarray, k: int, positive_watch_ratio: float, n_videos: int
) -> tuple[float, int]:
    """Mean binary-gain ndcg@k when each user ranks only their own ``pairs`` (sorted by user, one row per pair).

    The same ndcg as :func:`ndcg_at_k` (ideal = min(positives, k) hits on top; users without a positive
    skipped), computed by sorting the pairs, not a dense users x videos grid: a user of the selection slice has
    a few dozen candidates among thousands of videos. Ties follow :func:`tie_break_order` over all video ids.

    Returns (mean ndcg over users with a positive, NaN if none; number of those users).
    """
    user = pairs.user.astype(np.int64)
    tie = np.argsort(tie_break_order(n_videos))[pairs.video]  # position of each video in the fixed tie order
    order = np.lexsort((tie, -scores.astype(np.float64), user))
    sorted_user = user[order]
    starts = np.searchsorted(sorted_user, sorted_user, side="left")
    rank = np.arange(order.size) - starts  # 0-based rank within the user's list
    relevant = pairs.watch_ratio[order] > positive_watch_ratio
    discounts = _discounts(k)
    users, user_index = np.unique(sorted_user, return_inverse=True)
    gained = relevant & (rank < k)
    dcg = np.bincount(user_index[gained], weights=discounts[rank[gained]], minlength=users.size)
    n_relevant = np.bincount(user_index, weights=relevant.astype(np.float64), minlength=users.size).astype(np.int64)
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])[np.minimum(n_relevant, k)]
    ranked = n_relevant > 0
    return (float((dcg[ranked] / ideal[ranked]).mean()) if ranked.any() else float("nan")), int(ranked.sum())


def selection_metrics(
    model: Recommender,
    data: PreparedData,
    positive_watch_ratio: float = POSITIVE_WATCH_RATIO,
) -> dict[str, tuple[float, int]]:
    """What the served model is chosen on, from the selection slice no model saw: metric -> (value, count).

    ``mae`` / ``rmse`` over its rows (count: rows); ``ndcg@10`` over each selection user's own selection videos
    (count: users with a positive), every distinct pair once with its mean watch ratio, positive above
    ``positive_watch_ratio``: the same binary-gain ndcg as on the test grid, on the videos the user was shown.
    One ``predict`` over the distinct pairs serves both.
    """
    selection = data.selection
    if len(selection) == 0:
        return {}
    pairs = distinct_pairs(selection, data.n_videos)
    _, row_pair = _pair_index(selection, data.n_videos)
    predicted = model.predict(pairs.user, pairs.video)
    mae, rmse = pointwise_errors(predicted[row_pair], selection.target)
    ndcg, n_ranked = sparse_ndcg_at_k(pairs, predicted, SELECTION_NDCG_AT, positive_watch_ratio, data.n_videos)
    return {"mae": (mae, len(selection)), "rmse": (rmse, len(selection)), f"ndcg@{SELECTION_NDCG_AT}": (ndcg, n_ranked)}


def seen_matrix(data: PreparedData, splits: Sequence[str] = (SPLIT_TRAIN, SPLIT_VAL, SPLIT_SELECTION)) -> sp.csr_matrix:
    """float32 (n_users, n_videos), 1 where the user has a row in one of ``splits``: what recommending excludes
    (by default every big_matrix row the user has, tuning and selection slices included)."""
    parts = {
        SPLIT_TRAIN: data.training.train,
        SPLIT_VAL: data.training.val,
        SPLIT_SELECTION: data.selection,
        SPLIT_TEST: data.test,
    }
    users = np.concatenate([parts[s].user for s in splits]).astype(np.int64)
    videos = np.concatenate([parts[s].video for s in splits]).astype(np.int64)
    matrix = sp.csr_matrix(
        (np.ones(users.size, dtype=np.float32), (users, videos)), shape=(data.n_users, data.n_videos)
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def top_k_test_videos(
    model: Recommender, data: PreparedData, k: int, batch_users: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The top ``k`` test videos of every test user, exactly as :func:`evaluate` ranks them.

    Parameters
    ----------
    model : a fitted recommender.
    data : the prepared data; its test rows form the grid.
    k : list length.
    batch_users : grid users per scoring batch (default: bounded by ``SCORE_BATCH_CELLS``).

    Returns
    -------
    (int64 (n_test_users,) sorted test user ids, int64 (n_test_users, min(k, n_test_videos)) video ids, best first).

    Raises
    ------
    ValueError
        If the test split is empty.
    """
    grid = EvaluationGrid.from_interactions(data.test)
    return grid.users, rank_grid(model, grid, len(data.test), k, model.name, batch_users).top
