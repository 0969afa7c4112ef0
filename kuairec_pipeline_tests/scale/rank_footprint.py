"""What each ddp_spawn rank of test_data_parallel.py records. A module of its own: a spawned rank imports the module
that defines the callback it unpickles, and the test module would bring dagster and the test builders with it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import lightning.pytorch as lightning
import torch


def weights_digest(module: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, value in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class RankFootprint(lightning.Callback):
    """Writes, per rank, what it trained on and the weights it ended with (picklable: spawned into each rank)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.rows: list[int] = []
        self.initial = ""

    def on_train_start(self, trainer, pl_module) -> None:
        self.initial = weights_digest(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.rows.append(int(batch[2].shape[0]))

    def on_train_end(self, trainer, pl_module) -> None:
        record = {
            "rank": trainer.global_rank,
            "world": trainer.world_size,
            "rows": sum(self.rows),
            "steps": len(self.rows),
            "initial": self.initial,
            "digest": weights_digest(pl_module),
            "backend": torch.distributed.get_backend() if torch.distributed.is_initialized() else None,
        }
        (self.folder / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))
