"""One declaration per config field: type (the annotation), default, range and a one-line description.

The config dataclasses of the plain modules (``ALSConfig``, ``RatioConfig``, ``Settings``, ...) declare each field
with :func:`param`; :func:`check` (called from their ``__post_init__``) enforces the ranges when a config is built
directly in Python. The orchestration layer generates the Dagster ``Config`` classes, the resource and
``docs/PARAMETERS.md`` from the same metadata (``orchestration/config_gen.py``), so a range or a default is written
once. Standard library only: this is the core layer.
"""

from __future__ import annotations

import dataclasses
import numbers
import typing
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

SPEC = "kuairec_param"  # the key of a field's metadata holding its :class:`Spec`
_MISSING = dataclasses.MISSING


@dataclass(frozen=True)
class Spec:
    """What a field accepts, beyond its type: bounds, a closed set of values, and what it means."""

    description: str  # one line: what the value does (its range is added from the bounds, never written by hand)
    ge: float | None = None  # value >= ge
    gt: float | None = None  # value > gt
    le: float | None = None  # value <= le
    lt: float | None = None  # value < lt
    choices: tuple[Any, ...] | None = None  # the value (each element of a tuple value) is one of these
    run_config: bool = True  # offered in the Dagster run config; False: a runtime switch (progress bar, log folder)
    env: str | None = None  # the environment variable that sets it (Settings only)

    def allowed(self, kind: object = None, optional: bool = False) -> str:
        """The accepted values in words, e.g. ``"an integer in 1..1024"``, ``"> 0.0 or None"``."""
        if self.choices is not None:
            text = "one of " + ", ".join(str(choice) for choice in self.choices)
            if typing.get_origin(kind) is tuple:
                text = "a tuple, each element " + text
        elif kind is int and self.ge is not None and self.le is not None and self.gt is None and self.lt is None:
            text = f"an integer in {self.ge}..{self.le}"
        else:
            bounds = [
                f"{symbol} {bound}"
                for symbol, bound in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
                if bound is not None
            ]
            text = " and ".join(bounds) or "any value"
        return f"{text} or None" if optional else text

    def accepts(self, value: object) -> bool:
        """Whether ``value`` (not None) is inside the bounds and the choices."""
        if self.choices is not None:
            # a tuple value (e.g. the components a hybrid blends) is checked element by element
            values = value if isinstance(value, tuple) else (value,)
            if any(element not in self.choices for element in values):
                return False
        if any(bound is not None for bound in (self.ge, self.gt, self.le, self.lt)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                return False
            return not (
                (self.ge is not None and not value >= self.ge)
                or (self.gt is not None and not value > self.gt)
                or (self.le is not None and not value <= self.le)
                or (self.lt is not None and not value < self.lt)
            )
        return True


def param(
    default: Any = _MISSING,
    description: str = "",
    *,
    default_factory: Callable[[], Any] | None = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: tuple[Any, ...] | None = None,
    run_config: bool = True,
    env: str | None = None,
) -> Any:
    """A dataclass field with its range and one-line description (see :class:`Spec`).

    Parameters
    ----------
    default : the default value (omit for a required field, or give ``default_factory``).
    description : one line saying what the value does; the allowed range is derived from the bounds.
    default_factory : builds the default (for a nested config).
    ge, gt, le, lt : numeric bounds (inclusive / exclusive).
    choices : the closed set of accepted values (of each element, for a tuple field).
    run_config : whether the field appears in the asset's Dagster run config.
    env : the environment variable that sets it (``Settings``).

    Returns
    -------
    dataclasses.Field, to be assigned in a dataclass body.

    Raises
    ------
    ValueError
        If the description is empty or spans lines, or the default itself is refused by the range.
    """
    if not description.strip() or "\n" in description:
        raise ValueError("a parameter needs a one-line description")
    spec = Spec(description, ge, gt, le, lt, choices, run_config, env)
    if default is not _MISSING and default is not None and not spec.accepts(default):
        raise ValueError(f"default {default!r} is outside its own range ({spec.allowed()})")
    metadata = {SPEC: spec}
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Parameter:
    """One declared field of a config class, resolved: name, type hint, default, spec."""

    name: str
    hint: Any  # the resolved annotation, e.g. ``int``, ``float | None``, ``tuple[int, ...]``
    default: Any  # dataclasses.MISSING when required
    spec: Spec

    @property
    def optional(self) -> bool:
        """Whether None is an accepted value (``X | None``)."""
        return type(None) in typing.get_args(self.hint)

    @property
    def kind(self) -> Any:
        """The annotation without ``| None``."""
        args = [arg for arg in typing.get_args(self.hint) if arg is not type(None)]
        return args[0] if self.optional and len(args) == 1 else self.hint


@cache
def parameters(cls: type) -> tuple[Parameter, ...]:
    """The fields of the dataclass ``cls`` declared with :func:`param`, in declaration order.

    Parameters
    ----------
    cls : a dataclass whose fields were declared with :func:`param`.

    Returns
    -------
    tuple of Parameter (fields without a spec are left out).
    """
    hints = typing.get_type_hints(cls)
    found = []
    for field in dataclasses.fields(cls):
        spec = field.metadata.get(SPEC)
        if spec is None:
            continue
        default = field.default
        if default is _MISSING and field.default_factory is not _MISSING:
            default = field.default_factory()
        found.append(Parameter(field.name, hints[field.name], default, spec))
    return tuple(found)


def _type_ok(kind: Any, value: object) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if kind is str:
        return isinstance(value, str)
    if typing.get_origin(kind) is tuple:
        item = typing.get_args(kind)[0]
        return isinstance(value, tuple) and all(_type_ok(item, element) for element in value)
    return isinstance(value, kind) if isinstance(kind, type) else True


def label(cls: type, item: Parameter) -> str:
    """How errors name a field: ``ALSConfig.factors``, or ``seed (KUAIREC_SEED)`` for an environment setting."""
    return f"{item.name} ({item.spec.env})" if item.spec.env else f"{cls.__name__}.{item.name}"


def check(instance: object) -> None:
    """Enforce the type and range of every :func:`param` field of the dataclass ``instance``.

    Parameters
    ----------
    instance : a dataclass instance (call from ``__post_init__``).

    Raises
    ------
    ValueError
        Naming the first field outside its range: ``"ALSConfig.factors must be an integer in 1..1024, got 0"``.
    """
    cls = type(instance)
    for item in parameters(cls):
        value = getattr(instance, item.name)
        if value is None and item.optional:
            continue
        if not _type_ok(item.kind, value) or not item.spec.accepts(value):
            allowed = item.spec.allowed(item.kind, item.optional)
            raise ValueError(f"{label(cls, item)} must be {allowed}, got {value!r}")
