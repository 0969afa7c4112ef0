"""Configuration and shapes of the two-tower model: what both its NumPy half (:mod:`.two_tower`) and its torch
half (:mod:`.two_tower_network`, :mod:`.two_tower_training`) need, so neither imports the other back.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from kuairec_pipeline.models.data import TrainingData

HISTORY_COLUMNS = ("epoch", "train_loss", "val_mse", "val_mae")
EMBEDDING_BATCH = 65_536  # ids per forward pass when computing the final embeddings
LINKS = ("identity", "sigmoid")


@dataclass(frozen=True)
class TwoTowerConfig:
    """Hyperparameters of :class:`TwoTowerRecommender`; nothing here depends on the device."""

    # Width of the user and video vectors whose dot product scores a pair (>= 1). With explicit_features it holds
    # the explicit part (one slot per tag and per video numeric column: 34 on KuaiRec) and the free, learned rest:
    # 42 leaves 8 free dimensions, which beat 32 on demo's validation rows (MAE 0.1447 vs 0.1453 over 5 seeds).
    embedding_dim: int = 42
    id_embedding_dim: int = 32  # size of the learned per-id embedding fed to each tower (>= 1)
    # Size of each categorical feature's and the tag bag's embedding (>= 1). KuaiRec users have 22 categorical
    # columns: at 4 the user MLP input stays ~120 wide (with 32-dim ids), a CPU step ~40 ms at batch 8,192.
    feature_embedding_dim: int = 4
    # Explicit interactions: the user tower also emits one coefficient per video side feature (each tag's weight,
    # each numeric column), dotted with the video's own features: per-user tag affinities, learned directly.
    # Used only when embedding_dim exceeds that feature count (else the whole vector is free, as without it).
    explicit_features: bool = True
    hidden_sizes: tuple[int, ...] = (128,)  # hidden layers of each tower's MLP (ReLU), () for a linear tower
    dropout: float = 0.0  # dropout after each hidden layer, in [0, 1); CPU dropout masks cost ~20% of a step
    learning_rate: float = 1e-3  # AdamW step size (> 0); 1e-3 beat 3e-3 on demo validation MSE from the ridge start
    weight_decay: float = 1e-6  # AdamW decoupled weight decay on all weights (>= 0)
    id_l2: float = 1e-4  # L2 penalty on the id embeddings and id biases of each batch, per row (>= 0)
    batch_size: int = 8_192  # training rows per step (>= 1)
    max_epochs: int = 20  # upper bound on passes over the training rows (>= 1)
    early_stopping_patience: int = 2  # epochs without a validation MSE improvement before stopping (>= 1)
    early_stopping_min_delta: float = 1e-6  # smallest validation MSE decrease that counts as improvement (>= 0)
    seed: int = 0  # seeds initialization, dropout and shuffling; on CPU the fit is deterministic for a seed
    # torch intra-op threads during training (0 = all cores): the pipeline runs one step at a time, so the whole
    # machine is free; benchmarks/two_tower_throughput.py measured 331k samples/s on 2 threads vs 193k on 1.
    num_threads: int = 0
    accelerator: str = "auto"  # Lightning accelerator: "auto" takes a GPU when present, else the CPU
    precision: str = "32-true"  # Lightning precision, e.g. "bf16-mixed" on a recent GPU
    show_progress: bool = True  # Lightning's progress bar and model summary
    log_dir: str | None = None  # write Lightning's CSV metrics (train_loss, val_mse, val_mae) here when set
    # Output link: "identity" (prediction = score clipped to [0, 1]; the MSE gradient never vanishes) or "sigmoid".
    link: str = "identity"
    # Start every user's and video's bias from the exact ridge biases and keep them as fixed offsets (the learned
    # biases on top start at 0), so training spends itself on the interaction. Needs link "identity" (the ridge
    # biases are additive on the target's scale).
    fixed_biases: bool = True
    bias_l2: float = 5.0  # ridge of those fixed biases, in rows (>= 0), as the user_video_bias baseline
    # With fixed_biases and explicit_features: also start each user's explicit coefficients (tags, duration, ...)
    # from its own ridge fit of the bias residual with this penalty in rows (> 0), held fixed; None: start at 0.
    taste_l2: float | None = 30.0

    def __post_init__(self) -> None:
        positive = {
            "embedding_dim": self.embedding_dim,
            "id_embedding_dim": self.id_embedding_dim,
            "feature_embedding_dim": self.feature_embedding_dim,
            "batch_size": self.batch_size,
            "max_epochs": self.max_epochs,
            "early_stopping_patience": self.early_stopping_patience,
        }
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"TwoTowerConfig.{name} must be >= 1, got {value}")
        non_negative = {
            "weight_decay": self.weight_decay,
            "id_l2": self.id_l2,
            "num_threads": self.num_threads,
            "early_stopping_min_delta": self.early_stopping_min_delta,
            "bias_l2": self.bias_l2,
        }
        for name, value in non_negative.items():
            if value < 0:
                raise ValueError(f"TwoTowerConfig.{name} must be >= 0, got {value}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"TwoTowerConfig.dropout must be in [0, 1), got {self.dropout}")
        if not self.learning_rate > 0:
            raise ValueError(f"TwoTowerConfig.learning_rate must be > 0, got {self.learning_rate}")
        if self.link not in LINKS:
            raise ValueError(f"TwoTowerConfig.link must be one of {LINKS}, got {self.link!r}")
        if self.taste_l2 is not None and not self.taste_l2 > 0:
            raise ValueError(f"TwoTowerConfig.taste_l2 must be > 0 or None, got {self.taste_l2}")
        if self.fixed_biases and self.link != "identity":
            raise ValueError("TwoTowerConfig.fixed_biases needs link 'identity' (the ridge biases are additive)")


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

    @classmethod
    def from_data(cls, data: TrainingData) -> Architecture:
        """The network's sizes read off the training data.

        Parameters
        ----------
        data : the training data (id ranges, feature column counts, categorical cardinalities, tag slots).

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
        )
