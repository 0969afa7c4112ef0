"""One log line per training epoch and one saying why training stopped: a Lightning callback any model can add.

Lines go to the ``kuairec_pipeline.training`` logger; ``dagster.yaml`` makes it a managed Python logger, so in a
pipeline run they appear in the run's event log and on the terminal (the Lightning progress bar is off there:
its last redraw, e.g. ``Epoch 5/19``, reads like an interrupted run).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator

import lightning.pytorch as lightning
from lightning.pytorch.callbacks import Callback, EarlyStopping

LOGGER_NAME = "kuairec_pipeline.training"
TRAIN_LOSS_KEYS = ("train_loss_epoch", "train_loss")  # Lightning adds _epoch when a metric is logged per step too


def _value(metrics: dict, key: str) -> float | None:
    value = metrics.get(key)
    return None if value is None else float(value)


class EpochProgress(Callback):
    """Logs ``epoch i/n``, the training loss, every validation metric and the best monitored value so far, then
    the reason training ended (early stopping, max_epochs, or an interruption).

    Parameters
    ----------
    model_name : str
        Prefix of every line (``two_tower``).
    monitor : str
        Validation metric whose best value is reported (lower is better), as EarlyStopping monitors it.
    log : callable, optional
        Receives each line; default ``logging.getLogger("kuairec_pipeline.training").info``.
    """

    def __init__(self, model_name: str, monitor: str = "val_mse", log: Callable[[str], None] | None = None) -> None:
        if not model_name:
            raise ValueError("model_name must be a non-empty string")
        self.model_name = model_name
        self.monitor = monitor
        self._write = log or logging.getLogger(LOGGER_NAME).info
        self.best: float = math.inf
        self.best_epoch: int = -1
        self.lines: list[str] = []
        self._from_start = False  # set by start_from: the start is a candidate, best_epoch -1 means the start
        self._started = 0.0
        self._epoch_started = 0.0

    def start_from(self, value: float) -> None:
        """Count the starting point as a candidate (epoch 0 = before training), as the fit's best-weights keeper
        does when the model starts from a fixed, meaningful point: an epoch is reported best only if it beats it.

        Parameters
        ----------
        value : the monitored validation value of the starting point.
        """
        self.best, self.best_epoch = float(value), -1
        self._from_start = True

    def _where_best(self) -> str:
        return "the start, before any epoch" if self.best_epoch < 0 else f"epoch {self.best_epoch + 1}"

    def _emit(self, line: str) -> None:
        self.lines.append(line)
        self._write(line)

    def on_train_start(self, trainer: lightning.Trainer, pl_module: lightning.LightningModule) -> None:
        """Lightning hook: start the clock and emit the opening line (max epochs, device).

        Parameters
        ----------
        trainer : the running Lightning trainer.
        pl_module : the module being trained.
        """
        self._started = time.perf_counter()
        self._emit(f"{self.model_name}: training up to {trainer.max_epochs} epochs on {trainer.strategy.root_device}")

    def on_train_epoch_start(self, trainer: lightning.Trainer, pl_module: lightning.LightningModule) -> None:
        """Lightning hook: start the epoch's clock.

        Parameters
        ----------
        trainer : the running Lightning trainer.
        pl_module : the module being trained.
        """
        self._epoch_started = time.perf_counter()

    def on_train_epoch_end(self, trainer: lightning.Trainer, pl_module: lightning.LightningModule) -> None:
        # Lightning has run this epoch's validation loop by now, so its metrics are in callback_metrics.
        """Lightning hook: emit the epoch's line (train loss, val_* metrics, best so far, seconds).

        Parameters
        ----------
        trainer : the running Lightning trainer.
        pl_module : the module being trained.
        """
        metrics = trainer.callback_metrics
        parts = [f"{self.model_name}: epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"]
        loss = next((v for k in TRAIN_LOSS_KEYS if (v := _value(metrics, k)) is not None), None)
        if loss is not None:
            parts.append(f"train_loss {loss:.4f}")
        for key in sorted(k for k in metrics if k.startswith("val_")):
            parts.append(f"{key} {float(metrics[key]):.4f}")
        current = _value(metrics, self.monitor)
        if current is not None and current < self.best:
            self.best, self.best_epoch = current, trainer.current_epoch
        if self.best_epoch >= 0 or self._from_start:
            parts.append(f"best {self.monitor} {self.best:.4f} ({self._where_best()})")
        parts.append(f"{time.perf_counter() - self._epoch_started:.1f} s")
        self._emit("  ".join(parts))

    def on_train_end(self, trainer: lightning.Trainer, pl_module: lightning.LightningModule) -> None:
        """Lightning hook: emit why training stopped and how long it took.

        Parameters
        ----------
        trainer : the running Lightning trainer.
        pl_module : the module being trained.
        """
        self._emit(
            f"{self.model_name}: {self.stop_reason(trainer)}; "
            f"{trainer.current_epoch} epochs in {time.perf_counter() - self._started:.1f} s"
        )

    def stop_reason(self, trainer: lightning.Trainer) -> str:
        """Why the fit ended, in words (early stop with the kept epoch, max_epochs, interruption).

        Parameters
        ----------
        trainer : the Lightning trainer after (or during) ``fit``.

        Returns
        -------
        str, one phrase.
        """
        if trainer.interrupted:
            return "interrupted"
        kept = f"best {self.best:.4f} at {self._where_best()}, those weights are kept"
        # Every allowed epoch ran: that is the reason, even when patience ran out on the last one.
        if trainer.max_epochs is not None and trainer.current_epoch >= trainer.max_epochs:
            return f"reached max_epochs ({trainer.max_epochs})" + (f" ({kept})" if math.isfinite(self.best) else "")
        stopper = next((c for c in trainer.callbacks if isinstance(c, EarlyStopping)), None)
        if stopper is not None and stopper.stopped_epoch > 0:
            return (
                f"stopped early: {stopper.monitor} did not improve by {abs(stopper.min_delta):g} "
                f"for {stopper.patience} epochs ({kept})"
            )
        return "stopped"


# Lightning's start-up notices ("GPU available: ...", "TPU available: ...", the LitLogger tip) say nothing about
# this run that EpochProgress does not; they come from this logger at INFO.
LIGHTNING_NOTICES = "lightning.pytorch.utilities.rank_zero"


@contextlib.contextmanager
def quiet_lightning_notices() -> Iterator[None]:
    """Raise Lightning's notice logger to WARNING for the block (warnings and errors still show).

    Yields
    ------
    None; the logger's level is restored on exit, also after an exception.
    """
    logger = logging.getLogger(LIGHTNING_NOTICES)
    previous = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(previous)
