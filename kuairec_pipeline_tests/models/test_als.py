"""ALSRecommender: the shared contract, plus the confidence matrix and the calibration."""

from __future__ import annotations

import numpy as np
import pytest

from kuairec_pipeline.models.als import (
    ALSConfig,
    ALSRecommender,
    aggregate_pairs,
    confidence_matrix,
    fit_biases,
    fit_calibration,
    observed_pair_dot,
    pair_dot,
)
from kuairec_pipeline.models.data import Interactions
from kuairec_pipeline.models.taste import video_taste_features
from kuairec_pipeline_tests.builders import SMALL_ALS as SMALL
from kuairec_pipeline_tests.models.contract import RecommenderContract, make_planted_training_data


class TestALS(RecommenderContract):
    def make_model(self) -> ALSRecommender:
        return ALSRecommender(SMALL)


def _rows(users: list[int], videos: list[int], targets: list[float]) -> Interactions:
    n = len(users)
    return Interactions(
        user=np.array(users, np.int32),
        video=np.array(videos, np.int32),
        target=np.array(targets, np.float32),
        watch_ratio=np.array(targets, np.float32),
        timestamp=np.zeros(n),
        passes_filter=np.ones(n, bool),
    )


def test_repeated_pairs_are_averaged_into_one_confidence() -> None:
    rows = _rows([1, 0, 1, 1, 2], [2, 1, 2, 0, 1], [0.2, 0.5, 0.6, 1.0, 0.0])
    pairs = aggregate_pairs(rows, n_users=4, n_videos=3)
    np.testing.assert_array_equal(pairs.indptr, [0, 1, 3, 4, 4])
    np.testing.assert_array_equal(pairs.user, [0, 1, 1, 2])
    np.testing.assert_array_equal(pairs.video, [1, 0, 2, 1])
    np.testing.assert_allclose(pairs.mean_target, [0.5, 1.0, 0.4, 0.0], atol=1e-7)
    np.testing.assert_array_equal(pairs.count, [1, 1, 2, 1])
    matrix = confidence_matrix(pairs, alpha=10.0, n_videos=3)
    assert matrix.dtype == np.float32 and matrix.nnz == 4  # a zero target is still an observed pair
    np.testing.assert_allclose(matrix.toarray(), [[0, 6, 0], [11, 0, 5], [0, 1, 0], [0, 0, 0]], rtol=1e-6)


def test_observed_pair_dot_matches_the_per_pair_dot() -> None:
    rng = np.random.default_rng(2)
    users, videos = rng.integers(0, 7, 60), rng.integers(0, 9, 60)
    pairs = aggregate_pairs(_rows(users.tolist(), videos.tolist(), [0.5] * 60), n_users=7, n_videos=9)
    user_factors, video_factors = rng.normal(size=(7, 3)), rng.normal(size=(9, 3))
    np.testing.assert_allclose(
        observed_pair_dot(user_factors, video_factors, pairs),
        pair_dot(user_factors, video_factors, pairs.user, pairs.video),
        rtol=1e-12,
    )


def test_pair_dots_in_blocks_equal_the_gathered_product(monkeypatch: pytest.MonkeyPatch) -> None:
    # Small chunks and blocks force several passes and a short last one: the bounded-memory paths ALS and the
    # linear model's taste stages take at full scale.
    from kuairec_pipeline.models import biases

    monkeypatch.setattr(biases, "PAIR_CHUNK_ROWS", 8)
    monkeypatch.setattr(biases, "DENSE_BLOCK_CELLS", 18)  # two users per dense block
    rng = np.random.default_rng(3)
    users, videos = rng.integers(0, 7, 50), rng.integers(0, 9, 50)
    user_factors, video_factors = rng.normal(size=(7, 4)), rng.normal(size=(9, 4))
    expected = (user_factors[users] * video_factors[videos]).sum(axis=1)
    np.testing.assert_allclose(biases.pair_dot(user_factors, video_factors, users, videos), expected, rtol=1e-12)
    pairs = aggregate_pairs(_rows(users.tolist(), videos.tolist(), [0.5] * 50), n_users=7, n_videos=9)
    np.testing.assert_allclose(
        biases.observed_pair_dot(user_factors, video_factors, pairs),
        (user_factors[pairs.user] * video_factors[pairs.video]).sum(axis=1),
        rtol=1e-12,
    )


def test_calibration_recovers_each_users_planted_taste_on_a_full_grid() -> None:
    # target = biases + a per-user taste on the video's tags. The biases are fitted first; what they leave is
    # still linear in the tags (tags scaled to sum 1 span the constant), so each user's ridge recovers the rest.
    rng = np.random.default_rng(0)
    n_users, n_videos, n_tags = 30, 40, 3
    tags = (rng.random((n_videos, n_tags)) < 0.5).astype(np.float32)
    tags[tags.sum(axis=1) == 0, 0] = 1.0
    features = video_taste_features(tags, np.zeros((n_videos, 0)))
    taste = rng.normal(0, 0.1, (n_users, n_tags))
    pair_user, pair_video = (
        grid.ravel() for grid in np.meshgrid(np.arange(n_users), np.arange(n_videos), indexing="ij")
    )
    user_bias, video_bias = rng.normal(0, 0.05, n_users), rng.normal(0, 0.05, n_videos)
    target = 0.3 + user_bias[pair_user] + video_bias[pair_video] + (taste @ features.T).ravel()
    pairs = aggregate_pairs(_rows(pair_user.tolist(), pair_video.tolist(), target.tolist()), n_users, n_videos)
    video_factors = rng.normal(size=(n_videos, 2))
    config = ALSConfig(calibration_l2=0.0, calibration_tolerance=1e-12, taste_l2=1e-6, factor_l2=1e6)
    calibration = fit_calibration(video_factors, features, pairs, config)
    fitted = (
        calibration.global_bias
        + calibration.user_bias[pair_user]
        + calibration.video_bias[pair_video]
        + np.einsum(
            "ij,ij->i",
            calibration.user_coefficients[pair_user].astype(np.float64),
            calibration.video_design[pair_video].astype(np.float64),
        )
    )
    np.testing.assert_allclose(fitted, target, atol=1e-4)  # float32 rows and stored arrays
    # without the per-user taste, biases alone leave an error the size of the planted taste
    biases_only = calibration.global_bias + calibration.user_bias[pair_user] + calibration.video_bias[pair_video]
    assert np.abs(biases_only - target).mean() > 0.02


def test_calibration_gives_a_factor_shared_by_all_videos_no_weight() -> None:
    # An implicit model scores watched pairs high: a factor that merely has one level on every video must not
    # shift the biases (they are fitted first) or earn a coefficient (centring removes a shared level).
    rng = np.random.default_rng(1)
    n_users, n_videos = 20, 25
    video_factors = np.ones((n_videos, 2))
    pairs = aggregate_pairs(
        _rows(
            rng.integers(0, n_users, 300).tolist(),
            rng.integers(0, n_videos, 300).tolist(),
            rng.uniform(0.2, 0.4, 300).tolist(),
        ),
        n_users,
        n_videos,
    )
    config = ALSConfig(calibration_l2=1.0)
    calibration = fit_calibration(video_factors, np.zeros((n_videos, 1)), pairs, config)
    global_bias, user_bias, video_bias = fit_biases(pairs, n_videos, bias_l2=1.0)
    np.testing.assert_array_equal(calibration.user_coefficients, 0.0)
    assert calibration.global_bias == pytest.approx(global_bias)
    np.testing.assert_allclose(calibration.user_bias, user_bias, atol=1e-7)
    np.testing.assert_allclose(calibration.video_bias, video_bias, atol=1e-7)


@pytest.mark.parametrize(
    "bad",
    [
        {"factors": 0},
        {"alpha": -1.0},
        {"taste_l2": 0.0},
        {"factor_l2": 0.0},
        {"iterations": 0},
        {"calibration_tolerance": 0.0},
    ],
)
def test_config_rejects_out_of_range_values(bad: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        ALSConfig(**bad)


def test_calibrated_predictions_beat_the_raw_dot_product_on_train() -> None:
    data = make_planted_training_data()
    model = ALSRecommender(SMALL).fit(data)
    users, videos, target = data.train.user, data.train.video, data.train.target
    calibrated = model.predict(users, videos)
    raw = np.clip(model.raw_scores(users, videos), 0.0, 1.0)
    assert calibrated.min() >= 0.0 and calibrated.max() <= 1.0
    calibrated_mse = np.mean((calibrated - target) ** 2)
    assert calibrated_mse < 0.75 * np.mean((raw - target) ** 2)
    assert calibrated_mse < np.mean((target.mean() - target) ** 2)


def test_factors_and_calibration_are_stored_as_plain_arrays() -> None:
    model = ALSRecommender(SMALL).fit(make_planted_training_data())
    arrays = model.to_arrays()
    assert arrays["user_factors"].shape == (model.n_users, SMALL.factors)
    assert arrays["video_factors"].shape == (model.n_videos, SMALL.factors)
    assert arrays["user_factors"].dtype == arrays["video_factors"].dtype == np.float32
    assert arrays["calibration_user_bias"].shape == (model.n_users,)


def test_the_linear_start_sits_under_the_factor_part_scaled_on_validation() -> None:
    import dataclasses

    from kuairec_pipeline.models.als import scaled_on_validation
    from kuairec_pipeline.models.linear import LinearConfig, LinearRecommender

    data = make_planted_training_data()
    linear = LinearRecommender(LinearConfig(residual_rank=0)).fit(data)  # the pipeline passes its own fitted model
    start = linear.augmented_factors()
    pairs = aggregate_pairs(data.train, data.n_users, data.n_videos)
    model = ALSRecommender(SMALL).fit_from_components({"linear": linear}, data)
    np.testing.assert_array_equal(model.calibration.start_user, start[0])
    # Before the val scale, the factor part fits the start's residual on the training pairs: a lower error there.
    raw = fit_calibration(model.video_factors, np.zeros((data.n_videos, 0)), pairs, SMALL, start)
    assert raw.global_bias == 0 and not raw.user_bias.any() and not raw.video_bias.any()  # the start holds them
    base = observed_pair_dot(*start, pairs)
    factor_term = observed_pair_dot(raw.user_coefficients, raw.video_design, pairs)
    error = np.average((pairs.mean_target - base - factor_term) ** 2, weights=pairs.count)
    assert error < np.average((pairs.mean_target - base) ** 2, weights=pairs.count)
    # The scale: val targets that are the start plus the factor term give 1; the start minus it gives 0 (off).
    val = data.val
    on_val = pair_dot(raw.user_coefficients, raw.video_design, val.user, val.video)
    start_val = pair_dot(*start, val.user, val.video)
    for sign, expected in ((1.0, 1.0), (-1.0, 0.0)):
        rows = dataclasses.replace(val, target=(start_val + sign * on_val).astype(np.float32))
        scaled = scaled_on_validation(raw, rows)
        assert scaled.factor_scale == pytest.approx(expected, abs=1e-4)
        np.testing.assert_allclose(scaled.user_coefficients, expected * raw.user_coefficients, atol=1e-6)
    restored = ALSRecommender.from_bundle(model.bundle())
    every = np.arange(data.n_users)
    np.testing.assert_array_equal(restored.score_all(every), model.score_all(every))
    assert restored.calibration.factor_scale == model.calibration.factor_scale
    plain = ALSRecommender(dataclasses.replace(SMALL, linear_start=False)).fit(data)
    assert plain.calibration.start_user is None and plain.training_metadata() == {}
    assert ALSRecommender.from_arrays(plain.to_arrays()).calibration.start_user is None  # a bundle without a start
    with pytest.raises(KeyError, match="'linear'"):
        ALSRecommender(SMALL).fit_from_components({}, data)
