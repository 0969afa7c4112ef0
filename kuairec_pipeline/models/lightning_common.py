"""What every Lightning network of the project shares: the validation error sums and their ``val_mse`` /
``val_mae`` log, the fused AdamW, the callback that keeps the best epoch's weights, the thread scope, the trainer
and the quiet fit.

The two-tower (:mod:`.two_tower_network`), the sequential transformer (:mod:`.sequential_network`) and the
embedding-concatenation hybrid (:mod:`.hybrid_concat_network`) each had their own copy of these; one copy keeps the
early-stopping signal (validation MSE of the served prediction, summed in float64) and the log lines identical
across models. Imported only to train: it imports torch and Lightning.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import lightning.pytorch as lightning
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping

from kuairec_pipeline.models.progress import EpochProgress

# Warnings a fit over resident-tensor batches always raises and that ask nothing of us.
QUIET_FIT_WARNINGS = (
    # The rows are already resident tensors, gathered per batch in one process: worker processes would only add
    # copies, and the length of these single-process iterables is exact.
    ".*does not have many workers.*",
    ".*`IterableDataset` has `__len__` defined.*",
    ".*no `val_dataloader`. Skipping val loop.*",  # no validation rows
    # Lightning 2.6 calls a torch pytree API that torch 2.13 deprecates; nothing for us to change.
    ".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*",
    ".*enable_nested_tensor.*",  # the transformer's fast path, off on purpose for the causal mask
)


class ValidationErrorSums:
    """Mixin for a ``LightningModule`` whose ``config`` has ``learning_rate`` and ``weight_decay``: sums the
    validation errors in float64 over the whole pass and logs ``val_mse`` / ``val_mae`` once per epoch, and
    optimizes with fused AdamW (Loshchilov & Hutter, "Decoupled weight decay regularization", ICLR 2019).

    Put it before ``lightning.LightningModule`` in the bases so its hooks are the ones Lightning calls. A
    ``validation_step`` computes ``prediction - target`` of the *served* prediction and hands it to
    :meth:`add_validation_errors`.
    """

    def on_validation_epoch_start(self) -> None:
        """Lightning hook: zero the float64 sums (squared error, absolute error, rows) of this validation pass."""
        self._val_sums = torch.zeros(3, dtype=torch.float64, device=self.device)

    def add_validation_errors(self, error: torch.Tensor) -> None:
        """Add one batch's errors to the pass's sums.

        Parameters
        ----------
        error : float tensor (B,): served prediction minus target, in target units.
        """
        error = error.double()
        rows = torch.tensor(float(error.shape[0]), dtype=torch.float64, device=error.device)
        self._val_sums += torch.stack([error.pow(2).sum(), error.abs().sum(), rows])

    def on_validation_epoch_end(self) -> None:
        """Lightning hook: log ``val_mse`` and ``val_mae`` (squared target units and target units) when the pass had
        rows."""
        squared, absolute, rows = self._val_sums.tolist()
        if rows > 0:
            self.log("val_mse", squared / rows, prog_bar=True)
            self.log("val_mae", absolute / rows, prog_bar=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """AdamW over every parameter with the config's ``learning_rate`` and ``weight_decay``; fused: one kernel
        over all parameters instead of a dozen small ops per tensor (the dense embedding-table updates dominate the
        step otherwise).

        Returns
        -------
        torch.optim.AdamW.
        """
        return torch.optim.AdamW(
            self.parameters(), lr=self.config.learning_rate, weight_decay=self.config.weight_decay, fused=True
        )


class KeepBestWeights(Callback):
    """Keeps a CPU copy of the weights with the lowest ``val_mse`` and a per-epoch metrics history."""

    def __init__(self, min_delta: float = 0.0) -> None:
        self.min_delta = min_delta  # as early stopping's: a smaller gain neither keeps an epoch nor resets patience
        self.best_score = math.inf
        self.best_epoch = -1
        self.best_state: dict[str, torch.Tensor] | None = None
        self.initial_score = math.nan  # validation MSE of the fixed starting point, when counted
        self.history: list[tuple[float, float, float, float]] = []
        self.early_stopping: EarlyStopping | None = None  # seeded with the start's score by start_from

    def start_from(self, network: lightning.LightningModule, val_mse: float) -> None:
        """Count the untrained network as a candidate (epoch -1): when no epoch beats the fixed starting point on
        validation, that starting point is what the fit keeps, and early stopping's patience counts from it (the
        best score so far is the start's, as Keras' ``EarlyStopping(baseline=...)``): patience counts the epochs
        that do not beat the weights the fit would keep (by more than ``min_delta``, for both), whether or not
        they beat each other.

        Parameters
        ----------
        network : the network before training.
        val_mse : its validation MSE.
        """
        self.best_score = val_mse
        self.initial_score = val_mse
        self.best_epoch = -1
        self.best_state = {name: value.detach().cpu().clone() for name, value in network.state_dict().items()}
        if self.early_stopping is not None:
            state = self.early_stopping.state_dict()
            self.early_stopping.load_state_dict({**state, "best_score": torch.tensor(float(val_mse))})

    def on_train_epoch_end(self, trainer: lightning.Trainer, pl_module: lightning.LightningModule) -> None:
        """Lightning hook: append (epoch, train_loss, val_mse, val_mae) to :attr:`history`.

        Parameters
        ----------
        trainer : the running Lightning trainer.
        pl_module : the module being trained.
        """
        metrics = trainer.callback_metrics
        val_mse = metrics.get("val_mse")
        self.history.append(
            (
                float(trainer.current_epoch),
                float(metrics.get("train_loss_epoch", math.nan)),
                float(val_mse) if val_mse is not None else math.nan,
                float(metrics.get("val_mae", math.nan)),
            )
        )

    def on_validation_end(self, trainer: lightning.Trainer, pl_module: lightning.LightningModule) -> None:
        """Lightning hook: keep a CPU copy of the weights when ``val_mse`` improves (sanity checks ignored).

        Parameters
        ----------
        trainer : the running Lightning trainer.
        pl_module : the module being trained.
        """
        if trainer.sanity_checking:
            return
        val_mse = trainer.callback_metrics.get("val_mse")
        if val_mse is not None and float(val_mse) < self.best_score - self.min_delta:
            self.best_score = float(val_mse)
            self.best_epoch = trainer.current_epoch
            self.best_state = {name: value.detach().cpu().clone() for name, value in pl_module.state_dict().items()}

    def restore_into(self, network: lightning.LightningModule, trainer: lightning.Trainer) -> int:
        """Load the kept weights into ``network`` (when any were kept) and return the epoch they are from.

        Parameters
        ----------
        network : the trained network.
        trainer : the trainer after ``fit``.

        Returns
        -------
        int: the kept epoch (0-based; -1 = the fixed start); the last epoch when nothing was kept (no validation).
        """
        if self.best_state is None:
            return trainer.current_epoch - 1
        network.load_state_dict(self.best_state)
        return self.best_epoch


def logit(probability: float) -> float:
    """log(p / (1 - p)) with ``p`` clipped to [1e-4, 1 - 1e-4]: a starting global bias under a sigmoid link.

    Parameters
    ----------
    probability : a value in [0, 1] (e.g. the mean scaled target).

    Returns
    -------
    float.
    """
    probability = min(max(probability, 1e-4), 1 - 1e-4)
    return math.log(probability / (1 - probability))


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Set torch's intra-op thread count for the block and restore it after (it is process-wide).

    Parameters
    ----------
    threads : intra-op threads (>= 1).

    Yields
    ------
    None.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def fit_callbacks(
    config: Any, model_name: str, has_val: bool, log: Callable[[str], None] | None = None
) -> tuple[KeepBestWeights, EpochProgress, list[Callback]]:
    """The callbacks of every fit: best-weights keeper, one progress line per epoch and, with validation rows,
    early stopping on ``val_mse``.

    Parameters
    ----------
    config : the model's config (``early_stopping_patience``, ``early_stopping_min_delta``).
    model_name : prefix of the progress lines.
    has_val : whether there are validation rows (no early stopping without them).
    log : receives each progress line; default the ``kuairec_pipeline.training`` logger.

    Returns
    -------
    (the keeper, the progress callback, the list to hand to the trainer).
    """
    keep_best = KeepBestWeights(config.early_stopping_min_delta)
    progress = EpochProgress(model_name, log=log)
    callbacks: list[Callback] = [keep_best, progress]
    if has_val:
        keep_best.early_stopping = EarlyStopping(
            monitor="val_mse",
            mode="min",
            patience=config.early_stopping_patience,
            min_delta=config.early_stopping_min_delta,
        )
        callbacks.append(keep_best.early_stopping)
    return keep_best, progress, callbacks


def build_trainer(
    config: Any, callbacks: list[Callback], has_val: bool, log_every_n_steps: int = 50, logger: Any = False
) -> lightning.Trainer:
    """A one-device Lightning trainer with the project's settings: no checkpoints (the best weights are kept in
    memory), no sanity validation, the progress bar only when ``config.show_progress``.

    Parameters
    ----------
    config : the model's config (``accelerator``, ``precision``, ``max_epochs``, ``show_progress``).
    callbacks : from :func:`fit_callbacks`.
    has_val : whether the validation loop runs.
    log_every_n_steps : Lightning's step logging interval.
    logger : a Lightning logger, or False.

    Returns
    -------
    lightning.Trainer.
    """
    return lightning.Trainer(
        accelerator=config.accelerator,
        devices=1,
        precision=config.precision,
        max_epochs=config.max_epochs,
        callbacks=callbacks,
        logger=logger,
        enable_checkpointing=False,
        enable_progress_bar=config.show_progress,
        enable_model_summary=config.show_progress,
        num_sanity_val_steps=0,
        limit_val_batches=None if has_val else 0,
        log_every_n_steps=log_every_n_steps,
    )


def fit_quietly(
    trainer: lightning.Trainer,
    network: lightning.LightningModule,
    train_loader: Any,
    val_loader: Any | None,
) -> None:
    """``trainer.fit`` with the warnings listed in :data:`QUIET_FIT_WARNINGS` silenced (every other one shows).

    Parameters
    ----------
    trainer : the trainer.
    network : the module to fit.
    train_loader, val_loader : the data loaders (``val_loader`` None: no validation).
    """
    with warnings.catch_warnings():
        for message in QUIET_FIT_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        trainer.fit(network, train_dataloaders=train_loader, val_dataloaders=val_loader)


def forked_rng(trainer: lightning.Trainer) -> contextlib.AbstractContextManager:
    """``torch.random.fork_rng`` over the trainer's device: a seeded fit leaves the global random state as it was.

    Parameters
    ----------
    trainer : the trainer whose root device is forked too when it is a GPU.

    Returns
    -------
    a context manager.
    """
    device = trainer.strategy.root_device
    return torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else [])
