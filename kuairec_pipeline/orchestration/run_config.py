"""Validate a run's whole config when the run starts, before any step writes anything.

Dagster checks run config types at launch but builds each asset's ``Config`` (and so applies its ranges) only when
that step runs, after earlier steps have already replaced their files. The IO manager factories call
:func:`validate_run_config` at run start instead: every configured asset's fields are checked against their ranges,
and the ``filtered_ratios`` settings are tried on the stored ``raw_interactions`` (when there is one), so a setting
that would empty the training or validation split is refused up front.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import typing
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import annotated_types
import polars as pl
from dagster import AssetsDefinition, Config
from pydantic import ValidationError

from kuairec_pipeline.features.ratios import SECONDS_PER_DAY
from kuairec_pipeline.orchestration.config_gen import SOURCES, to_source
from kuairec_pipeline.orchestration.storage_layout import stored_interaction_files


class RunConfigError(ValueError):
    """The run config names a value outside its field's range, or a setting that cannot finish; one line each."""


@cache
def config_classes() -> dict[str, type[Config]]:
    """Op name -> the ``Config`` class of its ``config`` parameter, for every asset in the ``assets`` package."""
    import kuairec_pipeline.orchestration.assets as package

    found: dict[str, type[Config]] = {}
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for attribute in vars(module).values():
            # an asset factory's module holds its assets in a list (orchestration/assets/train.py: MODEL_ASSETS)
            for value in attribute if isinstance(attribute, list) else [attribute]:
                if not isinstance(value, AssetsDefinition):
                    continue
                function = value.op.compute_fn.decorated_fn
                hints = typing.get_type_hints(function)
                config = hints.get("config")
                if inspect.isclass(config) and issubclass(config, Config):
                    found[value.op.name] = config
    return found


def _allowed(config_class: type[Config], name: str) -> str:
    field = config_class.model_fields.get(name)
    if field is None:
        return f"one of {', '.join(config_class.model_fields)}"
    bounds = []
    for item in field.metadata:
        for attribute, symbol in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            if isinstance(item, getattr(annotated_types, attribute.capitalize())):
                bounds.append(f"{symbol} {getattr(item, attribute)}")
    if typing.get_origin(field.annotation) is typing.Literal:
        bounds.append("one of " + ", ".join(repr(v) for v in typing.get_args(field.annotation)))
    return " and ".join(bounds) or f"a value of type {getattr(field.annotation, '__name__', field.annotation)}"


def field_errors(op: str, config_class: type[Config], values: Mapping[str, Any]) -> list[str]:
    """One message per field of ``values`` outside its range: path, value given, allowed values, description.

    A generated config (``config_gen.dagster_config``) is also built into its dataclass, so a combination its
    ``__post_init__`` refuses (e.g. ``num_heads`` not dividing ``hidden_dim``) is refused at run start too.
    """
    try:
        config = config_class(**values)
        source = SOURCES.get(config_class)
        if source is not None:
            to_source(config, source)
    except ValueError as error:
        if not isinstance(error, ValidationError):
            return [f"ops.{op}.config: {error}"]
        messages = []
        for problem in error.errors():
            name = str(problem["loc"][0]) if problem["loc"] else "?"
            field = config_class.model_fields.get(name)
            about = f" ({field.description})" if field is not None and field.description else ""
            messages.append(
                f"ops.{op}.config.{name} = {problem.get('input')!r}: allowed {_allowed(config_class, name)}"
                f"; {problem['msg']}{about}"
            )
        return messages
    return []


def ratio_setting_errors(values: Mapping[str, Any], raw_interactions: Path) -> list[str]:
    """Whether ``filtered_ratios`` with these settings leaves training and validation rows in the stored
    ``raw_interactions`` and the stored days of ``interaction_days`` beside it (a scan of two columns); one message
    per empty split."""
    if not raw_interactions.is_file():
        return []
    max_ratio = float(values.get("max_watch_ratio", 3.0))
    days = float(values.get("validation_days", 7.0))
    files = stored_interaction_files(raw_interactions.parent)
    scan = pl.scan_parquet(files, hive_partitioning=False).select("timestamp", "watch_ratio")
    last = scan.select(pl.col("timestamp").max()).collect().item()
    if last is None:
        return []
    cutoff = float(last) - days * SECONDS_PER_DAY
    passes = (pl.col("watch_ratio") <= max_ratio).fill_null(False)
    counts = (
        scan.select(
            train=(passes & ~(pl.col("timestamp") > cutoff).fill_null(False)).sum(),
            val=(passes & (pl.col("timestamp") > cutoff).fill_null(False)).sum(),
        )
        .collect()
        .row(0, named=True)
    )
    errors = []
    for split, count in counts.items():
        if count == 0:
            errors.append(
                f"ops.filtered_ratios.config: max_watch_ratio {max_ratio} and validation_days {days} leave "
                f"no {split} rows in {raw_interactions}, which the models need"
            )
    return errors


def validate_run_config(run_config: Mapping[str, Any], assets_dir: Path | None = None) -> None:
    """Raise :class:`RunConfigError` listing every problem of ``run_config`` (``{"ops": {op: {"config": ...}}}``).

    Parameters
    ----------
    run_config : mapping
        The run's config as Dagster holds it.
    assets_dir : Path, optional
        Where ``raw_interactions.parquet`` is stored; with it, ``filtered_ratios`` settings are tried on the data.

    Raises
    ------
    RunConfigError
        One line per field outside its range (path, value, allowed values) and per split a setting would empty.
    """
    classes = config_classes()
    problems: list[str] = []
    for op, entry in (run_config.get("ops") or {}).items():
        values = (entry or {}).get("config") or {}
        if op in classes and isinstance(values, Mapping):
            errors = field_errors(op, classes[op], values)
            problems.extend(errors)
            if op == "filtered_ratios" and not errors and assets_dir is not None:
                problems.extend(ratio_setting_errors(values, assets_dir / "raw_interactions.parquet"))
    if problems:
        raise RunConfigError("run config refused before anything was written:\n- " + "\n- ".join(problems))
