"""Synthetic TrainingData shaped like KuaiRec's full profile, generated directly with NumPy.

Benchmarks measure speed, so they must not wait for (or depend on) the dataset and feature modules. The arrays
still carry a planted signal (biases, low-rank taste, feature effects), so a quick quality sanity check on them
is meaningful, but this is not the calibrated synthetic twin: use the pipeline for quality figures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from kuairec_pipeline.models.data import Interactions, TrainingData
from kuairec_pipeline.target import TargetScaler

NUM_TAGS = 31
MAX_TAGS = 4
# The real user_features.csv layout after the features step: active degree, three flags and onehot_feat0..17 (ids
# + 1, 0 = blank), with the cardinalities the pipeline derives from them.
USER_CATEGORICAL_CARDINALITY = [4, 2, 3, 3, 3, 8, 28, 1073, 12, 7, 4, 48, 341, 8, 6, 4, 3, 3, 3, 3, 3, 3]
USER_NUMERIC_COLUMNS = 3  # register days, train mean target, train log count
AUTHORS = 7_000
MAX_WATCH_RATIO = 3.0


@dataclass(frozen=True)
class Sizes:
    n_users: int
    n_videos: int
    train_rows: int
    val_rows: int
    test_users: int
    test_videos: int

    @classmethod
    def full(cls) -> Sizes:
        """KuaiRec 2.0 at real scale: ~11 M train rows after the 7-day validation split, ~10 M distinct pairs."""
        return cls(7_176, 10_728, 11_000_000, 1_200_000, 300, 500)

    def scaled(self, scale: float) -> Sizes:
        """Users and videos times ``scale``, rows times ``scale**2``: the matrix keeps its density."""
        return Sizes(
            max(8, round(self.n_users * scale)),
            max(8, round(self.n_videos * scale)),
            max(100, round(self.train_rows * scale * scale)),
            max(20, round(self.val_rows * scale * scale)),
            max(4, round(self.test_users * scale)),
            max(4, round(self.test_videos * scale)),
        )


def synthetic_training_data(sizes: Sizes | None = None, seed: int = 0, latent_dim: int = 16) -> TrainingData:
    sizes = sizes or Sizes.full()
    rng = np.random.default_rng(seed)
    n_users, n_videos = sizes.n_users, sizes.n_videos

    user_categorical = np.stack(
        [rng.integers(0, cardinality, n_users) for cardinality in USER_CATEGORICAL_CARDINALITY], axis=1
    ).astype(np.int32)
    user_numeric = rng.random((n_users, USER_NUMERIC_COLUMNS), dtype=np.float32)
    author = rng.integers(1, AUTHORS, n_videos).astype(np.int32)
    tag_count = rng.integers(1, MAX_TAGS + 1, n_videos)
    video_tags = np.zeros((n_videos, MAX_TAGS), dtype=np.int32)
    for slot in range(MAX_TAGS):
        present = slot < tag_count
        video_tags[present, slot] = rng.integers(1, NUM_TAGS + 1, int(present.sum()))
    multi_hot = np.zeros((n_videos, NUM_TAGS), dtype=np.float32)
    rows, slots = np.nonzero(video_tags)
    multi_hot[rows, video_tags[rows, slots] - 1] = 1.0
    duration = rng.random(n_videos, dtype=np.float32)

    # Planted expected target: biases + low-rank taste + a user-segment x tag effect + a duration effect.
    user_bias = rng.normal(0, 0.4, n_users)
    video_bias = rng.normal(0, 0.5, n_videos)
    user_latent = rng.normal(0, 1 / np.sqrt(latent_dim), (n_users, latent_dim))
    video_latent = rng.normal(0, 1 / np.sqrt(latent_dim), (n_videos, latent_dim))
    segment_tag = rng.normal(0, 0.3, (USER_CATEGORICAL_CARDINALITY[0], NUM_TAGS))

    def expected(users: np.ndarray, videos: np.ndarray) -> np.ndarray:
        out = np.empty(users.size)
        for first in range(0, users.size, 1_000_000):
            u, v = users[first : first + 1_000_000], videos[first : first + 1_000_000]
            taste = np.einsum("ij,ij->i", user_latent[u], video_latent[v])
            segment = (segment_tag[user_categorical[u, 0]] * multi_hot[v]).sum(axis=1)
            logit = -0.9 + user_bias[u] + video_bias[v] + 0.8 * taste + segment - 0.6 * duration[v]
            out[first : first + 1_000_000] = 1 / (1 + np.exp(-logit))
        return out

    # Exposure: users uniform, videos popularity-skewed (log-normal weights), repeats allowed like big_matrix.
    popularity = rng.lognormal(0, 1.0, n_videos)
    popularity /= popularity.sum()

    def interactions(n_rows: int, start: float, end: float) -> Interactions:
        users = rng.integers(0, n_users, n_rows).astype(np.int32)
        videos = rng.choice(n_videos, size=n_rows, p=popularity).astype(np.int32)
        target = np.clip(expected(users, videos) + rng.normal(0, 0.12, n_rows), 0.0, 1.0).astype(np.float32)
        watch_ratio = (target * MAX_WATCH_RATIO).astype(np.float32)
        return Interactions(
            user=users,
            video=videos,
            target=target,
            watch_ratio=watch_ratio,
            timestamp=np.sort(rng.uniform(start, end, n_rows)),
            passes_filter=np.ones(n_rows, dtype=bool),
        )

    day = 86_400.0
    epoch = 1_593_000_000.0
    train = interactions(sizes.train_rows, epoch, epoch + 54 * day)
    val = interactions(sizes.val_rows, epoch + 54 * day, epoch + 61 * day)

    # Train-only average target per video (no leakage), as the video features asset provides it.
    sums = np.bincount(train.video, weights=train.target, minlength=n_videos)
    counts = np.bincount(train.video, minlength=n_videos)
    average = np.where(counts > 0, sums / np.maximum(counts, 1), train.target.mean()).astype(np.float32)
    log_count = np.log1p(counts) / np.log1p(max(1, counts.max()))
    video_numeric = np.stack([duration, average, log_count], axis=1).astype(np.float32)

    return TrainingData(
        train=train,
        val=val,
        n_users=n_users,
        n_videos=n_videos,
        scaler=TargetScaler(0.0, MAX_WATCH_RATIO),
        user_categorical=user_categorical,
        user_categorical_cardinality=list(USER_CATEGORICAL_CARDINALITY),
        user_numeric=user_numeric,
        video_categorical=author[:, None],
        video_categorical_cardinality=[AUTHORS],
        video_numeric=video_numeric,
        video_tags=video_tags,
        video_tag_multi_hot=multi_hot,
        user_categorical_names=[f"cat_{i}" for i in range(len(USER_CATEGORICAL_CARDINALITY))],
        user_numeric_names=[f"num_{i}" for i in range(USER_NUMERIC_COLUMNS)],
        video_categorical_names=["cat_author_id"],
        video_numeric_names=["num_log_duration", "num_train_mean_target", "num_train_log_count"],
    )


def timed_training_data(scale: float, seed: int = 0) -> TrainingData:
    """Build the data at ``scale`` of the full profile and print how long it took and how big it is."""
    started = time.perf_counter()
    data = synthetic_training_data(Sizes.full().scaled(scale), seed=seed)
    print(
        f"data: {data.n_users:,} users x {data.n_videos:,} videos, {len(data.train):,} train rows, "
        f"{len(data.val):,} val rows (built in {time.perf_counter() - started:.1f} s)"
    )
    return data
