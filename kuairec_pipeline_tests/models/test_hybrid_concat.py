"""HybridConcatRecommender: the shared contract, NumPy scoring equal to the torch network, time-aware pointwise
predictions that never read the row itself or anything later, the fixed start kept unless an epoch beats it, and
users without history."""

from __future__ import annotations

import numpy as np
import pytest

from kuairec_pipeline.models.base import Recommender
from kuairec_pipeline.models.data import PreparedData
from kuairec_pipeline.models.hybrid_concat import HybridConcatConfig, HybridConcatRecommender
from kuairec_pipeline_tests.builders import (
    SMALL_ALS,
    SMALL_SEQUENTIAL,
    SMALL_TWO_TOWER,
    concat_rows,
    small_components,
    take_rows,
)
from kuairec_pipeline_tests.models.contract import RecommenderContract, make_planted

SMALL = HybridConcatConfig(
    hidden_dim=8,
    batch_size=128,
    max_epochs=15,
    early_stopping_patience=3,
    learning_rate=0.01,
    num_threads=1,
    accelerator="cpu",
    seed=2,
    als=SMALL_ALS,
    two_tower=SMALL_TWO_TOWER,
    sequential=SMALL_SEQUENTIAL,
)


class TestHybridConcat(RecommenderContract):
    def make_model(self) -> HybridConcatRecommender:
        return HybridConcatRecommender(SMALL)


@pytest.fixture(scope="module")
def prepared() -> PreparedData:
    return make_planted().prepared


@pytest.fixture(scope="module")
def components(prepared: PreparedData) -> dict[str, Recommender]:
    return small_components(prepared.training, ("als", "two_tower", "sequential"))


@pytest.fixture(scope="module")
def fitted(components, prepared: PreparedData) -> HybridConcatRecommender:
    lines: list[str] = []
    model = HybridConcatRecommender(SMALL).fit_from_components(components, prepared.training, progress=lines.append)
    model.lines = lines
    return model


def test_one_progress_line_per_epoch_and_the_kept_weights_are_the_best_on_val(fitted, prepared) -> None:
    epochs = fitted.history.shape[0]
    assert epochs >= 1 and sum("hybrid_concat: epoch" in line for line in fitted.lines) == epochs
    data = prepared.training
    mse = float(np.mean((fitted.predict_rows(data.val, data.train) - data.val.target) ** 2))
    best = float(np.nanmin(fitted.history[:, 2]))
    kept = best if fitted.best_epoch >= 0 else mse  # -1: the fixed start beat every epoch
    assert mse == pytest.approx(kept, abs=1e-5)
    assert mse <= best + 1e-6


def test_numpy_scoring_equals_the_torch_network(components, prepared) -> None:
    import torch

    from kuairec_pipeline.models import hybrid_concat_network as network_module
    from kuairec_pipeline.models.hybrid_concat import concat_inputs

    data = prepared.training
    sequential = components["sequential"]
    rows = data.val
    states = sequential.row_states(rows, data.train)
    torch.manual_seed(0)
    network = network_module.HybridConcatNetwork(concat_inputs(components, data, states), SMALL).eval()
    with torch.no_grad():  # move every weight off its start so each term of the export is exercised
        for parameter in network.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
        expected = (
            network(
                torch.from_numpy(rows.user.astype(np.int64)),
                torch.from_numpy(rows.video.astype(np.int64)),
                torch.from_numpy(states),
            )
            .clamp(0.0, 1.0)
            .numpy()
        )
    model = HybridConcatRecommender(SMALL)
    model.arrays, model.sequential = network_module.export(network), sequential
    model.n_users, model.n_videos = data.n_users, data.n_videos
    np.testing.assert_allclose(model.predict_rows(rows, data.train), expected, atol=2e-5)
    assert 0.0 < expected.mean() < 1.0
    # the grid uses each user's whole-history state: the same formula with the stored states
    users = np.unique(rows.user)
    grid = model.score_all(users)
    with torch.no_grad():
        user_grid = np.repeat(users, data.n_videos)
        video_grid = np.tile(np.arange(data.n_videos), users.size)
        whole = (
            network(
                torch.from_numpy(user_grid),
                torch.from_numpy(video_grid),
                torch.from_numpy(sequential.user_states[user_grid]),
            )
            .clamp(0.0, 1.0)
            .numpy()
        )
    np.testing.assert_allclose(grid.ravel(), whole, atol=2e-5)


def test_pointwise_predictions_never_read_the_row_itself_or_anything_later(fitted, prepared) -> None:
    data = prepared.training
    order = np.lexsort((data.val.timestamp, data.val.user))
    first = order[np.r_[True, np.diff(data.val.user[order]) != 0]]
    rows = take_rows(data.val, first)
    baseline = fitted.predict_rows(rows, data.train)
    late = concat_rows(data.train, data.val)
    late.target[len(data.train) :] = 1.0 - data.val.target
    np.testing.assert_array_equal(fitted.predict_rows(rows, late), baseline)


def test_row_chunks_change_nothing_and_the_history_is_grouped_once(fitted, prepared, monkeypatch) -> None:
    from kuairec_pipeline.models import hybrid_concat, sequences

    data = prepared.training
    together = fitted.predict_rows(data.val, data.train)
    groupings = []
    build = sequences.build_history

    def counted(*args, **kwargs):
        groupings.append(1)
        return build(*args, **kwargs)

    monkeypatch.setattr(sequences, "build_history", counted)
    monkeypatch.setattr(hybrid_concat, "ROW_BATCH", 7)  # many chunks
    assert len(data.val) > 7 * 3
    np.testing.assert_allclose(fitted.predict_rows(data.val, data.train), together, atol=1e-6, rtol=0)
    # One grouping of the training split for all chunks (once per chunk was most of its full-profile evaluation).
    assert len(groupings) == 1
    chunks = list(fitted.sequential.row_state_chunks(data.val, data.train, 7))
    assert [part.start for part, _ in chunks] == list(range(0, len(data.val), 7))
    np.testing.assert_array_equal(
        np.vstack([states for _, states in chunks]), fitted.sequential.row_states(data.val, data.train)
    )
    with pytest.raises(ValueError, match="chunk_rows"):  # at the call, not at the first chunk
        fitted.sequential.row_state_chunks(data.val, data.train, 0)


def test_users_without_history_get_finite_scores(fitted, prepared) -> None:
    data = prepared.training
    empty = take_rows(data.train, np.zeros(0, dtype=np.int64))
    rows = take_rows(data.val, np.arange(min(20, len(data.val))))
    no_history = fitted.predict_rows(rows, empty)
    assert np.isfinite(no_history).all() and no_history.min() >= 0 and no_history.max() <= 1
    scores = fitted.score_all(np.arange(data.n_users))
    assert np.isfinite(scores).all()


def test_bad_config_is_refused() -> None:
    with pytest.raises(ValueError, match="hidden_dim"):
        HybridConcatConfig(hidden_dim=0)
    with pytest.raises(ValueError, match="dropout"):
        HybridConcatConfig(dropout=1.0)


def test_kuairec_recommend_serves_hybrid_concat_and_the_hybrid_alias(fitted, tmp_path) -> None:
    from kuairec_pipeline.recommend import recommend_from_artifacts

    fitted.save(tmp_path / "hybrid_concat.npz")
    fitted.save(tmp_path / "hybrid_model.npz")  # the hybrid_model asset stores the winner's bundle as it is
    direct = recommend_from_artifacts(tmp_path, 5, k=4, model_name="hybrid_concat")
    assert direct.startswith("Top 4 videos for user 5 (model: hybrid_concat)")
    ids, _ = fitted.recommend(np.array([5]), k=4)
    assert [int(line.split()[1]) for line in direct.splitlines()[3:]] == ids[0].tolist()
    assert recommend_from_artifacts(tmp_path, 5, k=4, model_name="hybrid") == direct
