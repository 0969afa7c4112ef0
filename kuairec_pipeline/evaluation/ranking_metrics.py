"""Per-user ranking metrics and pointwise errors on plain arrays: the formulas :mod:`metrics` applies to every
model (binary-gain ndcg@k, recall@k, precision@k with a fixed tie-break order; MAE / RMSE on the target and on the
clipped raw watch ratio).
"""

from __future__ import annotations

import numpy as np

from kuairec_pipeline.target import TargetScaler

POSITIVE_WATCH_RATIO = 2.0  # the KuaiRec paper's positive: watched more than twice over
RAW_CLIP = 5.0  # published raw-ratio errors clip truth and prediction here
TIE_BREAK_SEED = 20_200_705  # fixes the order of tied scores


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
