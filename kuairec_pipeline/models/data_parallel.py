"""Data-parallel training of the two-tower network inside one step: Lightning's ``ddp_spawn`` over several
processes (CPUs with gloo, or GPUs with NCCL), each rank on its own shard of every epoch's shuffled rows.

``ddp_spawn`` and never ``ddp`` inside a Dagster step: ``ddp`` re-executes the launching command once per device
(here the ``dagster`` CLI or the run worker), ``ddp_spawn`` starts the ranks from the step's own process and hands
rank 0's trained weights back to it (see docs/BEYOND_ONE_MACHINE.md). Distributed data parallelism: Li et al.,
"PyTorch Distributed: Experiences on Accelerating Data Parallel Training", VLDB 2020.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence

import lightning.pytorch as lightning
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.strategies import DDPStrategy

from kuairec_pipeline.models.data import Interactions, TrainingData
from kuairec_pipeline.models.two_tower_config import Architecture, TwoTowerConfig
from kuairec_pipeline.models.two_tower_network import TwoTowerNetwork
from kuairec_pipeline.models.two_tower_training import IndexBatches, build_network

BACKENDS = ("gloo", "nccl")


class RankShardedBatches(IndexBatches):
    """:class:`IndexBatches` for one rank of a process group: every rank draws the same (seed, epoch) permutation
    and takes every ``world_size``-th row of it from position ``rank``, so the ranks partition the epoch.

    The permutation is cut to a multiple of ``world_size`` rows (at most ``world_size - 1`` rows left out per epoch,
    different ones each epoch) so that every rank runs the same number of steps: DDP's gradient all-reduce needs
    every rank at every step. Outside a process group it behaves as one rank of one.
    """

    def __init__(self, rows: Interactions, batch_size: int, shuffle: bool, seed: int = 0) -> None:
        super().__init__(rows, batch_size, torch.device("cpu"), shuffle, seed)  # Lightning moves each batch

    @staticmethod
    def _rank_and_world() -> tuple[int, int]:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def __len__(self) -> int:
        _, world = self._rank_and_world()
        return math.ceil((self.target.shape[0] // world) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        rank, world = self._rank_and_world()
        n_rows = self.target.shape[0]
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            self.epoch += 1
            order = torch.randperm(n_rows, generator=generator)
        else:
            order = torch.arange(n_rows)
        mine = order[: n_rows - n_rows % world][rank::world]
        for first in range(0, mine.shape[0], self.batch_size):
            index = mine[first : first + self.batch_size]
            yield self.users[index], self.videos[index], self.target[index]


def fit_data_parallel(
    config: TwoTowerConfig,
    data: TrainingData,
    devices: int = 2,
    accelerator: str = "cpu",
    process_group_backend: str = "gloo",
    callbacks: Sequence[Callback] = (),
) -> TwoTowerNetwork:
    """Train a fresh two-tower network for ``config.max_epochs`` epochs on ``devices`` spawned processes.

    Parameters
    ----------
    config : TwoTowerConfig
        Network and optimisation settings; ``batch_size`` is per rank (the effective batch is ``devices`` times it).
    data : TrainingData
        Training rows (sharded across ranks) and validation rows (every rank validates on all of them, so all
        ranks see the same ``val_mse``).
    devices : int
        Number of processes, 1..64 (one per GPU with ``accelerator="gpu"``).
    accelerator : str
        ``"cpu"`` or ``"gpu"``.
    process_group_backend : str
        ``"gloo"`` (CPUs) or ``"nccl"`` (GPUs).
    callbacks : sequence of Callback
        Extra Lightning callbacks; they run in every rank (they must be picklable).

    Returns
    -------
    TwoTowerNetwork
        The network with rank 0's final weights (identical on every rank: DDP averages the gradients), on the CPU,
        in eval mode. No early stopping and no best-epoch restore: a fixed number of epochs.

    Raises
    ------
    ValueError
        If ``devices``, ``accelerator`` or ``process_group_backend`` is out of range.
    """
    if not 1 <= devices <= 64:
        raise ValueError(f"devices must be in 1..64, got {devices}")
    if accelerator not in ("cpu", "gpu"):
        raise ValueError(f"accelerator must be 'cpu' or 'gpu', got {accelerator!r}")
    if process_group_backend not in BACKENDS:
        raise ValueError(f"process_group_backend must be one of {', '.join(BACKENDS)}, got {process_group_backend!r}")
    start = None
    if config.linear_start:
        from kuairec_pipeline.models.linear_start import linear_start

        start = linear_start(None, data, "two_tower").augmented_factors()
    architecture = Architecture.from_data(data, start_width=0 if start is None else start[0].shape[1])
    torch.manual_seed(config.seed)
    # The same start as the single-device fit (two_tower_training.train_network), before the ranks are spawned.
    network = build_network(architecture, config, data, start)
    has_val = len(data.val) > 0
    train_loader = torch.utils.data.DataLoader(
        RankShardedBatches(data.train, config.batch_size, shuffle=True, seed=config.seed), batch_size=None
    )
    val_loader = (
        torch.utils.data.DataLoader(
            IndexBatches(data.val, 4 * config.batch_size, torch.device("cpu"), shuffle=False),
            batch_size=None,
        )
        if has_val
        else None
    )
    trainer = lightning.Trainer(
        accelerator=accelerator,
        devices=devices,
        strategy=DDPStrategy(start_method="spawn", process_group_backend=process_group_backend),
        max_epochs=config.max_epochs,
        callbacks=list(callbacks),
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=None if has_val else 0,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*`IterableDataset` has `__len__` defined.*")
        warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*")
        trainer.fit(network, train_dataloaders=train_loader, val_dataloaders=val_loader)
    return network.cpu().eval()
