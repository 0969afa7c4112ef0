"""Two-tower network (user tower, video tower) trained with Lightning; scored with NumPy only.

Each tower maps an id and its side features to a vector and a bias. The prediction is

    link(<u, v> + b_user + b_video + b_global) = link(<[u, b_user, 1], [v, 1, b_video + b_global]>)

with ``link`` the identity clipped to [0, 1] (default) or the sigmoid. With ``fixed_biases`` (default) each bias
starts from the exact ridge user and video biases (:func:`kuairec_pipeline.models.biases.fit_biases`), held fixed, and
the towers learn only what those leave: the user x video part that makes lists personal. Trained end to end on MSE
with a sigmoid and free biases, the towers spent their capacity and the early stopping on validation MSE on the
biases (which dominate that MSE) and ranked no better than the bias baseline (issue 7).

After training each tower runs once over all ids, and the augmented vectors are all that scoring needs
(cornac-style: torch only where training happens). The learned weights are kept too, as a flat state dict, so the
towers can be rebuilt, inspected or trained further.

Training data never passes through per-row Python: the train rows live as tensors (on the training device) and
each step gathers a whole batch by a slice of a shuffled index permutation. The torch half lives in
:mod:`kuairec_pipeline.models.two_tower_network` (the network), ``two_tower_training`` (the fit) and
``two_tower_state`` (weights <-> NumPy), imported only to train or to touch weights.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np

from kuairec_pipeline.models.base import Recommender, decode_json, encode_json, stored_config
from kuairec_pipeline.models.data import TrainingData
from kuairec_pipeline.models.errors import not_fitted
from kuairec_pipeline.models.linear import LinearRecommender
from kuairec_pipeline.models.linear_start import LinearStartHooks
from kuairec_pipeline.models.threads import resolve_thread_count
from kuairec_pipeline.models.two_tower_config import (  # noqa: F401  (re-exported: the model's public names)
    EMBEDDING_BATCH,
    HISTORY_COLUMNS,
    LINKS,
    Architecture,
    TwoTowerConfig,
    config_from_dict,
)

if TYPE_CHECKING:  # torch and Lightning load only where training or weight files need them
    from kuairec_pipeline.models.two_tower_network import TwoTowerNetwork

WEIGHTS_PREFIX = "weights."
ARCHITECTURE_KEY = "architecture"
LOGIT_CLIP = 30.0  # |logit| beyond this is 0 or 1 in float32 anyway; clipping keeps np.exp from overflowing


def _sigmoid_inplace(logits: np.ndarray) -> np.ndarray:
    np.clip(logits, -LOGIT_CLIP, LOGIT_CLIP, out=logits)
    np.negative(logits, out=logits)
    np.exp(logits, out=logits)
    logits += 1.0
    return np.reciprocal(logits, out=logits)


class TwoTowerRecommender(LinearStartHooks, Recommender):
    """Two towers trained with Lightning (MSE on the scaled target, early stopping on validation MSE)."""

    name: ClassVar[str] = "two_tower"
    trains_with_lightning: ClassVar[bool] = True

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
    def _fit(self, data: TrainingData, start: LinearRecommender | None, progress: object = None) -> Self:
        """Train on ``data.train`` (early stopping on ``data.val``) on top of ``start`` when given; ``progress``
        unused (each epoch is logged by the training logger)."""
        from kuairec_pipeline.models import two_tower_training

        factors = None if start is None else start.augmented_factors()
        width = 0 if factors is None else factors[0].shape[1]
        self.architecture = Architecture.from_data(data, start_width=width)
        self.n_users, self.n_videos = data.n_users, data.n_videos
        self._network, self.best_epoch, self.history = two_tower_training.train_network(
            self.architecture, self.config, data, factors
        )
        self._weights = None
        self._refresh_embeddings()
        return self

    # ---- pipeline hooks (models/hooks.py) ---------------------------------------------------------------------
    def training_history(self) -> tuple[np.ndarray, tuple[str, ...], int] | None:
        return self.history, HISTORY_COLUMNS, self.best_epoch

    def training_metadata(self) -> dict[str, Any]:
        """Epochs run, the epoch kept (-1 = the fixed start, no epoch beat it on validation), and whether early
        stopping ended the fit or it used every allowed epoch."""
        return {
            "epochs_trained": int(self.epochs_trained),
            "best_epoch": int(self.best_epoch),
            "stopped_early": bool(self.stopped_early),
            "stop_reason": "early_stopping" if self.stopped_early else "max_epochs",
        }

    def save_extras(self, models_dir: Path) -> dict[str, str]:
        """The weights as a state dict in ``models_dir/two_tower.pt`` (loaded with ``weights_only=True``)."""
        return {"weights_file": str(self.save_weights(models_dir / "two_tower.pt"))}

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
        from kuairec_pipeline.models import two_tower_state

        self.user_embeddings, self.video_embeddings = two_tower_state.embeddings(
            self._fitted_network(), resolve_thread_count(self.config.num_threads)
        )

    def _fitted_network(self) -> TwoTowerNetwork:
        if self._network is None and self._weights is not None and self.architecture is not None:
            from kuairec_pipeline.models import two_tower_state

            self._network = two_tower_state.network_from_state(self.architecture, self.config, self._weights)
            self._weights = None
        if self._network is None:
            raise not_fitted(self)
        return self._network

    # ---- scoring (NumPy only) ------------------------------------------------------------------------------
    def score_all(self, user_ids: np.ndarray, video_ids: np.ndarray | None = None) -> np.ndarray:
        if self.user_embeddings is None or self.video_embeddings is None:
            raise not_fitted(self)
        user_ids, video_ids = self._check_ids(user_ids, video_ids)
        users = self.user_embeddings[user_ids]
        videos = self.video_embeddings if video_ids is None else self.video_embeddings[video_ids]
        scores = users @ videos.T
        if self.config.link == "sigmoid":
            return _sigmoid_inplace(scores)
        return np.clip(scores, 0.0, 1.0, out=scores)

    def torch_predict(self, user_ids: np.ndarray, video_ids: np.ndarray) -> np.ndarray:
        """The network's own forward pass on (user, video) pairs (eval mode, CPU): a check on :meth:`score_all`.

        Parameters
        ----------
        user_ids, video_ids : int (n,) paired ids.

        Returns
        -------
        float32 (n,) in [0, 1].

        Raises
        ------
        NotFittedError
            Before ``fit`` / ``from_arrays``.
        """
        from kuairec_pipeline.models import two_tower_state

        return two_tower_state.forward_probabilities(self._fitted_network(), user_ids, video_ids)

    # ---- persistence ---------------------------------------------------------------------------------------
    def save_weights(self, path: str | Path) -> Path:
        """``torch.save`` of the network's state dict (tensors only, so ``weights_only`` loading works), atomically.

        Parameters
        ----------
        path : the target file.

        Returns
        -------
        The path written.

        Raises
        ------
        NotFittedError
            Before ``fit`` / ``from_arrays``.
        """
        from kuairec_pipeline.models import two_tower_state

        return two_tower_state.save_state(self._fitted_network(), path)

    def load_weights(self, path: str | Path) -> Self:
        """Load a state dict written by :meth:`save_weights` into this model's network and recompute embeddings.

        Parameters
        ----------
        path : a file written by :meth:`save_weights` for the same architecture.

        Returns
        -------
        ``self``.

        Raises
        ------
        NotFittedError
            Before ``fit`` / ``from_arrays`` (there is no network to load into).
        """
        from kuairec_pipeline.models import two_tower_state

        two_tower_state.load_state(self._fitted_network(), path)
        self._refresh_embeddings()
        return self

    def to_arrays(self) -> dict[str, np.ndarray]:
        if self._network is not None:
            from kuairec_pipeline.models import two_tower_state

            weights = two_tower_state.state_arrays(self._network)
        elif self._weights is not None:
            weights = self._weights
        else:
            raise not_fitted(self)
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
            name[len(WEIGHTS_PREFIX) :]: np.array(value)
            for name, value in arrays.items()
            if name.startswith(WEIGHTS_PREFIX)
        }
        model.user_embeddings = np.ascontiguousarray(arrays["user_embeddings"], dtype=np.float32)
        model.video_embeddings = np.ascontiguousarray(arrays["video_embeddings"], dtype=np.float32)
        model.history = np.asarray(arrays.get("training_history", model.history), dtype=np.float64)
        model.best_epoch = int(arrays["best_epoch"]) if "best_epoch" in arrays else -1
        return model
