"""Dagster ``Config`` classes and resource fields generated from the plain config dataclasses.

A config dataclass (``ALSConfig``, ``RatioConfig``, ``Settings``, ...) declares each field once with
:func:`kuairec_pipeline.params.param`: type, default, range, description. This module turns the fields offered in
the run config into pydantic fields with the same default, bounds (``Field(ge=..., lt=...)``, which
``run_config.validate_run_config`` reads back to name the allowed values) and description, and builds the
dataclass back from a run's ``Config``. Nothing is copied by hand, so the two cannot disagree.
"""

from __future__ import annotations

import typing
from functools import cache
from pathlib import Path
from typing import Any, Literal

from dagster import Config
from pydantic import Field, create_model

from kuairec_pipeline.params import Parameter, parameters


def pydantic_type(item: Parameter) -> Any:
    """The run-config type of a parameter: ``Literal`` for a closed set, ``list`` for a tuple, ``str`` for a
    path, ``X | None`` kept."""
    kind = item.kind
    if typing.get_origin(kind) is tuple:
        element = Literal[item.spec.choices] if item.spec.choices is not None else typing.get_args(kind)[0]
        kind = list[element]
    elif item.spec.choices is not None:
        kind = Literal[item.spec.choices]
    elif kind is Path:
        kind = str
    return kind | None if item.optional else kind


def pydantic_default(item: Parameter) -> Any:
    """The default as the run config holds it (a tuple as a list, a path as text)."""
    if isinstance(item.default, tuple):
        return list(item.default)
    if isinstance(item.default, Path):
        return str(item.default)
    return item.default


def pydantic_fields(source: type, include_all: bool = False) -> dict[str, tuple[Any, Any]]:
    """``name -> (type, Field)`` for :func:`pydantic.create_model`, one per run-config field of ``source``.

    Parameters
    ----------
    source : a dataclass whose fields were declared with ``params.param``.
    include_all : also the fields marked ``run_config=False``.

    Returns
    -------
    dict, in declaration order.
    """
    fields: dict[str, tuple[Any, Any]] = {}
    for item in parameters(source):
        if not (item.spec.run_config or include_all):
            continue
        spec = item.spec
        field = Field(
            default=pydantic_default(item),
            ge=spec.ge,
            gt=spec.gt,
            le=spec.le,
            lt=spec.lt,
            description=spec.description,
        )
        fields[item.name] = (pydantic_type(item), field)
    return fields


SOURCES: dict[type[Config], type] = {}  # generated Config class -> the dataclass it was generated from


@cache
def dagster_config(source: type, name: str | None = None) -> type[Config]:
    """The Dagster ``Config`` class of ``source``'s run-config fields (same defaults, ranges, descriptions).

    Parameters
    ----------
    source : a config dataclass declared with ``params.param``.
    name : the class name shown in the Dagster UI (default: ``ALSConfig`` -> ``ALSAssetConfig``).

    Returns
    -------
    a ``dagster.Config`` subclass; :func:`to_source` builds ``source`` from an instance of it.
    """
    name = name or source.__name__.removesuffix("Config") + "AssetConfig"
    config = create_model(name, __base__=Config, __module__=__name__, **pydantic_fields(source))
    config.__doc__ = f"Run config of {source.__name__} (generated from its fields; see docs/PARAMETERS.md)."
    SOURCES[config] = source
    return config


def to_source(config: Config, source: type, **fixed: Any) -> Any:
    """The ``source`` dataclass with the values of the run's ``config`` (lists back to tuples) and ``fixed``.

    Parameters
    ----------
    config : an instance of ``dagster_config(source)``.
    source : the config dataclass.
    **fixed : values set by the pipeline itself (e.g. ``show_progress=False``), not by the run config.

    Returns
    -------
    an instance of ``source``.

    Raises
    ------
    ValueError
        If a value is outside its range (the dataclass checks it again).
    """
    kinds = {item.name: item.kind for item in parameters(source)}
    values = {}
    for name, value in config.model_dump().items():
        kind = kinds.get(name)
        values[name] = tuple(value) if typing.get_origin(kind) is tuple and value is not None else value
    return source(**{**values, **fixed})
