"""LinearRecommender: the shared contract, plus the ridge solve checked against a dense solution."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from kuairec_pipeline.models.linear import (
    LinearConfig,
    LinearRecommender,
    one_hot_blocks,
    solve_ridge,
    user_design,
    video_design,
)
from kuairec_pipeline_tests.models.contract import RecommenderContract, make_planted_training_data


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


def test_scores_are_the_outer_sum_of_user_and_video_parts() -> None:
    data = make_planted_training_data()
    model = LinearRecommender(LinearConfig(l2=1.0)).fit(data)
    users, videos = np.array([3, 0, 7]), np.array([5, 1])
    config = model.config
    raw = (user_design(data, config) @ model.user_weights)[users][:, None] \
        + (video_design(data, config) @ model.video_weights)[videos][None, :] + model.intercept
    np.testing.assert_allclose(model.score_all(users, videos), np.clip(raw, 0, 1), atol=1e-6)


def test_features_beat_the_global_mean_on_validation() -> None:
    data = make_planted_training_data()
    model = LinearRecommender(LinearConfig(l2=1.0)).fit(data)
    model_rmse = np.sqrt(np.mean((model.predict(data.val.user, data.val.video) - data.val.target) ** 2))
    constant_rmse = np.sqrt(np.mean((data.train.target.mean() - data.val.target) ** 2))
    assert model_rmse < 0.9 * constant_rmse


def test_switching_every_feature_off_leaves_the_mean() -> None:
    data = make_planted_training_data()
    off = LinearConfig(use_user_categorical=False, use_user_numeric=False, use_video_categorical=False,
                       use_video_tags=False, use_video_numeric=False)
    model = LinearRecommender(off).fit(data)
    np.testing.assert_allclose(model.score_all(np.arange(4)), data.train.target.mean(), atol=1e-6)


@pytest.mark.parametrize("bad", [{"l2": 0.0}, {"max_iter": 0}, {"tol": 0.0}])
def test_config_rejects_bad_values(bad: dict) -> None:
    with pytest.raises(ValueError):
        LinearConfig(**bad)


def test_unfitted_model_refuses_to_score() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        LinearRecommender().score_all(np.arange(2))
