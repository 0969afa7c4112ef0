"""Per-user taste on top of biases: each user's ridge regression of the bias residual on video features.

The planted and the real signal beyond ``global + b_user + b_video`` is mostly personal: how much *this* user
likes each tag, short videos, a latent direction. With a few hundred rows per user a per-user linear model on a
few dozen video features is learnable where per-user, per-video factors are not (measured in
``benchmarks/taste_experiments.py``). This is the standard "content-based user profile" of Lops, de Gemmis &
Semeraro (Recommender Systems Handbook, 2011, ch. 3) fitted as ridge regression, i.e. the per-user
least-squares step of ALS for explicit feedback with the item side held fixed (Koren, Bell & Volinsky, "Matrix
factorization techniques for recommender systems", IEEE Computer 2009; Zhou et al., "Large-scale parallel
collaborative filtering for the Netflix prize", AAIM 2008).

Every user's normal equations are built at once: with ``W`` the (users x videos) row-count matrix and ``X`` the
(videos x d) features, ``X^T diag(W_u) X`` for all users is the one product ``W @ (X ⊗ X)``. KuaiRec is dense
(12% of cells observed), so blocks of ``W`` are densified and the product runs in BLAS: at full scale with d = 35
scipy's sparse product took ~110 s on one core, a dense one a few seconds.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

USER_BLOCK = 1_024  # users per block: bounds the dense (block, n_videos) weights (~88 MB at KuaiRec's 10,728)
DENSE_MIN_DENSITY = 0.01  # above this share of observed cells a dense BLAS product beats the sparse one


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


def per_user_ridge(weights: sp.csr_matrix, weighted_residual: sp.csr_matrix, features: np.ndarray,
                   l2: float | np.ndarray) -> np.ndarray:
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
    ValueError if ``l2`` is not positive or the shapes disagree.
    """
    n_users, n_videos = weights.shape
    features = np.asarray(features, dtype=np.float64)
    penalty = np.broadcast_to(np.asarray(l2, dtype=np.float64), (features.shape[1],))
    if not (penalty > 0).all():
        raise ValueError(f"l2 must be > 0, got {l2}")
    if features.shape[0] != n_videos or weighted_residual.shape != weights.shape:
        raise ValueError(f"shapes disagree: weights {weights.shape}, residual {weighted_residual.shape}, "
                         f"features {features.shape}")
    d = features.shape[1]
    upper_i, upper_j = np.triu_indices(d)  # the Gram is symmetric: build the upper triangle, mirror it
    outer = features[:, upper_i] * features[:, upper_j]
    right = np.asarray(weighted_residual @ features)
    out = np.zeros((n_users, d))
    identity = np.diag(penalty)
    for first in range(0, n_users, USER_BLOCK):
        last = min(first + USER_BLOCK, n_users)
        block = weights[first:last]
        if block.nnz > DENSE_MIN_DENSITY * block.shape[0] * block.shape[1]:
            block = block.toarray()
        gram = np.empty((last - first, d, d))
        upper = np.asarray(block @ outer)
        gram[:, upper_i, upper_j] = upper
        gram[:, upper_j, upper_i] = upper
        gram += identity
        out[first:last] = np.linalg.solve(gram, right[first:last, :, None])[:, :, 0]
    return out
