"""Implicit-feedback ALS (Hu, Koren & Volinsky 2008) on watch-ratio confidences, calibrated to predict watch ratios.

implicit factorizes a preference matrix weighted by confidence; its scores rank videos by how likely they are
*watched*, not by how much, and are not on the target's scale. The calibration, fitted on the training rows, is
explicit feedback on top (see :func:`fit_calibration` for why):

    prediction = clip(global + b_user + b_video + c_user @ [taste features of v | centred video factors of v], 0, 1)

with ``c_user`` each user's ridge coefficients. Scoring folds it into two augmented matrices,
``[c_user, b_user, 1]`` and ``[design_v, 1, global + b_video]``, so :meth:`ALSRecommender.score_all` is one NumPy
matrix product and a clip.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar, Self

import numpy as np
import scipy.sparse as sp

from kuairec_pipeline.models.als_config import ALSConfig  # noqa: F401  (re-exported: the model's public names)
from kuairec_pipeline.models.base import Recommender, stored_config
from kuairec_pipeline.models.biases import (  # noqa: F401  (re-exported: callers import them from here too)
    CALIBRATION_MAX_ITERATIONS,
    Pairs,
    aggregate_pairs,
    fit_biases,
    observed_pair_dot,
    pair_dot,
)
from kuairec_pipeline.models.data import TrainingData
from kuairec_pipeline.models.errors import check_ids, check_solver, not_fitted
from kuairec_pipeline.models.linear import LinearRecommender
from kuairec_pipeline.models.linear_start import LinearStartHooks
from kuairec_pipeline.models.taste import nonnegative_scale, per_user_ridge, video_taste_features
from kuairec_pipeline.models.threads import limited_blas_threads, resolve_thread_count


def confidence_matrix(pairs: Pairs, alpha: float, n_videos: int) -> sp.csr_matrix:
    """Users x videos CSR of confidences ``1 + alpha * mean target`` (Hu, Koren & Volinsky, ICDM 2008).

    Parameters
    ----------
    pairs : the distinct training pairs.
    alpha : confidence gain per unit of scaled target (>= 0).
    n_videos : number of columns.

    Returns
    -------
    float32 csr (n_users, n_videos).
    """
    return pairs.matrix((1.0 + alpha * pairs.mean_target).astype(np.float32), n_videos)


@dataclass(frozen=True)
class Calibration:
    """prediction = [start(u, v) +] global + user_bias[u] + video_bias[v] + user_coefficients[u] @ video_design[v]
    (clipped)."""

    global_bias: float
    user_bias: np.ndarray  # float32 (n_users,)
    video_bias: np.ndarray  # float32 (n_videos,)
    user_coefficients: np.ndarray  # float32 (n_users, d): each user's ridge fit of the bias residual
    video_design: np.ndarray  # float32 (n_videos, d): [video taste features | centred, unit-scaled video factors]
    # The linear start under it all (ALSConfig.linear_start): + start_user[u] @ start_video[v]; None without one.
    start_user: np.ndarray | None = None  # float32 (n_users, k)
    start_video: np.ndarray | None = None  # float32 (n_videos, k)
    factor_scale: float = 1.0  # the val-fitted scale already applied to user_coefficients (under a start)


def factor_design(video_factors: np.ndarray) -> np.ndarray:
    """Video factors centred (no video-level exposure effect: the biases model that) and scaled to unit overall
    standard deviation, so one ridge penalty means the same whatever implicit's regularization; float64."""
    centred = np.asarray(video_factors, dtype=np.float64) - video_factors.mean(axis=0)
    spread = centred.std()
    return centred / spread if spread > 0 else centred


def fit_calibration(
    video_factors: np.ndarray,
    taste_features: np.ndarray,
    pairs: Pairs,
    config: ALSConfig,
    start: tuple[np.ndarray, np.ndarray] | None = None,
) -> Calibration:
    """Map implicit's factors to the scaled watch ratio on the training pairs: explicit feedback on top.

    implicit's score mostly says whether a pair was *watched* (exposure), not how much of it: on the demo twin the
    centred dot product correlates -0.01 with the planted taste on the test grid, and the former calibration (one
    least-squares weight on it) set that weight to 0.006, discarding it. So the watch ratios are fitted directly:
    exact ridge biases first (:func:`fit_biases`), then each user's own ridge regression of the bias residual on the
    video side ``[taste features | video factors]`` (:func:`kuairec_pipeline.models.taste.per_user_ridge`): the
    user step of explicit-feedback ALS (Koren, Bell & Volinsky 2009) with implicit's video factors held fixed.
    ``taste_l2`` and ``factor_l2`` shrink the two blocks separately. With ``start`` (the linear model's augmented
    factors, :meth:`.LinearRecommender.augmented_factors`), which already holds biases and taste, only the
    factor coefficients are fitted, on the start's residual (biases 0).

    Parameters
    ----------
    video_factors : float32 (n_videos, f) implicit's video factors.
    taste_features : float (n_videos, t) the video taste features.
    pairs : the distinct training pairs.
    config : the ALS config (the penalties).
    start : (float (n_users, k), float (n_videos, k)) or None.

    Returns
    -------
    Calibration.
    """
    n_videos = video_factors.shape[0]
    if start is not None:
        # The start holds the biases and the taste already: only what implicit's factors add is fitted, on the
        # start's residual (refitting biases and taste on it only added noise on the demo twin).
        residual = pairs.mean_target - observed_pair_dot(*start, pairs)
        design = factor_design(video_factors)
        coefficients = per_user_ridge(
            pairs.matrix(pairs.count, n_videos),
            pairs.matrix(pairs.count * residual, n_videos),
            design,
            config.factor_l2,
        )
        return Calibration(
            0.0,
            np.zeros(pairs.n_users, np.float32),
            np.zeros(n_videos, np.float32),
            coefficients.astype(np.float32),
            design.astype(np.float32),
            np.asarray(start[0], np.float32),
            np.asarray(start[1], np.float32),
        )
    global_bias, user_bias, video_bias = fit_biases(
        pairs, video_factors.shape[0], config.calibration_l2, config.calibration_tolerance
    )
    design = np.hstack([np.asarray(taste_features, dtype=np.float64), factor_design(video_factors)])
    residual = pairs.mean_target - global_bias - user_bias[pairs.user] - video_bias[pairs.video]
    penalty = np.concatenate(
        [np.full(taste_features.shape[1], config.taste_l2), np.full(video_factors.shape[1], config.factor_l2)]
    )
    coefficients = per_user_ridge(
        pairs.matrix(pairs.count, n_videos), pairs.matrix(pairs.count * residual, n_videos), design, penalty
    )
    return Calibration(
        global_bias,
        user_bias.astype(np.float32),
        video_bias.astype(np.float32),
        coefficients.astype(np.float32),
        design.astype(np.float32),
    )


def scaled_on_validation(calibration: Calibration, val) -> Calibration:
    """The factor part on top of a start, scaled by the least-squares weight that best fits the tuning ``val`` rows'
    residual of the start, never negative (0 switches it off where it does not help; as the linear model's stage 3).

    Parameters
    ----------
    calibration : a calibration with a start.
    val : the tuning validation interactions (none: unchanged).

    Returns
    -------
    Calibration with ``user_coefficients`` multiplied by the scale and ``factor_scale`` set.
    """
    if len(val) == 0 or calibration.start_user is None or calibration.start_video is None:
        return calibration
    user, video = val.user.astype(np.int64), val.video.astype(np.int64)
    term = pair_dot(calibration.user_coefficients, calibration.video_design, user, video)
    residual = val.target - pair_dot(calibration.start_user, calibration.start_video, user, video)
    scale = nonnegative_scale(term, residual)
    return dataclasses.replace(
        calibration, user_coefficients=(calibration.user_coefficients * scale).astype(np.float32), factor_scale=scale
    )


class ALSRecommender(LinearStartHooks, Recommender):
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
    def _fit(self, data: TrainingData, start: LinearRecommender | None, progress: object = None) -> Self:
        """implicit's ALS on the training confidences, then the calibration (on top of ``start`` when given);
        ``progress`` unused (implicit reports no epochs here)."""
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
        self.user_factors = check_solver(np.ascontiguousarray(model.user_factors, dtype=np.float32), "implicit ALS")
        self.video_factors = check_solver(np.ascontiguousarray(model.item_factors, dtype=np.float32), "implicit ALS")
        self.calibration = fit_calibration(
            self.video_factors,
            video_taste_features(data.video_tag_multi_hot, data.video_numeric),
            pairs,
            config,
            None if start is None else start.augmented_factors(),
        )
        if start is not None:
            self.calibration = scaled_on_validation(self.calibration, data.val)
        self._build_augmented()
        return self

    def training_metadata(self) -> dict[str, float]:
        """The val-fitted scale of the factor part under the linear start (0: no help on val; absent without a
        start)."""
        calibration = self._fitted_calibration()
        return {} if calibration.start_user is None else {"factor_scale": round(calibration.factor_scale, 4)}

    def _build_augmented(self) -> None:
        calibration = self._fitted_calibration()
        ones_users = np.ones((self.n_users, 1), dtype=np.float32)
        ones_videos = np.ones((self.n_videos, 1), dtype=np.float32)
        empty_users, empty_videos = np.zeros((self.n_users, 0), np.float32), np.zeros((self.n_videos, 0), np.float32)
        start_user = empty_users if calibration.start_user is None else calibration.start_user
        start_video = empty_videos if calibration.start_video is None else calibration.start_video
        self._user_augmented = np.hstack(
            [calibration.user_coefficients, calibration.user_bias[:, None], ones_users, start_user]
        ).astype(np.float32)
        self._video_augmented = np.hstack(
            [
                calibration.video_design,
                ones_videos,
                calibration.global_bias + calibration.video_bias[:, None],
                start_video,
            ]
        ).astype(np.float32)

    def augmented_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """The calibrated model as two matrices whose product is the score before the clip to [0, 1].

        Returns
        -------
        (float32 (n_users, k) rows ``[coefficients, user bias, 1, start_user]``, float32 (n_videos, k) rows
        ``[video design, 1, global + video bias, start_video]``), k = taste features + factors + 2 + the start's
        width (0 without one).

        Raises
        ------
        NotFittedError
            Before ``fit`` / ``from_arrays``.
        """
        self._fitted_calibration()
        return self._user_augmented, self._video_augmented

    def _fitted_calibration(self) -> Calibration:
        if self.calibration is None or self.user_factors is None or self.video_factors is None:
            raise not_fitted(self)
        return self.calibration

    # ---- scoring -------------------------------------------------------------------------------------------
    def raw_scores(self, user_ids: np.ndarray, video_ids: np.ndarray) -> np.ndarray:
        """implicit's uncalibrated score <user_factor, video_factor> for (user, video) pairs.

        Parameters
        ----------
        user_ids, video_ids : int (n,) paired ids.

        Returns
        -------
        float64 (n,), not on the target's scale.

        Raises
        ------
        NotFittedError
            Before ``fit`` / ``from_arrays``.
        UnknownIdError
            If an id is outside its range.
        """
        self._fitted_calibration()
        users = check_ids(user_ids, self.n_users, "user")
        return pair_dot(self.user_factors, self.video_factors, users, check_ids(video_ids, self.n_videos, "video"))

    def score_all(self, user_ids: np.ndarray, video_ids: np.ndarray | None = None) -> np.ndarray:
        self._fitted_calibration()
        user_ids, video_ids = self._check_ids(user_ids, video_ids)
        users = self._user_augmented[user_ids]
        videos = self._video_augmented if video_ids is None else self._video_augmented[video_ids]
        scores = users @ videos.T
        return np.clip(scores, 0.0, 1.0, out=scores)

    # ---- persistence ---------------------------------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        calibration = self._fitted_calibration()
        arrays = {
            "user_factors": self.user_factors,
            "video_factors": self.video_factors,
            "calibration_global": np.array(calibration.global_bias, dtype=np.float64),
            "calibration_user_bias": calibration.user_bias,
            "calibration_video_bias": calibration.video_bias,
            "calibration_user_coefficients": calibration.user_coefficients,
            "calibration_video_design": calibration.video_design,
        }
        if calibration.start_user is not None and calibration.start_video is not None:
            arrays["calibration_start_user"] = calibration.start_user
            arrays["calibration_start_video"] = calibration.start_video
            arrays["calibration_factor_scale"] = np.array(calibration.factor_scale, dtype=np.float64)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Self:
        stored = stored_config(arrays)
        known = {f.name for f in dataclasses.fields(ALSConfig)}
        values = {key: value for key, value in stored.items() if key in known}
        values.setdefault("linear_start", False)  # a config stored before the field existed had no start
        model = cls(ALSConfig(**values))
        model.user_factors = np.ascontiguousarray(arrays["user_factors"], dtype=np.float32)
        model.video_factors = np.ascontiguousarray(arrays["video_factors"], dtype=np.float32)
        model.n_users, model.n_videos = model.user_factors.shape[0], model.video_factors.shape[0]
        model.calibration = Calibration(
            global_bias=float(arrays["calibration_global"]),
            user_bias=np.asarray(arrays["calibration_user_bias"], dtype=np.float32),
            video_bias=np.asarray(arrays["calibration_video_bias"], dtype=np.float32),
            user_coefficients=np.asarray(arrays["calibration_user_coefficients"], dtype=np.float32),
            video_design=np.asarray(arrays["calibration_video_design"], dtype=np.float32),
            start_user=_optional(arrays, "calibration_start_user"),
            start_video=_optional(arrays, "calibration_start_video"),
            factor_scale=float(arrays.get("calibration_factor_scale", 1.0)),
        )
        model._build_augmented()
        return model


def _optional(arrays: dict[str, np.ndarray], key: str) -> np.ndarray | None:
    """``arrays[key]`` as float32, or None when the bundle has no such array."""
    return np.asarray(arrays[key], dtype=np.float32) if key in arrays else None
