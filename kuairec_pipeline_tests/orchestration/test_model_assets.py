"""Model assets come from the registry: one asset per entry, its config generated from the entry's config class,
its inputs the training arrays plus the fitted models the entry names (any number)."""

from __future__ import annotations

import pytest

from kuairec_pipeline.models.hybrid_fusion import HybridFusionConfig, HybridFusionRecommender
from kuairec_pipeline.models.linear import LinearRecommender
from kuairec_pipeline.models.registry import TRAINED_MODELS, ModelEntry
from kuairec_pipeline.orchestration.assets import hybrid
from kuairec_pipeline.orchestration.assets.train import MODEL_ASSETS, TRAINING_ARRAYS, model_asset
from kuairec_pipeline.orchestration.config_gen import SOURCES
from kuairec_pipeline.orchestration.run_config import config_classes


def _parents(assets_def) -> set[str]:
    return {key.to_user_string() for key in assets_def.keys_by_input_name.values()}


def test_every_registry_entry_has_its_asset_with_its_kinds_config_and_inputs():
    by_key = {a.key.to_user_string(): a for a in MODEL_ASSETS}
    assert set(by_key) == {entry.asset_key for entry in TRAINED_MODELS.values()}
    for entry in TRAINED_MODELS.values():
        assets_def = by_key[entry.asset_key]
        spec = next(iter(assets_def.specs))
        assert set(spec.kinds) == set(entry.kinds), entry.name
        assert SOURCES[config_classes()[entry.asset_key]] is entry.config_class(), entry.name
        inputs = {TRAINED_MODELS[name].asset_key for name in entry.inputs}
        assert _parents(assets_def) == {TRAINING_ARRAYS} | inputs, entry.name
        assert assets_def.required_resource_keys >= {"kuairec"}


def test_an_entry_may_take_any_number_of_fitted_models():
    entry = ModelEntry(
        "blend3",
        "blend3_model",
        "kuairec_pipeline.models.hybrid_fusion:HybridFusionRecommender",
        "kuairec_pipeline.models.hybrid_fusion:HybridFusionConfig",
        inputs=("linear", "als", "two_tower"),
    )
    assets_def = model_asset(entry)
    assert assets_def.key.to_user_string() == "blend3_model"
    assert _parents(assets_def) == {TRAINING_ARRAYS, "linear_baseline", "als_factors", "two_tower_embeddings"}


def test_a_model_fitted_from_data_refuses_components_and_a_hybrid_names_what_it_lacks():
    with pytest.raises(TypeError, match="fitted from data"):
        LinearRecommender().fit_from_components({}, None)
    with pytest.raises(KeyError, match="two_tower"):
        HybridFusionRecommender().fit_from_components({"als": LinearRecommender()}, None)
    with pytest.raises(TypeError, match="must be a ALSRecommender"):
        HybridFusionRecommender(HybridFusionConfig(components=("als",))).fit_from_components(
            {"als": LinearRecommender()}, None
        )


def test_the_hybrids_are_factory_assets_and_hybrid_model_only_selects():
    by_key = {a.key.to_user_string(): a for a in MODEL_ASSETS}
    assert _parents(by_key["hybrid_fusion"]) == {
        TRAINING_ARRAYS,
        "linear_baseline",
        "als_factors",
        "two_tower_embeddings",
        "sequential_model",
    }
    assert _parents(by_key["hybrid_concat"]) == {
        TRAINING_ARRAYS,
        "als_factors",
        "two_tower_embeddings",
        "sequential_model",
    }
    assert _parents(hybrid.hybrid_model) == {TRAINING_ARRAYS, "evaluation_arrays", "hybrid_fusion", "hybrid_concat"}
    # the winner selection is no model: no run config of its own, no registry row
    assert "hybrid_model" not in config_classes()
    assert "hybrid_model" not in {entry.asset_key for entry in TRAINED_MODELS.values()}
