"""The sequential model's config and architecture: what both halves (:mod:`.sequential`, NumPy scoring, and
:mod:`.sequential_network` / :mod:`.sequential_training`, torch) need, so neither imports the other back.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from kuairec_pipeline.models.data import TrainingData
from kuairec_pipeline.models.two_tower_config import ACCELERATORS, PRECISIONS  # noqa: F401  (re-exported)
from kuairec_pipeline.params import check, param


@dataclass(frozen=True)
class SequentialConfig:
    """Hyperparameters of :class:`SequentialRecommender`; ranges are enforced on construction (``params.check``)."""

    # SASRec's default on sparse data is 50.
    max_len: int = param(50, "History rows the transformer attends over.", ge=1, le=512)
    hidden_dim: int = param(
        32, "Width of every position's vector and of the state (a multiple of num_heads).", ge=2, le=1024
    )
    num_heads: int = param(2, "Attention heads (divides hidden_dim).", ge=1, le=64)
    num_layers: int = param(1, "Transformer blocks.", ge=1, le=8)
    feedforward_dim: int = param(64, "Width of each block's ReLU feed-forward layer.", ge=1, le=16_384)
    # 0.3 beat 0.1 on demo validation (seed 11, batch 64: val MAE 0.1446 vs 0.1459); without it the model overfits
    # after two epochs.
    dropout: float = param(0.3, "Dropout inside the blocks and on the inputs during training.", ge=0.0, lt=1.0)
    user_embedding: bool = param(True, "Add a learned per-user vector to the state (SSE-PT); zero for unseen users.")
    # Without it the transformer spent its capacity on the biases and ranked below user_video_bias on every demo
    # seed and on full (benchmarks/results/quality_*.md as of 67998a3 / 50528b0, in git history), as the two-tower
    # did before its fixed biases. With it, the state only has to explain what the linear model leaves: the order
    # signal and the taste it missed; a fit whose epochs never beat the start keeps the start.
    fixed_start: bool = param(
        True,
        "Add the linear model's prediction (biases, per-user tag taste, residual factors; fitted first, held "
        "fixed) to the transformer's score, with an identity link clipped to [0, 1]; off: a plain sigmoid SASRec.",
    )
    shuffle_positions: bool = param(
        False, "The order ablation: rows of every window in a pseudo-random order.", run_config=False
    )
    # Step between the starts of query windows (above max_len acts as max_len): a query after n > max_len
    # rows reads the rows from the smallest multiple of the stride that leaves at most max_len (sequences.py), so
    # it sees max_len - stride + 1 to max_len rows. 1 = the last max_len rows, one encoder pass per distinct
    # prefix (the full profile's test rows have ~2 M); 25 lets one pass serve a block's prefixes (the ordered
    # model; a shuffled window is no prefix of another). Measured by benchmarks/sequential_query_stride.py
    # (demo, twin seed 11, shared machine, 2026-11-30), strides 1 / 10 / 25 / 50: sequential test mae
    # 0.1179 / 0.1181 / 0.1180 / 0.1181, ndcg@10 0.2370 / 0.2372 / 0.2368 / 0.2400, evaluate 119 / 29 / 17 / 14 s.
    query_stride: int = param(25, "Step between the starts of pointwise query windows (1 = last max_len rows).", ge=1)
    learning_rate: float = param(3e-3, "AdamW step size.", gt=0.0, le=1.0)
    weight_decay: float = param(0.0, "AdamW decoupled weight decay.", ge=0.0)
    id_l2: float = param(1e-4, "L2 penalty on the id embeddings gathered in a batch, per prediction.", ge=0.0)
    # 64 beat 256 on demo validation (seed 11, val MAE 0.1459 vs 0.1464): more steps per epoch before the ids overfit.
    batch_windows: int = param(64, "Windows per training step, each up to max_len positions.", ge=1, le=1_048_576)
    # Demo's best epoch was 3-4 (1-based) on every seed, so 5 changes nothing there; on the full profile (600 k sampled
    # positions an epoch, ~12 s each) it keeps the asset near 2 minutes.
    max_epochs: int = param(5, "Upper bound on epochs.", ge=1, le=1000)
    # Bounds an epoch on the full profile (11 M training rows; benchmarks/sequential_throughput.py measured 14-46 k
    # positions/s on one thread, busy vs quiet machine: 13-43 s per epoch) while demo (0.42 M) uses all its windows.
    positions_per_epoch: int = param(
        600_000, "History positions drawn per epoch, a fresh random subset each epoch (0 = every window).", ge=0
    )
    early_stopping_patience: int = param(
        2,
        "Epochs without a validation MSE improvement on the best so far (the fixed start included) before stopping.",
        ge=1,
        le=1000,
    )
    early_stopping_min_delta: float = param(1e-6, "Smallest validation MSE decrease that counts.", ge=0.0)
    seed: int = param(
        0, "Seeds initialization, dropout, window order and the ablation's shuffle keys.", ge=0, le=2**32 - 1
    )
    num_threads: int = param(
        0,
        "Threads for training (torch intra-op) and for encoding histories when scoring (BLAS); 0 = all cores.",
        ge=0,
        le=1024,
    )
    accelerator: str = param(
        "auto", "Lightning accelerator: 'auto' takes a GPU when present, else the CPU.", choices=ACCELERATORS
    )
    precision: str = param("32-true", "Lightning precision, e.g. 'bf16-mixed' on a recent GPU.", choices=PRECISIONS)
    show_progress: bool = param(
        False, "Lightning's progress bar (one log line per epoch is written regardless).", run_config=False
    )

    @property
    def effective_query_stride(self) -> int:
        """The query-window stride in use: ``query_stride`` capped at ``max_len``."""
        return min(self.query_stride, self.max_len)

    def __post_init__(self) -> None:
        check(self)
        if self.hidden_dim % self.num_heads:
            raise ValueError(
                f"SequentialConfig.num_heads must divide hidden_dim ({self.hidden_dim}), got {self.num_heads!r}"
            )


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
    values = {key: value for key, value in values.items() if key in known}
    values.setdefault("fixed_start", False)  # a config stored before the field existed had no fixed start
    return SequentialConfig(**values)


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
