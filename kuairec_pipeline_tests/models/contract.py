"""The shared contract every Recommender must pass, and the tiny planted dataset it runs on.

Use it as a mixin::

    class TestLinear(RecommenderContract):
        def make_model(self):
            return LinearRecommender(LinearConfig(l2=1.0))

The planted data (``make_planted``) mimics KuaiRec's layout at toy size: a sparse "big matrix" split into train
and val by time, and a dense test grid (the "small matrix") over half the users and half the videos, drawn
separately (a fresh noisy observation of each pair; the big matrix may also hold the pair). Users and videos fall
into latent taste groups; the expected raw watch ratio is

    0.8 + user bias + video bias + 0.6 * [user group == video group]

and every group has one *star* video with a bias far above the rest (+0.9). Stars are shown to every user in the
big matrix, so they are the most watched and best rated videos in train, and their features say so (the
``num_quality`` column tracks the video bias, the first tag is the group's tag). For a quarter of the test users
(the withheld users) the star of their own group is never shown: it is the withheld strong positive. Among the
videos the user was never shown, the planted truth makes it the best by a wide margin (checked when the data is
built), and every signal a model may use points at it: the video's train mean and count, its bias, its features,
and co-watching within the group. Only a few users are withheld so that "not watching your group's star" does not
itself become a pattern a collaborative model learns.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from scipy.stats import norm

from kuairec_pipeline.dataset.schema import MAX_TAGS_PER_VIDEO, NUM_TAGS
from kuairec_pipeline.features.ratios import FILTERED_RATIOS_SCHEMA, selection_user_mask
from kuairec_pipeline.models.base import NAME_KEY, Recommender, decode_json, encode_json
from kuairec_pipeline.models.data import Interactions, PreparedData, TrainingData, build_training_data
from kuairec_pipeline.models.errors import NotFittedError, UnknownIdError
from kuairec_pipeline.target import SPLIT_SELECTION, SPLIT_TEST, SPLIT_TRAIN, SPLIT_VAL, TargetScaler

START_EPOCH = 1_593_561_600.0  # 2020-07-01 00:00 UTC, inside KuaiRec's collection window
DAY = 86_400.0
TRAIN_DAYS, VALIDATION_DAYS = 60, 7
BASE_WATCH_RATIO = 0.8
GROUP_AFFINITY = 0.6  # added when the user's and the video's taste groups match
STAR_BIAS = 0.9  # far above any ordinary video's bias (sd 0.15): the star is each group's best video
NOISE_SD = 0.2
REPLAY_PROBABILITY, REPLAY_SHIFT = 0.05, 2.0  # heavy tail: an occasional replay pushes the ratio past 3
MAX_WATCH_RATIO = 3.0  # the outlier filter of the pipeline
POSITIVE_WATCH_RATIO = 2.0
SELECTION_SHARE = 0.5  # RatioConfig's default: half of the users' validation-window rows form the selection slice


@dataclass(frozen=True)
class PlantedData:
    """A tiny PreparedData plus what was planted in it."""

    prepared: PreparedData  # .training is ``data``; .selection and .test are what no model may see
    truth: pl.DataFrame  # the planted_truth asset's columns, one row per test pair
    expected_watch_ratio: np.ndarray  # float64 (n_users, n_videos): the noiseless planted mean
    user_group: np.ndarray  # int64 (n_users,)
    video_group: np.ndarray  # int64 (n_videos,)
    star_videos: np.ndarray  # int64 (n_groups,): the best video of each group
    withheld_users: np.ndarray  # int64: some test users
    withheld_videos: np.ndarray  # int64: the star of that user's group, never shown to the user in the big matrix
    shown: sp.csr_matrix  # (n_users, n_videos) pairs shown in the big matrix: train, val, or dropped as outliers

    @property
    def data(self) -> TrainingData:
        """What a model is fitted on."""
        return self.prepared.training

    @property
    def train_seen(self) -> sp.csr_matrix:
        return interaction_matrix(self.data.train, self.data.n_users, self.data.n_videos)


def interaction_matrix(rows: Interactions, n_users: int, n_videos: int) -> sp.csr_matrix:
    """Binary (n_users, n_videos) CSR matrix of the pairs in ``rows``."""
    ones = np.ones(len(rows), dtype=np.float32)
    matrix = sp.csr_matrix((ones, (rows.user, rows.video)), shape=(n_users, n_videos))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def _sample_watch_ratio(rng: np.random.Generator, mean: np.ndarray) -> np.ndarray:
    replay = rng.random(mean.shape) < REPLAY_PROBABILITY
    noisy = mean + rng.normal(0.0, NOISE_SD, mean.shape) + REPLAY_SHIFT * replay
    return np.maximum(noisy, 0.0)


def _mixture_truth(mean: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Expected ratio, expected ratio given <= 3, P(ratio > 2) under the two-normal noise (the clip at 0 ignored)."""
    weights = (1.0 - REPLAY_PROBABILITY, REPLAY_PROBABILITY)
    centres = (mean, mean + REPLAY_SHIFT)
    expected = sum(w * c for w, c in zip(weights, centres, strict=False))
    mass_le3 = np.zeros_like(mean)
    sum_le3 = np.zeros_like(mean)
    prob_gt2 = np.zeros_like(mean)
    for weight, centre in zip(weights, centres, strict=False):
        a = (MAX_WATCH_RATIO - centre) / NOISE_SD
        below = norm.cdf(a)
        mass_le3 += weight * below
        sum_le3 += weight * (centre * below - NOISE_SD * norm.pdf(a))  # w * E[X; X <= 3]
        prob_gt2 += weight * norm.sf((POSITIVE_WATCH_RATIO - centre) / NOISE_SD)
    return expected, sum_le3 / mass_le3, prob_gt2


def _minmax(values: np.ndarray) -> np.ndarray:
    return ((values - values.min()) / (values.max() - values.min())).astype(np.float32)


def make_planted(seed: int = 0, n_users: int = 60, n_videos: int = 80, n_groups: int = 3) -> PlantedData:
    """Build the planted dataset (deterministic for ``seed``); see the module docstring for the structure."""
    if n_users < 4 * n_groups or n_videos < 8 * n_groups:
        raise ValueError("need at least 4 users and 8 videos per group")
    rng = np.random.default_rng(seed)
    user_ids = np.arange(n_users)
    test_users = np.sort(rng.choice(n_users, n_users // 2, replace=False))
    is_test_user = np.isin(user_ids, test_users)
    # Groups balanced within the test users and within the others, so every group has users on both sides.
    user_group = np.empty(n_users, dtype=np.int64)
    for side in (is_test_user, ~is_test_user):
        user_group[side] = rng.permutation(np.arange(side.sum()) % n_groups)
    video_group = rng.permutation(np.arange(n_videos) % n_groups).astype(np.int64)
    star_videos = np.array([rng.choice(np.flatnonzero(video_group == g)) for g in range(n_groups)], dtype=np.int64)
    is_star = np.isin(np.arange(n_videos), star_videos)
    ordinary = np.flatnonzero(~is_star)
    test_videos = np.sort(np.concatenate([star_videos, rng.choice(ordinary, ordinary.size // 2, replace=False)]))
    is_test_video = np.isin(np.arange(n_videos), test_videos)

    user_bias = rng.normal(0.0, 0.15, n_users)
    video_bias = rng.normal(0.0, 0.15, n_videos)
    video_bias[star_videos] = STAR_BIAS + 0.05 * np.arange(n_groups)
    aligned = user_group[:, None] == video_group[None, :]
    expected = np.maximum(BASE_WATCH_RATIO + user_bias[:, None] + video_bias[None, :] + GROUP_AFFINITY * aligned, 0.1)

    # Exposure in the "big matrix": taste-driven, stars shown to everyone except the withheld users' own star.
    withheld_users = np.sort(rng.choice(test_users, max(n_groups, test_users.size // 4), replace=False))
    withheld_videos = star_videos[user_group[withheld_users]]
    exposure = np.where(aligned, 0.30, 0.12)
    exposure[:, is_star] = 1.0
    exposed = rng.random((n_users, n_videos)) < exposure
    exposed[withheld_users, withheld_videos] = False
    big_user, big_video = np.nonzero(exposed)
    big_ratio = _sample_watch_ratio(rng, expected[big_user, big_video])
    big_time = START_EPOCH + rng.uniform(0.0, TRAIN_DAYS * DAY, big_user.size)
    kept = big_ratio <= MAX_WATCH_RATIO
    big_user, big_video, big_ratio, big_time = big_user[kept], big_video[kept], big_ratio[kept], big_time[kept]
    in_window = big_time >= START_EPOCH + (TRAIN_DAYS - VALIDATION_DAYS) * DAY
    # The validation window splits by user as filtered_ratios does: the tuning slice and the selection slice.
    is_selection = in_window & selection_user_mask(big_user, SELECTION_SHARE)
    is_val = in_window & ~is_selection
    is_train = ~in_window
    scaler = TargetScaler.fit(big_ratio[is_train])

    test_user, test_video = np.nonzero(is_test_user[:, None] & is_test_video[None, :])
    test_ratio = _sample_watch_ratio(rng, expected[test_user, test_video])

    def interactions(users, videos, ratios, times, passes) -> Interactions:
        return Interactions(
            user=users.astype(np.int32),
            video=videos.astype(np.int32),
            target=scaler.transform(ratios).astype(np.float32),
            watch_ratio=ratios.astype(np.float32),
            timestamp=times.astype(np.float64),
            passes_filter=passes.astype(bool),
        )

    train, val, selection = (
        interactions(big_user[mask], big_video[mask], big_ratio[mask], big_time[mask], np.ones(mask.sum(), bool))
        for mask in (is_train, is_val, is_selection)
    )
    test = interactions(
        test_user, test_video, test_ratio, np.full(test_user.size, np.nan), test_ratio <= MAX_WATCH_RATIO
    )

    # Side features, consistent with what build_training_data produces (0 = padding / unknown).
    noise_category = rng.integers(0, 5, n_users)  # 0 plays the blank one-hot
    user_categorical = np.stack([user_group + 1, noise_category], axis=1).astype(np.int32)
    user_numeric = np.stack([_minmax(user_bias + rng.normal(0.0, 0.03, n_users)), rng.random(n_users)], axis=1).astype(
        np.float32
    )
    authors_per_group = 4
    author = 1 + video_group * authors_per_group + rng.integers(0, authors_per_group, n_videos)
    video_categorical = author[:, None].astype(np.int32)
    video_numeric = np.stack(
        [_minmax(video_bias + rng.normal(0.0, 0.02, n_videos)), rng.random(n_videos)], axis=1
    ).astype(np.float32)
    video_tags = np.zeros((n_videos, MAX_TAGS_PER_VIDEO), dtype=np.int32)
    video_tags[:, 0] = video_group + 1  # tag g is group g's tag (stored as tag + 1)
    n_extra = rng.integers(0, MAX_TAGS_PER_VIDEO, n_videos)
    extra_tags = rng.integers(n_groups, NUM_TAGS, (n_videos, MAX_TAGS_PER_VIDEO - 1)) + 1
    slot = np.arange(MAX_TAGS_PER_VIDEO - 1)[None, :] < n_extra[:, None]
    video_tags[:, 1:] = np.where(slot, extra_tags, 0)
    multi_hot = np.zeros((n_videos, NUM_TAGS), dtype=np.float32)
    rows, cols = np.nonzero(video_tags)
    multi_hot[rows, video_tags[rows, cols] - 1] = 1.0

    data = TrainingData(
        train=train,
        val=val,
        n_users=n_users,
        n_videos=n_videos,
        scaler=scaler,
        user_categorical=user_categorical,
        user_categorical_cardinality=[int(user_categorical[:, i].max()) + 1 for i in range(2)],
        user_numeric=user_numeric,
        video_categorical=video_categorical,
        video_categorical_cardinality=[int(video_categorical.max()) + 1],
        video_numeric=video_numeric,
        video_tags=video_tags,
        video_tag_multi_hot=multi_hot,
        user_categorical_names=["cat_group", "cat_noise"],
        user_numeric_names=["num_activity", "num_noise"],
        video_categorical_names=["cat_author"],
        video_numeric_names=["num_quality", "num_noise"],
    )

    mean, mean_le3, prob_gt2 = _mixture_truth(expected[test_user, test_video])
    truth = pl.DataFrame(
        {
            "user_id": test_user.astype(np.int32),
            "video_id": test_video.astype(np.int32),
            "expected_watch_ratio": mean,
            "expected_watch_ratio_le3": mean_le3,
            "prob_watch_ratio_gt2": prob_gt2,
        }
    )

    shown = sp.csr_matrix(exposed.astype(np.float32))

    # The premise of the withheld test: the star is the user's best remaining video by a wide margin.
    remaining = np.where(exposed[withheld_users], -np.inf, expected[withheld_users])
    best = np.argmax(remaining, axis=1)
    assert np.array_equal(best, withheld_videos), "planted data: withheld star is not the best remaining video"
    return PlantedData(
        PreparedData(data, selection, test),
        truth,
        expected,
        user_group,
        video_group,
        star_videos,
        withheld_users.astype(np.int64),
        withheld_videos.astype(np.int64),
        shown,
    )


def make_interactions(users, videos, watch_ratio, scaler: TargetScaler, passes_filter=None) -> Interactions:
    """Interactions from plain lists (target = scaled watch ratio; timestamps NaN), for hand-made test data."""
    watch_ratio = np.asarray(watch_ratio, dtype=np.float32)
    return Interactions(
        user=np.asarray(users, dtype=np.int32),
        video=np.asarray(videos, dtype=np.int32),
        target=scaler.transform(watch_ratio).astype(np.float32),
        watch_ratio=watch_ratio,
        timestamp=np.full(watch_ratio.size, np.nan),
        passes_filter=(
            np.ones(watch_ratio.size, bool) if passes_filter is None else np.asarray(passes_filter, dtype=bool)
        ),
    )


def empty_like(rows: Interactions) -> Interactions:
    return Interactions(
        *(getattr(rows, name)[:0] for name in ("user", "video", "target", "watch_ratio", "timestamp", "passes_filter"))
    )


def _split_frame(rows: Interactions, split: str) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "user_id": rows.user.astype(np.int32),
            "video_id": rows.video.astype(np.int32),
            "timestamp": rows.timestamp.astype(np.float64),
            "watch_ratio": rows.watch_ratio.astype(np.float64),
            "target": rows.target.astype(np.float32),
            "split": [split] * len(rows),
            "passes_filter": rows.passes_filter.astype(bool),
        },
        schema=dict(FILTERED_RATIOS_SCHEMA),
    )


def planted_tables(planted: PlantedData) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The planted data as the three prepared tables (``filtered_ratios``, ``user_features``, ``video_features``)
    from which ``build_prepared_data`` rebuilds ``planted.prepared``."""
    data, prepared = planted.data, planted.prepared
    ratios = pl.concat(
        [
            _split_frame(data.train, SPLIT_TRAIN),
            _split_frame(data.val, SPLIT_VAL),
            _split_frame(prepared.selection, SPLIT_SELECTION),
            _split_frame(prepared.test, SPLIT_TEST),
        ]
    )
    users = pl.DataFrame(
        {
            "user_id": np.arange(data.n_users, dtype=np.int32),
            **{name: data.user_categorical[:, i] for i, name in enumerate(data.user_categorical_names)},
            **{name: data.user_numeric[:, i] for i, name in enumerate(data.user_numeric_names)},
        }
    )
    videos = pl.DataFrame(
        {
            "video_id": np.arange(data.n_videos, dtype=np.int32),
            "tag_ids": pl.Series(data.video_tags.tolist(), dtype=pl.List(pl.Int32)),
            "tag_multi_hot": pl.Series(data.video_tag_multi_hot.tolist(), dtype=pl.List(pl.Float32)),
            **{name: data.video_categorical[:, i] for i, name in enumerate(data.video_categorical_names)},
            **{name: data.video_numeric[:, i] for i, name in enumerate(data.video_numeric_names)},
        }
    )
    return ratios, users, videos


def scramble_held_out_targets(filtered_ratios: pl.DataFrame, seed: int = 0) -> pl.DataFrame:
    """The table with every selection and test row's watch ratio (and so target) replaced by a random draw."""
    held_out = pl.col("split").is_in([SPLIT_SELECTION, SPLIT_TEST])
    rng = np.random.default_rng(seed)
    fresh = pl.Series(rng.uniform(0.0, MAX_WATCH_RATIO, filtered_ratios.height))
    scaler = TargetScaler.from_filtered_ratios(filtered_ratios)
    return filtered_ratios.with_columns(
        watch_ratio=pl.when(held_out).then(fresh).otherwise(pl.col("watch_ratio"))
    ).with_columns(target=pl.when(held_out).then(scaler.transform_expr().cast(pl.Float32)).otherwise(pl.col("target")))


def make_featureless_prepared_data(
    n_users: int,
    n_videos: int,
    train: Interactions,
    test: Interactions | None = None,
    val: Interactions | None = None,
    selection: Interactions | None = None,
    scaler: TargetScaler | None = None,
) -> PreparedData:
    """:func:`make_featureless_training_data` with the selection and test slices (empty unless given)."""
    return PreparedData(
        make_featureless_training_data(n_users, n_videos, train, val, scaler),
        selection if selection is not None else empty_like(train),
        test if test is not None else empty_like(train),
    )


def make_featureless_training_data(
    n_users: int,
    n_videos: int,
    train: Interactions,
    val: Interactions | None = None,
    scaler: TargetScaler | None = None,
) -> TrainingData:
    """A hand-made TrainingData with no side features (and the 4-slot / 31-tag shapes), for exact unit tests."""
    return TrainingData(
        train=train,
        val=val if val is not None else empty_like(train),
        n_users=n_users,
        n_videos=n_videos,
        scaler=scaler or TargetScaler(0.0, 3.0),
        user_categorical=np.zeros((n_users, 0), np.int32),
        user_categorical_cardinality=[],
        user_numeric=np.zeros((n_users, 0), np.float32),
        video_categorical=np.zeros((n_videos, 0), np.int32),
        video_categorical_cardinality=[],
        video_numeric=np.zeros((n_videos, 0), np.float32),
        video_tags=np.zeros((n_videos, MAX_TAGS_PER_VIDEO), np.int32),
        video_tag_multi_hot=np.zeros((n_videos, NUM_TAGS), np.float32),
    )


def make_planted_training_data(seed: int = 0, n_users: int = 60, n_videos: int = 80, n_groups: int = 3) -> TrainingData:
    """Just the TrainingData of :func:`make_planted`."""
    return make_planted(seed, n_users, n_videos, n_groups).data


class RecommenderContract:
    """Mix into a test class and implement :meth:`make_model`; every test here then runs against that model.

    Tolerances (class attributes a model may relax, saying why in its test class):
    - ``withheld_top_k`` / ``withheld_min_first_rate``: the withheld strong positive must be within the top
      ``withheld_top_k`` (default 3) for *every* withheld user and first for at least ``withheld_min_first_rate``
      (default 0.75) of them, with every video shown to the user in the big matrix excluded. There are 7 withheld
      users on the default data: the default lets a model trained on ~800 noisy rows put a close in-group video
      first for one of them. Deterministic models that rank by the star's bias should set
      ``withheld_top_k = 1`` (first for every user).
    - ``ranks_videos = False``: the model gives every video the same score for a user (global or user mean) or a
      random one, so no ranking can be asked of it; the withheld test is skipped, all others still run.
    - ``fitted_when_built = True``: the constructor already gives learned state (the oracle), so there is no
      unfitted model to check for :class:`NotFittedError`.
    - ``cell_atol``: predict vs score_all cells may differ by float rounding when a model's scoring uses matrix
      products whose kernel depends on the batch shape (default 1e-6). Round trips and reseeded fits must match
      exactly.
    """

    fit_kwargs: ClassVar[dict[str, Any]] = {}
    planted_kwargs: ClassVar[dict[str, Any]] = {}
    ranks_videos: ClassVar[bool] = True
    withheld_top_k: ClassVar[int] = 3
    withheld_min_first_rate: ClassVar[float] = 0.75
    cell_atol: ClassVar[float] = 1e-6
    fitted_when_built: ClassVar[bool] = False

    def make_model(self) -> Recommender:
        raise NotImplementedError("a contract test class returns a fresh, unfitted model here")

    def fit_model(self, data: TrainingData) -> Recommender:
        model = self.make_model()
        fitted = model.fit(data, **self.fit_kwargs)
        assert fitted is model, "fit must return self"
        return fitted

    # Class-scoped fixtures are classmethods: pytest runs them once per class, on no test's instance (an instance
    # method here is deprecated, and pytest 10 refuses it). ``cls()`` is a throwaway instance for make_model.
    @pytest.fixture(scope="class")
    @classmethod
    def planted(cls) -> PlantedData:
        return make_planted(**cls.planted_kwargs)

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls, planted: PlantedData) -> Recommender:
        return cls().fit_model(planted.data)

    # ---- fit and score ------------------------------------------------------------------------------------------
    def test_has_a_name_and_sizes(self, fitted: Recommender, planted: PlantedData) -> None:
        assert isinstance(type(fitted).name, str) and type(fitted).name
        assert (fitted.n_users, fitted.n_videos) == (planted.data.n_users, planted.data.n_videos)

    def test_score_all_shape_dtype_range(self, fitted: Recommender, planted: PlantedData) -> None:
        data = planted.prepared
        every = fitted.score_all(np.arange(data.n_users))
        assert every.shape == (data.n_users, data.n_videos)
        subset = fitted.score_all(data.test_users, data.test_videos)
        assert subset.shape == (data.test_users.size, data.test_videos.size)
        for scores in (every, subset):
            assert scores.dtype == np.float32
            assert np.isfinite(scores).all()
            assert scores.min() >= 0.0 and scores.max() <= 1.0
        np.testing.assert_allclose(
            subset, every[np.ix_(data.test_users, data.test_videos)], rtol=0, atol=self.cell_atol
        )

    def test_predict_agrees_with_score_all(self, fitted: Recommender, planted: PlantedData) -> None:
        data = planted.prepared
        shuffled = np.random.default_rng(1).permutation(len(data.test))
        users, videos = data.test.user[shuffled], data.test.video[shuffled]
        predicted = fitted.predict(users, videos)
        assert predicted.dtype == np.float32 and predicted.shape == users.shape
        grid = fitted.score_all(data.test_users, data.test_videos)
        cells = grid[np.searchsorted(data.test_users, users), np.searchsorted(data.test_videos, videos)]
        np.testing.assert_allclose(predicted, cells, rtol=0, atol=self.cell_atol)

    # ---- recommend ----------------------------------------------------------------------------------------------
    def test_withheld_strong_positive_ranks_first(self, fitted: Recommender, planted: PlantedData) -> None:
        if not self.ranks_videos:
            pytest.skip(f"{type(fitted).name} gives no per-video ranking by design")
        ids, _ = fitted.recommend(planted.withheld_users, k=self.withheld_top_k, exclude=planted.shown)
        first = ids[:, 0] == planted.withheld_videos
        in_top = (ids == planted.withheld_videos[:, None]).any(axis=1)
        missed = planted.withheld_users[~in_top].tolist()
        assert in_top.all(), f"withheld positive outside the top {self.withheld_top_k} for users {missed}"
        assert first.mean() >= self.withheld_min_first_rate, f"first for only {first.mean():.0%} of users"

    def test_seen_videos_are_excluded(self, fitted: Recommender, planted: PlantedData) -> None:
        data = planted.prepared
        seen = planted.train_seen
        users = np.arange(data.n_users)
        k = data.n_videos - int(seen.sum(axis=1).max())  # every user has at least k unseen videos
        ids, scores = fitted.recommend(users, k=k, exclude=seen)
        assert ids.shape == scores.shape == (users.size, k)
        assert ids.dtype == np.int32 and scores.dtype == np.float32
        assert not seen[np.repeat(users, k), ids.ravel()].any(), "a seen video was recommended"
        assert (np.diff(scores, axis=1) <= 0).all(), "recommendations are not sorted best first"
        assert (np.diff(np.sort(ids, axis=1), axis=1) != 0).all(), "a video recommended twice"

        restricted, _ = fitted.recommend(data.test_users, k=5, exclude=seen, video_ids=data.test_videos)
        assert np.isin(restricted, data.test_videos).all()
        assert not seen[np.repeat(data.test_users, 5), restricted.ravel()].any()

    def test_explicit_zeros_in_exclude_are_not_seen(self, fitted: Recommender, planted: PlantedData) -> None:
        users = planted.prepared.test_users[:3]
        best, _ = fitted.recommend(users, k=1)
        stored_zeros = sp.csr_matrix(
            (np.zeros(users.size), (users, best[:, 0])), shape=(planted.data.n_users, planted.data.n_videos)
        )
        assert stored_zeros.nnz == users.size
        again, _ = fitted.recommend(users, k=1, exclude=stored_zeros)
        np.testing.assert_array_equal(again, best)

    def test_recommend_scores_are_score_all_scores(self, fitted: Recommender, planted: PlantedData) -> None:
        users = planted.prepared.test_users[:5]
        ids, scores = fitted.recommend(users, k=10)
        grid = fitted.score_all(users)
        np.testing.assert_allclose(
            scores, np.take_along_axis(grid, ids.astype(np.int64), axis=1), rtol=0, atol=self.cell_atol
        )
        # Best first: nothing outside the top 10 scores above the 10th.
        assert (grid.max(axis=1) <= scores[:, 0] + self.cell_atol).all()

    def test_recommend_pads_with_minus_inf_when_too_few_candidates_remain(
        self, fitted: Recommender, planted: PlantedData
    ) -> None:
        n_users, n_videos = planted.data.n_users, planted.data.n_videos
        users = np.arange(4)
        left = np.array([3, 17])  # the only unexcluded videos of every user
        seen = np.ones((n_users, n_videos), dtype=np.float32)
        seen[:, left] = 0
        exclude = sp.csr_matrix(seen)
        ids, scores = fitted.recommend(users, k=5, exclude=exclude)
        assert ids.shape == scores.shape == (users.size, 5)
        np.testing.assert_array_equal(np.sort(ids[:, :2], axis=1), np.tile(left, (users.size, 1)))
        assert np.isfinite(scores[:, :2]).all()
        assert (scores[:, 2:] == -np.inf).all(), "the padding of a short row must score -inf"
        assert np.isin(ids[:, 2:], left, invert=True).all(), "padding holds excluded videos only"

    # ---- ids outside the model's range -------------------------------------------------------------------------
    def test_unknown_or_negative_user_ids_raise(self, fitted: Recommender, planted: PlantedData) -> None:
        n_users = planted.data.n_users
        for bad in (-1, n_users, n_users + 5):
            message = rf"user id\(s\) {bad}\b.*0\.\.{n_users - 1}"
            with pytest.raises(UnknownIdError, match=message):
                fitted.score_all(np.array([0, bad]))
            with pytest.raises(UnknownIdError, match=message):
                fitted.predict(np.array([bad, 0]), np.array([0, 0]))
            with pytest.raises(UnknownIdError, match=message):
                fitted.recommend(np.array([bad]), k=3)
        assert issubclass(UnknownIdError, IndexError)

    def test_unknown_or_negative_video_ids_raise(self, fitted: Recommender, planted: PlantedData) -> None:
        n_videos = planted.data.n_videos
        for bad in (-1, n_videos):
            message = rf"video id\(s\) {bad}\b.*0\.\.{n_videos - 1}"
            with pytest.raises(UnknownIdError, match=message):
                fitted.score_all(np.array([0]), np.array([bad, 1]))
            with pytest.raises(UnknownIdError, match=message):
                fitted.predict(np.array([0, 1]), np.array([1, bad]))
            with pytest.raises(UnknownIdError, match=message):
                fitted.recommend(np.array([0]), k=1, video_ids=np.array([0, bad]))

    def test_unfitted_model_raises_not_fitted(self, planted: PlantedData) -> None:
        model = self.make_model()
        if self.fitted_when_built:  # no unfitted state exists: the fresh model must already score
            assert model.score_all(np.array([0])).shape == (1, planted.data.n_videos)
            return
        name = type(model).__name__
        with pytest.raises(NotFittedError, match=f"{name} is not fitted"):
            model.score_all(np.array([0]))
        with pytest.raises(NotFittedError, match=f"{name} is not fitted"):
            model.to_arrays()
        assert issubclass(NotFittedError, RuntimeError)

    # ---- the type boundary: what fit receives ------------------------------------------------------------------
    def test_scrambled_test_and_selection_targets_change_no_fitted_model(self, planted: PlantedData) -> None:
        tables = planted_tables(planted)
        scrambled = scramble_held_out_targets(tables[0])
        held_out = pl.col("split").is_in([SPLIT_SELECTION, SPLIT_TEST])
        changed = (tables[0].filter(held_out)["target"] != scrambled.filter(held_out)["target"]).mean()
        assert changed > 0.9, "the scramble must change the held-out targets for this test to mean anything"
        assert tables[0].filter(~held_out).equals(scrambled.filter(~held_out))
        original = self.fit_model(build_training_data(*tables)).bundle()
        again = self.fit_model(build_training_data(scrambled, *tables[1:])).bundle()
        assert original.keys() == again.keys()
        for key in original:
            np.testing.assert_array_equal(again[key], original[key], err_msg=f"bundle array {key!r} changed")

    # ---- determinism and persistence ----------------------------------------------------------------------------
    def test_same_seed_same_scores(self, fitted: Recommender, planted: PlantedData) -> None:
        again = self.fit_model(planted.data)
        users = np.arange(planted.data.n_users)
        np.testing.assert_array_equal(again.score_all(users), fitted.score_all(users))

    def test_bundle_round_trip(self, fitted: Recommender, planted: PlantedData) -> None:
        bundle = fitted.bundle()
        assert all(isinstance(v, np.ndarray) and v.dtype.kind != "O" for v in bundle.values())
        restored = type(fitted).from_bundle(bundle)
        # Compared as stored (JSON): a tuple field comes back as a list unless from_arrays converts it.
        assert decode_json(encode_json(restored.config_dict())) == decode_json(encode_json(fitted.config_dict()))
        users = np.arange(planted.data.n_users)
        np.testing.assert_array_equal(restored.score_all(users), fitted.score_all(users))

    def test_bundle_restores_to_the_same_bundle(self, fitted: Recommender) -> None:
        # from_bundle -> from_arrays must rebuild every stored array, so a restored model saves what it read.
        bundle = fitted.bundle()
        again = type(fitted).from_bundle(bundle).bundle()
        assert again.keys() == bundle.keys()
        for key, value in bundle.items():
            assert again[key].dtype == value.dtype, f"bundle array {key!r} changed dtype"
            np.testing.assert_array_equal(again[key], value, err_msg=f"bundle array {key!r} changed")

    def test_bundle_of_another_model_is_refused(self, fitted: Recommender) -> None:
        bundle = fitted.bundle()
        bundle[NAME_KEY] = encode_json("not_" + type(fitted).name)
        with pytest.raises(ValueError, match="not_"):
            type(fitted).from_bundle(bundle)

    def test_save_load_round_trip(self, fitted: Recommender, planted: PlantedData, tmp_path: Path) -> None:
        path = fitted.save(tmp_path / "model.npz")
        assert path.exists()
        restored = type(fitted).load(path)
        users = np.arange(planted.data.n_users)
        np.testing.assert_array_equal(restored.score_all(users), fitted.score_all(users))
