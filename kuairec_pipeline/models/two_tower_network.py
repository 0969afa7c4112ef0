"""The torch and Lightning half of the two-tower model: towers, the network, weight files (training:
:mod:`kuairec_pipeline.models.two_tower_training`).

Kept apart from :mod:`kuairec_pipeline.models.two_tower` so that loading a fitted model and scoring it (the CLI,
the metrics and recommendations assets) never imports torch or Lightning: they cost seconds to import.
"""

from __future__ import annotations

import lightning.pytorch as lightning
import numpy as np
import torch
from torch import nn

from kuairec_pipeline.models.lightning_common import ValidationErrorSums
from kuairec_pipeline.models.two_tower_config import (
    EMBEDDING_BATCH,
    Architecture,
    TwoTowerConfig,
)


class Tower(nn.Module):
    """id + side features -> MLP -> (vector, bias). The side-feature tables are buffers indexed by id, so the
    state dict alone determines every output."""

    def __init__(
        self,
        n_ids: int,
        categorical_cardinality: list[int],
        numeric_columns: int,
        tag_ids: int,
        tag_slots: int,
        config: TwoTowerConfig,
        coefficient_width: int = 0,
        explicit_features: bool = False,
        free_dim: int | None = None,
        zero_vectors: bool = True,
    ) -> None:
        super().__init__()
        # Explicit interaction terms: the video tower appends its own side features (tag weights, numeric
        # columns) to its vector, and the user tower emits one coefficient per such feature, so a user's
        # affinity for each tag (and, e.g., for short videos) enters the dot product directly.
        self.coefficient_width = coefficient_width
        self.explicit_features = explicit_features
        self.register_buffer("categorical", torch.zeros(n_ids, len(categorical_cardinality), dtype=torch.long))
        self.register_buffer("numeric", torch.zeros(n_ids, numeric_columns, dtype=torch.float32))
        self.register_buffer("tags", torch.zeros(n_ids, tag_slots if tag_ids else 0, dtype=torch.long))
        # tag weights: a video's tags as a multi-hot over tag ids 1.. scaled to sum 1 (all zero without tags)
        self.register_buffer(
            "tag_weights", torch.zeros(n_ids, max(tag_ids - 1, 0) if explicit_features else 0, dtype=torch.float32)
        )
        # fixed bias of each id (the exact ridge bias when config.fixed_biases, else 0): never trained
        self.register_buffer("bias_offset", torch.zeros(n_ids, dtype=torch.float32))
        # fixed part of the user's explicit coefficients (its ridge taste when config.taste_l2 is set): not trained
        self.register_buffer("coefficient_offset", torch.zeros(n_ids, coefficient_width, dtype=torch.float32))
        self.id_embedding = nn.Embedding(n_ids, config.id_embedding_dim)
        self.id_bias = nn.Embedding(n_ids, 1)
        nn.init.normal_(self.id_embedding.weight, std=0.05)
        nn.init.zeros_(self.id_bias.weight)
        # One table for all categorical columns (column i's ids shifted by the cardinalities before it): a single
        # lookup and a single gradient per step instead of one per column. Id 0 (blank one-hot, unknown author)
        # gets a learned "unknown" vector per column.
        offsets = np.concatenate([[0], np.cumsum(categorical_cardinality)[:-1]]).astype(np.int64)
        self.register_buffer("categorical_offsets", torch.from_numpy(offsets), persistent=False)
        self.categorical_embedding = (
            nn.Embedding(int(sum(categorical_cardinality)), config.feature_embedding_dim)
            if categorical_cardinality
            else None
        )
        self.tag_bag = (
            nn.EmbeddingBag(tag_ids, config.feature_embedding_dim, mode="mean", padding_idx=0) if tag_ids else None
        )
        width = (
            config.id_embedding_dim
            + config.feature_embedding_dim * (len(categorical_cardinality) + (1 if tag_ids else 0))
            + numeric_columns
        )
        layers: list[nn.Module] = []
        for hidden in config.hidden_sizes:
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(config.dropout)]
            width = hidden
        # the extra unit is a feature-based bias; the coefficients (user tower) follow it
        self.embedding_dim = config.embedding_dim if free_dim is None else free_dim
        layers.append(nn.Linear(width, self.embedding_dim + 1 + coefficient_width))
        if config.fixed_biases or config.linear_start:
            # Start exactly at the fixed start (zero extra bias and coefficients; the video tower's vectors zero):
            # every step away from it is one the training rows asked for. The user tower's vectors keep their
            # random start: were both zero, each tower's gradient (the other's vector) would be zero and the dot
            # product would never leave that saddle point.
            nn.init.zeros_(layers[-1].bias)
            with torch.no_grad():
                layers[-1].weight[0 if zero_vectors else self.embedding_dim :].zero_()
        self.mlp = nn.Sequential(*layers)

    def set_features(self, categorical: np.ndarray, numeric: np.ndarray, tags: np.ndarray | None) -> None:
        """Copy the per-id side features into the tower's buffers (they move with the module's device).

        Parameters
        ----------
        categorical : int (n_ids, n_categorical) category ids.
        numeric : float (n_ids, n_numeric), each in [0, 1].
        tags : int (n_ids, tag_slots) tag ids (0 = empty slot), or None for a tower without tags.
        """
        self.categorical.copy_(torch.from_numpy(np.asarray(categorical, dtype=np.int64)))
        self.numeric.copy_(torch.from_numpy(np.asarray(numeric, dtype=np.float32)))
        if tags is not None and self.tag_bag is not None:
            self.tags.copy_(torch.from_numpy(np.asarray(tags, dtype=np.int64)))
            if self.tag_weights.shape[1]:
                tag_ids = np.asarray(tags, dtype=np.int64)
                weights = np.zeros((tag_ids.shape[0], self.tag_weights.shape[1] + 1), dtype=np.float32)
                np.add.at(weights, (np.repeat(np.arange(tag_ids.shape[0]), tag_ids.shape[1]), tag_ids.ravel()), 1.0)
                weights = weights[:, 1:]
                weights /= np.maximum(weights.sum(axis=1, keepdims=True), 1.0)
                self.tag_weights.copy_(torch.from_numpy(weights))

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(vector (B, d), bias (B,), id-embedding squared norm per row (B,) for the id L2 penalty).

        The MLP runs once per distinct id in the batch (a batch of 8,192 rows holds far fewer distinct users
        and videos), then the outputs are gathered back per row: the same result and gradient, less compute.
        """
        distinct, per_row = torch.unique(ids, return_inverse=True)
        id_vector = self.id_embedding(distinct)
        id_bias = self.id_bias(distinct).squeeze(-1)
        parts = [id_vector]
        if self.categorical_embedding is not None:
            categorical = self.categorical[distinct] + self.categorical_offsets
            parts.append(self.categorical_embedding(categorical).flatten(start_dim=1))
        if self.tag_bag is not None:
            parts.append(self.tag_bag(self.tags[distinct]))
        parts.append(self.numeric[distinct])
        out = self.mlp(torch.cat(parts, dim=1))
        squared_norm = id_vector.pow(2).sum(dim=1) + id_bias.pow(2)
        bias = out[:, self.embedding_dim] + id_bias + self.bias_offset[distinct]
        vector = out[:, : self.embedding_dim]
        if self.coefficient_width:
            vector = torch.cat([vector, out[:, self.embedding_dim + 1 :] + self.coefficient_offset[distinct]], dim=1)
        if self.explicit_features:
            vector = torch.cat([vector, self.tag_weights[distinct], self.numeric[distinct]], dim=1)
        return vector[per_row], bias[per_row], squared_norm[per_row]


def explicit_feature_width(architecture: Architecture, config: TwoTowerConfig) -> int:
    """Width of the explicit part of each vector (tag weights + video numeric columns), 0 when disabled or when
    ``embedding_dim`` leaves no room for at least one free dimension beside it."""
    if not config.explicit_features:
        return 0
    width = max(architecture.tag_ids - 1, 0) + architecture.video_numeric_columns
    return width if config.embedding_dim > width else 0


class TwoTowerNetwork(ValidationErrorSums, lightning.LightningModule):
    """Both towers, the global bias, the loss and the optimizer; metrics train_loss, val_mse, val_mae."""

    def __init__(self, architecture: Architecture, config: TwoTowerConfig, global_logit: float = 0.0) -> None:
        super().__init__()
        self.config = config
        explicit_width = explicit_feature_width(architecture, config)
        free_dim = config.embedding_dim - explicit_width
        self.user_tower = Tower(
            architecture.n_users,
            architecture.user_categorical_cardinality,
            architecture.user_numeric_columns,
            tag_ids=0,
            tag_slots=0,
            config=config,
            coefficient_width=explicit_width,
            free_dim=free_dim,
            zero_vectors=False,  # the video tower's are zero: the start is exact and the product has a gradient
        )
        self.video_tower = Tower(
            architecture.n_videos,
            architecture.video_categorical_cardinality,
            architecture.video_numeric_columns,
            tag_ids=architecture.tag_ids,
            tag_slots=architecture.tag_slots,
            config=config,
            explicit_features=explicit_width > 0,
            free_dim=free_dim,
        )
        self.global_bias = nn.Parameter(torch.tensor(float(global_logit)))
        # The fixed start (linear_start): start(u, v) = start_user[u] @ start_video[v], added to every logit. Kept in
        # the state dict, so a weights file or a bundle rebuilds the same network.
        self.register_buffer("start_user", torch.zeros(architecture.n_users, architecture.start_width))
        self.register_buffer("start_video", torch.zeros(architecture.n_videos, architecture.start_width))

    def set_start(self, start_user: np.ndarray, start_video: np.ndarray) -> None:
        """Hold ``start_user[u] @ start_video[v]`` (scaled target units) fixed under every logit.

        Parameters
        ----------
        start_user : float (n_users, start_width); start_video : float (n_videos, start_width).
        """
        self.start_user.copy_(torch.from_numpy(np.asarray(start_user, np.float32)))
        self.start_video.copy_(torch.from_numpy(np.asarray(start_video, np.float32)))

    def forward(self, users: torch.Tensor, videos: torch.Tensor) -> torch.Tensor:
        """Logits for (user, video) pairs.

        Parameters
        ----------
        users, videos : int64 tensors (B,) of ids.

        Returns
        -------
        float tensor (B,): the score before the link (:meth:`predictions`).
        """
        return self._logits_and_penalty(users, videos)[0]

    def _logits_and_penalty(self, users: torch.Tensor, videos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        user_vector, user_bias, user_norm = self.user_tower(users)
        video_vector, video_bias, video_norm = self.video_tower(videos)
        logits = (user_vector * video_vector).sum(dim=1) + user_bias + video_bias + self.global_bias
        if self.start_user.shape[1]:
            logits = logits + (self.start_user[users] * self.start_video[videos]).sum(dim=1)
        return logits, user_norm + video_norm

    def predictions(self, logits: torch.Tensor) -> torch.Tensor:
        """The link: sigmoid, or the identity (clipped to [0, 1] only where scores are served, not in the loss,
        so that a prediction outside the range still gets a gradient back).

        Parameters
        ----------
        logits : float tensor, any shape.

        Returns
        -------
        float tensor, same shape: predicted scaled watch ratio.
        """
        return torch.sigmoid(logits) if self.config.link == "sigmoid" else logits

    def loss(
        self, users: torch.Tensor, videos: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(objective to minimize, its MSE part): MSE of link(score) on the scaled target + id L2 penalty.

        Parameters
        ----------
        users, videos : int64 tensors (B,) of ids.
        target : float tensor (B,), scaled watch ratio in [0, 1].

        Returns
        -------
        (scalar objective tensor, scalar MSE tensor).
        """
        logits, penalty = self._logits_and_penalty(users, videos)
        mse = torch.mean((self.predictions(logits) - target) ** 2)
        return mse + self.config.id_l2 * penalty.mean(), mse

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        """Lightning hook: the objective of one batch; logs its MSE part as ``train_loss``.

        Parameters
        ----------
        batch : (users int64 (B,), videos int64 (B,), target float (B,) scaled watch ratio).
        batch_idx : the batch's index in the epoch (unused).

        Returns
        -------
        scalar tensor: MSE + id L2 penalty.
        """
        objective, mse = self.loss(*batch)
        self.log("train_loss", mse, prog_bar=True, on_step=True, on_epoch=True, batch_size=batch[2].shape[0])
        return objective

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        """Lightning hook: add one batch's errors of the served (clipped) prediction to the sums.

        Parameters
        ----------
        batch : (users int64 (B,), videos int64 (B,), target float (B,)).
        batch_idx : the batch's index (unused).
        """
        users, videos, target = batch
        prediction = self.predictions(self(users, videos))
        if self.config.link == "identity":
            prediction = prediction.clamp(0.0, 1.0)  # validate what is served
        self.add_validation_errors(prediction - target)

    @torch.no_grad()
    def augmented_embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        """The towers' outputs folded into two matrices whose product is the logit.

        Returns
        -------
        (float32 (n_users, d + 2 + k) rows ``[u, b_user, 1, start_user]``,
        float32 (n_videos, d + 2 + k) rows ``[v, 1, b_video + b_global, start_video]``), k = the start's width
        (0 without one).
        """
        was_training = self.training
        self.eval()
        try:
            users = self._tower_outputs(self.user_tower)
            videos = self._tower_outputs(self.video_tower)
        finally:
            self.train(was_training)
        user_vector, user_bias = users
        video_vector, video_bias = videos
        global_bias = float(self.global_bias.detach().cpu())
        start_user, start_video = self.start_user.cpu().numpy(), self.start_video.cpu().numpy()
        user_augmented = np.hstack(
            [user_vector, user_bias[:, None], np.ones((user_bias.size, 1), np.float32), start_user]
        )
        video_augmented = np.hstack(
            [video_vector, np.ones((video_bias.size, 1), np.float32), (video_bias + global_bias)[:, None], start_video]
        )
        return user_augmented.astype(np.float32), video_augmented.astype(np.float32)

    def _tower_outputs(self, tower: Tower) -> tuple[np.ndarray, np.ndarray]:
        n_ids = tower.id_embedding.num_embeddings
        device = tower.id_embedding.weight.device
        vectors, biases = [], []
        for first in range(0, n_ids, EMBEDDING_BATCH):
            ids = torch.arange(first, min(first + EMBEDDING_BATCH, n_ids), device=device)
            vector, bias, _ = tower(ids)
            vectors.append(vector.float().cpu().numpy())
            biases.append(bias.float().cpu().numpy())
        return np.concatenate(vectors), np.concatenate(biases)
