"""One evaluation for every model and baseline, through ``score_all``: the path recommendations are served from.

Protocol (docs/DESIGN.md, "Evaluation protocol"):
- the test set is the small matrix, one row per distinct (user, video) pair with its mean watch ratio;
- pointwise ``mae`` / ``rmse`` on the normalized target over the test rows that pass the training outlier filter;
  ``mae_raw5`` / ``rmse_raw5`` on the raw watch ratio, truth and prediction (mapped back with the training scaler)
  clipped at 5, over all test rows, as published results report it;
- a time-aware model (``time_aware``, the sequential ones) predicts each pointwise row from the user's *training*
  rows strictly before the row's timestamp (``predict_rows``; a row without a timestamp reads the whole training
  history), never from the row itself, later rows or other test rows; of more than ``max_len`` such rows it reads a
  window of ``max_len - query_stride + 1`` to ``max_len`` (``sequences.window_lengths``); its ranking uses the
  state after the whole training history, like every other model's ``score_all``;
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

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from kuairec_pipeline.evaluation.beyond_accuracy import beyond_accuracy_metrics, self_information
from kuairec_pipeline.evaluation.grid import EvaluationGrid, GridRanking, iter_grid_scores, rank_grid  # noqa: F401
from kuairec_pipeline.evaluation.ranking_metrics import (  # noqa: F401  (re-exported: the metrics' public names)
    POSITIVE_WATCH_RATIO,
    RAW_CLIP,
    TIE_BREAK_SEED,
    _discounts,
    _hits_of,
    ndcg_at_k,
    pointwise_errors,
    precision_at_k,
    rank_candidates,
    ranking_hits,
    raw_errors,
    recall_at_k,
    tie_break_order,
)
from kuairec_pipeline.models.base import Recommender
from kuairec_pipeline.models.data import Interactions, PreparedData, TrainingData
from kuairec_pipeline.target import SPLIT_SELECTION, SPLIT_TEST, SPLIT_TRAIN, SPLIT_VAL

METRICS_SCHEMA = {"model": pl.String, "split": pl.String, "metric": pl.String, "value": pl.Float64, "count": pl.Int64}
LOWER_IS_BETTER = frozenset({"mae", "rmse", "mae_raw5", "rmse_raw5"})
RANKING_PREFIXES = ("ndcg@", "recall@", "precision@")
SELECTION_NDCG_AT = 10  # the served model is chosen on the selection slice's ndcg@10
COUNT_METRICS = frozenset({"users_ranked", "users_without_positive"})
CHOICE_METRICS = frozenset({"penalty", "reached_target"})  # what a step chose, not a score: never "best"


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
    information: np.ndarray | None = None,
    test_predictions: np.ndarray | None = None,
    grid: EvaluationGrid | None = None,
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
    information : float64 (n_videos,), :func:`self_information` of ``data.training.train`` in bits; computed here
        when None. The same for every model of one data (a unique over every training pair), so
        :func:`evaluate_models` computes it once.
    test_predictions : float32 (len(data.test),), :func:`time_aware_test_predictions` of ``model`` when already
        computed (a coverage re-ranking reuses its base model's: the same predictions, and on the full profile the
        costliest part of evaluating a sequential model); computed here when None.
    grid : ``EvaluationGrid.from_interactions(data.test, positive_watch_ratio)`` when already built (the same for
        every model of one evaluation, so :func:`evaluate_models` builds it once); built here when None.

    Returns
    -------
    Long frame ``model, split, metric, value, count`` (see the module docstring).
    """
    name = label or model.name
    test = data.test
    if grid is None:
        grid = EvaluationGrid.from_interactions(test, positive_watch_ratio)
    elif not (
        grid.row_user.size == len(test)
        and np.array_equal(grid.users[grid.row_user], test.user)
        and np.array_equal(grid.videos[grid.row_video], test.video)
        and grid.relevant.nnz == int(np.count_nonzero(test.watch_ratio > positive_watch_ratio))
    ):
        raise ValueError("grid was not built from data.test at this positive_watch_ratio: other rows or threshold")
    max_k = max([*ndcg_at, *recall_at, *precision_at, *beyond_accuracy_at, 1])
    ranking = rank_grid(model, grid, len(test), max_k, name, batch_users)
    predictions, hits, n_relevant = ranking.predictions, ranking.hits, ranking.n_relevant

    # Time-aware: from the training rows strictly before each test row (DESIGN.md, sequential models); a re-ranking's
    # score_all is not its prediction.
    if test_predictions is not None:
        if test_predictions.shape != (len(test),):
            raise ValueError(f"test_predictions has shape {test_predictions.shape}, expected ({len(test)},)")
        predictions = test_predictions
    elif model.time_aware or not model.scores_are_predictions:
        predictions = time_aware_test_predictions(model, data)

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
    if information is None:
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


def time_aware_test_predictions(model: Recommender, data: PreparedData) -> np.ndarray:
    """float32 (len(data.test),): each test row predicted from the training rows strictly before it (DESIGN.md,
    sequential models), ``model.predict_rows(data.test, data.training.train)``: the pointwise predictions of a
    time-aware model or of a re-ranking, whose ranking score is not its prediction."""
    return model.predict_rows(data.test, data.training.train)


def shared_inputs(data: PreparedData, positive_watch_ratio: float = POSITIVE_WATCH_RATIO) -> dict[str, Any]:
    """What :func:`evaluate` computes the same way for every model of one ``data``, to pass to each call (the
    metrics step hands it to :func:`evaluate_models` and to the coverage re-ranking's evaluation).

    Returns
    -------
    ``{"information": float64 (n_videos,) self_information of the training rows in bits, "grid": the test
    EvaluationGrid at ``positive_watch_ratio``}``.
    """
    return {
        "information": self_information(data.training.train, data.n_videos),
        "grid": EvaluationGrid.from_interactions(data.test, positive_watch_ratio),
    }


def evaluate_models(
    models: Sequence[Recommender],
    data: PreparedData,
    *,
    include_val: bool = True,
    include_selection: bool = True,
    time_aware_predictions: dict[str, np.ndarray] | None = None,
    **options,
) -> pl.DataFrame:
    """:func:`evaluate` for each model, stacked into one long frame (same options for all); with the selection
    and tuning rows by default, since model choice reads the selection rows.

    ``time_aware_predictions``, when given, receives :func:`time_aware_test_predictions` of every time-aware model
    by name (float32 (len(data.test),) each), so a later re-ranking of one of them need not predict again."""
    if options.get("information") is None or options.get("grid") is None:  # once, not per model
        built = shared_inputs(data, options.get("positive_watch_ratio", POSITIVE_WATCH_RATIO))
        options = {**built, **{key: value for key, value in options.items() if value is not None}}
    frames = []
    for model in models:
        predictions = None
        if time_aware_predictions is not None and model.time_aware:
            predictions = time_aware_predictions[model.name] = time_aware_test_predictions(model, data)
        frames.append(
            evaluate(
                model,
                data,
                include_val=include_val,
                include_selection=include_selection,
                test_predictions=predictions,
                **options,
            )
        )
    return pl.concat(frames, how="vertical")


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
    ranking = model.ranking_scores(pairs.user, pairs.video, predicted)
    ndcg, n_ranked = sparse_ndcg_at_k(pairs, ranking, SELECTION_NDCG_AT, positive_watch_ratio, data.n_videos)
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
