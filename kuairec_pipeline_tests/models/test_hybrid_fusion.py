"""HybridFusionRecommender: the shared contract, the blend fitted on validation rows only, time-aware pointwise
predictions through the sequential component, and the ranking from each component's ranking scores."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from kuairec_pipeline.models.base import Recommender
from kuairec_pipeline.models.data import PreparedData
from kuairec_pipeline.models.hybrid_fusion import HybridFusionConfig, HybridFusionRecommender, fit_blend
from kuairec_pipeline.models.linear import LinearConfig
from kuairec_pipeline_tests.builders import (
    SMALL_ALS,
    SMALL_SEQUENTIAL,
    SMALL_TWO_TOWER,
    concat_rows,
    small_components,
    take_rows,
)
from kuairec_pipeline_tests.models.contract import RecommenderContract, make_planted

SMALL = HybridFusionConfig(linear=LinearConfig(), als=SMALL_ALS, two_tower=SMALL_TWO_TOWER, sequential=SMALL_SEQUENTIAL)


class TestHybridFusion(RecommenderContract):
    def make_model(self) -> HybridFusionRecommender:
        return HybridFusionRecommender(SMALL)


@pytest.fixture(scope="module")
def prepared() -> PreparedData:
    return make_planted().prepared


@pytest.fixture(scope="module")
def components(prepared: PreparedData) -> dict[str, Recommender]:
    return small_components(prepared.training, ("linear", "als", "two_tower", "sequential"))


def test_fit_blend_recovers_planted_weights() -> None:
    rng = np.random.default_rng(0)
    predictions = rng.random((500, 3))
    target = 0.1 + 0.3 * predictions[:, 0] + 0.6 * predictions[:, 1] + 0.05 * predictions[:, 2]
    intercept, weights = fit_blend(predictions, target, l2=0.0, non_negative=True)
    assert intercept == pytest.approx(0.1, abs=1e-9)
    np.testing.assert_allclose(weights, [0.3, 0.6, 0.05], atol=1e-9)


def test_fit_blend_keeps_weights_non_negative_when_asked() -> None:
    rng = np.random.default_rng(1)
    predictions = rng.random((500, 2))
    target = 0.5 - 0.4 * predictions[:, 0] + 0.2 * predictions[:, 1]
    _, constrained = fit_blend(predictions, target, l2=0.0, non_negative=True)
    _, free = fit_blend(predictions, target, l2=0.0, non_negative=False)
    assert (constrained >= 0).all() and constrained[0] == 0.0
    assert free[0] == pytest.approx(-0.4, abs=1e-9)


def test_blend_follows_validation_targets_not_training_targets(
    components: dict[str, Recommender], prepared: PreparedData
) -> None:
    data = prepared.training
    exact = HybridFusionConfig(l2=0.0)
    for trusted in ("sequential", "als"):
        # Validation says "trust this component only" (its own time-aware predictions); training targets are
        # scrambled: the blend weights depend on val targets only (the components are fixed here).
        val = dataclasses.replace(data.val, target=components[trusted].predict_rows(data.val, data.train))
        model = HybridFusionRecommender(exact).fit_from_components(components, dataclasses.replace(data, val=val))
        expected = [1.0 if name == trusted else 0.0 for name in exact.components]
        np.testing.assert_allclose(model.weights, expected, atol=1e-5)
        assert model.intercept == pytest.approx(0.0, abs=1e-5)


def test_scores_are_the_clipped_blend_of_each_components_ranking_scores(
    components: dict[str, Recommender], prepared: PreparedData
) -> None:
    data = prepared.training
    model = HybridFusionRecommender().fit_from_components(components, data)
    users = np.arange(data.n_users)
    blended = model.intercept + sum(
        weight * components[name].score_all(users)
        for weight, name in zip(model.weights, model.config.components, strict=True)
    )
    np.testing.assert_allclose(model.score_all(users), np.clip(blended, 0, 1), atol=1e-6)
    assert model.config.sequential == components["sequential"].config


def test_pointwise_predictions_never_read_the_row_itself_or_anything_later(
    components: dict[str, Recommender], prepared: PreparedData
) -> None:
    data = prepared.training
    # Validation targets that trust the sequential component: its weight is then positive, so its history counts.
    val = dataclasses.replace(data.val, target=components["sequential"].predict_rows(data.val, data.train))
    model = HybridFusionRecommender().fit_from_components(components, dataclasses.replace(data, val=val))
    # Query each user's earliest val row; then add every val row (each at or after its user's query) to the
    # history with flipped targets: the row itself and what comes later must change nothing.
    order = np.lexsort((data.val.timestamp, data.val.user))
    first = order[np.r_[True, np.diff(data.val.user[order]) != 0]]
    rows = take_rows(data.val, first)
    baseline = model.predict_rows(rows, data.train)
    late = concat_rows(data.train, data.val)
    late.target[len(data.train) :] = 1.0 - data.val.target
    np.testing.assert_array_equal(model.predict_rows(rows, late), baseline)
    # Earlier history does count: the sequential component reads it.
    assert model.weights[model.config.components.index("sequential")] > 0
    no_history = model.predict_rows(rows, dataclasses.replace(data.train, timestamp=data.train.timestamp + 1e9))
    assert not np.array_equal(no_history, baseline)
    assert np.isfinite(no_history).all() and no_history.min() >= 0 and no_history.max() <= 1


def test_blend_is_no_worse_than_any_component_on_validation(
    components: dict[str, Recommender], prepared: PreparedData
) -> None:
    data = prepared.training
    model = HybridFusionRecommender().fit_from_components(components, data)

    def mse(recommender: Recommender) -> float:
        return float(np.mean((recommender.predict_rows(data.val, data.train) - data.val.target) ** 2))

    assert mse(model) <= min(mse(c) for c in components.values()) + 1e-6


def test_missing_component_and_bad_config_are_refused(components: dict[str, Recommender], prepared) -> None:
    partial = {name: model for name, model in components.items() if name != "sequential"}
    with pytest.raises(KeyError, match="sequential"):
        HybridFusionRecommender().fit_from_components(partial, prepared.training)
    two = HybridFusionRecommender(HybridFusionConfig(components=("als", "two_tower"))).fit_from_components(
        partial, prepared.training
    )
    assert two.weights.shape == (2,)
    with pytest.raises(ValueError, match="components"):
        HybridFusionConfig(components=("als", "als"))
    with pytest.raises(ValueError, match="l2"):
        HybridFusionConfig(l2=-1.0)


def test_sharing_components_predicts_the_sequential_rows_once_and_changes_no_prediction(
    components: dict[str, Recommender], prepared: PreparedData
) -> None:
    from kuairec_pipeline.models.components import sharing_components
    from kuairec_pipeline.models.sequential import SequentialRecommender

    data = prepared.training
    stored = HybridFusionRecommender(SMALL).fit_from_components(components, data).bundle()
    fusion = HybridFusionRecommender.from_bundle(stored)  # as the metrics step loads it: components of its own
    own = dict(fusion.components)
    sequential = SequentialRecommender.from_bundle(components["sequential"].bundle())
    other = SequentialRecommender(dataclasses.replace(SMALL_SEQUENTIAL, seed=1)).fit(data)
    expected = fusion.predict_rows(prepared.test, data.train)
    computed = []
    predict = sequential._predict_rows
    sequential._predict_rows = lambda rows, history: computed.append(rows) or predict(rows, history)

    with sharing_components([sequential, fusion]) as shared:
        assert shared == 1 and fusion.components["sequential"] is sequential
        assert all(fusion.components[name] is own[name] for name in ("linear", "als", "two_tower"))  # no twin given
        sequential.predict_rows(prepared.test, data.train)
        np.testing.assert_array_equal(fusion.predict_rows(prepared.test, data.train), expected)
        assert len(computed) == 1  # the fusion's sequential rows came from the standalone model's
    assert fusion.components == own and all(fusion.components[n] is own[n] for n in own)  # given back

    with sharing_components([other, fusion]) as shared:  # another fit is not the fusion's component
        assert shared == 0 and fusion.components["sequential"] is own["sequential"]
