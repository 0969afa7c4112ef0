"""Per-user taste on top of biases: each user's ridge regression of the bias residual on video features.

The planted and the real signal beyond ``global + b_user + b_video`` is mostly personal: how much *this* user
likes each tag, short videos, a latent direction. With a few hundred rows per user a per-user linear model on a
few dozen video features is learnable where per-user, per-video factors are not (issue 7's investigation;
``benchmarks/quality.py`` measures the result). This is the standard "content-based user profile" of Lops, de Gemmis &
Semeraro (Recommender Systems Handbook, 2011, ch. 3) fitted as ridge regression, i.e. the per-user
least-squares step of ALS for explicit feedback with the item side held fixed (Koren, Bell & Volinsky, "Matrix
factorization techniques for recommender systems", IEEE Computer 2009; Zhou et al., "Large-scale parallel
collaborative filtering for the Netflix prize", AAIM 2008).

Each user's normal equations ``X_u^T diag(W_u) X_u + diag(l2)`` come from the user's own rows of the (videos x d)
features ``X``: one small BLAS product and a d x d solve per user.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from kuairec_pipeline.models.errors import check_solver


def video_taste_features(video_tag_multi_hot: np.ndarray, video_numeric: np.ndarray) -> np.ndarray:
    """(n_videos, n_tags + n_numeric) float64: the tag multi-hot scaled to sum 1 per video, then the numeric
    columns (each in [0, 1]). Scaled tags make a user's coefficient on a tag the effect of a video of that tag
    alone, whatever the number of tags a video has.

    Parameters
    ----------
    video_tag_multi_hot : float (n_videos, n_tags), 0/1.
    video_numeric : float (n_videos, n_numeric), each in [0, 1].
    """
    tags = np.asarray(video_tag_multi_hot, dtype=np.float64)
    tags = tags / np.maximum(tags.sum(axis=1, keepdims=True), 1.0)
    return np.hstack([tags, np.asarray(video_numeric, dtype=np.float64)])


def per_user_ridge(
    weights: sp.csr_matrix, weighted_residual: sp.csr_matrix, features: np.ndarray, l2: float | np.ndarray
) -> np.ndarray:
    """Coefficients ``A`` (n_users, d) minimizing, for every user u separately,
    ``sum_v W[u, v] (r[u, v] - A[u] @ X[v])^2 + sum_j l2[j] A[u, j]^2``.

    Parameters
    ----------
    weights : csr (n_users, n_videos), W[u, v] = training rows of the pair (0 = unobserved).
    weighted_residual : csr (n_users, n_videos), W[u, v] * mean residual of the pair, same sparsity as ``weights``.
    features : float (n_videos, d), the video side ``X``.
    l2 : ridge penalty (> 0), in rows, one for all coefficients or one per feature column (d,): a user with n rows
        keeps about n / (n + l2) of the least-squares slope.

    Returns
    -------
    float64 (n_users, d); a user without rows gets zeros.

    Raises
    ------
    ValueError
        If ``l2`` is not positive or the shapes disagree.
    SolverDivergedError
        If a coefficient is not finite (non-finite inputs: the penalty keeps every system positive definite).
    """
    n_users, n_videos = weights.shape
    features = np.asarray(features, dtype=np.float64)
    penalty = np.broadcast_to(np.asarray(l2, dtype=np.float64), (features.shape[1],))
    if not (penalty > 0).all():
        raise ValueError(f"l2 must be > 0, got {l2}")
    if features.shape[0] != n_videos or weighted_residual.shape != weights.shape:
        raise ValueError(
            f"shapes disagree: weights {weights.shape}, residual {weighted_residual.shape}, features {features.shape}"
        )
    weights = weights.tocsr()
    weighted_residual = weighted_residual.tocsr()
    for matrix in (weights, weighted_residual):
        matrix.sort_indices()
    if not (
        np.array_equal(weights.indptr, weighted_residual.indptr)
        and np.array_equal(weights.indices, weighted_residual.indices)
    ):
        raise ValueError("weights and weighted_residual must store the same (user, video) cells")
    d = features.shape[1]
    out = np.zeros((n_users, d))
    identity = np.diag(penalty)
    indptr, indices, row_weight, right = weights.indptr, weights.indices, weights.data, weighted_residual.data
    # One small BLAS product per user: O(rows x d^2) in all, against O(users x videos x d^2) for a dense W @ (X ⊗ X)
    # and a slow sparse product with d^2 dense columns (full scale, d = 35: ~110 s on one core that way).
    for user in range(n_users):
        first, last = indptr[user], indptr[user + 1]
        if first == last:
            continue
        rows = features[indices[first:last]]
        gram = rows.T @ (rows * row_weight[first:last, None]) + identity
        out[user] = np.linalg.solve(gram, rows.T @ right[first:last])
    return check_solver(out, "per-user ridge solve")


def residual_factors(
    weights: sp.csr_matrix, weighted_residual: sp.csr_matrix, rank: int, l2: float, sweeps: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Explicit matrix factorization of a residual by alternating ridge solves: user factors ``P`` (n_users, rank)
    and video factors ``Q`` (n_videos, rank) minimizing
    ``sum_(u,v) W[u, v] (r[u, v] - P[u] @ Q[v])^2 + l2 (|P|^2 + |Q|^2)``
    (Koren, Bell & Volinsky, "Matrix factorization techniques for recommender systems", IEEE Computer 2009), each
    half-step being :func:`per_user_ridge` with the other side held fixed.

    A fixed penalty, not the weighted-lambda one of ALS-WR: with the twin's skewed rows per video the count-scaled
    penalty leaves light videos nearly unregularized (benchmarks/taste_levers.py measured it worse everywhere).

    Parameters
    ----------
    weights, weighted_residual : as :func:`per_user_ridge` (rows per pair, rows x mean residual per pair).
    rank : factors per user and video (>= 1).
    l2 : ridge penalty (> 0) per factor vector, in residual^2 units.
    sweeps : alternating sweeps (each solves every user, then every video), >= 1.
    seed : the video factors start as 0.1 x standard normal from this seed.

    Returns
    -------
    (P float64 (n_users, rank), Q float64 (n_videos, rank)); a user or video without rows gets zeros.

    Raises
    ------
    ValueError, SolverDivergedError
        As :func:`per_user_ridge`.
    """
    if rank < 1 or sweeps < 1:
        raise ValueError(f"rank and sweeps must be >= 1, got {rank} and {sweeps}")
    video_factors = 0.1 * np.random.default_rng(seed).standard_normal((weights.shape[1], rank))
    weights_t, residual_t = weights.T.tocsr(), weighted_residual.T.tocsr()
    user_factors = np.zeros((weights.shape[0], rank))
    for _ in range(sweeps):
        user_factors = per_user_ridge(weights, weighted_residual, video_factors, l2)
        video_factors = per_user_ridge(weights_t, residual_t, user_factors, l2)
    return user_factors, video_factors


def nonnegative_scale(term: np.ndarray, residual: np.ndarray) -> float:
    """The least-squares weight ``s >= 0`` of ``term`` for ``residual`` (min ``|residual - s * term|^2``): how much
    of a fitted part to keep, judged on held-out rows (0 switches it off where it does not help).

    Parameters
    ----------
    term : float (n,) the part's prediction on the rows.
    residual : float (n,) what is left to explain there.

    Returns
    -------
    float >= 0; 0 when ``term`` is all zeros.
    """
    power = float(term @ term)
    return max(0.0, float(term @ residual) / power) if power > 0 else 0.0
