"""The fitted models a hybrid is built from: their names, classes and configs, and how a hybrid stores them.

Both hybrids (:mod:`.hybrid_fusion`, late fusion; :mod:`.hybrid_concat`, embedding concatenation) hold fitted
component models. A component is stored inside the hybrid's bundle as its own bundle with every key prefixed by
``"<name>."`` (``als.user_factors``), so it restores through its own ``from_bundle`` and nothing is pickled.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from kuairec_pipeline.models.als import ALSConfig, ALSRecommender
from kuairec_pipeline.models.base import Recommender
from kuairec_pipeline.models.data import TrainingData
from kuairec_pipeline.models.linear import LinearConfig, LinearRecommender
from kuairec_pipeline.models.sequential import SequentialRecommender
from kuairec_pipeline.models.sequential_config import SequentialConfig
from kuairec_pipeline.models.sequential_config import config_from_dict as sequential_config_from_dict
from kuairec_pipeline.models.two_tower import TwoTowerConfig, TwoTowerRecommender
from kuairec_pipeline.models.two_tower import config_from_dict as two_tower_config_from_dict
from kuairec_pipeline.params import param

# name -> model class; the names are the registry's model names.
COMPONENT_CLASSES: dict[str, type[Recommender]] = {
    "linear": LinearRecommender,
    "als": ALSRecommender,
    "two_tower": TwoTowerRecommender,
    "sequential": SequentialRecommender,
}


def component_config(label: str, config_class: type) -> Any:
    """The hybrid config field holding one component's config: used when the hybrid's ``fit`` trains that component
    itself; in the pipeline the fitted component's own config is stored instead. Not a run-config field."""
    return param(
        description=f"The {label} component's config (from the fitted component in the pipeline).",
        default_factory=config_class,
        run_config=False,
    )


def _plain_config(cls: type, values: dict[str, Any]) -> Any:
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{key: value for key, value in values.items() if key in known})


def component_config_from_dict(name: str, values: dict[str, Any]) -> Any:
    """A component's config dataclass from its stored (JSON) dict; unknown keys dropped.

    Parameters
    ----------
    name : a key of :data:`COMPONENT_CLASSES`.
    values : field name -> value.

    Returns
    -------
    LinearConfig, ALSConfig, TwoTowerConfig or SequentialConfig.

    Raises
    ------
    KeyError
        If ``name`` is not a component.
    ValueError
        If a value is outside its field's range.
    """
    readers = {
        "linear": lambda v: _plain_config(LinearConfig, v),
        "als": lambda v: _plain_config(ALSConfig, v),
        "two_tower": two_tower_config_from_dict,
        "sequential": sequential_config_from_dict,
    }
    return readers[name](values)


def default_component_configs() -> dict[str, Any]:
    """Each component's default config.

    Returns
    -------
    dict name -> config dataclass.
    """
    return {
        "linear": LinearConfig(),
        "als": ALSConfig(),
        "two_tower": TwoTowerConfig(),
        "sequential": SequentialConfig(),
    }


def fit_components(names: tuple[str, ...], configs: dict[str, Any], data: TrainingData) -> dict[str, Recommender]:
    """Fit each named component from its config on ``data`` (train, with val for early stopping).

    Parameters
    ----------
    names : component names, keys of :data:`COMPONENT_CLASSES`.
    configs : name -> config dataclass.
    data : the training data.

    Returns
    -------
    dict name -> fitted model, in the order of ``names``.
    """
    return {name: COMPONENT_CLASSES[name](configs[name]).fit(data) for name in names}


def checked_components(components: dict[str, Recommender], names: tuple[str, ...]) -> dict[str, Recommender]:
    """The ``names`` entries of ``components``, in that order, after checking that they exist, are of the right
    class and share one id space.

    Parameters
    ----------
    components : name -> fitted model (more names than needed are allowed).
    names : the components the hybrid uses.

    Returns
    -------
    dict name -> fitted model.

    Raises
    ------
    KeyError
        If a needed component is missing.
    TypeError
        If a component is not an instance of its class in :data:`COMPONENT_CLASSES`.
    ValueError
        If the components disagree on ``(n_users, n_videos)``.
    """
    missing = [name for name in names if name not in components]
    if missing:
        raise KeyError(f"hybrid needs the fitted component(s) {missing}; got {sorted(components)}")
    chosen = {name: components[name] for name in names}
    for name, model in chosen.items():
        if not isinstance(model, COMPONENT_CLASSES[name]):
            raise TypeError(f"component {name!r} must be a {COMPONENT_CLASSES[name].__name__}, got {type(model)}")
    sizes = {name: (model.n_users, model.n_videos) for name, model in chosen.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"components disagree on the id space (n_users, n_videos): {sizes}")
    return chosen


def store_components(components: dict[str, Recommender]) -> dict[str, np.ndarray]:
    """Every component's bundle with its keys prefixed by ``"<name>."``.

    Parameters
    ----------
    components : name -> fitted model.

    Returns
    -------
    dict of prefixed key -> ndarray.
    """
    return {f"{name}.{key}": value for name, model in components.items() for key, value in model.bundle().items()}


def restore_components(arrays: dict[str, np.ndarray], names: tuple[str, ...], where: str) -> dict[str, Recommender]:
    """Inverse of :func:`store_components` for ``names``.

    Parameters
    ----------
    arrays : a hybrid's bundle.
    names : the components to restore.
    where : names the source in error messages.

    Returns
    -------
    dict name -> fitted model.

    Raises
    ------
    ValueError
        If a prefixed bundle holds another model than its name says.
    """
    restored = {}
    for name in names:
        prefix = f"{name}."
        own = {key[len(prefix) :]: value for key, value in arrays.items() if key.startswith(prefix)}
        restored[name] = COMPONENT_CLASSES[name].from_bundle(own, where=f"{where} ({name})")
    return restored


def same_model(left: Recommender, right: Recommender) -> bool:
    """True when ``left`` and ``right`` are one class and their bundles hold equal arrays (same keys, dtypes and
    values; a NaN never equals): either answers every query as the other would."""
    if type(left) is not type(right):
        return False
    ours, theirs = left.bundle(), right.bundle()
    return ours.keys() == theirs.keys() and all(
        ours[key].dtype == theirs[key].dtype and np.array_equal(ours[key], theirs[key]) for key in ours
    )


@contextlib.contextmanager
def sharing_components(models: Sequence[Recommender]) -> Iterator[int]:
    """For the block: a hybrid's component that is :func:`same_model` as the model of its name in ``models`` *is*
    that model, and every model that can remember its time-aware row predictions
    (:meth:`.SequentialRecommender.remembering_rows`) does. The metrics step so predicts the sequential model's
    time-aware test and tuning rows once, not once more inside each hybrid that blends it (the pipeline fits its
    hybrids from the very models it stores, so their components are equal). The selection rows are scored through
    ``predict``, which remembers nothing.

    Parameters
    ----------
    models : the fitted models of one evaluation; a hybrid is one with a ``components`` dict (name -> model; late
        fusion's).

    Yields
    ------
    int, how many components were shared. At the end each hybrid gets its own components back.
    """
    by_name = {model.name: model for model in models}
    hybrids = [model.components for model in models if isinstance(getattr(model, "components", None), dict)]
    shared = 0
    with contextlib.ExitStack() as stack:
        for parts in hybrids:
            for name, part in list(parts.items()):
                standalone = by_name.get(name)
                if standalone is not None and standalone is not part and same_model(standalone, part):
                    parts[name] = standalone
                    stack.callback(parts.__setitem__, name, part)  # put back on the way out, error or not
                    shared += 1
        every = {id(model): model for model in [*models, *(part for parts in hybrids for part in parts.values())]}
        for model in every.values():
            if isinstance(model, SequentialRecommender):
                stack.enter_context(model.remembering_rows())
        yield shared
