"""Implicit-feedback ALS (Hu, Koren & Volinsky 2008) on watch-ratio confidences, calibrated to predict watch ratios.

implicit factorizes a preference matrix weighted by confidence; its scores rank videos but are not on the
target's scale. A small calibration fitted on the training rows maps them back (see :func:`fit_calibration`
for why the factors are centred and the biases fitted first):

    prediction = clip(global + b_user + b_video + weight * <u - mean u, v - mean v>, 0, 1)

Scoring folds the calibration into two augmented matrices, ``[weight * (U - mean u), b_user, 1]`` and
``[V - mean v, 1, global + b_video]``, so :meth:`ALSRecommender.score_all` is one NumPy matrix product and a clip.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar, Self

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator, cg

from kuairec_pipeline.models.base import Recommender, stored_config
from kuairec_pipeline.models.data import Interactions, TrainingData
from kuairec_pipeline.models.threads import limited_blas_threads, resolve_thread_count

PAIR_CHUNK_ROWS = 1_000_000  # rows per chunk when dotting factor pairs: bounds the gathered copies to ~0.5 GB
CALIBRATION_MAX_ITERATIONS = 1_000  # conjugate-gradient steps of the bias fit; ~50 suffice at full scale
DENSE_BLOCK_CELLS = 16_000_000  # users x videos per dense block of scores: ~64 MB of float32


@dataclass(frozen=True)
class ALSConfig:
    """Hyperparameters of :class:`ALSRecommender`."""

    factors: int = 64  # latent dimensions per user and per video (>= 1)
    # L2 penalty on the factors in implicit's solves (>= 0). Absolute, not per row: against ~1,500 rows x confidence ~4
    # per user at full scale, 100 is moderate, and it keeps the in-sample calibration from trusting overfit scores.
    regularization: float = 100.0
    # Confidence of an observed pair = 1 + alpha * mean scaled target. The scaled watch ratio is a graded implicit
    # signal: every watched pair is a (weak) positive, and a higher watch ratio says more surely that the user
    # liked it, so it scales confidence instead of being a binary label. Unobserved pairs keep confidence 1.
    alpha: float = 10.0  # confidence gain per unit of scaled target (>= 0)
    iterations: int = 15  # ALS sweeps (users then videos) (>= 1)
    use_conjugate_gradient: bool = True  # implicit's CG solver: much faster than Cholesky at 64 factors
    seed: int = 0  # seeds the factors' random initialization; with one thread the fit is deterministic
    num_threads: int = 1  # implicit's OpenMP threads for fitting (0 = all cores); BLAS is kept at 1 either way
    calibration_l2: float = 25.0  # ridge on the calibration's user and video biases, in units of training rows
    calibration_tolerance: float = 1e-8  # relative residual at which the bias fit's conjugate gradients stop (> 0)
    show_progress: bool = False  # implicit's tqdm bar over iterations


@dataclass(frozen=True)
class Pairs:
    """The distinct (user, video) pairs of some rows, in CSR order (by user, then video)."""

    indptr: np.ndarray  # int64 (n_users + 1,): pairs of user u are [indptr[u], indptr[u + 1])
    user: np.ndarray  # int32 (n_pairs,)
    video: np.ndarray  # int32 (n_pairs,)
    mean_target: np.ndarray  # float64 (n_pairs,): mean scaled target over the pair's rows
    count: np.ndarray  # float64 (n_pairs,): rows of the pair

    @property
    def n_users(self) -> int:
        return self.indptr.size - 1

    def matrix(self, values: np.ndarray, n_videos: int) -> sp.csr_matrix:
        return sp.csr_matrix((values, self.video, self.indptr), shape=(self.n_users, n_videos))


def aggregate_pairs(rows: Interactions, n_users: int, n_videos: int) -> Pairs:
    """Distinct pairs with their mean target and row count.

    scipy's COO -> CSR conversion sums repeated coordinates without a global sort of the 11 M rows. Adding 1 to
    each target keeps every summed entry nonzero, so the sums and the counts store exactly the same pairs.
    """
    coordinates = (rows.user, rows.video)
    shape = (n_users, n_videos)
    counts = sp.csr_matrix((np.ones(len(rows)), coordinates), shape=shape)
    sums = sp.csr_matrix((rows.target.astype(np.float64) + 1.0, coordinates), shape=shape)
    for matrix in (counts, sums):
        matrix.sum_duplicates()
    if not (np.array_equal(counts.indptr, sums.indptr) and np.array_equal(counts.indices, sums.indices)):
        raise RuntimeError("pair aggregation: sums and counts disagree on the stored pairs")
    indptr = counts.indptr.astype(np.int64)
    return Pairs(
        indptr=indptr,
        user=np.repeat(np.arange(n_users, dtype=np.int32), np.diff(indptr)),
        video=counts.indices.astype(np.int32),
        mean_target=(sums.data - counts.data) / counts.data,
        count=counts.data,
    )


def confidence_matrix(pairs: Pairs, alpha: float, n_videos: int) -> sp.csr_matrix:
    """Users x videos CSR of float32 confidences ``1 + alpha * mean target``."""
    return pairs.matrix((1.0 + alpha * pairs.mean_target).astype(np.float32), n_videos)


def pair_dot(
    user_factors: np.ndarray, video_factors: np.ndarray, pair_user: np.ndarray, pair_video: np.ndarray
) -> np.ndarray:
    """Row-wise <user_factors[u], video_factors[v]> for arbitrary pairs, float64, in chunks to bound memory."""
    out = np.empty(pair_user.size, dtype=np.float64)
    for first in range(0, pair_user.size, PAIR_CHUNK_ROWS):
        last = first + PAIR_CHUNK_ROWS
        users = user_factors[pair_user[first:last]]
        videos = video_factors[pair_video[first:last]]
        out[first:last] = np.einsum("ij,ij->i", users, videos)
    return out


def observed_pair_dot(user_factors: np.ndarray, video_factors: np.ndarray, pairs: Pairs) -> np.ndarray:
    """<u, v> for every pair in ``pairs`` (in its order), float64.

    KuaiRec is dense (~12% of all cells observed), so one BLAS product per block of users, then a gather of the
    observed cells, beats gathering two factor rows per pair by an order of magnitude.
    """
    n_videos = video_factors.shape[0]
    out = np.empty(pairs.video.size, dtype=np.float64)
    block = max(1, DENSE_BLOCK_CELLS // max(1, n_videos))
    for first in range(0, pairs.n_users, block):
        last = min(first + block, pairs.n_users)
        start, stop = pairs.indptr[first], pairs.indptr[last]
        dense = user_factors[first:last] @ video_factors.T
        out[start:stop] = dense[pairs.user[start:stop] - first, pairs.video[start:stop]]
    return out


@dataclass(frozen=True)
class Calibration:
    """prediction = global + user_bias[u] + video_bias[v] + weight * <u - user_mean, v - video_mean> (clipped)."""

    global_bias: float
    weight: float
    user_bias: np.ndarray  # float32 (n_users,)
    video_bias: np.ndarray  # float32 (n_videos,)
    user_factor_mean: np.ndarray  # float32 (factors,): the mean user factor over all users
    video_factor_mean: np.ndarray  # float32 (factors,): the mean video factor over all videos


def fit_biases(
    pairs: Pairs, n_videos: int, bias_l2: float, tolerance: float = 1e-8
) -> tuple[float, np.ndarray, np.ndarray]:
    """Ridge fit of the pairs' mean target by ``global + b_u + b_v``, each pair weighted by its row count (the
    same least squares as over the rows); ``bias_l2`` shrinks users and videos with few rows towards zero.

    Solved exactly, by Jacobi-preconditioned conjugate gradients on the normal equations (each step two sparse
    matrix-vector products): alternating closed-form sweeps drift slowly along the direction that trades the
    global mean against the average biases and are still off by ~0.004 after 8 sweeps on the demo twin.
    """
    n_users = pairs.n_users
    weights = pairs.matrix(pairs.count, n_videos)
    weights_by_video = weights.T.tocsr()
    weighted_target = pairs.count * pairs.mean_target
    user_rows = np.asarray(weights.sum(axis=1)).ravel()
    video_rows = np.asarray(weights.sum(axis=0)).ravel()
    total_rows = user_rows.sum()

    def normal_matrix_times(x: np.ndarray) -> np.ndarray:
        global_bias, user_bias, video_bias = x[0], x[1:1 + n_users], x[1 + n_users:]
        return np.concatenate([
            [total_rows * global_bias + user_rows @ user_bias + video_rows @ video_bias],
            user_rows * global_bias + (user_rows + bias_l2) * user_bias + weights @ video_bias,
            video_rows * global_bias + weights_by_video @ user_bias + (video_rows + bias_l2) * video_bias,
        ])

    size = 1 + n_users + n_videos
    diagonal = np.concatenate([[total_rows], user_rows + bias_l2, video_rows + bias_l2])
    inverse_diagonal = np.divide(1.0, diagonal, out=np.ones_like(diagonal), where=diagonal > 0)
    right_hand_side = np.concatenate([
        [weighted_target.sum()],
        np.bincount(pairs.user, weights=weighted_target, minlength=n_users),
        np.bincount(pairs.video, weights=weighted_target, minlength=n_videos),
    ])
    solution, _ = cg(
        LinearOperator((size, size), matvec=normal_matrix_times, dtype=np.float64),
        right_hand_side,
        rtol=tolerance,
        maxiter=CALIBRATION_MAX_ITERATIONS,
        M=LinearOperator((size, size), matvec=lambda x: inverse_diagonal * x, dtype=np.float64),
    )
    return float(solution[0]), solution[1:1 + n_users], solution[1 + n_users:]


def fit_calibration(
    user_factors: np.ndarray, video_factors: np.ndarray, pairs: Pairs, bias_l2: float, tolerance: float = 1e-8
) -> Calibration:
    """Map implicit's scores to the scaled watch ratio on the training pairs.

    implicit's score mostly says whether a pair was *watched*: observed pairs score high, the rest near zero, so
    on the training pairs (all observed) its level is far above that of an arbitrary pair. Fitted naively, the
    calibration learns that level and mispredicts every pair outside the training set. Two guards: the score is
    double-centred, ``<u - mean user factor, v - mean video factor>``, so it carries relative taste only (no
    user- or video-level exposure effect, which the biases model); and the biases are fitted first, without
    the score, so they cannot absorb its level. The weight is then the least-squares slope of the biases'
    residual on the centred score.
    """
    user_mean = user_factors.mean(axis=0)
    video_mean = video_factors.mean(axis=0)
    score = observed_pair_dot(user_factors - user_mean, video_factors - video_mean, pairs)
    target, row_weight = pairs.mean_target, pairs.count
    global_bias, user_bias, video_bias = fit_biases(pairs, video_factors.shape[0], bias_l2, tolerance)
    residual = target - global_bias - user_bias[pairs.user] - video_bias[pairs.video]
    spread = np.dot(row_weight, score * score)
    weight = float(np.dot(row_weight, score * residual) / spread) if spread > 0 else 0.0
    return Calibration(
        global_bias,
        weight,
        user_bias.astype(np.float32),
        video_bias.astype(np.float32),
        user_mean.astype(np.float32),
        video_mean.astype(np.float32),
    )


class ALSRecommender(Recommender):
    """implicit's CPU ALS on train-row confidences, plus a bias-and-scale calibration to the scaled watch ratio."""

    name: ClassVar[str] = "als"

    def __init__(self, config: ALSConfig | None = None) -> None:
        self.config = config or ALSConfig()
        self.n_users = 0
        self.n_videos = 0
        self.user_factors: np.ndarray | None = None
        self.video_factors: np.ndarray | None = None
        self.calibration: Calibration | None = None
        self._user_augmented: np.ndarray | None = None
        self._video_augmented: np.ndarray | None = None

    # ---- training ------------------------------------------------------------------------------------------
    def fit(self, data: TrainingData) -> Self:
        # implicit.cpu explicitly: the top-level factory would pick the GPU build when CUDA is present.
        from implicit.cpu.als import AlternatingLeastSquares

        config = self.config
        self.n_users, self.n_videos = data.n_users, data.n_videos
        pairs = aggregate_pairs(data.train, data.n_users, data.n_videos)
        confidences = confidence_matrix(pairs, config.alpha, data.n_videos)
        with limited_blas_threads(1):
            model = AlternatingLeastSquares(
                factors=config.factors,
                regularization=config.regularization,
                alpha=1.0,  # the confidences already carry alpha (implicit would multiply the whole matrix)
                dtype=np.float32,
                use_cg=config.use_conjugate_gradient,
                iterations=config.iterations,
                num_threads=resolve_thread_count(config.num_threads),
                random_state=config.seed,
            )
            model.fit(confidences, show_progress=config.show_progress)
        self.user_factors = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self.video_factors = np.ascontiguousarray(model.item_factors, dtype=np.float32)
        self.calibration = fit_calibration(
            self.user_factors, self.video_factors, pairs, config.calibration_l2, config.calibration_tolerance
        )
        self._build_augmented()
        return self

    def _build_augmented(self) -> None:
        calibration = self._fitted_calibration()
        ones_users = np.ones((self.n_users, 1), dtype=np.float32)
        ones_videos = np.ones((self.n_videos, 1), dtype=np.float32)
        centred_users = self.user_factors - calibration.user_factor_mean
        centred_videos = self.video_factors - calibration.video_factor_mean
        self._user_augmented = np.hstack(
            [calibration.weight * centred_users, calibration.user_bias[:, None], ones_users]
        ).astype(np.float32)
        self._video_augmented = np.hstack(
            [centred_videos, ones_videos, calibration.global_bias + calibration.video_bias[:, None]]
        ).astype(np.float32)

    def _fitted_calibration(self) -> Calibration:
        if self.calibration is None or self.user_factors is None or self.video_factors is None:
            raise RuntimeError("ALSRecommender is not fitted: call fit() or from_arrays() first")
        return self.calibration

    # ---- scoring -------------------------------------------------------------------------------------------
    def raw_scores(self, user_ids: np.ndarray, video_ids: np.ndarray) -> np.ndarray:
        """implicit's uncalibrated score <user_factor, video_factor> for (user, video) pairs, float64."""
        self._fitted_calibration()
        return pair_dot(
            self.user_factors, self.video_factors, np.asarray(user_ids, np.int64), np.asarray(video_ids, np.int64)
        )

    def score_all(self, user_ids: np.ndarray, video_ids: np.ndarray | None = None) -> np.ndarray:
        self._fitted_calibration()
        users = self._user_augmented[np.asarray(user_ids, dtype=np.int64)]
        videos = self._video_augmented if video_ids is None else self._video_augmented[np.asarray(video_ids, np.int64)]
        scores = users @ videos.T
        return np.clip(scores, 0.0, 1.0, out=scores)

    # ---- persistence ---------------------------------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        calibration = self._fitted_calibration()
        return {
            "user_factors": self.user_factors,
            "video_factors": self.video_factors,
            "calibration_global": np.array(calibration.global_bias, dtype=np.float64),
            "calibration_weight": np.array(calibration.weight, dtype=np.float64),
            "calibration_user_bias": calibration.user_bias,
            "calibration_video_bias": calibration.video_bias,
            "calibration_user_factor_mean": calibration.user_factor_mean,
            "calibration_video_factor_mean": calibration.video_factor_mean,
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Self:
        stored = stored_config(arrays)
        known = {f.name for f in dataclasses.fields(ALSConfig)}
        model = cls(ALSConfig(**{key: value for key, value in stored.items() if key in known}))
        model.user_factors = np.ascontiguousarray(arrays["user_factors"], dtype=np.float32)
        model.video_factors = np.ascontiguousarray(arrays["video_factors"], dtype=np.float32)
        model.n_users, model.n_videos = model.user_factors.shape[0], model.video_factors.shape[0]
        model.calibration = Calibration(
            global_bias=float(arrays["calibration_global"]),
            weight=float(arrays["calibration_weight"]),
            user_bias=np.asarray(arrays["calibration_user_bias"], dtype=np.float32),
            video_bias=np.asarray(arrays["calibration_video_bias"], dtype=np.float32),
            user_factor_mean=np.asarray(arrays["calibration_user_factor_mean"], dtype=np.float32),
            video_factor_mean=np.asarray(arrays["calibration_video_factor_mean"], dtype=np.float32),
        )
        model._build_augmented()
        return model
