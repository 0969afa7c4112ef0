"""One validated config per component: each field is declared once (type, default, range, description), the range is
enforced in Python and in the run config, the Dagster configs and the resource are generated from the same fields,
and docs/PARAMETERS.md is generated from them too."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from pydantic import ValidationError

from kuairec_pipeline.features.ratios import RatioConfig
from kuairec_pipeline.models.als import ALSConfig
from kuairec_pipeline.models.hybrid_concat import HybridConcatConfig
from kuairec_pipeline.models.hybrid_fusion import HybridFusionConfig
from kuairec_pipeline.models.linear import LinearConfig
from kuairec_pipeline.models.sequential_config import SequentialConfig
from kuairec_pipeline.models.two_tower_config import TwoTowerConfig
from kuairec_pipeline.orchestration import parameters_doc
from kuairec_pipeline.orchestration.config_gen import SOURCES, dagster_config, to_source
from kuairec_pipeline.orchestration.resources import KuaiRecResource
from kuairec_pipeline.orchestration.run_config import RunConfigError, config_classes, validate_run_config
from kuairec_pipeline.params import param, parameters
from kuairec_pipeline.settings import Settings

COMPONENT_CONFIGS = (
    LinearConfig,
    ALSConfig,
    TwoTowerConfig,
    SequentialConfig,
    HybridFusionConfig,
    HybridConcatConfig,
    RatioConfig,
    Settings,
)


@pytest.mark.parametrize("source", COMPONENT_CONFIGS, ids=lambda c: c.__name__)
def test_every_field_is_declared_once_with_a_description(source):
    declared = {item.name for item in parameters(source)}
    assert declared == {field.name for field in dataclasses.fields(source)}
    for item in parameters(source):
        assert item.spec.description and "\n" not in item.spec.description, item.name


@pytest.mark.parametrize(
    ("source", "values", "named"),
    [
        (ALSConfig, {"factors": 0}, "ALSConfig.factors must be an integer in 1..1024, got 0"),
        (ALSConfig, {"iterations": 1.5}, "ALSConfig.iterations"),  # a float for an int field
        (LinearConfig, {"l2": 0.0}, "LinearConfig.l2 must be > 0.0"),
        (TwoTowerConfig, {"dropout": 1.0}, "TwoTowerConfig.dropout must be >= 0.0 and < 1.0"),
        (TwoTowerConfig, {"accelerator": "tpu"}, "TwoTowerConfig.accelerator must be one of auto"),
        (SequentialConfig, {"max_len": 513}, "SequentialConfig.max_len must be an integer in 1..512"),
        (SequentialConfig, {"hidden_dim": 32, "num_heads": 3}, "SequentialConfig.num_heads must divide"),
        (HybridFusionConfig, {"l2": -1.0}, "HybridFusionConfig.l2 must be >= 0.0"),
        (HybridFusionConfig, {"components": ("als", "als")}, "HybridFusionConfig.components must be distinct"),
        (HybridConcatConfig, {"dropout": 1.0}, "HybridConcatConfig.dropout must be >= 0.0 and < 1.0"),
        (HybridConcatConfig, {"precision": "64"}, "HybridConcatConfig.precision must be one of 32-true"),
        (RatioConfig, {"selection_share": 1.0}, "RatioConfig.selection_share must be >= 0.0 and < 1.0"),
        (Settings, {"seed": -1}, "seed (KUAIREC_SEED) must be an integer in 0..4294967295"),
    ],
)
def test_a_config_built_in_python_refuses_a_value_outside_its_range_naming_the_field(source, values, named):
    with pytest.raises(ValueError) as caught:
        source(**values)
    assert named in str(caught.value)


def test_a_declaration_refuses_a_default_outside_its_own_range_and_a_missing_description():
    with pytest.raises(ValueError, match="outside its own range"):
        param(0, "Latent factors.", ge=1)
    with pytest.raises(ValueError, match="one-line description"):
        param(1, "")


@pytest.mark.parametrize("source", COMPONENT_CONFIGS[:-1], ids=lambda c: c.__name__)
def test_the_dagster_config_is_generated_with_the_same_defaults_ranges_and_descriptions(source):
    config = dagster_config(source)
    offered = [item for item in parameters(source) if item.spec.run_config]
    assert list(config.model_fields) == [item.name for item in offered]
    for item in offered:
        field = config.model_fields[item.name]
        assert field.description == item.spec.description
        default = list(item.default) if isinstance(item.default, tuple) else item.default
        assert field.default == default, item.name
    # the run config's defaults build exactly the dataclass's defaults
    assert to_source(config(), source) == source()


def test_the_asset_configs_are_the_generated_ones():
    classes = config_classes()
    for op, source in {
        "linear_baseline": LinearConfig,
        "als_factors": ALSConfig,
        "two_tower_embeddings": TwoTowerConfig,
        "sequential_model": SequentialConfig,
        "sequential_shuffled": SequentialConfig,
        "hybrid_fusion": HybridFusionConfig,
        "hybrid_concat": HybridConcatConfig,
        "filtered_ratios": RatioConfig,
    }.items():
        assert SOURCES.get(classes[op]) is source, op


def test_a_combination_the_dataclass_refuses_is_refused_at_run_start():
    run_config = {"ops": {"sequential_model": {"config": {"hidden_dim": 32, "num_heads": 3}}}}
    with pytest.raises(RunConfigError, match=r"ops\.sequential_model\.config: SequentialConfig\.num_heads must divide"):
        validate_run_config(run_config)
    with pytest.raises(RunConfigError, match=r"ops\.two_tower_embeddings\.config: .*fixed_biases needs link"):
        validate_run_config({"ops": {"two_tower_embeddings": {"config": {"link": "sigmoid"}}}})


def test_the_resource_has_the_settings_fields_and_round_trips():
    assert list(KuaiRecResource.model_fields) == [field.name for field in dataclasses.fields(Settings)]
    settings = Settings(home=Path("/tmp/x"), profile="tiny", seed=5, asset_storage="/tmp/y")
    assert KuaiRecResource.from_settings(settings).settings == settings
    with pytest.raises(ValidationError, match="profile"):
        KuaiRecResource(profile="huge")


def test_settings_from_env_read_each_declared_variable():
    settings = Settings.from_env(
        {"KUAIREC_HOME": "/tmp/h", "KUAIREC_PROFILE": "tiny", "KUAIREC_SEED": "7", "KUAIREC_SOURCE": "download"}
    )
    assert (settings.home, settings.profile, settings.seed, settings.source) == (Path("/tmp/h"), "tiny", 7, "download")
    with pytest.raises(ValueError, match="KUAIREC_PROFILE='huge' is not one of tiny, demo, full"):
        Settings.from_env({"KUAIREC_PROFILE": "huge"})
    with pytest.raises(ValueError, match="KUAIREC_SEED='x' is not an integer"):
        Settings.from_env({"KUAIREC_SEED": "x"})


def test_the_committed_parameter_table_is_up_to_date():
    assert parameters_doc.DOC.read_text(encoding="utf-8") == parameters_doc.render(), (
        "docs/PARAMETERS.md is out of date: run python -m kuairec_pipeline.orchestration.parameters_doc"
    )
    for name in ("factors", "learning_rate", "max_watch_ratio", "KUAIREC_SEED", "on_invalid", "exclude_seen"):
        assert f"`{name}`" in parameters_doc.render()
