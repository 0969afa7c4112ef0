"""One executor that is in-process, multiprocess or Celery, chosen by run config or by KUAIREC_EXECUTOR.

Dagster's own executors do the work (``in_process_executor``, ``multiprocess_executor`` and dagster-celery's
``celery_executor``); this module only puts them behind one config selector, as Dagster's
``multi_or_in_process_executor`` does for two of them, so that no code changes to switch::

    KUAIREC_EXECUTOR=multiprocess dagster asset materialize -m kuairec_pipeline.definitions --select '*'

or, whatever the environment says, in the run config::

    execution:
      config:
        celery:
          broker: {env: KUAIREC_CELERY_BROKER}
          backend: {env: KUAIREC_CELERY_BACKEND}

Assets exchange data only through the IO managers' storage, so every step may run in another process or on another
machine that sees the same storage (see docs/BEYOND_ONE_MACHINE.md).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from dagster import (
    ExecutorDefinition,
    ExecutorRequirement,
    Field,
    InitExecutorContext,
    Selector,
    executor,
    in_process_executor,
    multiple_process_executor_requirements,
    multiprocess_executor,
)

EXECUTOR_ENV = "KUAIREC_EXECUTOR"
CELERY_BROKER_ENV = "KUAIREC_CELERY_BROKER"
CELERY_BACKEND_ENV = "KUAIREC_CELERY_BACKEND"
EXECUTORS = ("in_process", "multiprocess", "celery")
DEFAULT_EXECUTOR = "in_process"  # a fresh process per step re-imports torch and polars: slower on 2 cores
# Steps fork from a server that imported the project once, instead of each spawned process importing torch, polars
# and dagster again: the tiny graph took 36 s instead of 72 s this way (benchmarks/RESULTS.md).
MULTIPROCESS_DEFAULT: dict[str, Any] = {
    "start_method": {"forkserver": {"preload_modules": ["kuairec_pipeline.definitions"]}},
}


def _celery_executor() -> ExecutorDefinition | None:
    try:  # the `celery` extra; without it the selector offers in_process and multiprocess only
        with warnings.catch_warnings():
            # The newest dagster-celery (0.29.27) is published for dagster 1.13.27 and runs on our pinned 1.13.28
            # (scripts/setup.sh installs it without its pins); Dagster's library check would say so on every load.
            warnings.filterwarnings("ignore", message="Found version mismatch between `dagster-shared`.*dagster-celery")
            from dagster_celery import celery_executor
    except ImportError:
        return None
    return celery_executor


def available_executors() -> dict[str, ExecutorDefinition]:
    """The Dagster executors this selector can delegate to, by name (``celery`` only when dagster-celery is
    installed)."""
    found = {"in_process": in_process_executor, "multiprocess": multiprocess_executor}
    celery = _celery_executor()
    if celery is not None:
        found["celery"] = celery
    return found


def default_executor_config(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The selector's default config, from the environment.

    Parameters
    ----------
    environ : mapping, optional
        Environment to read (default ``os.environ``): ``KUAIREC_EXECUTOR`` (one of ``in_process`` (default),
        ``multiprocess``, ``celery``); for ``celery`` also ``KUAIREC_CELERY_BROKER`` (required) and
        ``KUAIREC_CELERY_BACKEND`` (default: the broker). The URLs are referenced as ``{env: NAME}``, so neither
        they nor any password in them is written into the stored run config.

    Returns
    -------
    dict
        ``{name: config}`` for exactly one executor, e.g. ``{"in_process": {}}``; ``multiprocess`` forks its
        steps from a forkserver that preloaded the project (:data:`MULTIPROCESS_DEFAULT`).

    Raises
    ------
    ValueError
        If ``KUAIREC_EXECUTOR`` is not one of :data:`EXECUTORS`, if it is ``celery`` and dagster-celery is not
        installed, or if it is ``celery`` and ``KUAIREC_CELERY_BROKER`` is unset.
    """
    env = os.environ if environ is None else environ
    name = env.get(EXECUTOR_ENV, DEFAULT_EXECUTOR) or DEFAULT_EXECUTOR
    if name not in EXECUTORS:
        raise ValueError(f"{EXECUTOR_ENV}={name!r} is not one of {', '.join(EXECUTORS)}")
    if name == "in_process":
        return {"in_process": {}}
    if name == "multiprocess":
        return {"multiprocess": MULTIPROCESS_DEFAULT}
    if _celery_executor() is None:
        raise ValueError(f"{EXECUTOR_ENV}=celery needs dagster-celery: run `bash scripts/setup.sh --celery` (or --dev)")
    if not env.get(CELERY_BROKER_ENV):
        raise ValueError(
            f"{EXECUTOR_ENV}=celery needs {CELERY_BROKER_ENV}, the broker URL (e.g. redis://127.0.0.1:6379/0)"
        )
    backend_env = CELERY_BACKEND_ENV if env.get(CELERY_BACKEND_ENV) else CELERY_BROKER_ENV
    return {"celery": {"broker": {"env": CELERY_BROKER_ENV}, "backend": {"env": backend_env}}}


def _requirements(executor_config: Mapping[str, Any]) -> Sequence[ExecutorRequirement]:
    # Steps in other processes need a reconstructable job, a persistent instance and storage that outlives a
    # process: the same requirements Dagster's own multiprocess and Celery executors declare.
    return [] if "in_process" in executor_config else multiple_process_executor_requirements()


def build_executor(environ: Mapping[str, str] | None = None) -> ExecutorDefinition:
    """An executor named ``kuairec`` whose config selects one of Dagster's executors.

    Parameters
    ----------
    environ : mapping, optional
        Environment that sets the default selection (see :func:`default_executor_config`).

    Returns
    -------
    ExecutorDefinition
        Config ``{in_process: ...} | {multiprocess: ...} | {celery: ...}``, each taking that executor's own
        config (e.g. ``multiprocess: {max_concurrent: 2}``); the run config overrides the environment's default.

    Raises
    ------
    ValueError
        From :func:`default_executor_config` when the environment names an unknown or unusable executor.
    """
    delegates = available_executors()
    default = default_executor_config(environ)

    @executor(
        name="kuairec",
        config_schema=Field(
            Selector({name: definition.config_schema.as_field() for name, definition in delegates.items()}),
            default_value=default,
            description=f"Which Dagster executor runs the steps: {', '.join(delegates)}.",
        ),
        requirements=_requirements,
    )
    def kuairec_executor(init_context: InitExecutorContext):
        ((name, config),) = init_context.executor_config.items()
        delegate = delegates[name]
        return delegate.executor_creation_fn(
            InitExecutorContext(  # type: ignore[misc]
                job=init_context.job,
                executor_def=delegate,
                executor_config=config,
                instance=init_context.instance,
            )
        )

    return kuairec_executor
