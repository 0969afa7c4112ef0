"""Configuration and shapes of the two-tower model: what both its NumPy half (:mod:`.two_tower`) and its torch
half (:mod:`.two_tower_network`, :mod:`.two_tower_training`) need, so neither imports the other back.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from kuairec_pipeline.models.data import TrainingData
from kuairec_pipeline.params import check, param

HISTORY_COLUMNS = ("epoch", "train_loss", "val_mse", "val_mae")
EMBEDDING_BATCH = 65_536  # ids per forward pass when computing the final embeddings
LINKS = ("identity", "sigmoid")


ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")  # Lightning accelerators the pipeline accepts
PRECISIONS = ("32-true", "16-mixed", "bf16-mixed")  # Lightning precisions the networks support


@dataclass(frozen=True)
class TwoTowerConfig:
    """Hyperparameters of :class:`TwoTowerRecommender`; nothing here depends on the device. Ranges are enforced on
    construction (``params.check``)."""

    # With explicit_features the vector holds the explicit part (one slot per tag and per video numeric column: 34 on
    # KuaiRec) and the free, learned rest: 42 leaves 8 free dimensions. (Chosen on demo's validation rows while both
    # towers' free vectors started at zero and never trained, a saddle fixed since: not re-tuned.)
    embedding_dim: int = param(
        42, "Width of the user and video vectors whose dot product scores a pair.", ge=1, le=1024
    )
    id_embedding_dim: int = param(32, "Size of the learned per-id embedding fed to each tower.", ge=1, le=1024)
    # KuaiRec users have 22 categorical columns: at 4 the user MLP input stays ~120 wide (with 32-dim ids), a CPU step
    # ~40 ms at batch 8,192.
    feature_embedding_dim: int = param(
        4, "Size of each categorical feature's and the tag bag's embedding.", ge=1, le=1024
    )
    # Used only when embedding_dim exceeds the video feature count (else the whole vector is free, as without it).
    explicit_features: bool = param(
        True, "User tower also emits one coefficient per video tag and numeric column, dotted with the video's own."
    )
    hidden_sizes: tuple[int, ...] = param((128,), "Hidden layers of each tower's MLP (ReLU); () for a linear tower.")
    # CPU dropout masks cost ~20% of a step.
    dropout: float = param(0.0, "Dropout after each hidden layer.", ge=0.0, lt=1.0)
    # 1e-3 beat 3e-3 on demo validation MSE from the ridge start (before the saddle fix above; not re-tuned).
    learning_rate: float = param(1e-3, "AdamW step size.", gt=0.0, le=1.0)
    weight_decay: float = param(1e-6, "AdamW decoupled weight decay on all weights.", ge=0.0)
    id_l2: float = param(1e-4, "L2 penalty on the id embeddings and id biases of each batch, per row.", ge=0.0)
    batch_size: int = param(8_192, "Training rows per step.", ge=1, le=1_048_576)
    max_epochs: int = param(20, "Upper bound on passes over the training rows.", ge=1, le=1000)
    early_stopping_patience: int = param(
        2,
        "Epochs without a validation MSE improvement on the best so far (the fixed start included) before stopping.",
        ge=1,
        le=1000,
    )
    early_stopping_min_delta: float = param(
        1e-6, "Smallest validation MSE decrease that counts as improvement.", ge=0.0
    )
    seed: int = param(
        0, "Seeds initialization, dropout and shuffling (on CPU a fit is deterministic per seed).", ge=0, le=2**32 - 1
    )
    # The pipeline runs one step at a time, so the whole machine is free; benchmarks/two_tower_throughput.py measured
    # 331k samples/s on 2 threads vs 193k on 1.
    num_threads: int = param(0, "torch intra-op threads during training (0 = all cores).", ge=0, le=1024)
    accelerator: str = param(
        "auto", "Lightning accelerator: 'auto' takes a GPU when present, else the CPU.", choices=ACCELERATORS
    )
    precision: str = param("32-true", "Lightning precision, e.g. 'bf16-mixed' on a recent GPU.", choices=PRECISIONS)
    show_progress: bool = param(True, "Lightning's progress bar and model summary.", run_config=False)
    log_dir: str | None = param(
        None, "Write Lightning's CSV metrics (train_loss, val_mse, val_mae) here when set.", run_config=False
    )
    # identity: the MSE gradient never vanishes.
    link: str = param("identity", "Output link: 'identity' (score clipped to [0, 1]) or 'sigmoid'.", choices=LINKS)
    # The learned biases on top start at 0, so training spends itself on the interaction. Needs link "identity" (the
    # ridge biases are additive on the target's scale).
    fixed_biases: bool = param(
        True, "Start every user's and video's bias from the exact ridge biases, held fixed (off under linear_start)."
    )
    bias_l2: float = param(5.0, "Ridge (rows) of those fixed biases, as the user_video_bias baseline.", ge=0.0)
    # Needs fixed_biases and explicit_features.
    taste_l2: float | None = param(
        30.0, "Ridge (rows) of each user's fixed explicit-coefficient start (taste); None: start at 0.", gt=0.0
    )
    # The biases and ridge taste above are the linear model's stages 1-2 re-fitted; the linear model also has the
    # latent factors of what they leave (stage 3), which on the full profile are most of its lead over the towers
    # (benchmarks/results/quality_full_seed_11.md as of 50528b0, in git history: linear 35.9% of the gap, two_tower
    # 16.3%). Needs link identity.
    linear_start: bool = param(
        True,
        "Hold the linear model's prediction (fitted first; the pipeline's linear_baseline) fixed under the towers' "
        "score, in place of the fixed biases and taste.",
    )

    def __post_init__(self) -> None:
        check(self)
        if any(size < 1 for size in self.hidden_sizes):
            raise ValueError(f"TwoTowerConfig.hidden_sizes must hold sizes >= 1, got {self.hidden_sizes!r}")
        if self.fixed_biases and self.link != "identity":
            raise ValueError("TwoTowerConfig.fixed_biases needs link 'identity' (the ridge biases are additive)")
        if self.linear_start and self.link != "identity":
            raise ValueError("TwoTowerConfig.linear_start needs link 'identity' (the linear prediction is additive)")


def config_from_dict(values: dict[str, Any]) -> TwoTowerConfig:
    """Inverse of ``dataclasses.asdict`` after a JSON round trip (lists back to tuples, unknown keys dropped).

    Parameters
    ----------
    values : field name -> value, e.g. the stored config of a bundle.

    Returns
    -------
    TwoTowerConfig.

    Raises
    ------
    ValueError
        If a value is outside its field's range.
    """
    known = {f.name for f in dataclasses.fields(TwoTowerConfig)}
    values = {key: value for key, value in values.items() if key in known}
    if "hidden_sizes" in values:
        values["hidden_sizes"] = tuple(values["hidden_sizes"])
    values.setdefault("linear_start", False)  # a config stored before the field existed had no linear start
    return TwoTowerConfig(**values)


@dataclass(frozen=True)
class Architecture:
    """The shapes a network is built from: read from TrainingData at fit, stored so a load can rebuild it."""

    n_users: int
    n_videos: int
    user_categorical_cardinality: list[int]
    user_numeric_columns: int
    video_categorical_cardinality: list[int]
    video_numeric_columns: int
    tag_ids: int  # distinct tag ids including the padding id 0 (0 = no tag input)
    tag_slots: int
    start_width: int = 0  # columns of the fixed start's factors (linear_start; 0 = none)

    @classmethod
    def from_data(cls, data: TrainingData, start_width: int = 0) -> Architecture:
        """The network's sizes read off the training data.

        Parameters
        ----------
        data : the training data (id ranges, feature column counts, categorical cardinalities, tag slots).
        start_width : columns of the fixed start's factors (0: none).

        Returns
        -------
        Architecture.
        """
        tags = data.video_tags
        return cls(
            n_users=data.n_users,
            n_videos=data.n_videos,
            user_categorical_cardinality=[max(1, int(c)) for c in data.user_categorical_cardinality],
            user_numeric_columns=int(data.user_numeric.shape[1]),
            video_categorical_cardinality=[max(1, int(c)) for c in data.video_categorical_cardinality],
            video_numeric_columns=int(data.video_numeric.shape[1]),
            tag_ids=int(tags.max()) + 1 if tags.size else 0,
            tag_slots=int(tags.shape[1]),
            start_width=start_width,
        )
