"""The errors and warnings of the model contract, shared by every model and baseline.

- :class:`NotFittedError`: a model scored, saved or asked for state before ``fit`` / ``from_arrays``.
- :class:`UnknownIdError`: a user or video id outside ``[0, n)``. NumPy indexing would wrap a negative id to the
  end of the table and silently score another user, so every scoring entry point checks first.
- :class:`ConvergenceWarning`: an iterative solver stopped before its tolerance; the result is kept (it is the
  best iterate) but should not be trusted blindly.
- :class:`SolverDivergedError`: a solver returned non-finite values; nothing sensible can be kept.
"""

from __future__ import annotations

import warnings

import numpy as np


class NotFittedError(RuntimeError):
    """Raised when a model is used before ``fit`` or ``from_arrays`` gave it learned state."""


class UnknownIdError(IndexError):
    """Raised when a user or video id is negative or not below the model's ``n_users`` / ``n_videos``."""


class ConvergenceWarning(UserWarning):
    """Warned when an iterative solver (conjugate gradients) stops at its iteration cap before its tolerance."""


class SolverDivergedError(FloatingPointError):
    """Raised when a solver's solution holds NaN or infinity."""


def not_fitted(model: object, how: str = "call fit() or from_arrays() first") -> NotFittedError:
    """The one "not fitted" error, naming the model's class.

    Parameters
    ----------
    model : the unfitted model (its class name goes in the message).
    how : what the caller should do instead.

    Returns
    -------
    NotFittedError, to ``raise``.
    """
    return NotFittedError(f"{type(model).__name__} is not fitted: {how}")


def check_ids(ids: np.ndarray, size: int, kind: str) -> np.ndarray:
    """``ids`` as int64 after checking each lies in ``[0, size)``.

    Parameters
    ----------
    ids : integer array-like (n,) of user or video ids.
    size : the number of known ids (``n_users`` or ``n_videos``).
    kind : ``"user"`` or ``"video"``, for the message.

    Returns
    -------
    int64 ndarray (n,), the same ids.

    Raises
    ------
    UnknownIdError
        If any id is negative or >= ``size``; the message names up to five bad ids and the valid range.
    """
    ids = np.asarray(ids, dtype=np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= size):
        bad = np.unique(ids[(ids < 0) | (ids >= size)])
        shown = ", ".join(str(v) for v in bad[:5]) + (f", ... ({bad.size} in all)" if bad.size > 5 else "")
        raise UnknownIdError(f"unknown {kind} id(s) {shown}: valid {kind} ids are 0..{size - 1}")
    return ids


def check_solver(solution: np.ndarray, solver: str, info: int | None = None, detail: str = "") -> np.ndarray:
    """Check an iterative or direct solve: raise on non-finite values, warn when it did not converge.

    Parameters
    ----------
    solution : float ndarray, any shape: what the solver returned.
    solver : a name for the messages, e.g. ``"linear ridge conjugate gradients"``.
    info : the solver's convergence code where it has one (``scipy.sparse.linalg.cg``: 0 converged, > 0 the
        iteration cap was hit, < 0 illegal input or breakdown); ``None`` for a direct solve.
    detail : appended to the message (e.g. the iteration cap and tolerance).

    Returns
    -------
    ``solution`` unchanged.

    Raises
    ------
    SolverDivergedError
        If ``solution`` holds NaN or infinity, or ``info`` < 0.

    Warns
    -----
    ConvergenceWarning
        If ``info`` > 0: the returned iterate is kept but did not reach the tolerance.
    """
    if not np.isfinite(solution).all():
        raise SolverDivergedError(f"{solver} returned non-finite values {detail}".rstrip())
    if info is not None and info < 0:
        raise SolverDivergedError(f"{solver} failed (code {info}: illegal input or breakdown) {detail}".rstrip())
    if info is not None and info > 0:
        warnings.warn(
            f"{solver} did not converge in {info} iterations {detail}".rstrip(), ConvergenceWarning, stacklevel=3
        )
    return solution
