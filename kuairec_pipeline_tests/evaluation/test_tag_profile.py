"""The personal baseline user_tag_profile: the shared contract, its formula by hand, and its shrinkage choice."""

from __future__ import annotations

import numpy as np
import pytest

from kuairec_pipeline.evaluation.baselines import BiasConfig, UserVideoBiasRecommender, fit_baselines
from kuairec_pipeline.evaluation.metrics import evaluate
from kuairec_pipeline.evaluation.tag_profile import TagProfileConfig, UserTagProfileRecommender, tag_weights
from kuairec_pipeline.features.scaling import TargetScaler
from kuairec_pipeline_tests.models.contract import (
    RecommenderContract,
    make_featureless_training_data,
    make_interactions,
    make_planted,
)


class TestUserTagProfile(RecommenderContract):
    withheld_top_k = 1  # the star has the top bias, and its group tag carries the user's positive affinity

    def make_model(self) -> UserTagProfileRecommender:
        return UserTagProfileRecommender()


SCALER = TargetScaler(0.0, 3.0)


def tagged_data(shrinkage_val_rows: bool = False):
    """2 users x 4 videos; videos 0, 1 carry tag 0, videos 2, 3 tag 1 (video 3 also tag 2)."""
    users = [0, 0, 0, 1, 1, 1, 0, 1]
    videos = [0, 1, 2, 0, 2, 3, 3, 1]
    ratios = [2.4, 2.1, 0.6, 0.9, 2.7, 2.4, 0.3, 1.2]
    train = make_interactions(users, videos, ratios, SCALER)
    val = make_interactions([0, 1], [2, 0], [0.3, 0.6], SCALER) if shrinkage_val_rows else None
    data = make_featureless_training_data(2, 4, train, val=val, scaler=SCALER)
    data.video_tag_multi_hot[[0, 1], 0] = 1.0
    data.video_tag_multi_hot[[2, 3], 1] = 1.0
    data.video_tag_multi_hot[3, 2] = 1.0
    return data


def test_affinity_is_the_shrunken_weighted_residual_mean_on_top_of_the_exact_biases() -> None:
    data = tagged_data()
    shrinkage = 2.0
    model = UserTagProfileRecommender(TagProfileConfig(bias_l2=1.0, shrinkage_grid=(shrinkage,))).fit(data)
    bias = UserVideoBiasRecommender(BiasConfig(l2=1.0)).fit(data)
    baseline = bias.score_all(np.arange(2))  # no cell clips here: the biases alone
    weights = tag_weights(data.video_tag_multi_hot)
    np.testing.assert_allclose(weights[3], [0, 0.5, 0.5] + [0] * 28)
    residual = data.train.target - baseline[data.train.user, data.train.video]
    for user in range(2):
        mine = data.train.user == user
        w = weights[data.train.video[mine]]  # (rows, tags)
        expected = (w * residual[mine, None]).sum(axis=0) / (w.sum(axis=0) + shrinkage)
        np.testing.assert_allclose(model.affinity[user], expected, atol=1e-6)
    expected_scores = np.clip(baseline + model.affinity @ weights.T, 0, 1)
    np.testing.assert_allclose(model.score_all(np.arange(2)), expected_scores, atol=1e-6)
    assert model.shrinkage == shrinkage


def test_huge_shrinkage_gives_the_bias_baseline() -> None:
    data = tagged_data()
    model = UserTagProfileRecommender(TagProfileConfig(bias_l2=1.0, shrinkage_grid=(1e12,))).fit(data)
    bias = UserVideoBiasRecommender(BiasConfig(l2=1.0)).fit(data)
    np.testing.assert_allclose(model.score_all(np.arange(2)), bias.score_all(np.arange(2)), atol=1e-6)


def test_the_shrinkage_with_the_lowest_tuning_rmse_is_kept() -> None:
    data = tagged_data(shrinkage_val_rows=True)
    grid = (0.0, 1.0, 10.0, 1e6)
    chosen = UserTagProfileRecommender(TagProfileConfig(shrinkage_grid=grid)).fit(data)

    def val_rmse(shrinkage: float) -> float:
        model = UserTagProfileRecommender(TagProfileConfig(shrinkage_grid=(shrinkage,))).fit(data)
        error = model.predict(data.val.user, data.val.video) - data.val.target
        return float(np.sqrt(np.mean(error.astype(np.float64) ** 2)))

    rmses = {value: val_rmse(value) for value in grid}
    assert len(set(np.round(list(rmses.values()), 6))) > 1, "the grid must matter for this test to mean anything"
    assert chosen.shrinkage == min(rmses, key=rmses.get)


def test_without_tuning_rows_the_first_shrinkage_is_used() -> None:
    model = UserTagProfileRecommender(TagProfileConfig(shrinkage_grid=(7.0, 1.0))).fit(tagged_data())
    assert model.shrinkage == 7.0


def test_it_beats_the_bias_baseline_on_the_planted_taste_groups() -> None:
    # The planted affinity (+0.6 when the user's group is the video's) is carried by the group tag.
    planted = make_planted()
    bias = UserVideoBiasRecommender().fit(planted.data)
    personal = UserTagProfileRecommender().fit(planted.data)

    def test_metric(model, name: str) -> float:
        frame = evaluate(model, planted.prepared)
        return frame.filter(frame["metric"] == name)["value"].item()

    assert test_metric(personal, "ndcg@10") > test_metric(bias, "ndcg@10")
    assert test_metric(personal, "rmse") < test_metric(bias, "rmse")


def test_it_is_among_the_fitted_baselines() -> None:
    assert "user_tag_profile" in [model.name for model in fit_baselines(make_planted().data)]


@pytest.mark.parametrize("bad", [{"bias_l2": -1.0}, {"shrinkage_grid": ()}, {"shrinkage_grid": (1.0, -2.0)}])
def test_config_rejects_bad_values(bad: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        TagProfileConfig(**bad)


def test_config_round_trips_through_json_lists() -> None:
    assert TagProfileConfig(shrinkage_grid=[1, 2]).shrinkage_grid == (1.0, 2.0)
