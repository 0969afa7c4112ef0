"""The personal baseline every trained model must beat: user and video biases plus a shrunken user x tag profile.

    prediction(u, v) = clip(global + b_u + b_v + sum_t w_vt * a_ut, 0, 1)

- ``global + b_u + b_v``: the exact ridge bias solve of ``user_video_bias`` (Koren, "Factorization meets the
  neighborhood", KDD 2008, section 2.1: baseline predictors);
- ``w_vt``: video v's tags, each weighing 1 / (number of its tags);
- ``a_ut``: user u's affinity to tag t, the shrunken weighted mean of u's training residuals (target minus the
  baseline prediction) on videos with tag t: ``a_ut = sum_j w_{v_j t} r_j / (sum_j w_{v_j t} + shrinkage)``. This is
  a content-based user profile (Pazzani & Billsus, "Content-based recommendation systems", The Adaptive Web,
  2007) over the residuals, with the shrinkage of Koren's baseline estimates: few rows on a tag, little affinity.

The shrinkage is chosen from ``TagProfileConfig.shrinkage_grid`` by RMSE on the tuning ``val`` slice (the slice
models may tune on; the selection slice and the test split are never seen).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

import numpy as np

from kuairec_pipeline.models.base import Recommender, stored_config
from kuairec_pipeline.models.biases import aggregate_pairs, fit_biases
from kuairec_pipeline.models.data import TrainingData
from kuairec_pipeline.models.errors import not_fitted


@dataclass(frozen=True)
class TagProfileConfig:
    """Hyperparameters of :class:`UserTagProfileRecommender`."""

    # Ridge on the user and video biases in pseudo-rows (>= 0): the user_video_bias baseline's default.
    bias_l2: float = 5.0
    # Candidate shrinkages of the user x tag affinity, in pseudo-rows (each >= 0, at least one): the one with the
    # lowest RMSE on the tuning val slice is kept; the first when there is no val row.
    shrinkage_grid: tuple[float, ...] = (10.0, 3.0, 30.0, 100.0, 300.0)

    def __post_init__(self) -> None:
        if not self.bias_l2 >= 0:
            raise ValueError(f"bias_l2 must be >= 0, got {self.bias_l2}")
        grid = tuple(float(value) for value in self.shrinkage_grid)  # JSON gives a list back: store a tuple
        if not grid or not all(value >= 0 for value in grid):
            raise ValueError(f"shrinkage_grid must hold one or more values >= 0, got {self.shrinkage_grid}")
        object.__setattr__(self, "shrinkage_grid", grid)


def tag_weights(multi_hot: np.ndarray) -> np.ndarray:
    """Each video's tags weighing 1 / its number of tags (rows of untagged videos stay 0).

    Parameters
    ----------
    multi_hot : float (n_videos, n_tags), 0/1 tag indicators.

    Returns
    -------
    float32 (n_videos, n_tags); each tagged row sums to 1.
    """
    counts = multi_hot.sum(axis=1, keepdims=True)
    return (multi_hot / np.maximum(counts, 1.0)).astype(np.float32)


class UserTagProfileRecommender(Recommender):
    """Biases plus a shrunken user x tag residual profile (module docstring): the personal baseline."""

    name = "user_tag_profile"

    def __init__(self, config: TagProfileConfig | None = None) -> None:
        self.config = config or TagProfileConfig()
        self.n_users = 0
        self.n_videos = 0
        self.user_part: np.ndarray | None = None  # float32 (n_users,): global + b_u
        self.video_part: np.ndarray | None = None  # float32 (n_videos,): b_v
        self.affinity: np.ndarray | None = None  # float32 (n_users, n_tags): a_ut
        self.video_tags: np.ndarray | None = None  # float32 (n_videos, n_tags): w_vt
        self.shrinkage = float("nan")  # the shrinkage chosen on the tuning slice

    def fit(self, data: TrainingData) -> Self:
        """Biases by the exact ridge solve, residual sums per (user, tag), shrinkage chosen on ``data.val``.

        Parameters
        ----------
        data : training data; ``data.val`` picks the shrinkage (the first grid value when it is empty).

        Returns
        -------
        ``self``, fitted.
        """
        pairs = aggregate_pairs(data.train, data.n_users, data.n_videos)
        global_bias, user_bias, video_bias = fit_biases(pairs, data.n_videos, self.config.bias_l2)
        residual = pairs.mean_target - (global_bias + user_bias[pairs.user] + video_bias[pairs.video])
        weights = tag_weights(data.video_tag_multi_hot)
        # Rows of a repeated pair count once each, as in the bias fit.
        sums = np.asarray(pairs.matrix(pairs.count * residual, data.n_videos) @ weights, dtype=np.float64)
        totals = np.asarray(pairs.matrix(pairs.count, data.n_videos) @ weights, dtype=np.float64)

        self.n_users, self.n_videos = data.n_users, data.n_videos
        self.user_part = (global_bias + user_bias).astype(np.float32)
        self.video_part = video_bias.astype(np.float32)
        self.video_tags = weights
        scored: list[tuple[float, float, np.ndarray]] = []  # (val rmse, shrinkage, affinity)
        for shrinkage in self.config.shrinkage_grid:
            denominator = totals + shrinkage
            self.affinity = np.divide(sums, denominator, out=np.zeros_like(sums), where=denominator > 0).astype(
                np.float32
            )
            if len(data.val) == 0:  # nothing to choose on: the first candidate, as documented
                scored.append((0.0, shrinkage, self.affinity))
                break
            error = self.predict(data.val.user, data.val.video).astype(np.float64) - data.val.target
            scored.append((float(np.sqrt(np.mean(error**2))), shrinkage, self.affinity))
        _, self.shrinkage, self.affinity = min(scored, key=lambda item: item[0])
        return self

    def _state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if self.user_part is None or self.video_part is None or self.affinity is None or self.video_tags is None:
            raise not_fitted(self)
        return self.user_part, self.video_part, self.affinity, self.video_tags

    def score_all(self, user_ids: np.ndarray, video_ids: np.ndarray | None = None) -> np.ndarray:
        user_part, video_part, affinity, video_tags = self._state()
        users, checked = self._check_ids(user_ids, video_ids)
        videos = np.arange(self.n_videos) if checked is None else checked
        scores = affinity[users] @ video_tags[videos].T
        scores += user_part[users][:, None]
        scores += video_part[videos][None, :]
        return np.clip(scores, 0.0, 1.0, out=scores).astype(np.float32, copy=False)

    def to_arrays(self) -> dict[str, np.ndarray]:
        user_part, video_part, affinity, video_tags = self._state()
        return {
            "user_part": user_part,
            "video_part": video_part,
            "user_tag_affinity": affinity,
            "video_tag_weights": video_tags,
            "shrinkage": np.array([self.shrinkage], dtype=np.float64),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Self:
        config: dict[str, Any] = stored_config(arrays)
        model = cls(TagProfileConfig(**config))
        model.user_part = np.asarray(arrays["user_part"], dtype=np.float32)
        model.video_part = np.asarray(arrays["video_part"], dtype=np.float32)
        model.affinity = np.asarray(arrays["user_tag_affinity"], dtype=np.float32)
        model.video_tags = np.asarray(arrays["video_tag_weights"], dtype=np.float32)
        model.shrinkage = float(arrays["shrinkage"][0])
        model.n_users, model.n_videos = model.user_part.size, model.video_part.size
        return model
