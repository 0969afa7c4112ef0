"""The torch and Lightning half of the sequential model: the network (its fit is in :mod:`.sequential_training`).

Imported only to train (:meth:`SequentialRecommender.fit`); scoring a stored model needs NumPy alone. Batches never
pass through per-row Python: the ordered history lives as tensors on the training device, and each step turns a
slice of a shuffled window permutation into an index matrix ``start[:, None] + arange(max_len)``.
"""

from __future__ import annotations

import lightning.pytorch as lightning
import numpy as np
import torch
from torch import nn

from kuairec_pipeline.models.lightning_common import ValidationErrorSums
from kuairec_pipeline.models.sequential_config import SequentialArchitecture, SequentialConfig

STATE_BATCH_WINDOWS = 4_096  # windows per forward pass when computing states without gradients


class VideoEncoder(nn.Module):
    """video id -> id embedding + mean of its tag embeddings + its categorical (author) embeddings."""

    def __init__(self, architecture: SequentialArchitecture, dim: int) -> None:
        super().__init__()
        self.video = nn.Embedding(architecture.n_videos, dim)
        self.tags = nn.Embedding(architecture.tag_ids, dim, padding_idx=0)
        self.categorical = nn.ModuleList(
            nn.Embedding(c, dim, padding_idx=0) for c in architecture.video_categorical_cardinality
        )
        for table in (self.video, self.tags, *self.categorical):
            nn.init.normal_(table.weight, std=0.05)
            if table.padding_idx is not None:
                with torch.no_grad():
                    table.weight[table.padding_idx].zero_()

    def forward(self, video: torch.Tensor, tags: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        """Video vectors: id embedding + mean tag embedding + categorical embeddings.

        Parameters
        ----------
        video : int64 tensor, any shape S.
        tags : int64 tensor S + (tag_slots,), 0 = empty slot.
        categorical : int64 tensor S + (n_categorical,).

        Returns
        -------
        float tensor S + (d,).
        """
        tag_count = (tags > 0).sum(dim=-1, keepdim=True).clamp(min=1)
        vector = self.video(video) + self.tags(tags).sum(dim=-2) / tag_count
        for column, table in enumerate(self.categorical):
            vector = vector + table(categorical[..., column])
        return vector


class SequentialNetwork(ValidationErrorSums, lightning.LightningModule):
    """Causal pre-norm transformer over history windows; MSE on the next row of sigmoid(<state, c_v> + b_v + b), or
    with ``fixed_start`` of ``start(u, v) + <state, c_v> + b_v + b``."""

    def __init__(
        self, architecture: SequentialArchitecture, config: SequentialConfig, global_logit: float = 0.0
    ) -> None:
        super().__init__()
        self.config = config
        d = config.hidden_dim
        self.register_buffer("video_tags", torch.zeros(architecture.n_videos, architecture.tag_slots, dtype=torch.long))
        self.register_buffer(
            "video_categorical",
            torch.zeros(architecture.n_videos, len(architecture.video_categorical_cardinality), dtype=torch.long),
        )
        self.input_encoder = VideoEncoder(architecture, d)
        self.output_encoder = VideoEncoder(architecture, d)
        if config.fixed_start:
            # Zero candidate vectors: the untrained network predicts the fixed start exactly, so every step away
            # from it is one the training rows asked for (the two-tower's fixed biases do the same).
            for table in (self.output_encoder.video, self.output_encoder.tags, *self.output_encoder.categorical):
                nn.init.zeros_(table.weight)
        # The fixed start as augmented factors: start(u, v) = start_user[u] @ start_video[v] (set_start). Not
        # persistent: the bundle stores them beside the weights, and the torch checks rebuild without them.
        self.register_buffer("start_user", torch.zeros(architecture.n_users, 0), persistent=False)
        self.register_buffer("start_video", torch.zeros(architecture.n_videos, 0), persistent=False)
        self.ratio_input = nn.Linear(1, d)
        self.position = nn.Embedding(config.max_len, d)
        nn.init.normal_(self.position.weight, std=0.05)
        layer = nn.TransformerEncoderLayer(
            d,
            config.num_heads,
            config.feedforward_dim,
            config.dropout,
            activation="relu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, config.num_layers, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(d)
        self.input_dropout = nn.Dropout(config.dropout)
        self.empty_state = nn.Parameter(torch.zeros(d))
        # Zero init: a user without training rows keeps exactly zero (no gradient reaches its row).
        self.user_embedding = nn.Embedding(architecture.n_users, d) if config.user_embedding else None
        if self.user_embedding is not None:
            nn.init.zeros_(self.user_embedding.weight)
        self.video_bias = nn.Embedding(architecture.n_videos, 1)
        nn.init.zeros_(self.video_bias.weight)
        self.global_bias = nn.Parameter(torch.tensor(float(global_logit)))
        self.register_buffer(
            "causal_mask", nn.Transformer.generate_square_subsequent_mask(config.max_len), persistent=False
        )

    def set_video_features(self, tags: np.ndarray, categorical: np.ndarray) -> None:
        """Copy the per-video tags and categorical ids into the network's buffers.

        Parameters
        ----------
        tags : int (n_videos, tag_slots), 0 = empty slot.
        categorical : int (n_videos, n_categorical).
        """
        self.video_tags.copy_(torch.from_numpy(tags.astype(np.int64)))
        self.video_categorical.copy_(torch.from_numpy(categorical.astype(np.int64)))

    def set_start(self, start_user: np.ndarray, start_video: np.ndarray) -> None:
        """Hold the fixed start ``start_user[u] @ start_video[v]`` (in scaled target units) under every score.

        Parameters
        ----------
        start_user : float (n_users, k); start_video : float (n_videos, k).
        """
        device = self.video_tags.device
        self.start_user = torch.from_numpy(np.ascontiguousarray(start_user, np.float32)).to(device)
        self.start_video = torch.from_numpy(np.ascontiguousarray(start_video, np.float32)).to(device)

    def video_vectors(self, encoder: VideoEncoder, video: torch.Tensor) -> torch.Tensor:
        """``encoder``'s vectors of ``video`` with the stored video features.

        Parameters
        ----------
        encoder : the input or the output :class:`VideoEncoder`.
        video : int64 tensor, any shape S.

        Returns
        -------
        float tensor S + (d,).
        """
        return encoder(video, self.video_tags[video], self.video_categorical[video])

    def encode(self, video: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
        """States (B, L, d) of right-padded windows: position j sees positions 0..j of its own window only.

        Parameters
        ----------
        video : int64 tensor (B, L) of video ids.
        ratio : float tensor (B, L) of scaled watch ratios.

        Returns
        -------
        float tensor (B, L, d).
        """
        width = video.shape[1]
        x = (
            self.video_vectors(self.input_encoder, video)
            + self.ratio_input(ratio.unsqueeze(-1))
            + self.position.weight[:width]
        )
        x = self.encoder(self.input_dropout(x), mask=self.causal_mask[:width, :width], is_causal=True)
        return self.final_norm(x)

    def score(self, state: torch.Tensor, video: torch.Tensor, user: torch.Tensor) -> torch.Tensor:
        """Predicted scaled watch ratio of candidate ``video`` for ``user`` in ``state``, unclipped: the sigmoid of
        ``<state, c_v> + b_v + b``, or with ``fixed_start`` that sum plus the start (identity link; clipped only
        where scores are served, so a prediction outside [0, 1] still gets a gradient).

        Parameters
        ----------
        state : float tensor S + (d,).
        video, user : int64 tensors S.

        Returns
        -------
        float tensor S.
        """
        candidate = self.video_vectors(self.output_encoder, video)
        logit = (state * candidate).sum(-1) + self.video_bias(video).squeeze(-1) + self.global_bias
        if not self.config.fixed_start:
            return torch.sigmoid(logit)
        return logit + (self.start_user[user] * self.start_video[video]).sum(-1)

    def user_vectors(self, user: torch.Tensor) -> torch.Tensor:
        """The user's own embedding added to the state (zeros when the config has none).

        Parameters
        ----------
        user : int64 tensor (B,).

        Returns
        -------
        float tensor (B, d).
        """
        if self.user_embedding is None:
            return torch.zeros(user.shape[0], self.config.hidden_dim, device=user.device)
        return self.user_embedding(user)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Lightning hook: next-row MSE of one batch of windows plus the id L2 penalty; logs the MSE as
        ``train_loss``.

        Parameters
        ----------
        batch : :meth:`.sequential_training.WindowBatches.batch`'s tensors.
        batch_idx : the batch's index (unused).

        Returns
        -------
        scalar tensor: MSE + ``id_l2`` x penalty.
        """
        states = self.encode(batch["video"], batch["ratio"]) + self.user_vectors(batch["user"])[:, None, :]
        keep = batch["target_valid"]
        window_user = batch["user"][:, None].expand(keep.shape)
        predictions = self.score(states[keep], batch["target_video"][keep], window_user[keep])
        targets = batch["target"][keep]
        first = batch["first"]  # windows opening a user's history: the empty state predicts their first row
        if first.any():
            first_user = batch["user"][first]
            empty = self.empty_state[None, :] + self.user_vectors(first_user)
            predictions = torch.cat([predictions, self.score(empty, batch["video"][first, 0], first_user)])
            targets = torch.cat([targets, batch["ratio"][first, 0]])
        mse = torch.mean((predictions - targets) ** 2)
        # L2 on the id rows this batch touched (input and candidate video ids, their biases, the users), as in
        # the two-tower: rarely seen ids stay near zero instead of fitting their few rows.
        candidates = batch["target_video"][keep]
        penalty = (
            self.input_encoder.video(batch["video"]).pow(2).sum(-1).mean()
            + self.output_encoder.video(candidates).pow(2).sum(-1).mean()
            + self.video_bias(candidates).pow(2).mean()
        )
        if self.user_embedding is not None:
            penalty = penalty + self.user_embedding(batch["user"]).pow(2).sum(-1).mean()
        self.log("train_loss", mse, prog_bar=True, on_step=True, on_epoch=True, batch_size=targets.shape[0])
        return mse + self.config.id_l2 * penalty

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """Lightning hook: add the errors of each validation row, scored from the state of its history
        before it, to the sums.

        Parameters
        ----------
        batch : :func:`.sequential_training.query_batch`'s tensors.
        batch_idx : the batch's index (unused).
        """
        states = self.window_states(batch["video"], batch["ratio"], batch["length"])
        query_window = batch["query_window"]
        query_states = self.empty_state.expand(query_window.shape[0], -1).clone()
        has_window = query_window >= 0
        query_states[has_window] = states[query_window[has_window]]
        query_states = query_states + self.user_vectors(batch["query_user"])
        prediction = self.score(query_states, batch["query_video"], batch["query_user"]).clamp(0.0, 1.0)  # as served
        self.add_validation_errors(prediction - batch["query_target"])

    def window_states(self, video: torch.Tensor, ratio: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
        """The state at each window's last valid position, in batches of windows.

        Parameters
        ----------
        video : int64 tensor (m, L); ratio : float tensor (m, L); length : int64 tensor (m,) valid positions (>= 1).

        Returns
        -------
        float tensor (m, d).
        """
        out = []
        for first in range(0, video.shape[0], STATE_BATCH_WINDOWS):
            part = slice(first, first + STATE_BATCH_WINDOWS)
            states = self.encode(video[part], ratio[part])
            out.append(states[torch.arange(states.shape[0], device=states.device), length[part] - 1])
        return torch.cat(out) if out else torch.zeros(0, self.config.hidden_dim, device=self.device)


def network_from_weights(
    architecture: SequentialArchitecture, config: SequentialConfig, weights: dict[str, np.ndarray]
) -> SequentialNetwork:
    """Rebuild the network from its state dict held as arrays (for checks against the NumPy scoring).

    Parameters
    ----------
    architecture, config : what the network was built with.
    weights : name -> ndarray state dict.

    Returns
    -------
    SequentialNetwork on CPU.
    """
    network = SequentialNetwork(architecture, config)
    network.load_state_dict({name: torch.from_numpy(np.array(value)) for name, value in weights.items()})
    return network.eval()


def torch_window_states(
    network: SequentialNetwork, video: np.ndarray, ratio: np.ndarray, length: np.ndarray
) -> np.ndarray:
    """The torch forward's state at each window's last valid position (eval mode, CPU).

    Parameters
    ----------
    network : the network.
    video : int (m, L); ratio : float (m, L); length : int (m,).

    Returns
    -------
    float32 (m, d).
    """
    with torch.no_grad():
        return network.window_states(
            torch.from_numpy(np.asarray(video, np.int64)),
            torch.from_numpy(np.asarray(ratio, np.float32)),
            torch.from_numpy(np.asarray(length, np.int64)),
        ).numpy()
