"""SequentialRecommender (and its order ablation): the shared contract, NumPy vs torch, time-aware pointwise
predictions that never read the row itself or anything later, isolation between users, and the fallbacks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from kuairec_pipeline.models import sequences, sequential_network
from kuairec_pipeline.models.data import Interactions, PreparedData, TrainingData
from kuairec_pipeline.models.sequential import (
    SequentialRecommender,
    ShuffledSequentialRecommender,
    encode_last_states,
)
from kuairec_pipeline_tests.builders import SMALL_SEQUENTIAL as SMALL
from kuairec_pipeline_tests.builders import concat_rows as concat
from kuairec_pipeline_tests.builders import take_rows as take
from kuairec_pipeline_tests.models.contract import RecommenderContract, make_planted

# The transformer's own machinery (time-aware states, isolation, fallbacks, early stopping) is checked without the
# fixed start, whose candidate vectors start at zero and may be kept untrained; the start has its own tests below.
PLAIN = dataclasses.replace(SMALL, fixed_start=False)


def torch_cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


class TestSequential(RecommenderContract):
    def make_model(self) -> SequentialRecommender:
        return SequentialRecommender(SMALL)


class TestSequentialShuffled(RecommenderContract):
    def make_model(self) -> ShuffledSequentialRecommender:
        return ShuffledSequentialRecommender(SMALL)


@pytest.fixture(scope="module")
def prepared() -> PreparedData:
    return make_planted().prepared


@pytest.fixture(scope="module")
def data(prepared: PreparedData) -> TrainingData:
    return prepared.training


@pytest.fixture(scope="module")
def fitted(data: TrainingData) -> SequentialRecommender:
    return SequentialRecommender(PLAIN).fit(data)


@pytest.fixture(scope="module")
def timed_test(data: TrainingData, prepared: PreparedData) -> Interactions:
    """The planted test rows (no timestamps there) given times spread over the training period."""
    rng = np.random.default_rng(0)
    low, high = data.train.timestamp.min(), data.train.timestamp.max()
    test = prepared.test
    return dataclasses.replace(test, timestamp=rng.uniform(low - 1e5, high + 1e5, len(test)))


@pytest.mark.parametrize(
    "field, value",
    [
        ("max_len", 0),
        ("num_heads", 3),
        ("dropout", 1.0),
        ("num_layers", 9),
        ("positions_per_epoch", -1),
        ("accelerator", "tpu"),
    ],
)
def test_config_refuses_values_out_of_range_naming_the_field(field: str, value) -> None:
    with pytest.raises(ValueError, match=f"SequentialConfig.{field}"):
        dataclasses.replace(SMALL, **{field: value})


@pytest.mark.parametrize("layers", [1, 3])
def test_numpy_states_equal_the_torch_forward(data: TrainingData, layers: int) -> None:
    fitted = SequentialRecommender(dataclasses.replace(SMALL, num_layers=layers, max_epochs=2)).fit(data)
    network = sequential_network.network_from_weights(fitted.architecture, fitted.config, fitted.weights)
    history = sequences.build_history(data.train, data.n_users, SMALL.seed)
    users, end, length = sequences.final_windows(history, SMALL.max_len)
    length = np.maximum(1, length - np.arange(length.size) % 5)  # windows of mixed lengths in one batch
    index, _ = sequences.window_matrix(history, end, length, SMALL.max_len, False)
    video, ratio = history.video[index], history.target[index]
    expected = sequential_network.torch_window_states(network, video, ratio, length)
    np.testing.assert_allclose(
        encode_last_states(fitted.weights, fitted.input_vectors, fitted.config, video, ratio, length),
        expected,
        atol=2e-5,
        rtol=0,
    )


def test_whole_history_rows_score_like_score_all(
    fitted: SequentialRecommender, data: TrainingData, prepared: PreparedData
) -> None:
    untimed = dataclasses.replace(prepared.test, timestamp=np.full(len(prepared.test), np.nan))
    np.testing.assert_allclose(
        fitted.predict_rows(untimed, data.train), fitted.predict(untimed.user, untimed.video), atol=2e-5, rtol=0
    )
    # Validation rows come after every training row of their user: the same state again.
    np.testing.assert_allclose(
        fitted.predict_rows(data.val, data.train), fitted.predict(data.val.user, data.val.video), atol=2e-5
    )


def test_a_prediction_never_depends_on_the_row_itself_or_anything_later(
    fitted: SequentialRecommender, data: TrainingData, timed_test: Interactions
) -> None:
    before = fitted.predict_rows(timed_test, data.train)
    assert np.isfinite(before).all() and before.min() >= 0 and before.max() <= 1
    rng = np.random.default_rng(1)
    probe = rng.choice(len(timed_test), 40, replace=False)
    for row in probe:
        user, time = timed_test.user[row], timed_test.timestamp[row]
        query = take(timed_test, np.array([row]))
        mine = data.train.user == user
        later = mine & (data.train.timestamp >= time)
        earlier = mine & (data.train.timestamp < time)
        # Later rows get other videos and targets, and the row itself joins the history at its own time.
        perturbed = dataclasses.replace(
            data.train,
            video=np.where(later, rng.integers(0, data.n_videos, len(data.train)), data.train.video).astype(np.int32),
            target=np.where(later, rng.random(len(data.train)), data.train.target).astype(np.float32),
        )
        with_itself = concat(
            perturbed, dataclasses.replace(query, target=np.array([1.0 - query.target[0]], np.float32))
        )
        assert fitted.predict_rows(query, with_itself)[0] == pytest.approx(before[row], abs=1e-6)
        if earlier.any():  # the check can fail: changing an earlier row does move the prediction
            last_earlier = np.flatnonzero(earlier)[np.argmax(data.train.timestamp[earlier])]
            moved = data.train.target.copy()
            moved[last_earlier] = 1.0 - moved[last_earlier]
            changed = fitted.predict_rows(query, dataclasses.replace(data.train, target=moved))[0]
            assert abs(changed - before[row]) > 1e-7


def test_no_history_reaches_another_users_prediction_and_batching_changes_nothing(
    fitted: SequentialRecommender, data: TrainingData, timed_test: Interactions, monkeypatch
) -> None:
    together = fitted.predict_rows(timed_test, data.train)
    from kuairec_pipeline.models import sequential

    monkeypatch.setattr(sequential, "ENCODE_BATCH_CELLS", 3 * SMALL.max_len)  # three windows per encoder batch
    monkeypatch.setattr(sequential, "QUERY_CHUNK_ROWS", 7)  # and seven rows per scoring step
    np.testing.assert_allclose(fitted.predict_rows(timed_test, data.train), together, atol=1e-6, rtol=0)
    monkeypatch.undo()
    user = int(timed_test.user[0])
    mine = np.flatnonzero(timed_test.user == user)
    alone = fitted.predict_rows(take(timed_test, mine), data.train)
    np.testing.assert_allclose(alone, together[mine], atol=1e-6, rtol=0)
    one_by_one = np.array([fitted.predict_rows(take(timed_test, np.array([i])), data.train)[0] for i in mine[:10]])
    np.testing.assert_allclose(one_by_one, together[mine[:10]], atol=1e-6, rtol=0)
    # Every other user's history scrambled: this user's predictions do not move.
    others = data.train.user != user
    rng = np.random.default_rng(2)
    scrambled = dataclasses.replace(
        data.train,
        video=np.where(others, rng.integers(0, data.n_videos, len(data.train)), data.train.video).astype(np.int32),
        target=np.where(others, rng.random(len(data.train)), data.train.target).astype(np.float32),
    )
    np.testing.assert_allclose(fitted.predict_rows(take(timed_test, mine), scrambled), alone, atol=1e-6, rtol=0)


def test_users_without_history_get_the_empty_state_never_nan(data: TrainingData, prepared: PreparedData) -> None:
    # Drop users 0..9 from training entirely and leave user 10 a single row.
    train = data.train
    keep = train.user >= 10
    single = np.flatnonzero(train.user == 10)[:1]
    keep &= (train.user != 10) | np.isin(np.arange(len(train)), single)
    sparse = dataclasses.replace(data, train=take(train, np.flatnonzero(keep)))
    model = SequentialRecommender(dataclasses.replace(PLAIN, max_epochs=3)).fit(sparse)
    scores = model.score_all(np.arange(data.n_users))
    assert np.isfinite(scores).all() and scores.min() >= 0 and scores.max() <= 1
    # Users 0..9: exactly the empty state (their user vectors stay zero), so they all score alike.
    np.testing.assert_array_equal(scores[:10], np.broadcast_to(scores[0], (10, data.n_videos)))
    np.testing.assert_array_equal(model.weights["user_embedding.weight"][:10], 0.0)
    rows = take(prepared.test, np.flatnonzero(np.isin(prepared.test.user, np.arange(11))))
    early = dataclasses.replace(rows, timestamp=np.full(len(rows), train.timestamp.min() - 1.0))
    for query in (rows, early):
        predicted = model.predict_rows(query, sparse.train)
        assert np.isfinite(predicted).all() and predicted.min() >= 0 and predicted.max() <= 1
    # Before any history row, a user reads the empty state, like a user with no rows at all.
    cold = model.predict_rows(early, sparse.train)
    np.testing.assert_allclose(cold, model.predict(early.user, early.video) * 0 + cold, atol=0)
    user10 = early.user == 10
    empty = model.weights["empty_state"] + model.weights["user_embedding.weight"][10]
    expected = 1 / (
        1
        + np.exp(
            -(model.video_vectors[early.video[user10], :-1] @ empty + model.video_vectors[early.video[user10], -1])
        )
    )
    np.testing.assert_allclose(cold[user10], expected, atol=1e-6)


def test_the_ablation_differs_only_in_order(data: TrainingData) -> None:
    shuffled = ShuffledSequentialRecommender(SMALL)
    assert shuffled.config.shuffle_positions and shuffled.name == "sequential_shuffled"
    assert dataclasses.replace(shuffled.config, shuffle_positions=False) == SMALL
    bundle = shuffled.fit(data).bundle()
    assert ShuffledSequentialRecommender.from_bundle(bundle).config.shuffle_positions
    with pytest.raises(ValueError, match="sequential_shuffled"):
        SequentialRecommender.from_bundle(bundle)


def test_early_stopping_keeps_the_best_epoch(data: TrainingData) -> None:
    noise = np.random.default_rng(0).random(len(data.val)).astype(np.float32)
    unlearnable = dataclasses.replace(data, val=dataclasses.replace(data.val, target=noise))
    model = SequentialRecommender(dataclasses.replace(PLAIN, max_epochs=40, early_stopping_patience=2)).fit(unlearnable)
    epochs = model.history.shape[0]
    assert epochs < 40 and model.best_epoch == int(np.argmin(model.history[:, 2]))
    kept = np.mean((model.predict_rows(unlearnable.val, unlearnable.train) - noise) ** 2)
    assert kept == pytest.approx(model.history[:, 2].min(), rel=1e-4)


def test_the_fixed_start_is_the_linear_model_under_every_score(data: TrainingData) -> None:
    from kuairec_pipeline.models.biases import pair_dot
    from kuairec_pipeline.models.linear import LinearRecommender

    # No val rows: no early stopping, so the trained transformer part is what is served, on top of the start.
    no_val = dataclasses.replace(data, val=take(data.val, np.array([], dtype=np.int64)))
    model = SequentialRecommender(dataclasses.replace(SMALL, max_epochs=3)).fit(no_val)
    linear = LinearRecommender().fit(no_val)
    users = np.arange(data.n_users)
    start = model.start_user @ model.start_video.T
    np.testing.assert_allclose(np.clip(start, 0, 1), linear.score_all(users), atol=1e-5)
    served = model.predict_rows(data.val, data.train)  # after every training row: the whole-history state
    np.testing.assert_allclose(served, model.predict(data.val.user, data.val.video), atol=2e-5)
    states = model.row_states(data.val, data.train)
    candidates = model.video_vectors[data.val.video]
    by_hand = np.einsum("nd,nd->n", states, candidates) + pair_dot(
        model.start_user, model.start_video, data.val.user, data.val.video
    )
    np.testing.assert_allclose(served, np.clip(by_hand, 0, 1), atol=2e-5)
    assert np.abs(served - linear.predict(data.val.user, data.val.video)).max() > 1e-3  # the state adds something
    restored = SequentialRecommender.from_bundle(model.bundle())
    np.testing.assert_array_equal(restored.score_all(users), model.score_all(users))
    arrays = {k: v for k, v in model.to_arrays().items() if k not in ("start_user", "start_video")}
    plain = SequentialRecommender.from_arrays(arrays)  # a bundle without a start is a plain sigmoid model
    assert not plain.config.fixed_start and plain.start_user is None
    np.testing.assert_allclose(
        plain.predict(data.val.user, data.val.video),
        1 / (1 + np.exp(-np.einsum("nd,nd->n", states, candidates))),
        atol=2e-5,
    )


def test_the_pipeline_fit_takes_the_fitted_linear_model_as_its_start(data: TrainingData) -> None:
    from kuairec_pipeline.models.linear import LinearConfig, LinearRecommender

    linear = LinearRecommender(LinearConfig(residual_rank=0)).fit(data)  # not the default: its own start is used
    model = SequentialRecommender(dataclasses.replace(SMALL, max_epochs=1))
    model.fit_from_components({"linear": linear, "als": object()}, data)
    user, video = linear.augmented_factors()
    np.testing.assert_array_equal(model.start_user, user)
    np.testing.assert_array_equal(model.start_video, video)
    with pytest.raises(KeyError, match="'linear'"):
        SequentialRecommender(SMALL).fit_from_components({}, data)
    with pytest.raises(TypeError, match="LinearRecommender"):
        SequentialRecommender(SMALL).fit_from_components({"linear": model}, data)
    plain = SequentialRecommender(dataclasses.replace(PLAIN, max_epochs=1)).fit_from_components({}, data)
    assert plain.start_user is None  # no start asked for: no component needed


def test_a_fit_keeps_the_start_when_no_epoch_beats_it(data: TrainingData) -> None:
    from kuairec_pipeline.models.linear import LinearRecommender

    # Val targets the start predicts exactly: its val MSE is 0, so no epoch can beat it and it must be kept.
    start = LinearRecommender().fit(data).predict(data.val.user, data.val.video)
    perfect = dataclasses.replace(data, val=dataclasses.replace(data.val, target=start.astype(np.float32)))
    model = SequentialRecommender(dataclasses.replace(SMALL, max_epochs=2)).fit(perfect)
    assert model.best_epoch == -1 and model.history.shape[0] >= 1 and (model.history[:, 2] > 0).all()
    np.testing.assert_allclose(model.predict_rows(perfect.val, perfect.train), start, atol=1e-6)


def test_beats_the_global_mean_on_validation(fitted: SequentialRecommender, data: TrainingData) -> None:
    model_mse = np.mean((fitted.predict_rows(data.val, data.train) - data.val.target) ** 2)
    assert model_mse < 0.85 * np.mean((data.train.target.mean() - data.val.target) ** 2)


def test_evaluation_takes_pointwise_metrics_from_the_history_before_each_row(
    fitted: SequentialRecommender, data: TrainingData, prepared: PreparedData, timed_test: Interactions
) -> None:
    from kuairec_pipeline.evaluation.metrics import evaluate, pointwise_errors

    timed = dataclasses.replace(prepared, test=timed_test)
    table = evaluate(fitted, timed, include_val=True)
    value = {(row["split"], row["metric"]): row["value"] for row in table.iter_rows(named=True)}
    kept = timed_test.passes_filter
    expected = pointwise_errors(fitted.predict_rows(timed_test, data.train)[kept], timed_test.target[kept])
    whole = pointwise_errors(fitted.predict(timed_test.user, timed_test.video)[kept], timed_test.target[kept])
    assert value[("test", "mae")] == pytest.approx(expected[0], abs=1e-9)
    assert value[("test", "mae")] != pytest.approx(whole[0], abs=1e-6)  # the time-aware path was really taken
    assert value[("val", "mae")] == pytest.approx(
        pointwise_errors(fitted.predict_rows(data.val, data.train), data.val.target)[0], abs=1e-9
    )


def test_remembered_rows_are_predicted_once_per_pair_of_objects_and_only_inside_the_block(
    data: TrainingData, timed_test: Interactions
) -> None:
    model = SequentialRecommender.from_bundle(SequentialRecommender(PLAIN).fit(data).bundle())  # its own instance
    computed = []
    predict = model._predict_rows
    model._predict_rows = lambda rows, history: computed.append(rows) or predict(rows, history)  # counts the work
    expected = predict(timed_test, data.train)
    with model.remembering_rows():
        first = model.predict_rows(timed_test, data.train)
        first[:] = -1.0  # a caller's write must not reach what is remembered
        again = model.predict_rows(timed_test, data.train)
        np.testing.assert_array_equal(again, expected)
        assert len(computed) == 1
        # other objects, even with equal contents, are other queries
        model.predict_rows(dataclasses.replace(timed_test), data.train)
        model.predict_rows(data.val, data.train)
        assert len(computed) == 3
        with model.remembering_rows():  # a nested block (sharing_components inside another) keeps the memory
            model.predict_rows(timed_test, data.train)
        model.predict_rows(data.val, data.train)
        assert len(computed) == 3
    np.testing.assert_array_equal(model.predict_rows(timed_test, data.train), expected)
    assert len(computed) == 4  # forgotten after the block


@pytest.mark.parametrize("name", ["sequential", "sequential_shuffled"])
def test_the_cli_serves_both_from_their_asset_files(data: TrainingData, name: str, tmp_path) -> None:
    from kuairec_pipeline.models.registry import TRAINED_MODELS
    from kuairec_pipeline.recommend import recommend_from_artifacts

    entry = TRAINED_MODELS[name]
    model = entry.model_class()(dataclasses.replace(SMALL, max_epochs=2)).fit(data)
    model.save(tmp_path / f"{entry.asset_key}.npz")
    answer = recommend_from_artifacts(tmp_path, 5, k=4, model_name=name)
    ids, _ = model.recommend(np.array([5]), k=4)
    ranked = [int(line.split()[1]) for line in answer.splitlines() if line.strip()[:1].isdigit()]
    assert ranked == ids[0].tolist()


@pytest.mark.skipif(not torch_cuda_available(), reason="needs a CUDA device")
def test_trains_on_a_gpu_and_scores_like_on_the_cpu(data: TrainingData) -> None:
    model = SequentialRecommender(dataclasses.replace(SMALL, accelerator="gpu")).fit(data)
    model_mse = np.mean((model.predict_rows(data.val, data.train) - data.val.target) ** 2)
    assert model_mse < 0.85 * np.mean((data.train.target.mean() - data.val.target) ** 2)
    network = sequential_network.network_from_weights(model.architecture, model.config, model.weights)
    history = sequences.build_history(data.train, data.n_users, SMALL.seed)
    _, end, length = sequences.final_windows(history, SMALL.max_len)
    index, _ = sequences.window_matrix(history, end, length, SMALL.max_len, False)
    np.testing.assert_allclose(
        encode_last_states(
            model.weights, model.input_vectors, model.config, history.video[index], history.target[index], length
        ),
        sequential_network.torch_window_states(network, history.video[index], history.target[index], length),
        atol=2e-5,
        rtol=0,
    )


@pytest.mark.parametrize("stride", [1, 3, 8, 20])
def test_window_lengths_start_on_a_stride_multiple_and_keep_at_most_max_len_rows(stride: int) -> None:
    prefix = np.arange(1, 60)
    length = sequences.window_lengths(prefix, 8, min(stride, 8))
    offset = prefix - length
    assert (length >= 1).all() and (length <= 8).all()
    assert (offset % min(stride, 8) == 0).all()
    np.testing.assert_array_equal(length[prefix <= 8], prefix[prefix <= 8])  # short prefixes: every row
    assert (length[prefix > 8] > 8 - min(stride, 8)).all()  # the smallest such offset: the longest window
    if stride == 1:
        np.testing.assert_array_equal(length, np.minimum(prefix, 8))  # the last max_len rows


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("stride", [1, 3, 8])
def test_batched_pointwise_states_equal_encoding_each_rows_window_alone(
    fitted: SequentialRecommender, data: TrainingData, timed_test: Interactions, stride: int, shuffle: bool
) -> None:
    """The block path (one causal pass per shared window start) gives the numbers of encoding every test row's own
    window [end - length, end) separately, the way predict_rows did before it was batched."""
    model = dataclasses.replace(fitted.config, query_stride=stride, shuffle_positions=shuffle)
    clone = SequentialRecommender.from_arrays({**fitted.to_arrays()})
    clone.config = model
    history = sequences.build_history(data.train, data.n_users, model.seed)
    prefix = sequences.prefix_counts(history, timed_test.user, timed_test.timestamp)
    assert (prefix > SMALL.max_len).mean() > 0.3  # long prefixes, where the stride matters, are common
    predicted = clone.predict_rows(timed_test, data.train)  # all rows in one batched call
    probe = np.random.default_rng(stride).choice(len(timed_test), 300, replace=False)
    user, prefix = timed_test.user[probe].astype(np.int64), prefix[probe]
    state = np.broadcast_to(clone.weights["empty_state"], (probe.size, SMALL.hidden_dim)).copy()
    assert (prefix == 0).any() and (prefix > SMALL.max_len).any()
    for i in np.flatnonzero(prefix > 0):  # one window at a time: no batching at all
        n = int(sequences.window_lengths(prefix[i : i + 1], SMALL.max_len, stride)[0])
        end = np.array([history.starts[user[i]] + prefix[i]])
        index, _ = sequences.window_matrix(history, end, np.array([n]), SMALL.max_len, shuffle)
        video, ratio = history.video[index[:, :n]], history.target[index[:, :n]]
        state[i] = encode_last_states(clone.weights, clone.input_vectors, model, video, ratio, np.array([n]))[0]
    state += clone.weights["user_embedding.weight"][user]
    candidates = clone.video_vectors[timed_test.video[probe]]
    expected = 1 / (1 + np.exp(-((state * candidates[:, :-1]).sum(1) + candidates[:, -1])))
    np.testing.assert_allclose(predicted[probe], expected, atol=2e-6, rtol=0)


@pytest.mark.parametrize("model_class", [SequentialRecommender, ShuffledSequentialRecommender])
def test_each_epoch_log_line_names_the_model_it_trains(data: TrainingData, model_class):
    lines: list[str] = []
    model_class(dataclasses.replace(SMALL, max_epochs=2)).fit(data, progress=lines.append)
    epoch_lines = [line for line in lines if " epoch " in line]
    assert len(epoch_lines) == 2
    assert all(line.startswith(f"{model_class.name}: ") for line in epoch_lines), epoch_lines
