"""EpochProgress: one line per epoch with losses and validation metrics, and why training stopped."""

from __future__ import annotations

import lightning.pytorch as lightning
import pytest
import torch
from lightning.pytorch.callbacks import EarlyStopping

from kuairec_pipeline.models.progress import EpochProgress


class _Toy(lightning.LightningModule):
    """Fits y = 2x; val_mse is whatever ``val_values`` says for the epoch (to force or avoid early stopping)."""

    def __init__(self, val_values: list[float]) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.val_values = val_values

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.mean((self.weight * x - y) ** 2)
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_mse", self.val_values[self.current_epoch])
        self.log("val_mae", 1.0)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(val_values: list[float], max_epochs: int, patience: int = 2, start: float | None = None) -> EpochProgress:
    lines: list[str] = []
    progress = EpochProgress("toy", log=lines.append)
    if start is not None:
        progress.start_from(start)
    x = torch.linspace(0, 1, 32)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, 2 * x), batch_size=8)
    stopper = EarlyStopping("val_mse", patience=patience)
    trainer = lightning.Trainer(
        max_epochs=max_epochs,
        callbacks=[progress, stopper],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        accelerator="cpu",
    )
    trainer.fit(_Toy(val_values), loader, loader)
    assert progress.lines == lines
    return progress


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_one_line_per_epoch_then_max_epochs():
    progress = _fit([0.5, 0.4, 0.3], max_epochs=3)
    epochs = [line for line in progress.lines if ": epoch " in line]
    assert len(epochs) == 3
    assert epochs[0].startswith("toy: epoch 1/3  train_loss ")
    assert "val_mae 1.0000" in epochs[0] and "val_mse 0.5000" in epochs[0]
    assert "best val_mse 0.3000 (epoch 3)" in epochs[2]
    assert "reached max_epochs (3)" in progress.lines[-1]


def test_early_stopping_is_named_with_the_kept_epoch():
    progress = _fit([0.5, 0.2, 0.3, 0.3, 0.3, 0.3], max_epochs=6, patience=2)
    assert len([line for line in progress.lines if ": epoch " in line]) == 4
    assert "stopped early: val_mse did not improve" in progress.lines[-1]
    assert "for 2 epochs (best 0.2000 at epoch 2" in progress.lines[-1]


def test_a_start_no_epoch_beats_is_named_as_the_kept_weights():
    # The two-tower keeps its fixed start when no epoch beats it: the log must say so, not name an epoch.
    progress = _fit([0.5, 0.4, 0.45, 0.45], max_epochs=4, patience=2, start=0.3)
    assert "best val_mse 0.3000 (the start, before any epoch)" in progress.lines[1]
    assert "best 0.3000 at the start, before any epoch, those weights are kept" in progress.lines[-1]


def test_patience_running_out_on_the_last_allowed_epoch_reads_as_max_epochs():
    progress = _fit([0.2, 0.3, 0.3], max_epochs=3, patience=2)
    assert "reached max_epochs (3) (best 0.2000 at epoch 1, those weights are kept)" in progress.lines[-1]
    assert "stopped early" not in progress.lines[-1]


def test_needs_a_name():
    with pytest.raises(ValueError, match="model_name"):
        EpochProgress("")
