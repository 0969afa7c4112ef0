"""What the pipeline asks of a model beyond the :class:`~kuairec_pipeline.models.base.Recommender` contract.

The asset factory (``orchestration/assets/train.py``) builds every model asset the same way; a model that needs
more than ``fit`` (a log line per epoch, a weights file beside the bundle, a fit from other fitted models) says so
by overriding one of these methods, so the factory holds no per-model special case. All plain Python: no Dagster.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np

if TYPE_CHECKING:
    from kuairec_pipeline.models.data import TrainingData


class PipelineHooks:
    """Defaults for a model fitted from data alone, with nothing to report but its bundle."""

    def pipeline_fit(self, data: TrainingData, log: Callable[[str], None]) -> Self:
        """Fit as the pipeline does: by default ``fit(data)``; a neural model also quiets Lightning's notices
        and reports each epoch through ``log``.

        Parameters
        ----------
        data : the training data (no selection or test row).
        log : receives progress lines (the run's log in Dagster).

        Returns
        -------
        ``self``, fitted.
        """
        return self.fit(data)  # type: ignore[attr-defined]

    def fit_from_components(
        self,
        components: Mapping[str, Any],
        data: TrainingData,
        progress: Callable[[str], None] | None = None,
    ) -> Self:
        """Fit from already fitted models (the registry entry's ``inputs``, by model name) and ``data``, with the
        hyperparameters of ``self.config`` (a hybrid replaces its nested component configs by the components' own).

        Parameters
        ----------
        components : model name -> fitted ``Recommender``, one per input the registry entry lists (more are
            ignored).
        data : the training data (e.g. ``data.val`` weighs a blend or stops a network early).
        progress : receives progress lines (one per epoch of a network; the run's log in Dagster); None: the
            model's default (its logger).

        Returns
        -------
        ``self``, fitted.

        Raises
        ------
        TypeError
            For a model fitted from data alone (its registry entry lists no inputs).
        """
        raise TypeError(f"{type(self).__name__} is fitted from data, not from other fitted models")

    def training_history(self) -> tuple[np.ndarray, tuple[str, ...], int] | None:
        """``(history (epochs, columns), column names, best epoch 0-based)`` of an epoch-wise fit, else None."""
        return None

    def training_metadata(self) -> dict[str, Any]:
        """Plain values describing how the fit ended (e.g. ``stop_reason``); shown as asset metadata."""
        return {}

    def save_extras(self, models_dir: Path) -> dict[str, str]:
        """Write files beside the bundle (e.g. a weights file) below ``models_dir``; returns metadata naming them.

        Parameters
        ----------
        models_dir : ``$KUAIREC_HOME/models``.

        Returns
        -------
        dict of metadata entries (file paths as text); empty by default.
        """
        return {}


class EpochTrainedHooks:
    """``training_history`` / ``training_metadata`` of a model trained by epochs with early stopping, that keeps
    ``history`` (one row per epoch, ``two_tower_config.HISTORY_COLUMNS``), ``best_epoch`` and ``config.max_epochs``."""

    def training_history(self) -> tuple[np.ndarray, tuple[str, ...], int] | None:
        """(per-epoch history, its column names, the epoch kept); see :meth:`PipelineHooks.training_history`."""
        from kuairec_pipeline.models.two_tower_config import HISTORY_COLUMNS

        return self.history, HISTORY_COLUMNS, self.best_epoch  # type: ignore[attr-defined]

    def training_metadata(self) -> dict[str, Any]:
        """Epochs run, the epoch kept (-1 = the start, no epoch beat it on validation), and why training stopped
        (early stopping must also stop: say when every allowed epoch ran)."""
        epochs = int(self.history.shape[0])  # type: ignore[attr-defined]
        return {
            "epochs_trained": epochs,
            "best_epoch": int(self.best_epoch),  # type: ignore[attr-defined]
            "stop_reason": "max_epochs" if epochs >= self.config.max_epochs else "early_stopping",  # type: ignore[attr-defined]
        }
