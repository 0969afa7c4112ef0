"""Two-tower network (user tower, video tower) trained with Lightning; scored with NumPy only.

Each tower maps an id and its side features to a vector and a bias. The prediction is

    link(<u, v> + b_user + b_video + b_global) = link(<[u, b_user, 1], [v, 1, b_video + b_global]>)

with ``link`` the identity clipped to [0, 1] (default) or the sigmoid. With ``fixed_biases`` (default) each bias
starts from the exact ridge user and video biases (:func:`kuairec_pipeline.models.als.fit_biases`), held fixed, and
the towers learn only what those leave: the user x video part that makes lists personal. Trained end to end on MSE
with a sigmoid and free biases, the towers spent their capacity and the early stopping on validation MSE on the
biases (which dominate that MSE) and ranked no better than the bias baseline (issue 7).

so after training each tower runs once over all ids, and the augmented vectors are all that scoring needs
(cornac-style: torch only where training happens). The learned weights are kept too, as a flat state dict, so the
towers can be rebuilt, inspected or trained further.

Training data never passes through per-row Python: the train rows live as tensors (on the training device) and
each step gathers a whole batch by a slice of a shuffled index permutation. The torch half lives in
:mod:`kuairec_pipeline.models.two_tower_network`, imported only to train or to touch weights.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np

from kuairec_pipeline.models.base import Recommender, decode_json, encode_json, stored_config
from kuairec_pipeline.models.data import TrainingData
from kuairec_pipeline.models.threads import resolve_thread_count

if TYPE_CHECKING:  # torch and Lightning load only where training or weight files need them
    from kuairec_pipeline.models.two_tower_network import TwoTowerNetwork

WEIGHTS_PREFIX = "weights."
ARCHITECTURE_KEY = "architecture"
HISTORY_COLUMNS = ("epoch", "train_loss", "val_mse", "val_mae")
EMBEDDING_BATCH = 65_536  # ids per forward pass when computing the final embeddings
LINKS = ("identity", "sigmoid")
LOGIT_CLIP = 30.0  # |logit| beyond this is 0 or 1 in float32 anyway; clipping keeps np.exp from overflowing


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
        positive = {"embedding_dim": self.embedding_dim, "id_embedding_dim": self.id_embedding_dim,
                    "feature_embedding_dim": self.feature_embedding_dim, "batch_size": self.batch_size,
                    "max_epochs": self.max_epochs, "early_stopping_patience": self.early_stopping_patience}
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"TwoTowerConfig.{name} must be >= 1, got {value}")
        non_negative = {"weight_decay": self.weight_decay, "id_l2": self.id_l2, "num_threads": self.num_threads,
                        "early_stopping_min_delta": self.early_stopping_min_delta, "bias_l2": self.bias_l2}
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
    """Inverse of ``dataclasses.asdict`` after a JSON round trip (lists back to tuples, unknown keys dropped)."""
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


def _sigmoid_inplace(logits: np.ndarray) -> np.ndarray:
    np.clip(logits, -LOGIT_CLIP, LOGIT_CLIP, out=logits)
    np.negative(logits, out=logits)
    np.exp(logits, out=logits)
    logits += 1.0
    return np.reciprocal(logits, out=logits)


class TwoTowerRecommender(Recommender):
    """Two towers trained with Lightning (MSE on the scaled target, early stopping on validation MSE)."""

    name: ClassVar[str] = "two_tower"

    def __init__(self, config: TwoTowerConfig | None = None) -> None:
        self.config = config or TwoTowerConfig()
        self.n_users = 0
        self.n_videos = 0
        self.architecture: Architecture | None = None
        self._network: TwoTowerNetwork | None = None
        self._weights: dict[str, np.ndarray] | None = None  # state dict as arrays, until a network is needed
        self.user_embeddings: np.ndarray | None = None
        self.video_embeddings: np.ndarray | None = None
        self.history = np.zeros((0, len(HISTORY_COLUMNS)), dtype=np.float64)
        self.best_epoch = -1

    # ---- training ------------------------------------------------------------------------------------------
    def fit(self, data: TrainingData) -> Self:
        from kuairec_pipeline.models import two_tower_training

        self.architecture = Architecture.from_data(data)
        self.n_users, self.n_videos = data.n_users, data.n_videos
        self._network, self.best_epoch, self.history = two_tower_training.train_network(
            self.architecture, self.config, data)
        self._weights = None
        self._refresh_embeddings()
        return self

    @property
    def network(self) -> TwoTowerNetwork:
        """The torch network, rebuilt from the stored weights on first use after a load (imports torch)."""
        return self._fitted_network()

    @property
    def stopped_early(self) -> bool:
        """Whether early stopping ended the last fit before ``max_epochs`` (False: it used every allowed epoch)."""
        return self.epochs_trained < self.config.max_epochs

    @property
    def epochs_trained(self) -> int:
        """Epochs the last fit ran (early stopping included); the kept weights are from :attr:`best_epoch`."""
        return int(self.history.shape[0])

    def _refresh_embeddings(self) -> None:
        from kuairec_pipeline.models import two_tower_network

        self.user_embeddings, self.video_embeddings = two_tower_network.embeddings(
            self._fitted_network(), resolve_thread_count(self.config.num_threads))

    def _fitted_network(self) -> TwoTowerNetwork:
        if self._network is None and self._weights is not None and self.architecture is not None:
            from kuairec_pipeline.models import two_tower_network

            self._network = two_tower_network.network_from_state(self.architecture, self.config, self._weights)
            self._weights = None
        if self._network is None:
            raise RuntimeError("TwoTowerRecommender has no network: call fit() or from_arrays() first")
        return self._network

    # ---- scoring (NumPy only) ------------------------------------------------------------------------------
    def score_all(self, user_ids: np.ndarray, video_ids: np.ndarray | None = None) -> np.ndarray:
        if self.user_embeddings is None or self.video_embeddings is None:
            raise RuntimeError("TwoTowerRecommender is not fitted: call fit() or from_arrays() first")
        users = self.user_embeddings[np.asarray(user_ids, dtype=np.int64)]
        videos = self.video_embeddings if video_ids is None else self.video_embeddings[np.asarray(video_ids, np.int64)]
        scores = users @ videos.T
        if self.config.link == "sigmoid":
            return _sigmoid_inplace(scores)
        return np.clip(scores, 0.0, 1.0, out=scores)

    def torch_predict(self, user_ids: np.ndarray, video_ids: np.ndarray) -> np.ndarray:
        """The network's own forward pass on (user, video) pairs (eval mode, CPU): a check on :meth:`score_all`."""
        from kuairec_pipeline.models import two_tower_network

        return two_tower_network.forward_probabilities(self._fitted_network(), user_ids, video_ids)

    # ---- persistence ---------------------------------------------------------------------------------------
    def save_weights(self, path: str | Path) -> Path:
        """``torch.save`` of the network's state dict (tensors only, so ``weights_only`` loading works), atomically."""
        from kuairec_pipeline.models import two_tower_network

        return two_tower_network.save_state(self._fitted_network(), path)

    def load_weights(self, path: str | Path) -> Self:
        """Load a state dict written by :meth:`save_weights` into this model's network and recompute embeddings."""
        from kuairec_pipeline.models import two_tower_network

        two_tower_network.load_state(self._fitted_network(), path)
        self._refresh_embeddings()
        return self

    def to_arrays(self) -> dict[str, np.ndarray]:
        if self._network is not None:
            from kuairec_pipeline.models import two_tower_network

            weights = two_tower_network.state_arrays(self._network)
        elif self._weights is not None:
            weights = self._weights
        else:
            raise RuntimeError("TwoTowerRecommender is not fitted: call fit() or from_arrays() first")
        arrays = {
            "user_embeddings": self.user_embeddings,
            "video_embeddings": self.video_embeddings,
            "training_history": self.history,
            "best_epoch": np.array(self.best_epoch, dtype=np.int64),
            ARCHITECTURE_KEY: encode_json(dataclasses.asdict(self.architecture)),
        }
        for name, value in weights.items():
            arrays[WEIGHTS_PREFIX + name] = value
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Self:
        model = cls(config_from_dict(stored_config(arrays)))
        model.architecture = Architecture(**decode_json(arrays[ARCHITECTURE_KEY]))
        model.n_users, model.n_videos = model.architecture.n_users, model.architecture.n_videos
        # The network is rebuilt from these only when needed (weights, torch_predict): scoring is NumPy.
        model._weights = {
            name[len(WEIGHTS_PREFIX):]: np.array(value) for name, value in arrays.items()
            if name.startswith(WEIGHTS_PREFIX)
        }
        model.user_embeddings = np.ascontiguousarray(arrays["user_embeddings"], dtype=np.float32)
        model.video_embeddings = np.ascontiguousarray(arrays["video_embeddings"], dtype=np.float32)
        model.history = np.asarray(arrays.get("training_history", model.history), dtype=np.float64)
        model.best_epoch = int(arrays["best_epoch"]) if "best_epoch" in arrays else -1
        return model
