"""Ridge regression on user and video side features (the original project's feature baseline), plus each user's
own ridge regression of what is left on the video features: user x feature interaction terms.

Stage 1, design row of an interaction = [user features of its user | video features of its video | 1]. With no id
features the prediction splits into a user part and a video part, ``score = U[u] @ w_u + V[v] @ w_v + b``, so
scoring a grid is an outer sum and the (pairs x features) design matrix is never built, neither to fit nor to score.
The normal equations are solved by conjugate gradients whose products go through the per-user and per-video feature
matrices and the sparse (user x video) interaction-count matrix, which makes an iteration cost O(distinct pairs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator, cg

from kuairec_pipeline.models.base import Recommender, stored_config
from kuairec_pipeline.models.biases import Pairs, aggregate_pairs, observed_pair_dot, pair_dot
from kuairec_pipeline.models.data import TrainingData
from kuairec_pipeline.models.errors import check_solver, not_fitted
from kuairec_pipeline.models.taste import nonnegative_scale, per_user_ridge, residual_factors, video_taste_features
from kuairec_pipeline.params import check, param


@dataclass(frozen=True)
class LinearConfig:
    """Hyperparameters of :class:`LinearRecommender`; ranges are enforced on construction (``params.check``)."""

    l2: float = param(10.0, "Ridge penalty on every feature weight (not the intercept), in target^2 x rows.", gt=0.0)
    max_iter: int = param(1000, "Conjugate-gradient iterations at most.", ge=1, le=1_000_000)
    tol: float = param(1e-8, "Relative residual of the normal equations at which conjugate gradients stop.", gt=0.0)
    use_user_categorical: bool = param(True, "One-hot of each user cat_* column (padding id 0 gets its own weight).")
    use_user_numeric: bool = param(True, "User num_* columns as they are (already in [0, 1]).")
    use_video_categorical: bool = param(True, "One-hot of each video cat_* column, e.g. the author.")
    use_video_tags: bool = param(True, "The 31-tag multi-hot.")
    use_video_numeric: bool = param(True, "Video num_* columns as they are (already in [0, 1]).")
    # Stage 2 is on when taste_l2 is set: 30 won on demo (see README).
    taste_l2: float | None = param(
        30.0,
        "Ridge (rows) of each user's fit of the stage-1 residual on [1, video taste features]; None: no stage 2.",
        gt=0.0,
    )
    # Stage 3: what tags and numeric features cannot say (benchmarks/taste_levers.py: on the full twin, rank 16 and
    # l2 30 closed 26% of the bias-to-oracle ndcg@10 gap alone, 32% with the tag profile; little on demo, where
    # users have ~300 rows: the val-fitted scale keeps it from hurting there).
    residual_rank: int = param(
        16, "Factors of stage 3, an explicit MF of the stage-2 residual (0: no stage 3).", ge=0, le=256
    )
    residual_l2: float = param(
        30.0, "Stage-3 ridge penalty per factor vector, in units of the residual's standard deviation.", gt=0.0
    )
    residual_sweeps: int = param(10, "Stage-3 alternating ridge sweeps (users, then videos).", ge=1, le=1000)
    residual_seed: int = param(0, "Seed of the stage-3 video factors' random start.", ge=0)

    def __post_init__(self) -> None:
        check(self)


def one_hot_blocks(categorical: np.ndarray, cardinality: list[int]) -> sp.csr_matrix:
    """One-hot of every categorical column, column blocks side by side.

    Parameters
    ----------
    categorical : int (n, n_columns) category ids, column j in [0, cardinality[j]).
    cardinality : categories per column.

    Returns
    -------
    float64 csr (n, sum(cardinality)).
    """
    n, n_columns = categorical.shape
    if n_columns == 0:
        return sp.csr_matrix((n, 0), dtype=np.float64)
    offsets = np.concatenate([[0], np.cumsum(cardinality)[:-1]])
    columns = (categorical.astype(np.int64) + offsets[None, :]).ravel()
    rows = np.repeat(np.arange(n), n_columns)
    return sp.csr_matrix((np.ones(columns.size), (rows, columns)), shape=(n, int(sum(cardinality))))


def user_design(data: TrainingData, config: LinearConfig) -> sp.csr_matrix:
    """The per-user feature matrix of stage 1 (the blocks ``config`` switches on).

    Parameters
    ----------
    data : the training data (user side features).
    config : which blocks to use.

    Returns
    -------
    float64 csr (n_users, d_user); zero columns when every user block is off.
    """
    blocks = [sp.csr_matrix((data.n_users, 0))]
    if config.use_user_categorical:
        blocks.append(one_hot_blocks(data.user_categorical, data.user_categorical_cardinality))
    if config.use_user_numeric:
        blocks.append(sp.csr_matrix(data.user_numeric.astype(np.float64)))
    return sp.hstack(blocks, format="csr")


def video_design(data: TrainingData, config: LinearConfig) -> sp.csr_matrix:
    """The per-video feature matrix of stage 1 (the blocks ``config`` switches on).

    Parameters
    ----------
    data : the training data (video side features and tags).
    config : which blocks to use.

    Returns
    -------
    float64 csr (n_videos, d_video); zero columns when every video block is off.
    """
    blocks = [sp.csr_matrix((data.n_videos, 0))]
    if config.use_video_categorical:
        blocks.append(one_hot_blocks(data.video_categorical, data.video_categorical_cardinality))
    if config.use_video_tags:
        blocks.append(sp.csr_matrix(data.video_tag_multi_hot.astype(np.float64)))
    if config.use_video_numeric:
        blocks.append(sp.csr_matrix(data.video_numeric.astype(np.float64)))
    return sp.hstack(blocks, format="csr")


def solve_ridge(
    user_features: sp.csr_matrix,
    video_features: sp.csr_matrix,
    users: np.ndarray,
    videos: np.ndarray,
    target: np.ndarray,
    config: LinearConfig,
) -> tuple[np.ndarray, np.ndarray, float, int]:
    """Weights (w_u, w_v, b) minimizing sum (y - U[u] w_u - V[v] w_v - b)^2 + l2 (|w_u|^2 + |w_v|^2).

    Returns them with the number of conjugate-gradient iterations used.
    """
    n_users, d_user = user_features.shape
    n_videos, d_video = video_features.shape
    n_rows = target.size
    counts = sp.csr_matrix((np.ones(n_rows), (users, videos)), shape=(n_users, n_videos))  # duplicates summed
    per_user = np.asarray(counts.sum(axis=1)).ravel()
    per_video = np.asarray(counts.sum(axis=0)).ravel()
    user_t, video_t, counts_t = user_features.T.tocsr(), video_features.T.tocsr(), counts.T.tocsr()

    def gram_product(theta: np.ndarray) -> np.ndarray:
        # X^T X theta, where X theta at a row is p[user] + q[video] + b.
        p = user_features @ theta[:d_user]
        q = video_features @ theta[d_user : d_user + d_video]
        b = theta[-1]
        user_residual = per_user * (p + b) + counts @ q
        video_residual = per_video * (q + b) + counts_t @ p
        out = np.empty_like(theta)
        out[:d_user] = user_t @ user_residual + config.l2 * theta[:d_user]
        out[d_user : d_user + d_video] = video_t @ video_residual + config.l2 * theta[d_user : d_user + d_video]
        out[-1] = per_user @ p + per_video @ q + n_rows * b
        return out

    size = d_user + d_video + 1
    target = target.astype(np.float64)
    rhs = np.concatenate(
        [
            user_t @ np.bincount(users, weights=target, minlength=n_users),
            video_t @ np.bincount(videos, weights=target, minlength=n_videos),
            [target.sum()],
        ]
    )
    # Jacobi preconditioner: one-hot columns differ in frequency by orders of magnitude.
    diagonal = np.concatenate(
        [
            user_features.multiply(user_features).T @ per_user + config.l2,
            video_features.multiply(video_features).T @ per_video + config.l2,
            [float(n_rows)],
        ]
    )
    preconditioner = LinearOperator((size, size), matvec=lambda v: v / diagonal, dtype=np.float64)
    operator = LinearOperator((size, size), matvec=gram_product, dtype=np.float64)
    x0 = np.zeros(size)
    x0[-1] = target.mean()  # start from the global mean: most of the signal, so fewer iterations
    iterations = [0]

    def count(_: np.ndarray) -> None:
        iterations[0] += 1

    theta, info = cg(operator, rhs, x0=x0, rtol=config.tol, maxiter=config.max_iter, M=preconditioner, callback=count)
    check_solver(theta, "linear ridge conjugate gradients", info, f"(max_iter={config.max_iter}, tol={config.tol})")
    return theta[:d_user], theta[d_user : d_user + d_video], float(theta[-1]), iterations[0]


def taste_design(data: TrainingData) -> np.ndarray:
    """A constant (the user's own level) and the video taste features, the stage-2 design.

    Parameters
    ----------
    data : the training data (video tags and numeric columns).

    Returns
    -------
    float64 (n_videos, 1 + d).
    """
    features = video_taste_features(data.video_tag_multi_hot, data.video_numeric)
    return np.hstack([np.ones((features.shape[0], 1)), features])


class LinearRecommender(Recommender):
    """score(u, v) = clip(user_part[u] + video_part[v] + taste[u] @ taste_features[v], 0, 1): stage 1 ridge-weighted
    side features, stage 2 each user's coefficients on the video's taste features, stage 3 (appended to both taste
    vectors) latent factors of what is left, scaled on the tuning val rows."""

    name = "linear"

    def __init__(self, config: LinearConfig | None = None) -> None:
        self.config = config or LinearConfig()
        self.n_users = 0
        self.n_videos = 0
        self.user_weights = np.zeros(0)
        self.video_weights = np.zeros(0)
        self.intercept = 0.0
        self.user_part: np.ndarray | None = None  # float32 (n_users,): U @ w_u
        self.video_part: np.ndarray | None = None  # float32 (n_videos,): V @ w_v + b
        self.user_taste: np.ndarray | None = None  # float32 (n_users, t): stage-2 coefficients (t = 0 without)
        self.video_taste: np.ndarray | None = None  # float32 (n_videos, t): [1, taste features]
        self.iterations = 0
        self.residual_scale = 0.0  # stage 3's val-fitted scale (0: off or no help)

    def fit(self, data: TrainingData) -> Self:
        users_x = user_design(data, self.config)
        videos_x = video_design(data, self.config)
        train = data.train
        self.user_weights, self.video_weights, self.intercept, self.iterations = solve_ridge(
            users_x, videos_x, train.user.astype(np.int64), train.video.astype(np.int64), train.target, self.config
        )
        self.n_users, self.n_videos = data.n_users, data.n_videos
        self.user_part = (users_x @ self.user_weights).astype(np.float32)
        self.video_part = (videos_x @ self.video_weights + self.intercept).astype(np.float32)
        self.user_taste = np.zeros((data.n_users, 0), dtype=np.float32)
        self.video_taste = np.zeros((data.n_videos, 0), dtype=np.float32)
        if self.config.taste_l2 is None and not self.config.residual_rank:
            return self
        pairs = aggregate_pairs(train, data.n_users, data.n_videos)
        residual = pairs.mean_target - self.user_part[pairs.user] - self.video_part[pairs.video]
        if self.config.taste_l2 is not None:
            design = taste_design(data)
            coefficients = per_user_ridge(
                pairs.matrix(pairs.count, data.n_videos),
                pairs.matrix(pairs.count * residual, data.n_videos),
                design,
                self.config.taste_l2,
            )
            self.user_taste = coefficients.astype(np.float32)
            self.video_taste = design.astype(np.float32)
            residual = residual - observed_pair_dot(coefficients, design, pairs)
        if self.config.residual_rank:
            self._fit_residual_factors(data, pairs, residual)
        return self

    def training_metadata(self) -> dict[str, float]:
        """The stage-3 scale fitted on the val rows (0: stage 3 off, or no help on val)."""
        return {"residual_scale": round(self.residual_scale, 4)} if self.config.residual_rank else {}

    def _fit_residual_factors(self, data: TrainingData, pairs: Pairs, residual: np.ndarray) -> None:
        """Stage 3: MF of the stage-2 residual of the training pairs (standardized, so ``residual_l2`` is in units of
        its count-weighted standard deviation), scaled by least squares on the tuning ``val`` rows (>= 0: a scale
        of 0 switches it off where it does not help); appended to the taste vectors, so scoring is unchanged."""
        sd = float(np.sqrt(np.average(residual**2, weights=pairs.count))) or 1.0
        user_factors, video_factors = residual_factors(
            pairs.matrix(pairs.count, data.n_videos),
            pairs.matrix(pairs.count * residual / sd, data.n_videos),
            self.config.residual_rank,
            self.config.residual_l2,
            self.config.residual_sweeps,
            self.config.residual_seed,
        )
        val = data.val
        term = sd * pair_dot(user_factors, video_factors, val.user, val.video)
        before = self.user_part[val.user] + self.video_part[val.video]
        before = before + pair_dot(self.user_taste, self.video_taste, val.user, val.video)
        self.residual_scale = nonnegative_scale(term, val.target - before)
        self.user_taste = np.hstack([self.user_taste, (self.residual_scale * sd) * user_factors]).astype(np.float32)
        self.video_taste = np.hstack([self.video_taste, video_factors]).astype(np.float32)

    def _fitted(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if self.user_part is None or self.video_part is None or self.user_taste is None or self.video_taste is None:
            raise not_fitted(self)
        return self.user_part, self.video_part, self.user_taste, self.video_taste

    def score_all(self, user_ids: np.ndarray, video_ids: np.ndarray | None = None) -> np.ndarray:
        user_part, video_part, user_taste, video_taste = self._fitted()
        users, checked = self._check_ids(user_ids, video_ids)
        videos = slice(None) if checked is None else checked
        scores = user_part[users][:, None] + video_part[videos][None, :]
        if user_taste.shape[1]:
            scores += user_taste[users] @ video_taste[videos].T
        return np.clip(scores, 0.0, 1.0, out=scores)

    def augmented_factors(self) -> tuple[np.ndarray, np.ndarray]:
        """The unclipped score as one product: ``user[u] @ video[v]`` with user = ``[user_part, 1, taste]`` and
        video = ``[1, video_part, taste features]`` (what the sequential model's fixed start holds).

        Returns
        -------
        (float32 (n_users, 2 + t), float32 (n_videos, 2 + t)).

        Raises
        ------
        NotFittedError
            Before ``fit`` / ``from_arrays``.
        """
        user_part, video_part, user_taste, video_taste = self._fitted()
        user = np.hstack([user_part[:, None], np.ones((user_part.size, 1), np.float32), user_taste])
        video = np.hstack([np.ones((video_part.size, 1), np.float32), video_part[:, None], video_taste])
        return user.astype(np.float32), video.astype(np.float32)

    def to_arrays(self) -> dict[str, np.ndarray]:
        user_part, video_part, user_taste, video_taste = self._fitted()
        return {
            "user_weights": self.user_weights,
            "video_weights": self.video_weights,
            "intercept": np.array(self.intercept),
            "user_part": user_part,
            "video_part": video_part,
            "user_taste": user_taste,
            "video_taste": video_taste,
            "residual_scale": np.array(self.residual_scale),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Self:
        model = cls(LinearConfig(**stored_config(arrays)))
        model.user_weights = np.asarray(arrays["user_weights"], dtype=np.float64)
        model.video_weights = np.asarray(arrays["video_weights"], dtype=np.float64)
        model.intercept = float(arrays["intercept"])
        model.user_part = np.asarray(arrays["user_part"], dtype=np.float32)
        model.video_part = np.asarray(arrays["video_part"], dtype=np.float32)
        model.n_users, model.n_videos = model.user_part.size, model.video_part.size
        model.user_taste = np.asarray(arrays.get("user_taste", np.zeros((model.n_users, 0))), dtype=np.float32)
        model.video_taste = np.asarray(arrays.get("video_taste", np.zeros((model.n_videos, 0))), dtype=np.float32)
        model.residual_scale = float(arrays.get("residual_scale", 0.0))
        return model
