"""The contract's errors and solver checks: ids, convergence codes, non-finite solutions, degenerate small fits."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from kuairec_pipeline.models.als import ALSConfig, ALSRecommender, aggregate_pairs, fit_biases
from kuairec_pipeline.models.errors import (
    ConvergenceWarning,
    SolverDivergedError,
    UnknownIdError,
    check_ids,
    check_solver,
)
from kuairec_pipeline.models.linear import LinearConfig, LinearRecommender
from kuairec_pipeline.models.taste import per_user_ridge
from kuairec_pipeline_tests.models.contract import make_planted


@pytest.fixture(scope="module")
def small():
    """The issue's degenerate case: 50 users x 40 videos, ~400 training rows."""
    return make_planted(n_users=50, n_videos=40).data


def test_check_ids_names_the_bad_ids_and_the_range() -> None:
    np.testing.assert_array_equal(check_ids([0, 4, 2], 5, "user"), [0, 4, 2])
    assert check_ids(np.array([], dtype=np.int32), 0, "user").dtype == np.int64
    with pytest.raises(UnknownIdError, match=r"unknown video id\(s\) -3, 7: valid video ids are 0\.\.4"):
        check_ids([7, 1, -3, 7], 5, "video")
    with pytest.raises(UnknownIdError, match=r"\(9 in all\)"):
        check_ids(np.arange(10, 19), 5, "user")


def test_check_solver_warns_on_a_cap_and_raises_on_nan_or_breakdown() -> None:
    values = np.ones(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a converged solve (info 0) or a direct one (None) warns nothing
        assert check_solver(values, "s", 0) is values
        assert check_solver(values, "s") is values
    with pytest.warns(ConvergenceWarning, match="s did not converge in 12 iterations"):
        check_solver(values, "s", 12)
    with pytest.raises(SolverDivergedError, match="non-finite"):
        check_solver(np.array([1.0, np.nan]), "s", 0)
    with pytest.raises(SolverDivergedError, match="code -1"):
        check_solver(values, "s", -1)


def test_linear_conjugate_gradients_at_their_cap_warn(small) -> None:
    with pytest.warns(ConvergenceWarning, match="linear ridge conjugate gradients did not converge"):
        LinearRecommender(LinearConfig(max_iter=1, taste_l2=None)).fit(small)


def test_bias_conjugate_gradients_at_their_cap_warn(small) -> None:
    pairs = aggregate_pairs(small.train, small.n_users, small.n_videos)
    with pytest.warns(ConvergenceWarning, match="bias conjugate gradients did not converge"):
        fit_biases(pairs, small.n_videos, 5.0, max_iterations=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # the default cap is enough at this size
        fit_biases(pairs, small.n_videos, 5.0)


def test_per_user_ridge_refuses_non_finite_inputs() -> None:
    weights = sp.csr_matrix(np.array([[1.0, 2.0]]))
    features = np.array([[1.0], [np.inf]])
    with pytest.raises(SolverDivergedError, match="per-user ridge"):
        per_user_ridge(weights, weights, features, 1.0)


@pytest.mark.parametrize(
    "config",
    [
        ALSConfig(factors=64),
        # No shrinkage anywhere the config allows it: a user without rows makes the bias system singular.
        ALSConfig(factors=64, regularization=0.0, calibration_l2=0.0, taste_l2=1e-6, factor_l2=1e-6),
    ],
    ids=["default_64_factors", "no_shrinkage_64_factors"],
)
def test_als_on_50_by_40_with_64_factors_stays_finite_and_bounded(small, config: ALSConfig) -> None:
    # The case: once a stored calibration weight reached 5e19 silently. Now every stored number is finite
    # and of the target's order (targets lie in [0, 1]), and any solver trouble would have warned or raised.
    keep = small.train.user != 0  # user 0 without training rows
    train = type(small.train)(*(getattr(small.train, f.name)[keep] for f in dataclasses.fields(small.train)))
    data = dataclasses.replace(small, train=train)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        model = ALSRecommender(config).fit(data)
    calibration = model.calibration
    assert abs(calibration.global_bias) < 2.0
    for name in ("user_bias", "video_bias", "user_coefficients"):
        values = getattr(calibration, name)
        assert np.isfinite(values).all() and np.abs(values).max() < 2.0, f"{name} reaches {np.abs(values).max()}"
    assert calibration.user_coefficients[0].tolist() == [0.0] * calibration.user_coefficients.shape[1]
    scores = model.score_all(np.arange(data.n_users))
    assert np.isfinite(scores).all() and scores.min() >= 0.0 and scores.max() <= 1.0
