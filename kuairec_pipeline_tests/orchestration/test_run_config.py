"""Run config is validated at run start (before anything is written); every asset has a code version; metrics and
recommendations follow the models by declarative automation."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from dagster import AutomationCondition

from kuairec_pipeline.definitions import build_definitions
from kuairec_pipeline.features.ratios import SECONDS_PER_DAY
from kuairec_pipeline.orchestration.run_config import RunConfigError, config_classes, validate_run_config
from kuairec_pipeline.orchestration.versions import code_version
from kuairec_pipeline.settings import Settings


def _ops(op: str, **config) -> dict:
    return {"ops": {op: {"config": config}}}


def test_every_configured_asset_is_known():
    assert {
        "filtered_ratios",
        "als_factors",
        "two_tower_embeddings",
        "linear_baseline",
        "hybrid_fusion",
        "hybrid_concat",
        "recommendations",
        "raw_interactions",
    } <= set(config_classes())


@pytest.mark.parametrize(
    ("op", "field", "value", "allowed"),
    [
        ("filtered_ratios", "max_watch_ratio", -1.0, "> 0.0"),
        ("filtered_ratios", "validation_days", 0.0, "> 0.0"),
        ("als_factors", "factors", 0, ">= 1"),
        ("two_tower_embeddings", "learning_rate", 0.0, "> 0.0"),
        ("two_tower_embeddings", "max_epochs", 0, ">= 1"),
        ("recommendations", "k", 0, ">= 1"),
        ("hybrid_fusion", "l2", -0.5, ">= 0.0"),
        ("hybrid_concat", "dropout", 1.0, ">= 0.0 and < 1.0"),
        ("raw_interactions", "on_invalid", "skip", "one of 'error', 'drop'"),
    ],
)
def test_a_value_outside_its_range_is_refused_naming_field_and_allowed_values(op, field, value, allowed):
    with pytest.raises(RunConfigError) as caught:
        validate_run_config(_ops(op, **{field: value}))
    message = str(caught.value)
    assert f"ops.{op}.config.{field} = {value!r}" in message
    assert f"allowed {allowed}" in message


def test_every_problem_is_listed_at_once_and_valid_config_passes():
    bad = {
        "ops": {"filtered_ratios": {"config": {"max_watch_ratio": 0.0}}, "als_factors": {"config": {"iterations": 0}}}
    }
    with pytest.raises(RunConfigError) as caught:
        validate_run_config(bad)
    assert "max_watch_ratio" in str(caught.value) and "iterations" in str(caught.value)
    validate_run_config(_ops("filtered_ratios", max_watch_ratio=5.0, validation_days=3.0))
    validate_run_config({})


def _raw(tmp_path: Path) -> Path:
    # Ten days of rows, one per day, watch ratios 0.5 .. 1.4.
    table = pl.DataFrame(
        {
            "timestamp": [day * SECONDS_PER_DAY for day in range(10)],
            "watch_ratio": [0.5 + 0.1 * day for day in range(10)],
        }
    )
    table.write_parquet(tmp_path / "raw_interactions.parquet")
    return tmp_path


@pytest.mark.parametrize(
    ("config", "empty"),
    [
        ({"max_watch_ratio": 0.1}, "no train rows"),  # every row is an outlier
        ({"validation_days": 20.0}, "no train rows"),  # the validation window covers all the data
        ({"max_watch_ratio": 1.0, "validation_days": 2.0}, "no val rows"),  # the last days are all outliers
    ],
)
def test_settings_that_empty_a_split_are_refused_from_the_stored_data(tmp_path, config, empty):
    with pytest.raises(RunConfigError, match=empty):
        validate_run_config(_ops("filtered_ratios", **config), _raw(tmp_path))
    validate_run_config(_ops("filtered_ratios", validation_days=2.0), _raw(tmp_path))


def test_every_asset_has_a_code_version_that_follows_its_source():
    defs = build_definitions(Settings(home=Path("data").absolute()))
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        assert graph.get(key).code_version, key.to_user_string()
    assert code_version("filtered_ratios") != code_version("als_factors")
    assert code_version("filtered_ratios") == code_version("filtered_ratios")


def test_metrics_and_recommendations_follow_the_models_automatically():
    defs = build_definitions(Settings(home=Path("data").absolute()))
    graph = defs.resolve_asset_graph()
    for name in ("metrics", "recommendations"):
        condition = graph.get(
            next(k for k in graph.get_all_asset_keys() if k.to_user_string() == name)
        ).automation_condition
        assert condition is not None and condition.get_label() == AutomationCondition.eager().get_label(), name


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"profile": "huge"}, "profile (KUAIREC_PROFILE) must be one of tiny, demo, full"),
        ({"seed": -1}, "seed (KUAIREC_SEED) must be an integer in 0..4294967295"),
        ({"seed": 2**32}, "seed (KUAIREC_SEED)"),
        ({"source": "  "}, "source (KUAIREC_SOURCE)"),
    ],
)
def test_settings_refuse_values_outside_their_range(values, named):
    with pytest.raises(ValueError, match=named.replace("(", r"\(").replace(")", r"\)")):
        Settings(home=Path("data").absolute(), **values)
    if "seed" in values:
        with pytest.raises(ValueError, match="KUAIREC_SEED"):
            Settings.from_env({"KUAIREC_SEED": str(values["seed"])})


def test_the_resource_refuses_an_unknown_profile_or_a_negative_seed():
    from pydantic import ValidationError

    from kuairec_pipeline.orchestration.resources import KuaiRecResource

    with pytest.raises(ValidationError, match="profile"):
        KuaiRecResource(profile="huge")
    with pytest.raises(ValidationError, match="seed"):
        KuaiRecResource(seed=-1)
