"""Embedding concatenation: a small Wide & Deep network over the fitted components' embeddings and the side features.

The original study's second hybrid ("late fusion or embedding concatenation"): the calibrated ALS vectors, the
two-tower user and video embeddings, the sequential model's user state and video vectors and the user / video
features are concatenated and a small network (Cheng et al. 2016, Wide & Deep; the architecture is documented in
:mod:`.hybrid_concat_network`) predicts the scaled watch ratio. It is trained with Lightning on (a seeded sample of)
the training rows, each read with the sequential state from the user's training rows strictly before it, with early
stopping on the tuning ``val`` rows (read the same way); the fixed start (the mean of the calibrated ALS and
two-tower predictions) is a candidate for the weights kept, so the fit never keeps weights worse on val than it.

Scoring is NumPy only: the network is exported as per-user and per-video tables (its first layer is linear, so it
splits by side) and ``score_all`` is a matrix product (wide part) plus ``relu`` of per-user + per-video hidden units
(deep part). Ranking reads each user's sequential state after its whole training history; ``predict_rows`` (the
pointwise metrics) re-encodes the state from the history strictly before each row, as the sequential model does.
Fallbacks are the components': a user without training rows has the sequential empty state, the ALS and two-tower
vectors of an unseen user, and its side features; every term is finite, so no score is NaN.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import numpy as np

from kuairec_pipeline.models import components as parts
from kuairec_pipeline.models.als import ALSConfig
from kuairec_pipeline.models.base import Recommender, stored_config
from kuairec_pipeline.models.data import Interactions, TrainingData
from kuairec_pipeline.models.errors import not_fitted
from kuairec_pipeline.models.hooks import EpochTrainedHooks
from kuairec_pipeline.models.sequential import SequentialRecommender
from kuairec_pipeline.models.sequential_config import SequentialConfig
from kuairec_pipeline.models.two_tower import TwoTowerConfig
from kuairec_pipeline.models.two_tower_config import ACCELERATORS, PRECISIONS
from kuairec_pipeline.params import check, param

COMPONENTS = ("als", "two_tower", "sequential")
NETWORK_KEYS = (
    "user_wide",
    "video_wide",
    "seq_wide",
    "user_hidden",
    "video_hidden",
    "state_hidden",
    "output",
    "global_bias",
)
ROW_BATCH = 262_144  # pointwise rows per NumPy pass: bounds the (rows, hidden) intermediates


@dataclass(frozen=True)
class HybridConcatConfig:
    """Hyperparameters of :class:`HybridConcatRecommender`; ranges are enforced on construction (``params.check``)."""

    hidden_dim: int = param(32, "Hidden units of the deep part.", ge=1, le=1024)
    category_dim: int = param(4, "Embedding width of each user / video categorical column.", ge=1, le=256)
    dropout: float = param(0.1, "Dropout on the hidden units while training.", ge=0.0, lt=1.0)
    learning_rate: float = param(3e-3, "AdamW step size.", gt=0.0, le=1.0)
    weight_decay: float = param(0.0, "AdamW decoupled weight decay.", ge=0.0)
    batch_size: int = param(2048, "Training rows per step.", ge=1, le=1_048_576)
    max_epochs: int = param(20, "Upper bound on passes over the sampled training rows.", ge=1, le=1000)
    early_stopping_patience: int = param(
        2,
        "Epochs without a validation MSE improvement on the best so far (the fixed start included) before stopping.",
        ge=1,
        le=1000,
    )
    early_stopping_min_delta: float = param(
        1e-6, "Smallest validation MSE decrease that counts as improvement.", ge=0.0
    )
    # Each sampled row needs a sequential state re-encoded from its history, which costs about as much as the
    # sequential model's pointwise scoring of that many rows.
    max_train_rows: int = param(200_000, "Training rows the network sees, a seeded uniform sample (0 = all).", ge=0)
    seed: int = param(0, "Seeds the row sample, the initialisation, dropout and batch order.", ge=0, le=2**32 - 1)
    num_threads: int = param(0, "torch intra-op threads while training (0 = all cores).", ge=0, le=1024)
    accelerator: str = param(
        "auto", "Lightning accelerator: 'auto' takes a GPU when present, else the CPU.", choices=ACCELERATORS
    )
    precision: str = param("32-true", "Lightning precision, e.g. 'bf16-mixed' on a recent GPU.", choices=PRECISIONS)
    # One log line per epoch is written regardless (EpochProgress), so the pipeline never needs the bar.
    show_progress: bool = param(False, "Lightning's progress bar and model summary.", run_config=False)
    # The components' configs are used when fit() trains them; fit_from_components takes the fitted ones' own.
    als: ALSConfig = parts.component_config("ALS", ALSConfig)
    two_tower: TwoTowerConfig = parts.component_config("two-tower", TwoTowerConfig)
    sequential: SequentialConfig = parts.component_config("sequential", SequentialConfig)

    def __post_init__(self) -> None:
        check(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> HybridConcatConfig:
        """Inverse of ``dataclasses.asdict`` after a JSON round trip (unknown keys dropped).

        Parameters
        ----------
        values : the stored config, the components' configs as nested dicts.

        Returns
        -------
        HybridConcatConfig.
        """
        known = {f.name for f in dataclasses.fields(cls)} - set(COMPONENTS)
        nested = {name: parts.component_config_from_dict(name, values[name]) for name in COMPONENTS if name in values}
        return cls(**{k: v for k, v in values.items() if k in known}, **nested)


def _unit_rms(block: np.ndarray) -> np.ndarray:
    """``block`` divided by its root mean square (one scalar), so every block enters the deep part at unit scale."""
    rms = float(np.sqrt(np.mean(np.square(block, dtype=np.float64)))) if block.size else 0.0
    return (block / rms if rms > 0 else block).astype(np.float32)


def concat_inputs(components: dict[str, Recommender], data: TrainingData, train_states: np.ndarray):
    """The per-id tables of the network (:class:`.hybrid_concat_network.ConcatInputs`).

    Parameters
    ----------
    components : the fitted ``als``, ``two_tower`` and ``sequential`` models.
    data : the training data (side features).
    train_states : float32 (n, ds) the training rows' sequential states (their scale sets ``seq_scale``).

    Returns
    -------
    ConcatInputs.
    """
    from kuairec_pipeline.models.hybrid_concat_network import ConcatInputs  # imports torch: only when training

    als_user, als_video = components["als"].augmented_vectors()
    two_tower, sequential = components["two_tower"], components["sequential"]
    rms = float(np.sqrt(np.mean(np.square(train_states, dtype=np.float64)))) if train_states.size else 0.0
    return ConcatInputs(
        als_user=als_user,
        als_video=als_video,
        tt_user=two_tower.user_embeddings,
        tt_video=two_tower.video_embeddings,
        seq_video=sequential.video_vectors,
        user_dense=np.hstack([_unit_rms(als_user), _unit_rms(two_tower.user_embeddings), data.user_numeric]),
        video_dense=np.hstack(
            [
                _unit_rms(als_video),
                _unit_rms(two_tower.video_embeddings),
                _unit_rms(sequential.video_vectors),
                data.video_numeric,
                data.video_tag_multi_hot,
            ]
        ),
        user_categorical=data.user_categorical.astype(np.int64),
        user_cardinality=[max(1, int(c)) for c in data.user_categorical_cardinality],
        video_categorical=data.video_categorical.astype(np.int64),
        video_cardinality=[max(1, int(c)) for c in data.video_categorical_cardinality],
        seq_scale=1.0 / rms if rms > 0 else 1.0,
    )


class HybridConcatRecommender(EpochTrainedHooks, Recommender):
    """Wide & Deep network over the concatenated ALS, two-tower and sequential embeddings and the side features."""

    name: ClassVar[str] = "hybrid_concat"
    time_aware: ClassVar[bool] = True  # pointwise predictions read the sequential state before each row

    def __init__(self, config: HybridConcatConfig | None = None) -> None:
        self.config = config or HybridConcatConfig()
        self.n_users = 0
        self.n_videos = 0
        self.sequential: SequentialRecommender | None = None
        self.arrays: dict[str, np.ndarray] = {}
        self.history = np.zeros((0, 4), dtype=np.float64)  # epoch, train_loss, val_mse, val_mae
        self.best_epoch = -1

    def fit(self, data: TrainingData, progress: Callable[[str], None] | None = None) -> Self:
        """Train the three components from this config, then the network on them.

        Parameters
        ----------
        data : the training data.
        progress : receives one line per epoch of the network; None: the ``kuairec_pipeline.training`` logger.

        Returns
        -------
        ``self``, fitted.
        """
        configs = {"als": self.config.als, "two_tower": self.config.two_tower, "sequential": self.config.sequential}
        return self._fit_network(parts.fit_components(COMPONENTS, configs, data), data, progress)

    def fit_from_components(
        self,
        components: Mapping[str, Recommender],
        data: TrainingData,
        progress: Callable[[str], None] | None = None,
    ) -> Self:
        """Train the network over already fitted ``als``, ``two_tower`` and ``sequential`` components.

        Parameters
        ----------
        components : name -> fitted model (more names are ignored).
        data : the training data (train rows to fit, val rows to stop early).
        progress : receives one line per epoch; None: the ``kuairec_pipeline.training`` logger.

        Returns
        -------
        ``self``, fitted; its config's component configs become the components' own.

        Raises
        ------
        KeyError, TypeError, ValueError
            As :func:`kuairec_pipeline.models.components.checked_components`.
        """
        chosen = parts.checked_components(dict(components), COMPONENTS)
        self.config = dataclasses.replace(self.config, **{name: m.config for name, m in chosen.items()})
        return self._fit_network(chosen, data, progress)

    # ---- pipeline hooks (models/hooks.py) ---------------------------------------------------------------------
    def _fit_network(
        self, components: dict[str, Recommender], data: TrainingData, progress: Callable[[str], None] | None
    ) -> Self:
        from kuairec_pipeline.models import hybrid_concat_network as network  # torch: only when training
        from kuairec_pipeline.models.progress import quiet_lightning_notices

        chosen = parts.checked_components(components, COMPONENTS)
        sequential = chosen["sequential"]
        rows = data.train
        if 0 < self.config.max_train_rows < len(rows):
            keep = np.sort(np.random.default_rng(self.config.seed).choice(len(rows), self.config.max_train_rows, False))
            rows = Interactions(*(getattr(rows, f.name)[keep] for f in dataclasses.fields(Interactions)))

        def concat_rows(part: Interactions) -> network.ConcatRows:
            states = sequential.row_states(part, data.train)  # strictly before each row: never the row itself
            user, video = part.user.astype(np.int64), part.video.astype(np.int64)
            return network.ConcatRows(user, video, states, part.target.astype(np.float32))

        train, val = concat_rows(rows), concat_rows(data.val)
        inputs = concat_inputs(chosen, data, train.state)
        # Lightning's start-up notices say nothing EpochProgress does not (one line per epoch through progress).
        with quiet_lightning_notices():
            result = network.train_network(inputs, train, val, self.config, progress)
        self.arrays, self.best_epoch, self.history = result.arrays, result.best_epoch, result.history
        self.sequential = sequential
        self.n_users, self.n_videos = sequential.n_users, sequential.n_videos
        return self

    # ---- scoring (NumPy only) ------------------------------------------------------------------------------
    def _fitted(self) -> tuple[SequentialRecommender, dict[str, np.ndarray]]:
        if self.sequential is None or not self.arrays:
            raise not_fitted(self, "call fit(), fit_from_components() or from_arrays() first")
        return self.sequential, self.arrays

    def _deep(self, user_hidden: np.ndarray, video_hidden: np.ndarray, out: np.ndarray, outer: bool) -> None:
        """Add ``w2 . relu(user_hidden + video_hidden)`` to ``out``: the grid (``outer``) or paired rows."""
        for unit, weight in enumerate(self.arrays["output"]):
            if weight == 0.0:
                continue
            user_part = user_hidden[:, unit]
            hidden = np.add.outer(user_part, video_hidden[:, unit]) if outer else user_part + video_hidden[:, unit]
            np.maximum(hidden, 0.0, out=hidden)
            hidden *= weight
            out += hidden

    def score_all(self, user_ids: np.ndarray, video_ids: np.ndarray | None = None) -> np.ndarray:
        sequential, a = self._fitted()
        user_ids, video_ids = self._check_ids(user_ids, video_ids)
        videos = slice(None) if video_ids is None else video_ids
        states = sequential.user_states[user_ids]  # after the whole training history: the ranking state
        seq_video = sequential.video_vectors[videos]
        scores = a["user_wide"][user_ids] @ a["video_wide"][videos].T
        scores += (states * a["seq_wide"]) @ seq_video.T
        scores += a["global_bias"]
        user_hidden = a["user_hidden"][user_ids] + states @ a["state_hidden"]
        self._deep(user_hidden, a["video_hidden"][videos], scores, outer=True)
        return np.clip(scores, 0.0, 1.0, out=scores).astype(np.float32, copy=False)

    def predict_rows(self, rows: Interactions, history: Interactions | None = None) -> np.ndarray:
        """Pointwise prediction, float32 (len(rows),) in [0, 1]: each row read with the sequential state from its
        user's ``history`` rows strictly before the row's timestamp (``None``: the whole-history state, as
        :meth:`predict`)."""
        if history is None:
            return self.predict(rows.user, rows.video)
        sequential, a = self._fitted()
        self._check_ids(rows.user, rows.video)
        out = np.empty(len(rows), dtype=np.float32)
        # One grouping of the history and one encoding of each window for all rows; chunks bound the temporaries.
        for part, states in sequential.row_state_chunks(rows, history, ROW_BATCH):
            user, video = rows.user[part].astype(np.int64), rows.video[part].astype(np.int64)
            scores = np.einsum("ij,ij->i", a["user_wide"][user], a["video_wide"][video])
            scores += np.einsum("ij,ij->i", states * a["seq_wide"], sequential.video_vectors[video])
            scores += a["global_bias"]
            self._deep(a["user_hidden"][user] + states @ a["state_hidden"], a["video_hidden"][video], scores, False)
            out[part] = np.clip(scores, 0.0, 1.0)
        return out

    # ---- persistence ---------------------------------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        sequential, a = self._fitted()
        arrays = {key: a[key] for key in NETWORK_KEYS}
        arrays.update(parts.store_components({"sequential": sequential}))
        arrays["training_history"] = self.history
        arrays["best_epoch"] = np.array(self.best_epoch, dtype=np.int64)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Self:
        model = cls(HybridConcatConfig.from_dict(stored_config(arrays)))
        (model.sequential,) = parts.restore_components(arrays, ("sequential",), "hybrid_concat bundle").values()
        model.arrays = {key: np.asarray(arrays[key], dtype=np.float32) for key in NETWORK_KEYS}
        model.n_users, model.n_videos = model.sequential.n_users, model.sequential.n_videos
        model.history = np.asarray(arrays.get("training_history", model.history), dtype=np.float64)
        model.best_epoch = int(arrays["best_epoch"]) if "best_epoch" in arrays else -1
        return model
