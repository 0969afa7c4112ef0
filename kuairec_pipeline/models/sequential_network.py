"""The torch and Lightning half of the sequential model: network, window batches, training loop.

Imported only to train (:meth:`SequentialRecommender.fit`); scoring a stored model needs NumPy alone. Batches never
pass through per-row Python: the ordered history lives as tensors on the training device, and each step turns a
slice of a shuffled window permutation into an index matrix ``start[:, None] + arange(max_len)``.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import lightning.pytorch as lightning
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping
from torch import nn

from kuairec_pipeline.models import sequences
from kuairec_pipeline.models.data import TrainingData
from kuairec_pipeline.models.sequential import SequentialArchitecture, SequentialConfig
from kuairec_pipeline.models.threads import resolve_thread_count
from kuairec_pipeline.models.two_tower_network import torch_threads
from kuairec_pipeline.models.two_tower_training import KeepBestWeights, _logit

LOGGER = logging.getLogger(__name__)
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


class SequentialNetwork(lightning.LightningModule):
    """Causal pre-norm transformer over history windows; MSE of sigmoid(<state, c_v> + b_v + b) on the next row."""

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
        self._val_sums = torch.zeros(3)

    def set_video_features(self, tags: np.ndarray, categorical: np.ndarray) -> None:
        """Copy the per-video tags and categorical ids into the network's buffers.

        Parameters
        ----------
        tags : int (n_videos, tag_slots), 0 = empty slot.
        categorical : int (n_videos, n_categorical).
        """
        self.video_tags.copy_(torch.from_numpy(tags.astype(np.int64)))
        self.video_categorical.copy_(torch.from_numpy(categorical.astype(np.int64)))

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

    def score(self, state: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
        """Logits of candidate ``video`` (any shape) for ``state`` (same shape + d).

        Parameters
        ----------
        state : float tensor S + (d,).
        video : int64 tensor S.

        Returns
        -------
        float tensor S: the logit (sigmoid gives the scaled watch ratio).
        """
        candidate = self.video_vectors(self.output_encoder, video)
        return (state * candidate).sum(-1) + self.video_bias(video).squeeze(-1) + self.global_bias

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
        batch : :meth:`WindowBatches.batch`'s tensors.
        batch_idx : the batch's index (unused).

        Returns
        -------
        scalar tensor: MSE + ``id_l2`` x penalty.
        """
        states = self.encode(batch["video"], batch["ratio"]) + self.user_vectors(batch["user"])[:, None, :]
        keep = batch["target_valid"]
        logits = self.score(states[keep], batch["target_video"][keep])
        targets = batch["target"][keep]
        first = batch["first"]  # windows opening a user's history: the empty state predicts their first row
        if first.any():
            empty = self.empty_state[None, :] + self.user_vectors(batch["user"][first])
            logits = torch.cat([logits, self.score(empty, batch["video"][first, 0])])
            targets = torch.cat([targets, batch["ratio"][first, 0]])
        mse = torch.mean((torch.sigmoid(logits) - targets) ** 2)
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

    def on_validation_epoch_start(self) -> None:
        """Lightning hook: zero the float64 sums (squared error, absolute error, rows) of this validation pass.

        Returns
        -------
        None.
        """
        self._val_sums = torch.zeros(3, dtype=torch.float64, device=self.device)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """Lightning hook: add the errors of each validation row, scored from the state of its history
        before it, to the sums.

        Parameters
        ----------
        batch : :func:`query_batch`'s tensors.
        batch_idx : the batch's index (unused).
        """
        states = self.window_states(batch["video"], batch["ratio"], batch["length"])
        query_window = batch["query_window"]
        query_states = self.empty_state.expand(query_window.shape[0], -1).clone()
        has_window = query_window >= 0
        query_states[has_window] = states[query_window[has_window]]
        query_states = query_states + self.user_vectors(batch["query_user"])
        error = (torch.sigmoid(self.score(query_states, batch["query_video"])) - batch["query_target"]).double()
        self._val_sums += torch.stack(
            [error.pow(2).sum(), error.abs().sum(), torch.tensor(float(error.shape[0]), device=self.device)]
        )

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

    def on_validation_epoch_end(self) -> None:
        """Lightning hook: log ``val_mse`` and ``val_mae`` (squared target units and target units) when the pass had
        rows.

        Returns
        -------
        None.
        """
        squared, absolute, rows = self._val_sums.tolist()
        if rows > 0:
            self.log("val_mse", squared / rows, prog_bar=True)
            self.log("val_mae", absolute / rows, prog_bar=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # fused: one kernel over all parameters (the dense embedding-table updates dominate the step otherwise).
        """AdamW (Loshchilov & Hutter, "Decoupled weight decay regularization", ICLR 2019) over every parameter.

        Returns
        -------
        torch.optim.AdamW with the config's ``learning_rate`` and ``weight_decay``.
        """
        return torch.optim.AdamW(
            self.parameters(), lr=self.config.learning_rate, weight_decay=self.config.weight_decay, fused=True
        )


class WindowBatches(torch.utils.data.IterableDataset):
    """Training batches of whole windows gathered from the resident history by index matrices.

    Each epoch draws a permutation of the windows from a generator seeded with (seed, epoch) and keeps the first
    ``positions_per_epoch / mean window length`` of them (all when 0). Used with ``DataLoader(batch_size=None)``.
    """

    def __init__(self, history: sequences.History, config: SequentialConfig, device: torch.device) -> None:
        super().__init__()
        start, length = sequences.training_windows(history, config.max_len)
        user = np.repeat(np.arange(history.n_users), history.lengths())[start] if start.size else start
        self.start = torch.from_numpy(start).to(device)
        self.length = torch.from_numpy(length).to(device)
        self.user = torch.from_numpy(user.astype(np.int64)).to(device)
        self.user_end = torch.from_numpy(history.starts[user + 1] if start.size else start).to(device)
        self.first = torch.from_numpy(start == history.starts[user] if start.size else start.astype(bool)).to(device)
        self.video = torch.from_numpy(history.video).to(device)
        self.target = torch.from_numpy(history.target).to(device)
        # Order-preserving int64 view of the uint64 keys (halved): torch sorts int64.
        self.key = torch.from_numpy((history.key >> np.uint64(1)).astype(np.int64)).to(device)
        self.config = config
        mean_length = float(length.mean()) if length.size else 1.0
        budget = config.positions_per_epoch
        self.windows_per_epoch = start.size if budget == 0 else min(start.size, max(1, round(budget / mean_length)))
        self.epoch = 0

    def __len__(self) -> int:
        return math.ceil(self.windows_per_epoch / self.config.batch_windows)

    def batch(self, windows: torch.Tensor) -> dict[str, torch.Tensor]:
        """The tensors of one batch of windows.

        Parameters
        ----------
        windows : int64 tensor (B,) of indices into this dataset's windows.

        Returns
        -------
        dict of name -> tensor: ``video`` and ``ratio`` (B, L) inputs, ``user`` (B,), the next-row ``target_video``,
        ``target`` and ``target_valid`` (B, L), and ``first`` (B,).
        """
        start, length = self.start[windows], self.length[windows]
        offsets = torch.arange(int(length.max()), device=start.device)
        valid = offsets[None, :] < length[:, None]
        index = torch.where(valid, start[:, None] + offsets[None, :], start[:, None])
        if self.config.shuffle_positions:
            keys = torch.where(valid, self.key[index], torch.iinfo(torch.int64).max)
            index = torch.gather(index, 1, torch.argsort(keys, dim=1, stable=True))
        end = start + length
        # Position j predicts the row after it: the next one in the window, or, at the last, the row after the
        # window (the next chunk's first) when the user has one.
        after = torch.cat([index[:, 1:], end[:, None]], dim=1)
        is_last = offsets[None, :] == (length - 1)[:, None]
        target_index = torch.where(is_last, end[:, None], after)
        target_valid = valid & (~is_last | (end < self.user_end[windows])[:, None])
        target_index = torch.where(target_valid, target_index, start[:, None])
        return {
            "video": self.video[index],
            "ratio": self.target[index],
            "user": self.user[windows],
            "target_video": self.video[target_index],
            "target": self.target[target_index],
            "target_valid": target_valid,
            "first": self.first[windows],
        }

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        generator = torch.Generator().manual_seed(self.config.seed * 1_000_003 + self.epoch)
        self.epoch += 1
        order = torch.randperm(self.start.shape[0], generator=generator)[: self.windows_per_epoch]
        order = order.to(self.start.device)
        for first in range(0, order.shape[0], self.config.batch_windows):
            yield self.batch(order[first : first + self.config.batch_windows])


def query_batch(
    history: sequences.History, rows, config: SequentialConfig, device: torch.device
) -> dict[str, torch.Tensor]:
    """Validation as one batch: the windows of every val row's history before it, and the rows themselves.

    Parameters
    ----------
    history : the training rows per user, time-ordered.
    rows : the validation interactions.
    config : the model's config (``max_len``).
    device : where the tensors live.

    Returns
    -------
    dict of name -> tensor.
    """
    plan = sequences.plan_queries(history, rows.user, rows.timestamp, config.max_len)
    index, _ = sequences.window_matrix(
        history, plan.window_end, plan.window_length, config.max_len, config.shuffle_positions
    )
    tensors = {
        "video": history.video[index],
        "ratio": history.target[index],
        "length": plan.window_length,
        "query_window": plan.query_window,
        "query_user": rows.user.astype(np.int64),
        "query_video": rows.video.astype(np.int64),
        "query_target": rows.target.astype(np.float32),
    }
    return {name: torch.from_numpy(np.ascontiguousarray(value)).to(device) for name, value in tensors.items()}


class EpochProgress(Callback):
    """One line per epoch (train loss, validation MSE and MAE) to ``progress`` (default: this module's logger)."""

    def __init__(self, progress: Callable[[str], None] | None) -> None:
        self.progress = progress or LOGGER.info

    def on_train_epoch_end(self, trainer: lightning.Trainer, pl_module: lightning.LightningModule) -> None:
        """Lightning hook: send one line with the epoch's train loss and validation metrics to ``progress``.

        Parameters
        ----------
        trainer : the running Lightning trainer.
        pl_module : the module being trained.
        """
        metrics = trainer.callback_metrics
        parts = [
            f"{name} {float(metrics[name]):.5f}"
            for name in ("train_loss_epoch", "val_mse", "val_mae")
            if name in metrics
        ]
        self.progress(f"sequential epoch {trainer.current_epoch + 1}/{trainer.max_epochs}: {', '.join(parts)}")


@dataclass(frozen=True)
class TrainResult:
    weights: dict[str, np.ndarray]  # the best epoch's state dict, as arrays
    best_epoch: int
    history: np.ndarray  # float64 (epochs, 4): epoch, train_loss, val_mse, val_mae
    input_vectors: np.ndarray  # float32 (n_videos, d)
    video_vectors: np.ndarray  # float32 (n_videos, d + 1): [c_v, b_v + b_global]


def train_network(
    architecture: SequentialArchitecture,
    config: SequentialConfig,
    data: TrainingData,
    progress: Callable[[str], None] | None = None,
) -> TrainResult:
    """Fit a fresh network with Lightning on ``data.train``, early stopping on ``data.val``.

    Parameters
    ----------
    architecture : the network's sizes.
    config : the model's config.
    data : the training data.
    progress : receives one line per epoch; None for silence.

    Returns
    -------
    TrainResult: the best epoch's weights, that epoch, the per-epoch history and the video vectors.
    """
    has_val = len(data.val) > 0
    keep_best = KeepBestWeights()
    callbacks: list[Callback] = [keep_best, EpochProgress(progress)]
    if has_val:
        callbacks.append(
            EarlyStopping(
                monitor="val_mse",
                mode="min",
                patience=config.early_stopping_patience,
                min_delta=config.early_stopping_min_delta,
            )
        )
    trainer = lightning.Trainer(
        accelerator=config.accelerator,
        devices=1,
        precision=config.precision,
        max_epochs=config.max_epochs,
        callbacks=callbacks,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=config.show_progress,
        enable_model_summary=config.show_progress,
        num_sanity_val_steps=0,
        limit_val_batches=None if has_val else 0,
        log_every_n_steps=50,
    )
    device = trainer.strategy.root_device
    fork_devices = [device.index or 0] if device.type == "cuda" else []
    history = sequences.build_history(data.train, data.n_users, config.seed)
    with torch.random.fork_rng(devices=fork_devices), torch_threads(resolve_thread_count(config.num_threads)):
        torch.manual_seed(config.seed)
        network = SequentialNetwork(
            architecture, config, _logit(float(data.train.target.mean()) if len(data.train) else 0.5)
        )
        network.set_video_features(data.video_tags, data.video_categorical)
        batches = WindowBatches(history, config, device)
        train_loader = torch.utils.data.DataLoader(batches, batch_size=None)
        val_loader = (
            torch.utils.data.DataLoader([query_batch(history, data.val, config, device)], batch_size=None)
            if has_val
            else None
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=".*`IterableDataset` has `__len__` defined.*")
            warnings.filterwarnings("ignore", message=".*no `val_dataloader`. Skipping val loop.*")
            warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*")
            warnings.filterwarnings("ignore", message=".*enable_nested_tensor.*")
            trainer.fit(network, train_dataloaders=train_loader, val_dataloaders=val_loader)
    if keep_best.best_state is not None:
        network.load_state_dict(keep_best.best_state)
    best_epoch = keep_best.best_epoch if keep_best.best_state is not None else trainer.current_epoch - 1
    network = network.cpu().eval()
    with torch.no_grad():
        videos = torch.arange(architecture.n_videos)
        input_vectors = network.video_vectors(network.input_encoder, videos).numpy()
        output_vectors = network.video_vectors(network.output_encoder, videos).numpy()
        bias = (network.video_bias.weight[:, 0] + network.global_bias).numpy()
    weights = {name: value.detach().cpu().numpy().copy() for name, value in network.state_dict().items()}
    return TrainResult(
        weights=weights,
        best_epoch=int(best_epoch),
        history=np.array(keep_best.history, dtype=np.float64).reshape(-1, 4),
        input_vectors=input_vectors.astype(np.float32),
        video_vectors=np.hstack([output_vectors, bias[:, None]]).astype(np.float32),
    )


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
