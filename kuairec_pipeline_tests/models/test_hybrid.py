"""HybridRecommender: the shared contract, plus the blend fitted on validation rows only."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from kuairec_pipeline.models.als import ALSRecommender
from kuairec_pipeline.models.data import TrainingData
from kuairec_pipeline.models.hybrid import HybridConfig, HybridRecommender, fit_blend
from kuairec_pipeline.models.two_tower import TwoTowerRecommender
from kuairec_pipeline_tests.builders import SMALL_ALS, SMALL_TWO_TOWER
from kuairec_pipeline_tests.models.contract import RecommenderContract, make_planted_training_data

SMALL = HybridConfig(als=SMALL_ALS, two_tower=SMALL_TWO_TOWER)


class TestHybrid(RecommenderContract):
    def make_model(self) -> HybridRecommender:
        return HybridRecommender(SMALL)


@pytest.fixture(scope="module")
def data() -> TrainingData:
    return make_planted_training_data()


@pytest.fixture(scope="module")
def components(data: TrainingData) -> tuple[ALSRecommender, TwoTowerRecommender]:
    return ALSRecommender(SMALL_ALS).fit(data), TwoTowerRecommender(SMALL_TWO_TOWER).fit(data)


def test_fit_blend_recovers_planted_weights() -> None:
    rng = np.random.default_rng(0)
    predictions = rng.random((500, 2))
    target = 0.1 + 0.3 * predictions[:, 0] + 0.6 * predictions[:, 1]
    intercept, weights = fit_blend(predictions, target, l2=0.0, non_negative=True)
    assert intercept == pytest.approx(0.1, abs=1e-9)
    np.testing.assert_allclose(weights, [0.3, 0.6], atol=1e-9)


def test_fit_blend_keeps_weights_non_negative_when_asked() -> None:
    rng = np.random.default_rng(1)
    predictions = rng.random((500, 2))
    target = 0.5 - 0.4 * predictions[:, 0] + 0.2 * predictions[:, 1]
    _, constrained = fit_blend(predictions, target, l2=0.0, non_negative=True)
    _, free = fit_blend(predictions, target, l2=0.0, non_negative=False)
    assert (constrained >= 0).all() and constrained[0] == 0.0
    assert free[0] == pytest.approx(-0.4, abs=1e-9)


def test_blend_follows_validation_targets_not_training_targets(
    components: tuple[ALSRecommender, TwoTowerRecommender], data: TrainingData
) -> None:
    als, two_tower = components
    # Validation says "trust ALS only"; training targets are scrambled: if they were used, the blend would differ.
    val_as_als = dataclasses.replace(data.val, target=als.predict(data.val.user, data.val.video))
    scrambled = dataclasses.replace(data.train, target=np.random.default_rng(0).permutation(data.train.target))
    exact = HybridConfig(l2=0.0)
    trust_als = HybridRecommender.from_components(als, two_tower, dataclasses.replace(data, val=val_as_als), exact)
    np.testing.assert_allclose(trust_als.weights, [1.0, 0.0], atol=1e-6)
    assert trust_als.intercept == pytest.approx(0.0, abs=1e-6)
    same = HybridRecommender.from_components(
        als, two_tower, dataclasses.replace(data, val=val_as_als, train=scrambled), exact
    )
    np.testing.assert_array_equal(same.weights, trust_als.weights)

    val_as_two_tower = dataclasses.replace(data.val, target=two_tower.predict(data.val.user, data.val.video))
    trust_two_tower = HybridRecommender.from_components(
        als, two_tower, dataclasses.replace(data, val=val_as_two_tower), exact
    )
    np.testing.assert_allclose(trust_two_tower.weights, [0.0, 1.0], atol=1e-6)


def test_scores_are_the_clipped_blend_of_the_components(
    components: tuple[ALSRecommender, TwoTowerRecommender], data: TrainingData
) -> None:
    als, two_tower = components
    model = HybridRecommender.from_components(als, two_tower, data)
    users = np.arange(data.n_users)
    blended = model.intercept + model.weights[0] * als.score_all(users) + model.weights[1] * two_tower.score_all(users)
    np.testing.assert_allclose(model.score_all(users), np.clip(blended, 0, 1), atol=1e-6)
    assert model.config.als == als.config and model.config.two_tower == two_tower.config


def test_blend_is_no_worse_than_either_component_on_validation(
    components: tuple[ALSRecommender, TwoTowerRecommender], data: TrainingData
) -> None:
    als, two_tower = components
    model = HybridRecommender.from_components(als, two_tower, data)

    def mse(recommender) -> float:
        return float(np.mean((recommender.predict(data.val.user, data.val.video) - data.val.target) ** 2))

    assert mse(model) <= min(mse(als), mse(two_tower)) + 1e-6
