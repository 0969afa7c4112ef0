"""TwoTowerRecommender: the shared contract, plus NumPy scoring vs torch, weights files and early stopping."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from kuairec_pipeline.models.als import aggregate_pairs, fit_biases
from kuairec_pipeline.models.data import TrainingData
from kuairec_pipeline.models.taste import per_user_ridge, video_taste_features
from kuairec_pipeline.models.two_tower import TwoTowerConfig, TwoTowerRecommender
from kuairec_pipeline.models.two_tower_training import IndexBatches
from kuairec_pipeline_tests.builders import SMALL_TWO_TOWER as SMALL
from kuairec_pipeline_tests.models.contract import RecommenderContract, make_planted_training_data


class TestTwoTower(RecommenderContract):
    def make_model(self) -> TwoTowerRecommender:
        return TwoTowerRecommender(SMALL)


@pytest.fixture(scope="module")
def data() -> TrainingData:
    return make_planted_training_data()


@pytest.fixture(scope="module")
def fitted(data: TrainingData) -> TwoTowerRecommender:
    return TwoTowerRecommender(SMALL).fit(data)


def test_numpy_scoring_equals_the_torch_forward(fitted: TwoTowerRecommender, data: TrainingData) -> None:
    users, videos = data.train.user, data.train.video
    np.testing.assert_allclose(fitted.predict(users, videos), fitted.torch_predict(users, videos), atol=1e-5, rtol=0)


def test_embeddings_are_augmented_with_the_biases_and_the_linear_start(
    fitted: TwoTowerRecommender, data: TrainingData
) -> None:
    from kuairec_pipeline.models.linear import LinearRecommender

    start_user, start_video = LinearRecommender().fit(data).augmented_factors()
    width = SMALL.embedding_dim + 2
    users, videos = fitted.user_embeddings, fitted.video_embeddings
    assert users.shape == (fitted.n_users, width + start_user.shape[1])
    assert videos.shape == (fitted.n_videos, width + start_video.shape[1])
    np.testing.assert_array_equal(users[:, width - 1], 1.0)  # pairs with the video's bias + global bias
    np.testing.assert_array_equal(videos[:, width - 2], 1.0)  # pairs with the user's bias
    np.testing.assert_allclose(users[:, width:], start_user, atol=1e-6)  # the start, held fixed
    np.testing.assert_allclose(videos[:, width:], start_video, atol=1e-6)
    plain = TwoTowerRecommender(dataclasses.replace(SMALL, linear_start=False, max_epochs=1)).fit(data)
    assert plain.user_embeddings.shape == (data.n_users, width)


def test_the_linear_start_is_kept_when_no_epoch_beats_it(data: TrainingData) -> None:
    from kuairec_pipeline.models.linear import LinearConfig, LinearRecommender

    # The pipeline's path: the fitted linear_baseline model is the start (not a default-config refit). Val targets
    # it predicts exactly: no epoch can beat it, so the fit keeps it and scores equal it.
    linear = LinearRecommender(LinearConfig(residual_rank=0)).fit(data)
    start = linear.predict(data.val.user, data.val.video).astype(np.float32)
    perfect = dataclasses.replace(data, val=dataclasses.replace(data.val, target=start))
    model = TwoTowerRecommender(dataclasses.replace(SMALL, max_epochs=10, early_stopping_patience=2))
    model.fit_from_components({"linear": linear}, perfect)
    assert model.best_epoch == -1
    # Patience counts from the start: two epochs that do not beat it end the fit, even when one beats the other.
    assert model.epochs_trained == 2 and model.stopped_early
    users = np.arange(data.n_users)
    np.testing.assert_allclose(model.score_all(users), linear.score_all(users), atol=1e-5)
    with pytest.raises(KeyError, match="'linear'"):
        TwoTowerRecommender(SMALL).fit_from_components({}, data)


def test_weights_round_trip_through_a_weights_only_file(
    fitted: TwoTowerRecommender, data: TrainingData, tmp_path: Path
) -> None:
    path = fitted.save_weights(tmp_path / "two_tower.pt")
    state = torch.load(path, weights_only=True)
    assert set(state) == set(fitted.network.state_dict())
    other = TwoTowerRecommender(dataclasses.replace(SMALL, seed=99, max_epochs=1)).fit(_without_val(data))
    users = np.arange(data.n_users)
    assert not np.allclose(other.score_all(users), fitted.score_all(users))
    other.load_weights(path)
    np.testing.assert_array_equal(other.score_all(users), fitted.score_all(users))


def test_bundle_holds_the_weights_under_a_prefix(fitted: TwoTowerRecommender) -> None:
    arrays = fitted.to_arrays()
    for name, value in fitted.network.state_dict().items():
        np.testing.assert_array_equal(arrays["weights." + name], value.numpy())


def _without_val(data: TrainingData) -> TrainingData:
    return dataclasses.replace(
        data,
        val=dataclasses.replace(
            data.val,
            **{
                name: getattr(data.val, name)[:0]
                for name in ("user", "video", "target", "watch_ratio", "timestamp", "passes_filter")
            },
        ),
    )


def _random_start(**changes) -> TwoTowerConfig:
    """SMALL with free biases and a random start (the former default): the start is no candidate to keep."""
    return dataclasses.replace(SMALL, fixed_biases=False, linear_start=False, link="sigmoid", **changes)


def test_early_stopping_keeps_the_best_epoch_and_stops_before_max_epochs(data: TrainingData) -> None:
    # Validation targets unrelated to anything learnable: validation MSE stops improving within a few epochs.
    # Free biases and a random start (the former default): every kept state is a trained epoch.
    noise = np.random.default_rng(0).random(len(data.val)).astype(np.float32)
    unlearnable = dataclasses.replace(data, val=dataclasses.replace(data.val, target=noise))
    config = _random_start(max_epochs=60, early_stopping_patience=2, learning_rate=0.05)
    model = TwoTowerRecommender(config).fit(unlearnable)
    epochs_run = model.history.shape[0]
    assert epochs_run < config.max_epochs
    val_mse = model.history[:, 2]
    assert model.best_epoch == int(np.argmin(val_mse))
    assert epochs_run - 1 - model.best_epoch == config.early_stopping_patience
    # The weights kept are the best epoch's, not the last one's.
    kept = np.mean((model.predict(unlearnable.val.user, unlearnable.val.video) - noise) ** 2)
    assert kept == pytest.approx(val_mse.min(), rel=1e-5)
    assert model.stopped_early


def test_it_starts_from_the_exact_biases_plus_each_users_ridge_taste(data: TrainingData) -> None:
    # The fixed start is global + b_user + b_video (exact ridge) + each user's ridge taste on [1, tags scaled to sum
    # 1, numeric] (the tower's own tag weights: built from the padded tag ids, which may hold fewer tags than the
    # multi-hot). Validation = every training pair with that start as its target: the start's error is zero, so
    # no epoch can beat it and the fit keeps it (any other start would lose to a trained epoch or score otherwise).
    config = dataclasses.replace(SMALL, embedding_dim=48, max_epochs=10, early_stopping_patience=1, linear_start=False)
    global_bias, user_bias, video_bias = fit_biases(
        aggregate_pairs(data.train, data.n_users, data.n_videos), data.n_videos, config.bias_l2
    )
    pairs = aggregate_pairs(data.train, data.n_users, data.n_videos)
    probe = TwoTowerRecommender(dataclasses.replace(config, max_epochs=1)).fit(data)  # the tower's own tag weights
    tower = probe.network.video_tower
    tags = tower.tag_weights.numpy()
    np.testing.assert_allclose(tags.sum(axis=1)[tags.sum(axis=1) > 0], 1.0, atol=1e-6)
    design = np.hstack([np.ones((data.n_videos, 1)), video_taste_features(tags, tower.numeric.numpy())])
    residual = pairs.mean_target - global_bias - user_bias[pairs.user] - video_bias[pairs.video]
    taste = per_user_ridge(
        pairs.matrix(pairs.count, data.n_videos),
        pairs.matrix(pairs.count * residual, data.n_videos),
        design,
        config.taste_l2,
    )
    expected = np.clip(global_bias + user_bias[:, None] + video_bias[None, :] + taste @ design.T, 0, 1)
    target = expected[data.train.user, data.train.video].astype(np.float32)
    unlearnable = dataclasses.replace(data, val=dataclasses.replace(data.train, target=target))
    model = TwoTowerRecommender(config).fit(unlearnable)
    assert model.best_epoch == -1 and model.stopped_early
    np.testing.assert_allclose(model.score_all(np.arange(data.n_users)), expected, atol=1e-4)


def test_identity_link_needs_no_sigmoid_and_fixed_biases_need_it() -> None:
    with pytest.raises(ValueError, match="fixed_biases"):
        TwoTowerConfig(link="sigmoid", fixed_biases=True)
    with pytest.raises(ValueError, match="link"):
        TwoTowerConfig(link="tanh")
    with pytest.raises(ValueError, match="taste_l2"):
        TwoTowerConfig(taste_l2=0.0)


def test_beats_the_global_mean_on_validation(fitted: TwoTowerRecommender, data: TrainingData) -> None:
    model_mse = np.mean((fitted.predict(data.val.user, data.val.video) - data.val.target) ** 2)
    constant_mse = np.mean((data.train.target.mean() - data.val.target) ** 2)
    assert model_mse < 0.8 * constant_mse


def test_index_batches_cover_every_row_once_per_epoch_in_a_new_order(data: TrainingData) -> None:
    batches = IndexBatches(data.train, batch_size=100, device=torch.device("cpu"), shuffle=True, seed=1)
    epochs = [torch.cat([target for _, _, target in batches]) for _ in range(2)]
    assert len(batches) == -(-len(data.train) // 100)
    for seen in epochs:
        np.testing.assert_array_equal(np.sort(seen.numpy()), np.sort(data.train.target))
    assert not torch.equal(epochs[0], epochs[1])


def test_without_validation_rows_it_trains_every_epoch_and_keeps_the_last_weights(data: TrainingData) -> None:
    model = TwoTowerRecommender(dataclasses.replace(SMALL, max_epochs=3)).fit(_without_val(data))
    assert model.epochs_trained == 3 and model.best_epoch == 2
    assert not model.stopped_early  # it used every allowed epoch: the asset metadata says so
    assert model.training_metadata() == {
        "epochs_trained": 3,
        "best_epoch": 2,
        "stopped_early": False,
        "stop_reason": "max_epochs",
    }
    assert np.isnan(model.history[:, 2]).all()
    assert np.isfinite(model.score_all(np.arange(data.n_users))).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_trains_on_a_gpu_and_scores_like_its_own_forward(data: TrainingData) -> None:
    model = TwoTowerRecommender(dataclasses.replace(SMALL, accelerator="gpu")).fit(data)
    assert next(model.network.parameters()).device.type == "cpu"  # moved back for storage and checks
    users, videos = data.train.user, data.train.video
    np.testing.assert_allclose(model.predict(users, videos), model.torch_predict(users, videos), atol=1e-5, rtol=0)
    model_mse = np.mean((model.predict(data.val.user, data.val.video) - data.val.target) ** 2)
    assert model_mse < 0.8 * np.mean((data.train.target.mean() - data.val.target) ** 2)


def test_explicit_tag_and_numeric_slots_score_like_the_torch_forward(data: TrainingData) -> None:
    """Wide enough vectors switch on the explicit part (one slot per tag and video numeric column); NumPy scoring
    must still equal the network's own forward pass, and a round trip must keep it."""
    from kuairec_pipeline.models.two_tower import Architecture
    from kuairec_pipeline.models.two_tower_network import explicit_feature_width

    # Without the linear start, which on the planted data may be kept untrained (both fits would then be equal).
    config = dataclasses.replace(SMALL, embedding_dim=48, explicit_features=True, max_epochs=3, linear_start=False)
    explicit = explicit_feature_width(Architecture.from_data(data), config)
    assert 0 < explicit < config.embedding_dim  # the path under test is really on
    model = TwoTowerRecommender(config).fit(data)
    assert model.user_embeddings.shape[1] == config.embedding_dim + 2
    users, videos = data.train.user[:300], data.train.video[:300]
    np.testing.assert_allclose(model.predict(users, videos), model.torch_predict(users, videos), atol=1e-5, rtol=0)
    again = TwoTowerRecommender.from_bundle(model.bundle())
    np.testing.assert_array_equal(again.score_all(users[:5]), model.score_all(users[:5]))
    off = TwoTowerRecommender(dataclasses.replace(config, explicit_features=False)).fit(data)
    assert not np.allclose(off.score_all(users[:5]), model.score_all(users[:5]))


def test_the_dot_product_learns_from_an_exact_start(data: TrainingData) -> None:
    # The untrained network predicts the fixed start exactly, yet both towers' free vectors move in training: with
    # both towers' vectors at zero each one's gradient (the other's vector) is zero, a saddle the dot product never
    # left (the former init: only the bias unit and the coefficients trained).
    from kuairec_pipeline.models.linear import LinearRecommender
    from kuairec_pipeline.models.two_tower_network import Architecture, TwoTowerNetwork

    start = LinearRecommender().fit(data).augmented_factors()
    untrained = TwoTowerNetwork(Architecture.from_data(data, start_width=start[0].shape[1]), SMALL)
    untrained.set_start(*start)
    users, videos = (
        torch.from_numpy(data.train.user[:500].astype(np.int64)),
        torch.from_numpy(data.train.video[:500].astype(np.int64)),
    )
    with torch.no_grad():
        logits = untrained(users, videos)
        start_logits = (untrained.start_user[users] * untrained.start_video[videos]).sum(1) + untrained.global_bias
    np.testing.assert_allclose(logits.numpy(), start_logits.numpy(), atol=1e-6)

    free = untrained.user_tower.embedding_dim  # the free rows of each tower's last layer
    assert untrained.user_tower.mlp[-1].weight[:free].abs().max() > 0  # one tower starts random ...
    assert untrained.video_tower.mlp[-1].weight.abs().max() == 0  # ... the other at zero: the start is exact
    model = TwoTowerRecommender(dataclasses.replace(SMALL, max_epochs=2)).fit(_without_val(data))
    video = model.network.video_tower.mlp[-1].weight.detach().numpy()
    # The video tower's vectors leave zero only through a gradient that is the user tower's vector: both at zero
    # (the former init) left them at exactly zero.
    assert np.abs(video[:free]).max() > 1e-3, "the video tower's vectors did not train"


def test_a_gain_below_min_delta_neither_keeps_an_epoch_nor_resets_patience(data: TrainingData) -> None:
    # A random start (not a candidate): the first epoch is kept; later ones improve val, but by less than a
    # min_delta no validation MSE can clear, so the kept weights and early stopping agree that none did.
    config = _random_start(max_epochs=10, early_stopping_patience=2, early_stopping_min_delta=1.0)
    model = TwoTowerRecommender(config).fit(data)
    assert int(np.argmin(model.history[:, 2])) > 0  # a later epoch had the lowest val MSE ...
    assert model.best_epoch == 0 and model.epochs_trained == 3  # ... but not by min_delta: epoch 0 is kept
