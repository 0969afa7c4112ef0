"""The sequential model's config and architecture: what both halves (:mod:`.sequential`, NumPy scoring, and
:mod:`.sequential_network` / :mod:`.sequential_training`, torch) need, so neither imports the other back.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from kuairec_pipeline.models.data import TrainingData

PRECISIONS = ("32-true", "16-mixed", "bf16-mixed")  # Lightning precisions the network supports


@dataclass(frozen=True)
class SequentialConfig:
    """Hyperparameters of :class:`SequentialRecommender`; ranges are checked on construction."""

    max_len: int = 50  # history rows the transformer attends over (1..512); SASRec's default on sparse data is 50
    hidden_dim: int = 32  # width of every position's vector and of the state (>= 2, a multiple of num_heads)
    num_heads: int = 2  # attention heads (>= 1, divides hidden_dim)
    num_layers: int = 1  # transformer blocks (1..8)
    feedforward_dim: int = 64  # width of each block's ReLU feed-forward layer (>= 1)
    # Dropout inside the blocks and on the inputs during training, in [0, 1): 0.3 beat 0.1 on demo validation
    # (seed 11, batch 64: val MAE 0.1446 vs 0.1459); without it the model overfits after two epochs.
    dropout: float = 0.3
    user_embedding: bool = True  # add a learned per-user vector to the state (SSE-PT); zero for unseen users
    shuffle_positions: bool = False  # the order ablation: rows of every window in a pseudo-random order
    # Step between the starts of query windows (>= 1; above max_len acts as max_len): a query after n > max_len
    # rows reads the rows from the smallest multiple of the stride that leaves at most max_len (sequences.py), so
    # it sees max_len - stride + 1 to max_len rows. 1 = the last max_len rows, one encoder pass per distinct
    # prefix (the full profile's test rows have ~2 M); 25 lets one pass serve a block's prefixes (the ordered
    # model; a shuffled window is no prefix of another). Demo, twin seed 11, one training per model,
    # benchmarks/sequential_query_stride.py on a shared, loaded machine (2026-11-30), strides 1 / 10 / 25 / 50:
    # sequential test mae 0.1179 / 0.1181 / 0.1180 / 0.1181, ndcg@10 0.2370 / 0.2372 / 0.2368 / 0.2400,
    # evaluate 119 / 29 / 17 / 14 s; sequential_shuffled mae 0.1179 / 0.1179 / 0.1179 / 0.1180, ndcg@10
    # 0.2391 / 0.2401 / 0.2387 / 0.2396, evaluate 38 / 31 / 24 / 24 s.
    query_stride: int = 25
    learning_rate: float = 3e-3  # AdamW step size (> 0)
    weight_decay: float = 0.0  # AdamW decoupled weight decay (>= 0)
    id_l2: float = 1e-4  # L2 penalty on the id embeddings gathered in a batch, per prediction (>= 0)
    # Windows per training step, each up to max_len positions (>= 1): 64 beat 256 on demo validation (seed 11,
    # val MAE 0.1459 vs 0.1464): more steps per epoch before the ids overfit.
    batch_windows: int = 64
    # Upper bound on epochs (>= 1). Demo's best epoch was 3-4 (1-based) on every seed, so 5 changes nothing there; on
    # the full profile (600 k sampled positions an epoch, ~12 s each) it keeps the asset near 2 minutes.
    max_epochs: int = 5
    # Windows drawn per epoch (a fresh random subset each epoch), as a number of history positions (0 = every
    # window): bounds an epoch on the full profile (11 M training rows; benchmarks/sequential_throughput.py measured
    # 14-46 k positions/s on one thread, busy vs quiet machine: 13-43 s per epoch) while demo (0.42 M) uses all of
    # its windows.
    positions_per_epoch: int = 600_000
    early_stopping_patience: int = 2  # epochs without a validation MSE improvement before stopping (>= 1)
    early_stopping_min_delta: float = 1e-6  # smallest validation MSE decrease that counts (>= 0)
    seed: int = 0  # seeds initialization, dropout, window order and the ablation's shuffle keys
    num_threads: int = 0  # torch intra-op threads while training (0 = all cores)
    accelerator: str = "auto"  # Lightning accelerator: "auto" takes a GPU when present, else the CPU
    precision: str = "32-true"  # Lightning precision, e.g. "bf16-mixed" on a recent GPU
    show_progress: bool = False  # Lightning's progress bar (one log line per epoch is written regardless)

    @property
    def effective_query_stride(self) -> int:
        """The query-window stride in use: ``query_stride`` capped at ``max_len``."""
        return min(self.query_stride, self.max_len)

    def __post_init__(self) -> None:
        checks = {
            "max_len": 1 <= self.max_len <= 512,
            "hidden_dim": self.hidden_dim >= 2,
            "num_heads": self.num_heads >= 1 and self.hidden_dim % self.num_heads == 0,
            "num_layers": 1 <= self.num_layers <= 8,
            "feedforward_dim": self.feedforward_dim >= 1,
            "dropout": 0.0 <= self.dropout < 1.0,
            "query_stride": self.query_stride >= 1,
            "learning_rate": self.learning_rate > 0,
            "weight_decay": self.weight_decay >= 0,
            "id_l2": self.id_l2 >= 0,
            "batch_windows": self.batch_windows >= 1,
            "max_epochs": self.max_epochs >= 1,
            "positions_per_epoch": self.positions_per_epoch >= 0,
            "early_stopping_patience": self.early_stopping_patience >= 1,
            "early_stopping_min_delta": self.early_stopping_min_delta >= 0,
            "num_threads": self.num_threads >= 0,
            "accelerator": self.accelerator in ("auto", "cpu", "gpu", "cuda", "mps"),
            "precision": self.precision in PRECISIONS,
        }
        allowed = {
            "max_len": "1..512",
            "hidden_dim": ">= 2",
            "num_heads": ">= 1 and dividing hidden_dim",
            "num_layers": "1..8",
            "feedforward_dim": ">= 1",
            "dropout": "[0, 1)",
            "query_stride": ">= 1",
            "learning_rate": "> 0",
            "weight_decay": ">= 0",
            "id_l2": ">= 0",
            "batch_windows": ">= 1",
            "max_epochs": ">= 1",
            "positions_per_epoch": ">= 0 (0 = all)",
            "early_stopping_patience": ">= 1",
            "early_stopping_min_delta": ">= 0",
            "num_threads": ">= 0 (0 = all cores)",
            "accelerator": "auto, cpu, gpu, cuda or mps",
            "precision": " or ".join(PRECISIONS),
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"SequentialConfig.{name} must be {allowed[name]}, got {getattr(self, name)!r}")


def config_from_dict(values: dict[str, Any]) -> SequentialConfig:
    """Inverse of ``dataclasses.asdict`` after a JSON round trip (unknown keys dropped).

    Parameters
    ----------
    values : field name -> value, e.g. the stored config of a bundle.

    Returns
    -------
    SequentialConfig (its ``__post_init__`` raises ValueError for a value out of range).
    """
    known = {f.name for f in dataclasses.fields(SequentialConfig)}
    return SequentialConfig(**{key: value for key, value in values.items() if key in known})


@dataclass(frozen=True)
class SequentialArchitecture:
    """Shapes the network is built from (read from TrainingData at fit, stored to rebuild it)."""

    n_users: int
    n_videos: int
    video_categorical_cardinality: list[int]
    tag_ids: int  # distinct tag ids including the padding id 0
    tag_slots: int

    @classmethod
    def from_data(cls, data: TrainingData) -> SequentialArchitecture:
        """The network's sizes read off ``data`` (id ranges, cardinalities, tag slots).

        Returns
        -------
        SequentialArchitecture.
        """
        return cls(
            n_users=data.n_users,
            n_videos=data.n_videos,
            video_categorical_cardinality=[max(1, int(c)) for c in data.video_categorical_cardinality],
            tag_ids=max(1, int(data.video_tags.max()) + 1 if data.video_tags.size else 1),
            tag_slots=int(data.video_tags.shape[1]),
        )
