"""LinearRecommender: the shared contract, plus the ridge solve checked against a dense solution."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp

from kuairec_pipeline.models.linear import (
    LinearConfig,
    LinearRecommender,
    one_hot_blocks,
    solve_ridge,
    taste_design,
    user_design,
    video_design,
)
from kuairec_pipeline.models.taste import per_user_ridge, video_taste_features
from kuairec_pipeline_tests.models.contract import RecommenderContract, make_planted, make_planted_training_data


class TestLinear(RecommenderContract):
    withheld_top_k = 1  # first for every withheld user: the star has the top bias, count and features

    def make_model(self) -> LinearRecommender:
        return LinearRecommender(LinearConfig(l2=1.0))


def test_one_hot_blocks_offsets_each_column() -> None:
    matrix = one_hot_blocks(np.array([[0, 2], [1, 0]]), [2, 3]).toarray()
    np.testing.assert_array_equal(matrix, [[1, 0, 0, 0, 1], [0, 1, 1, 0, 0]])


def test_ridge_solution_matches_the_dense_normal_equations() -> None:
    data = make_planted_training_data(seed=3)
    config = LinearConfig(l2=2.5, tol=1e-12)
    users_x, videos_x = user_design(data, config), video_design(data, config)
    users, videos = data.train.user.astype(np.int64), data.train.video.astype(np.int64)
    w_user, w_video, intercept, _ = solve_ridge(users_x, videos_x, users, videos, data.train.target, config)

    design = sp.hstack([users_x[users], videos_x[videos], np.ones((users.size, 1))]).toarray()
    penalty = np.full(design.shape[1], config.l2)
    penalty[-1] = 0.0  # the intercept is not penalized
    expected = np.linalg.solve(design.T @ design + np.diag(penalty), design.T @ data.train.target.astype(np.float64))
    np.testing.assert_allclose(np.concatenate([w_user, w_video, [intercept]]), expected, atol=1e-6)


def test_without_taste_scores_are_the_outer_sum_of_user_and_video_parts() -> None:
    data = make_planted_training_data()
    model = LinearRecommender(LinearConfig(l2=1.0, taste_l2=None, residual_rank=0)).fit(data)
    users, videos = np.array([3, 0, 7]), np.array([5, 1])
    config = model.config
    raw = (
        (user_design(data, config) @ model.user_weights)[users][:, None]
        + (video_design(data, config) @ model.video_weights)[videos][None, :]
        + model.intercept
    )
    np.testing.assert_allclose(model.score_all(users, videos), np.clip(raw, 0, 1), atol=1e-6)


def test_features_beat_the_global_mean_on_validation() -> None:
    data = make_planted_training_data()
    model = LinearRecommender(LinearConfig(l2=1.0)).fit(data)
    model_rmse = np.sqrt(np.mean((model.predict(data.val.user, data.val.video) - data.val.target) ** 2))
    constant_rmse = np.sqrt(np.mean((data.train.target.mean() - data.val.target) ** 2))
    assert model_rmse < 0.9 * constant_rmse


def test_switching_every_feature_off_leaves_the_mean() -> None:
    data = make_planted_training_data()
    off = LinearConfig(
        use_user_categorical=False,
        use_user_numeric=False,
        use_video_categorical=False,
        use_video_tags=False,
        use_video_numeric=False,
        taste_l2=None,
        residual_rank=0,
    )
    model = LinearRecommender(off).fit(data)
    np.testing.assert_allclose(model.score_all(np.arange(4)), data.train.target.mean(), atol=1e-6)


def test_taste_adds_each_users_ridge_coefficients_on_the_video_features() -> None:
    data = make_planted_training_data()
    model = LinearRecommender(LinearConfig(l2=1.0, taste_l2=5.0, residual_rank=0)).fit(data)
    users, videos = np.array([3, 0, 7]), np.array([5, 1, 9])
    design = taste_design(data)
    raw = (
        model.user_part[users][:, None]
        + model.video_part[videos][None, :]
        + model.user_taste[users].astype(np.float64) @ design[videos].T
    )
    np.testing.assert_allclose(model.score_all(users, videos), np.clip(raw, 0, 1), atol=1e-5)
    # personal: two users no longer rank the videos alike (the additive stage alone would)
    scores = model.score_all(np.arange(data.n_users))
    assert len({tuple(np.argsort(-row)[:3]) for row in scores}) > 1


def test_taste_lowers_validation_error_on_the_planted_group_affinity() -> None:
    # The planted data's personal part is the user-group x video-group affinity, which the group tag carries.
    data = make_planted_training_data()

    def val_rmse(config: LinearConfig) -> float:
        model = LinearRecommender(config).fit(data)
        return float(np.sqrt(np.mean((model.predict(data.val.user, data.val.video) - data.val.target) ** 2)))

    assert val_rmse(LinearConfig(l2=1.0, taste_l2=5.0, residual_rank=0)) < 0.95 * val_rmse(
        LinearConfig(l2=1.0, taste_l2=None, residual_rank=0)
    )


def test_per_user_ridge_matches_each_users_dense_solve() -> None:
    rng = np.random.default_rng(0)
    n_users, n_videos, d = 5, 12, 3
    weights = sp.random(n_users, n_videos, density=0.5, random_state=1, format="csr")
    weights.data = rng.integers(1, 3, weights.data.size).astype(float)
    residual = weights.copy()
    residual.data = rng.normal(size=residual.data.size)
    features = rng.normal(size=(n_videos, d))
    penalty = np.array([0.5, 2.0, 8.0])
    got = per_user_ridge(weights, weights.multiply(residual).tocsr(), features, penalty)
    for user in range(n_users):
        w = weights[user].toarray().ravel()
        r = residual[user].toarray().ravel()
        expected = np.linalg.solve(features.T @ (w[:, None] * features) + np.diag(penalty), features.T @ (w * r))
        np.testing.assert_allclose(got[user], expected, atol=1e-10)


def test_per_user_ridge_rejects_a_non_positive_penalty() -> None:
    with pytest.raises(ValueError, match="l2 must be > 0"):
        per_user_ridge(sp.csr_matrix((2, 3)), sp.csr_matrix((2, 3)), np.ones((3, 2)), 0.0)


def test_video_taste_features_scale_tags_to_sum_one() -> None:
    features = video_taste_features(np.array([[1, 1, 0], [0, 0, 0]], dtype=np.float32), np.array([[0.5], [1.0]]))
    np.testing.assert_allclose(features, [[0.5, 0.5, 0, 0.5], [0, 0, 0, 1.0]])


@pytest.mark.parametrize("bad", [{"l2": 0.0}, {"max_iter": 0}, {"tol": 0.0}, {"taste_l2": 0.0}])
def test_config_rejects_bad_values(bad: dict) -> None:
    with pytest.raises(ValueError):
        LinearConfig(**bad)


def test_unfitted_model_refuses_to_score() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        LinearRecommender().score_all(np.arange(2))


def _featureless(data):
    """``data`` with every side feature zeroed: only the collaborative (who watched what) signal is left."""
    zeroed = (
        "video_tag_multi_hot",
        "video_tags",
        "video_categorical",
        "video_numeric",
        "user_categorical",
        "user_numeric",
    )
    return dataclasses.replace(data, **{name: np.zeros_like(getattr(data, name)) for name in zeroed})


def test_stage_three_learns_the_planted_groups_no_feature_shows() -> None:
    """The planted user x video group affinity is latent once the features are zeroed: stage 3's factors recover
    it, measured on the held-out test pairs against the planted mean (not on the val rows its scale was fitted on)."""
    planted = make_planted()
    data = _featureless(planted.data)
    test = planted.prepared.test
    truth = planted.expected_watch_ratio[test.user, test.video]

    def test_error(rank: int) -> tuple[float, LinearRecommender]:
        model = LinearRecommender(LinearConfig(l2=1.0, taste_l2=None, residual_rank=rank, residual_l2=3.0)).fit(data)
        predicted = data.scaler.inverse(model.predict(test.user, test.video))
        return float(np.sqrt(np.mean((predicted - truth) ** 2))), model

    without, _ = test_error(0)
    with_factors, model = test_error(4)
    assert with_factors < 0.9 * without, (with_factors, without)
    assert model.residual_scale > 0.5 and model.training_metadata()["residual_scale"] > 0.5
    assert model.user_taste.shape == (data.n_users, 4) and model.video_taste.shape == (data.n_videos, 4)
    restored = LinearRecommender.from_arrays(model.to_arrays())
    assert restored.residual_scale == model.residual_scale


def test_stage_three_scale_is_fitted_on_val_and_never_negative() -> None:
    data = _featureless(make_planted_training_data())
    config = LinearConfig(l2=1.0, taste_l2=None, residual_rank=4, residual_l2=3.0)
    fitted = LinearRecommender(config).fit(data)
    # val targets that run against the factors: the least-squares scale would be negative, so it is 0 (stage off)
    flipped = dataclasses.replace(data, val=dataclasses.replace(data.val, target=1.0 - data.val.target))
    off = LinearRecommender(config).fit(flipped)
    assert fitted.residual_scale > 0 and off.residual_scale == 0.0
    users = np.arange(data.n_users)
    stage_two_only = LinearRecommender(dataclasses.replace(config, residual_rank=0)).fit(flipped)
    np.testing.assert_allclose(off.score_all(users), stage_two_only.score_all(users), atol=1e-6)
