"""Explicit thread counts for the numeric libraries the models use.

Oversubscription is the usual cause of slow training on small machines: implicit's ALS runs its own OpenMP
threads and is up to 10x slower when OpenBLAS also spawns a pool per call, and torch's intra-op pool competes
with both. Every model therefore states its thread count in its config and applies it here. This module imports
neither NumPy nor torch, so a script may call :func:`set_thread_environment` before importing them (the
environment variables are read once, at library load).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import threadpoolctl

THREAD_ENVIRONMENT_VARIABLES = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")


def available_cores() -> int:
    """Cores this process may run on (respects CPU affinity and container limits set through it).

    Returns
    -------
    int >= 1.
    """
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resolve_thread_count(requested: int) -> int:
    """``requested`` threads, where 0 means every available core.

    Parameters
    ----------
    requested : threads (>= 0; 0 = :func:`available_cores`).

    Returns
    -------
    int >= 1.

    Raises
    ------
    ValueError
        If ``requested`` < 0.
    """
    if requested < 0:
        raise ValueError(f"thread count must be >= 0 (0 = all cores), got {requested}")
    return available_cores() if requested == 0 else requested


def set_thread_environment(blas_threads: int = 1, openmp_threads: int | None = None) -> None:
    """Set the BLAS / OpenMP thread variables unless the user already did; effective only before the import
    of NumPy, SciPy, torch or implicit (which read them once)."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(blas_threads))
    os.environ.setdefault("MKL_NUM_THREADS", str(blas_threads))
    if openmp_threads is not None:
        os.environ.setdefault("OMP_NUM_THREADS", str(openmp_threads))


@contextlib.contextmanager
def limited_blas_threads(threads: int = 1) -> Iterator[None]:
    """Set the thread count of the BLAS pools already loaded (OpenBLAS, MKL, BLIS) for the duration of the block.

    Works after import, unlike the environment variables; implicit checks exactly this and warns otherwise. It may
    also raise the count above the one the environment set at load (OpenBLAS honours it up to its build's maximum).
    """
    with threadpoolctl.threadpool_limits(limits=threads, user_api="blas"):
        yield


@contextlib.contextmanager
def deterministic_algorithms() -> Iterator[None]:
    """Make torch pick deterministic kernels for the block and restore the previous setting after (process-wide).

    Without it two CPU fits with the same seed and two threads differed by ~2e-7 in the scores (a parallel
    reduction whose order varies between runs), which early stopping can amplify into different metrics; with it
    they were bit-identical. Results still depend on the thread count (another summation order): the same seed,
    data and ``num_threads`` give the same model. ``warn_only``: an op without a deterministic kernel warns instead
    of failing (CUDA also needs ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` for deterministic cuBLAS).
    """
    import torch  # here, not at the top: this module must stay importable before torch (see above)

    previous, previous_warn = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=previous_warn)
