"""Baselines: the shared contract for each, plus what each one computes, checked by hand on tiny data."""

from __future__ import annotations

import numpy as np
import pytest

from kuairec_pipeline.evaluation.baselines import (
    BASELINES,
    BiasConfig,
    GlobalMeanRecommender,
    OracleRecommender,
    PopularityRecommender,
    RandomConfig,
    RandomRecommender,
    UserMeanRecommender,
    UserVideoBiasRecommender,
    VideoMeanRecommender,
    fit_baselines,
    hashed_uniform,
)
from kuairec_pipeline.models.data import TrainingData
from kuairec_pipeline.target import TargetScaler
from kuairec_pipeline_tests.models.contract import (
    RecommenderContract,
    make_featureless_training_data,
    make_interactions,
    make_planted,
)


class TestGlobalMean(RecommenderContract):
    ranks_videos = False  # one constant for every cell: nothing to rank

    def make_model(self) -> GlobalMeanRecommender:
        return GlobalMeanRecommender()


class TestUserMean(RecommenderContract):
    ranks_videos = False  # the same score for every video of a user: nothing to rank

    def make_model(self) -> UserMeanRecommender:
        return UserMeanRecommender()


class TestVideoMean(RecommenderContract):
    withheld_top_k = 1  # first for every withheld user: the star has the top bias, count and features

    def make_model(self) -> VideoMeanRecommender:
        return VideoMeanRecommender()


class TestUserVideoBias(RecommenderContract):
    withheld_top_k = 1  # first for every withheld user: the star has the top bias, count and features

    def make_model(self) -> UserVideoBiasRecommender:
        return UserVideoBiasRecommender(BiasConfig(l2=2.0))


class TestPopularity(RecommenderContract):
    withheld_top_k = 1  # first for every withheld user: the star has the top bias, count and features

    def make_model(self) -> PopularityRecommender:
        return PopularityRecommender()


class TestRandom(RecommenderContract):
    ranks_videos = False  # random by design: it ranks the withheld video first only by chance

    def make_model(self) -> RandomRecommender:
        return RandomRecommender(RandomConfig(seed=7))


class TestOracle(RecommenderContract):
    # The oracle knows the truth of test-grid cells only; the withheld stars are test cells of their users and
    # every other candidate is either a lesser test cell or scores 0, so it must rank them first for everyone.
    withheld_top_k = 1
    fitted_when_built = True  # built from the truth: there is no unfitted oracle

    def make_model(self) -> OracleRecommender:
        planted = make_planted(**self.planted_kwargs)
        data = planted.data
        return OracleRecommender.from_truth(planted.truth, data.scaler, data.n_users, data.n_videos)


def tiny_data(users, videos, targets, n_users=3, n_videos=3) -> TrainingData:
    """Featureless data whose train targets are exactly ``targets`` (the scaler maps [0, 3] onto [0, 1])."""
    scaler = TargetScaler(0.0, 3.0)
    train = make_interactions(users, videos, np.asarray(targets, dtype=np.float64) * 3.0, scaler)
    return make_featureless_training_data(n_users, n_videos, train, scaler=scaler)


HAND = dict(users=[0, 0, 1, 1, 1], videos=[0, 1, 0, 1, 1], targets=[0.2, 0.4, 0.6, 0.8, 1.0])


def test_global_mean_is_the_train_mean() -> None:
    model = GlobalMeanRecommender().fit(tiny_data(**HAND))
    np.testing.assert_allclose(model.score_all(np.arange(3)), 0.6, atol=1e-7)


def test_user_mean_falls_back_to_the_global_mean() -> None:
    model = UserMeanRecommender().fit(tiny_data(**HAND))
    np.testing.assert_allclose(model.score_all(np.arange(3), np.array([2]))[:, 0], [0.3, 0.8, 0.6], atol=1e-7)


def test_video_mean_falls_back_to_the_global_mean() -> None:
    model = VideoMeanRecommender().fit(tiny_data(**HAND))
    np.testing.assert_allclose(model.score_all(np.array([2]))[0], [0.4, 0.7333333, 0.6], atol=1e-6)


def test_popularity_is_the_count_share_of_the_top_video() -> None:
    model = PopularityRecommender().fit(tiny_data(**HAND))
    np.testing.assert_allclose(model.score_all(np.arange(2)), [[2 / 3, 1, 0]] * 2, atol=1e-7)


def test_bias_model_recovers_exact_additive_biases() -> None:
    rng = np.random.default_rng(0)
    n_users, n_videos = 8, 6
    user_bias, video_bias = rng.uniform(-0.1, 0.1, n_users), rng.uniform(-0.1, 0.1, n_videos)
    users, videos = np.repeat(np.arange(n_users), n_videos), np.tile(np.arange(n_videos), n_users)
    targets = 0.5 + user_bias[users] + video_bias[videos]
    model = UserVideoBiasRecommender(BiasConfig(l2=0.0))
    model.fit(tiny_data(users, videos, targets, n_users, n_videos))
    np.testing.assert_allclose(model.predict(users, videos), targets, atol=1e-5)


def test_bias_regularization_shrinks_toward_the_mean() -> None:
    data = tiny_data(**HAND)
    loose = UserVideoBiasRecommender(BiasConfig(l2=0.0)).fit(data).score_all(np.arange(3))
    tight = UserVideoBiasRecommender(BiasConfig(l2=1e6)).fit(data).score_all(np.arange(3))
    assert np.ptp(tight) < 1e-4 < np.ptp(loose)


def test_random_scores_depend_on_seed_and_cell_only() -> None:
    grid = hashed_uniform(3, np.arange(50), np.arange(40))
    np.testing.assert_array_equal(hashed_uniform(3, np.array([7, 2]), np.array([5])), grid[[7, 2]][:, [5]])
    assert not np.array_equal(grid, hashed_uniform(4, np.arange(50), np.arange(40)))
    assert grid.dtype == np.float32 and 0 <= grid.min() and grid.max() < 1
    assert abs(grid.mean() - 0.5) < 0.02 and np.unique(grid).size > 1900  # looks uniform, few collisions


def test_oracle_scores_the_scaled_truth_and_zero_elsewhere() -> None:
    planted = make_planted()
    data = planted.data
    oracle = OracleRecommender.from_truth(planted.truth, data.scaler, data.n_users, data.n_videos)
    truth = planted.truth
    expected = data.scaler.transform(truth["expected_watch_ratio_le3"].to_numpy())
    np.testing.assert_allclose(
        oracle.predict(truth["user_id"].to_numpy(), truth["video_id"].to_numpy()), expected, atol=1e-6
    )
    outside = np.setdiff1d(np.arange(data.n_videos), planted.prepared.test_videos)
    assert (oracle.score_all(planted.prepared.test_users, outside) == 0).all()


def test_oracle_beats_the_global_mean_on_the_planted_test() -> None:
    planted = make_planted()
    data, test = planted.data, planted.prepared.test
    rows = test.passes_filter
    oracle = OracleRecommender.from_truth(planted.truth, data.scaler, data.n_users, data.n_videos)
    constant = GlobalMeanRecommender().fit(data)

    def rmse(model) -> float:
        error = model.predict(test.user[rows], test.video[rows]) - test.target[rows]
        return float(np.sqrt(np.mean(error.astype(np.float64) ** 2)))

    assert rmse(oracle) < 0.8 * rmse(constant)


def test_oracle_refuses_empty_truth_and_mismatched_data() -> None:
    planted = make_planted()
    data = planted.data
    with pytest.raises(ValueError, match="synthetic twin"):
        OracleRecommender.from_truth(planted.truth.head(0), data.scaler, data.n_users, data.n_videos)
    with pytest.raises(ValueError, match="exceed"):
        OracleRecommender.from_truth(planted.truth, data.scaler, 2, data.n_videos)
    oracle = OracleRecommender.from_truth(planted.truth, data.scaler, data.n_users, data.n_videos + 1)
    with pytest.raises(ValueError, match="oracle built for"):
        oracle.fit(data)


def test_fit_baselines_fits_every_baseline_and_the_oracle_when_truth_is_given() -> None:
    planted = make_planted()
    without = fit_baselines(planted.data)
    assert [m.name for m in without] == list(BASELINES)
    with_truth = fit_baselines(planted.data, planted.truth)
    assert [m.name for m in with_truth] == [*BASELINES, "oracle"]


@pytest.mark.parametrize("bad", [{"l2": -1.0}, {"l2": float("-inf")}])
def test_bias_config_rejects_bad_values(bad: dict) -> None:
    with pytest.raises(ValueError):
        BiasConfig(**bad)
