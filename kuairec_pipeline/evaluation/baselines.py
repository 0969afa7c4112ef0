"""Baselines that every model must beat, behind the same Recommender contract, so one evaluation serves all.

``user_tag_profile`` (``tag_profile.py``) is the personal one: biases plus a shrunken user x tag profile.

All but the random and oracle baselines are additive: score(u, v) = clip(user_part[u] + video_part[v], 0, 1), so
scoring a grid is an outer sum of two vectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Self

import numpy as np
import polars as pl
import scipy.sparse as sp

from kuairec_pipeline.evaluation.tag_profile import UserTagProfileRecommender
from kuairec_pipeline.models.base import Recommender, stored_config
from kuairec_pipeline.models.biases import aggregate_pairs, fit_biases
from kuairec_pipeline.models.data import TrainingData
from kuairec_pipeline.models.errors import not_fitted
from kuairec_pipeline.target import TargetScaler


def _group_mean(index: np.ndarray, values: np.ndarray, size: int, fallback: float) -> np.ndarray:
    """Mean of ``values`` per index in [0, size); ``fallback`` where an index has no rows."""
    counts = np.bincount(index, minlength=size)
    sums = np.bincount(index, weights=values.astype(np.float64), minlength=size)
    return np.where(counts > 0, sums / np.maximum(counts, 1), fallback)


class AdditiveRecommender(Recommender):
    """score(u, v) = clip(user_part[u] + video_part[v], 0, 1); subclasses compute the two parts in ``fit``."""

    config: Any = None

    def __init__(self) -> None:
        self.n_users = 0
        self.n_videos = 0
        self.user_part: np.ndarray | None = None  # float32 (n_users,)
        self.video_part: np.ndarray | None = None  # float32 (n_videos,)

    def _set_parts(self, user_part: np.ndarray, video_part: np.ndarray) -> Self:
        self.user_part = np.asarray(user_part, dtype=np.float32)
        self.video_part = np.asarray(video_part, dtype=np.float32)
        self.n_users, self.n_videos = self.user_part.size, self.video_part.size
        return self

    def _parts(self) -> tuple[np.ndarray, np.ndarray]:
        if self.user_part is None or self.video_part is None:
            raise not_fitted(self)
        return self.user_part, self.video_part

    def score_all(self, user_ids: np.ndarray, video_ids: np.ndarray | None = None) -> np.ndarray:
        user_part, video_part = self._parts()
        user_ids, video_ids = self._check_ids(user_ids, video_ids)
        videos = video_part if video_ids is None else video_part[video_ids]
        scores = user_part[user_ids][:, None] + videos[None, :]
        return np.clip(scores, 0.0, 1.0, out=scores)

    def to_arrays(self) -> dict[str, np.ndarray]:
        user_part, video_part = self._parts()
        return {"user_part": user_part, "video_part": video_part}

    @classmethod
    def _from_config(cls, config: dict[str, Any]) -> Self:
        return cls()

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Self:
        return cls._from_config(stored_config(arrays))._set_parts(arrays["user_part"], arrays["video_part"])


class GlobalMeanRecommender(AdditiveRecommender):
    """Every cell gets the mean training target: the constant every model is compared with."""

    name = "global_mean"

    def fit(self, data: TrainingData) -> Self:
        mean = float(np.mean(data.train.target, dtype=np.float64))
        return self._set_parts(np.zeros(data.n_users), np.full(data.n_videos, mean))


class UserMeanRecommender(AdditiveRecommender):
    """The user's mean training target; users without training rows get the global mean."""

    name = "user_mean"

    def fit(self, data: TrainingData) -> Self:
        mean = float(np.mean(data.train.target, dtype=np.float64))
        user_mean = _group_mean(data.train.user, data.train.target, data.n_users, mean)
        return self._set_parts(user_mean, np.zeros(data.n_videos))


class VideoMeanRecommender(AdditiveRecommender):
    """The video's mean training target; videos without training rows get the global mean."""

    name = "video_mean"

    def fit(self, data: TrainingData) -> Self:
        mean = float(np.mean(data.train.target, dtype=np.float64))
        video_mean = _group_mean(data.train.video, data.train.target, data.n_videos, mean)
        return self._set_parts(np.zeros(data.n_users), video_mean)


@dataclass(frozen=True)
class BiasConfig:
    l2: float = 5.0  # shrinks each bias toward 0 like this many pseudo-rows at the mean; >= 0

    def __post_init__(self) -> None:
        if self.l2 < 0:
            raise ValueError(f"l2 must be >= 0, got {self.l2}")


class UserVideoBiasRecommender(AdditiveRecommender):
    """target ~ global + b_user + b_video, biases ridge-regularized, solved exactly (``biases.fit_biases``)."""

    name = "user_video_bias"

    def __init__(self, config: BiasConfig | None = None) -> None:
        super().__init__()
        self.config = config or BiasConfig()

    @classmethod
    def _from_config(cls, config: dict[str, Any]) -> Self:
        return cls(BiasConfig(**config))

    def fit(self, data: TrainingData) -> Self:
        # The same exact ridge solve that calibrates ALS (rows of a repeated pair weigh by their count).
        global_bias, user_bias, video_bias = fit_biases(
            aggregate_pairs(data.train, data.n_users, data.n_videos), data.n_videos, self.config.l2
        )
        return self._set_parts(global_bias + user_bias, video_bias)


class PopularityRecommender(AdditiveRecommender):
    """Training interaction count of the video over the largest count, the same for every user.

    A ranking baseline: its score is a popularity share in [0, 1], not a watch-ratio estimate, so its pointwise
    errors say little.
    """

    name = "popularity"

    def fit(self, data: TrainingData) -> Self:
        counts = np.bincount(data.train.video, minlength=data.n_videos).astype(np.float64)
        return self._set_parts(np.zeros(data.n_users), counts / max(counts.max(initial=0.0), 1.0))


@dataclass(frozen=True)
class RandomConfig:
    seed: int = 0  # the scores are a fixed function of (seed, user, video)


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_USER_MIX = np.uint64(0xD1B54A32D192ED03)
_VIDEO_MIX = np.uint64(0xABC98388FB8FAC03)


def hashed_uniform(seed: int, user_ids: np.ndarray, video_ids: np.ndarray) -> np.ndarray:
    """Uniform [0, 1) float32 grid (users x videos), a pure function of (seed, user, video) (SplitMix64 finalizer).

    A hash instead of a generator stream, so a cell scores the same whatever batch or column subset it is in.
    """
    with np.errstate(over="ignore"):
        z = (
            np.uint64(seed % 2**64) * _GOLDEN
            + np.asarray(user_ids, dtype=np.uint64)[:, None] * _USER_MIX
            + np.asarray(video_ids, dtype=np.uint64)[None, :] * _VIDEO_MIX
        )
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return ((z >> np.uint64(40)).astype(np.float32) * np.float32(2.0**-24)).astype(np.float32)


class RandomRecommender(Recommender):
    """Seeded uniform scores: the floor of every ranking metric."""

    name = "random"

    def __init__(self, config: RandomConfig | None = None) -> None:
        self.config = config or RandomConfig()
        self.n_users = 0
        self.n_videos = 0

    def fit(self, data: TrainingData) -> Self:
        self.n_users, self.n_videos = data.n_users, data.n_videos
        return self

    def score_all(self, user_ids: np.ndarray, video_ids: np.ndarray | None = None) -> np.ndarray:
        if self.n_users == 0 or self.n_videos == 0:
            raise not_fitted(self)
        user_ids, video_ids = self._check_ids(user_ids, video_ids)
        videos = np.arange(self.n_videos) if video_ids is None else video_ids
        return hashed_uniform(self.config.seed, user_ids, videos)

    def to_arrays(self) -> dict[str, np.ndarray]:
        if self.n_users == 0 or self.n_videos == 0:
            raise not_fitted(self)
        return {"shape": np.array([self.n_users, self.n_videos], dtype=np.int64)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Self:
        model = cls(RandomConfig(**stored_config(arrays)))
        model.n_users, model.n_videos = (int(v) for v in arrays["shape"])
        return model


class OracleRecommender(Recommender):
    """The planted truth of the synthetic twin: the best any model can do (twin only).

    One score for both jobs: scaler.transform(E[watch_ratio | watch_ratio <= 3]), the expectation of exactly the
    normalized target the pointwise metrics compare with. Cells absent from the truth score 0.
    """

    name = "oracle"
    covers_test_cells_only: ClassVar[bool] = True  # no truth outside the test matrix: evaluate skips val for it

    def __init__(self, expected_target: sp.csr_matrix) -> None:
        self.expected_target = expected_target.astype(np.float32).tocsr()
        self.n_users, self.n_videos = self.expected_target.shape

    @classmethod
    def from_truth(cls, truth: pl.DataFrame, scaler: TargetScaler, n_users: int, n_videos: int) -> Self:
        """The oracle of the ``planted_truth`` table (synthetic twin only).

        Parameters
        ----------
        truth : ``planted_truth`` rows (``user_id``, ``video_id``, ``expected_watch_ratio_le3``, ...).
        scaler : maps the expected raw watch ratio onto the target scale.
        n_users, n_videos : the data's id ranges.

        Returns
        -------
        OracleRecommender scoring each truth cell by its scaled expectation, every other cell 0.

        Raises
        ------
        ValueError
            If ``truth`` is empty or holds ids outside the ranges.
        """
        if truth.is_empty():
            raise ValueError("the planted truth is empty: the oracle exists for the synthetic twin only")
        values = scaler.transform(truth["expected_watch_ratio_le3"].to_numpy())
        users = truth["user_id"].to_numpy().astype(np.int64)
        videos = truth["video_id"].to_numpy().astype(np.int64)
        if users.max() >= n_users or videos.max() >= n_videos:
            raise ValueError(f"truth ids exceed the {n_users} users x {n_videos} videos of the data")
        matrix = sp.coo_matrix((values, (users, videos)), shape=(n_users, n_videos)).tocsr()
        matrix.sum_duplicates()
        return cls(matrix)

    def fit(self, data: TrainingData) -> Self:
        """Nothing to learn; only checks the truth covers the same id ranges as the data.

        Parameters
        ----------
        data : the training data (only its sizes are read).

        Returns
        -------
        ``self``.

        Raises
        ------
        ValueError
            If the data's sizes differ from the truth's.
        """
        if (data.n_users, data.n_videos) != (self.n_users, self.n_videos):
            raise ValueError(
                f"oracle built for {self.n_users} x {self.n_videos}, data has {data.n_users} x {data.n_videos}"
            )
        return self

    def score_all(self, user_ids: np.ndarray, video_ids: np.ndarray | None = None) -> np.ndarray:
        user_ids, video_ids = self._check_ids(user_ids, video_ids)
        rows = self.expected_target[user_ids]
        if video_ids is not None:
            rows = rows[:, video_ids]
        return np.clip(rows.toarray(), 0.0, 1.0).astype(np.float32, copy=False)

    def to_arrays(self) -> dict[str, np.ndarray]:
        matrix = self.expected_target
        return {
            "indptr": matrix.indptr.astype(np.int64),
            "indices": matrix.indices.astype(np.int64),
            "values": matrix.data.astype(np.float32),
            "shape": np.array(matrix.shape, dtype=np.int64),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Self:
        shape = tuple(int(v) for v in arrays["shape"])
        return cls(sp.csr_matrix((arrays["values"], arrays["indices"], arrays["indptr"]), shape=shape))


BASELINES: dict[str, type[Recommender]] = {
    model.name: model
    for model in (
        GlobalMeanRecommender,
        UserMeanRecommender,
        VideoMeanRecommender,
        UserVideoBiasRecommender,
        UserTagProfileRecommender,
        PopularityRecommender,
        RandomRecommender,
    )
}


def fit_baselines(data: TrainingData, truth: pl.DataFrame | None = None) -> list[Recommender]:
    """Every baseline with its default config, fitted; the oracle too when a non-empty planted truth is given.

    Parameters
    ----------
    data : the training data.
    truth : the ``planted_truth`` table, or None (real data).

    Returns
    -------
    list of fitted recommenders, in ``BASELINES`` order, then the oracle.
    """
    models: list[Recommender] = [cls().fit(data) for cls in BASELINES.values()]
    if truth is not None and not truth.is_empty():
        models.append(OracleRecommender.from_truth(truth, data.scaler, data.n_users, data.n_videos).fit(data))
    return models
