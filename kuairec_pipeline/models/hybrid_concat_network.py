"""The torch and Lightning half of the embedding-concatenation hybrid (:mod:`.hybrid_concat`): the network, its fit,
and the export to the NumPy arrays that scoring needs. Imported only to train.

The network is a Wide & Deep model (Cheng et al. 2016, "Wide & Deep Learning for Recommender Systems", DLRS) over
the concatenated component embeddings and side features:

    wide(u, v, s) = <a_u * w_als, a_v> + <t_u * w_tt, t_v> + <s * w_seq, c_v> + b
    deep(u, v, s) = w2 . relu(W_u x_u + W_v x_v + W_s s + b1)
    prediction    = wide + deep          (identity link; clipped to [0, 1] where served and validated)

``a`` are the calibrated ALS vectors, ``t`` the two-tower vectors, ``s`` the sequential user state (strictly before
the row for a pointwise row) against the sequential video vector ``c_v``; ``x_u`` / ``x_v`` concatenate the
user-side and video-side embeddings with the side features (numeric columns, tag multi-hot, learned embeddings of
the categorical columns). The wide part reweights each component's own dot product per dimension (the element-wise
products of NeuMF's GMF branch, He et al. 2017); the deep part learns what the concatenation adds. Both start where
the fit is meaningful: ``w_als = w_tt = 1/2`` (the mean of the calibrated ALS and two-tower predictions, both in
target units), ``w_seq = 0``, ``w2 = 0``; the start is a candidate for the weights kept.

Because the deep part's first layer is linear in ``[x_u, x_v, s]``, it splits into a per-user, a per-video and a
per-state term: the export stores ``W_u x_u + b1`` per user and ``W_v x_v`` per video, so scoring a grid needs
only NumPy (``relu`` of a sum, one hidden unit at a time).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import lightning.pytorch as lightning
import numpy as np
import torch
from torch import nn

from kuairec_pipeline.models.lightning_common import (
    ValidationErrorSums,
    build_trainer,
    fit_callbacks,
    fit_quietly,
    forked_rng,
    torch_threads,
)
from kuairec_pipeline.models.threads import deterministic_algorithms, resolve_thread_count

EXPORT_BATCH = 65_536  # ids per forward pass when exporting the per-id tables


@dataclass(frozen=True)
class ConcatInputs:
    """Everything the network reads, as NumPy arrays indexed by id (built by :func:`.hybrid_concat.concat_inputs`)."""

    als_user: np.ndarray  # float32 (n_users, ka): calibrated ALS user vectors
    als_video: np.ndarray  # float32 (n_videos, ka)
    tt_user: np.ndarray  # float32 (n_users, kt): two-tower augmented user embeddings
    tt_video: np.ndarray  # float32 (n_videos, kt)
    seq_video: np.ndarray  # float32 (n_videos, ds): sequential video vectors [c_v, b_v + b_global]
    user_dense: np.ndarray  # float32 (n_users, du): scaled embeddings + user numeric features
    video_dense: np.ndarray  # float32 (n_videos, dv): scaled embeddings + numeric + tag multi-hot
    user_categorical: np.ndarray  # int64 (n_users, cu), 0 = unknown
    user_cardinality: list[int]
    video_categorical: np.ndarray  # int64 (n_videos, cv)
    video_cardinality: list[int]
    seq_scale: float  # the deep part reads s * seq_scale (unit RMS over the training rows' states)


@dataclass(frozen=True)
class ConcatRows:
    """Rows to fit or validate on: ids, the sequential state before each row, and the scaled target."""

    user: np.ndarray  # int64 (n,)
    video: np.ndarray  # int64 (n,)
    state: np.ndarray  # float32 (n, ds)
    target: np.ndarray  # float32 (n,)


class CategoricalBag(nn.Module):
    """One embedding table for every categorical column (column i's ids offset by the cardinalities before it)."""

    def __init__(self, cardinality: list[int], dim: int) -> None:
        super().__init__()
        offsets = np.concatenate([[0], np.cumsum(cardinality)[:-1]]).astype(np.int64) if cardinality else []
        self.register_buffer("offsets", torch.as_tensor(offsets, dtype=torch.long), persistent=False)
        self.width = dim * len(cardinality)
        self.table = nn.Embedding(max(1, int(sum(cardinality))), dim)
        nn.init.normal_(self.table.weight, std=0.05)

    def forward(self, categorical: torch.Tensor) -> torch.Tensor:
        """(B, columns) ids -> (B, columns * dim) concatenated embeddings."""
        if self.width == 0:
            return categorical.new_zeros((categorical.shape[0], 0), dtype=torch.float32)
        return self.table(categorical + self.offsets).flatten(start_dim=1)


class HybridConcatNetwork(ValidationErrorSums, lightning.LightningModule):
    """Wide & Deep over the concatenated component embeddings; MSE of the identity-link prediction."""

    def __init__(self, inputs: ConcatInputs, config) -> None:
        super().__init__()
        self.config = config
        tensors = {
            "als_user": inputs.als_user,
            "als_video": inputs.als_video,
            "tt_user": inputs.tt_user,
            "tt_video": inputs.tt_video,
            "seq_video": inputs.seq_video,
            "user_dense": inputs.user_dense,
            "video_dense": inputs.video_dense,
        }
        for name, value in tensors.items():
            self.register_buffer(name, torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)))
        self.register_buffer("user_categorical", torch.from_numpy(inputs.user_categorical.astype(np.int64)))
        self.register_buffer("video_categorical", torch.from_numpy(inputs.video_categorical.astype(np.int64)))
        self.seq_scale = float(inputs.seq_scale)
        h = config.hidden_dim
        self.user_bag = CategoricalBag(inputs.user_cardinality, config.category_dim)
        self.video_bag = CategoricalBag(inputs.video_cardinality, config.category_dim)
        self.user_in = nn.Linear(inputs.user_dense.shape[1] + self.user_bag.width, h)
        self.video_in = nn.Linear(inputs.video_dense.shape[1] + self.video_bag.width, h, bias=False)
        self.seq_in = nn.Linear(inputs.seq_video.shape[1], h, bias=False)
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(h, 1, bias=False)
        nn.init.zeros_(self.out.weight)  # the deep part starts silent: the start is the wide part alone
        self.wide_als = nn.Parameter(torch.full((inputs.als_user.shape[1],), 0.5))
        self.wide_tt = nn.Parameter(torch.full((inputs.tt_user.shape[1],), 0.5))
        self.wide_seq = nn.Parameter(torch.zeros(inputs.seq_video.shape[1]))
        self.global_bias = nn.Parameter(torch.zeros(()))

    def user_hidden(self, users: torch.Tensor) -> torch.Tensor:
        """``W_u x_u + b1`` (B, h)."""
        return self.user_in(torch.cat([self.user_dense[users], self.user_bag(self.user_categorical[users])], dim=1))

    def video_hidden(self, videos: torch.Tensor) -> torch.Tensor:
        """``W_v x_v`` (B, h)."""
        return self.video_in(
            torch.cat([self.video_dense[videos], self.video_bag(self.video_categorical[videos])], dim=1)
        )

    def forward(self, users: torch.Tensor, videos: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """Predicted scaled watch ratio (B,), unclipped (the loss needs the gradient outside [0, 1]).

        Parameters
        ----------
        users, videos : int64 (B,) ids.
        state : float (B, ds) sequential state of each row's user.
        """
        wide = (
            (self.als_user[users] * self.wide_als * self.als_video[videos]).sum(-1)
            + (self.tt_user[users] * self.wide_tt * self.tt_video[videos]).sum(-1)
            + (state * self.wide_seq * self.seq_video[videos]).sum(-1)
            + self.global_bias
        )
        hidden = self.user_hidden(users) + self.video_hidden(videos) + self.seq_in(state * self.seq_scale)
        return wide + self.out(self.dropout(torch.relu(hidden))).squeeze(-1)

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        """Lightning hook: MSE of one batch (logged as ``train_loss``).

        Parameters
        ----------
        batch : (users, videos, states, target).
        batch_idx : unused.

        Returns
        -------
        scalar tensor.
        """
        users, videos, state, target = batch
        mse = torch.mean((self(users, videos, state) - target) ** 2)
        self.log("train_loss", mse, prog_bar=True, on_step=True, on_epoch=True, batch_size=target.shape[0])
        return mse

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        """Lightning hook: add the errors of the served (clipped) prediction to the validation sums.

        Parameters
        ----------
        batch : (users, videos, states, target).
        batch_idx : unused.
        """
        users, videos, state, target = batch
        self.add_validation_errors(self(users, videos, state).clamp(0.0, 1.0) - target)


class RowBatches(torch.utils.data.IterableDataset):
    """Whole batches gathered from resident tensors by slices of a (seeded, per-epoch) permutation."""

    def __init__(self, rows: ConcatRows, batch_size: int, shuffle: bool, seed: int, device: torch.device) -> None:
        super().__init__()
        self.tensors = tuple(
            torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in (rows.user, rows.video, rows.state)
        ) + (torch.from_numpy(rows.target.astype(np.float32)).to(device),)
        self.batch_size, self.shuffle, self.seed, self.epoch = batch_size, shuffle, seed, 0

    def __len__(self) -> int:
        return -(-self.tensors[3].shape[0] // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        n = self.tensors[3].shape[0]
        if self.shuffle:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch))
            self.epoch += 1
        else:
            order = torch.arange(n)
        order = order.to(self.tensors[0].device)
        for first in range(0, n, self.batch_size):
            index = order[first : first + self.batch_size]
            yield tuple(t[index] for t in self.tensors)


@torch.no_grad()
def _validation_mse(network: HybridConcatNetwork, rows: ConcatRows) -> float:
    was_training = network.training
    network.eval()
    prediction = network(*(torch.from_numpy(np.ascontiguousarray(a)) for a in (rows.user, rows.video, rows.state)))
    network.train(was_training)
    error = prediction.clamp(0.0, 1.0).double() - torch.from_numpy(rows.target).double()
    return float(error.pow(2).mean()) if error.numel() else 0.0


@dataclass(frozen=True)
class ConcatFit:
    arrays: dict[str, np.ndarray]  # the NumPy scoring arrays (see :func:`export`)
    best_epoch: int  # 0-based; -1 = the fixed start (no epoch beat it on validation)
    history: np.ndarray  # float64 (epochs, 4): epoch, train_loss, val_mse, val_mae


@torch.no_grad()
def export(network: HybridConcatNetwork) -> dict[str, np.ndarray]:
    """The fitted network as the arrays :class:`.hybrid_concat.HybridConcatRecommender` scores with (NumPy only).

    Returns
    -------
    dict: ``user_wide`` (n_users, ka + kt) = ``[a_u * w_als, t_u * w_tt]``, ``video_wide`` (n_videos, ka + kt),
    ``seq_wide`` (ds,) = ``w_seq``, ``user_hidden`` (n_users, h) = ``W_u x_u + b1``, ``video_hidden`` (n_videos, h),
    ``state_hidden`` (ds, h) = ``seq_scale * W_s^T``, ``output`` (h,) = ``w2``, ``global_bias`` ().
    """
    network = network.cpu().eval()

    def per_id(method: Callable[[torch.Tensor], torch.Tensor], n: int) -> np.ndarray:
        return np.concatenate(
            [method(torch.arange(i, min(i + EXPORT_BATCH, n))).numpy() for i in range(0, n, EXPORT_BATCH)]
        )

    n_users, n_videos = network.als_user.shape[0], network.als_video.shape[0]
    return {
        "user_wide": torch.cat([network.als_user * network.wide_als, network.tt_user * network.wide_tt], 1).numpy(),
        "video_wide": torch.cat([network.als_video, network.tt_video], 1).numpy(),
        "seq_wide": network.wide_seq.detach().numpy().copy(),
        "user_hidden": per_id(network.user_hidden, n_users),
        "video_hidden": per_id(network.video_hidden, n_videos),
        "state_hidden": (network.seq_in.weight.detach().T * network.seq_scale).numpy().copy(),
        "output": network.out.weight.detach()[0].numpy().copy(),
        "global_bias": np.array(float(network.global_bias), dtype=np.float32),
    }


def train_network(
    inputs: ConcatInputs,
    train: ConcatRows,
    val: ConcatRows,
    config,
    progress: Callable[[str], None] | None = None,
) -> ConcatFit:
    """Fit the network with Lightning on ``train`` with early stopping on ``val`` (the tuning slice), keeping the
    best epoch's weights (the fixed start included), and export it.

    Parameters
    ----------
    inputs : the per-id tables.
    train, val : the rows (val may be empty: then every epoch runs and the last is kept).
    config : :class:`.hybrid_concat.HybridConcatConfig`.
    progress : receives one line per epoch (default: the ``kuairec_pipeline.training`` logger).

    Returns
    -------
    ConcatFit.
    """
    has_val = val.target.size > 0
    keep_best, epoch_progress, callbacks = fit_callbacks(config, "hybrid_concat", has_val, log=progress)
    trainer = build_trainer(config, callbacks, has_val, max(1, min(50, -(-train.target.size // config.batch_size))))
    device = trainer.strategy.root_device
    with forked_rng(trainer), torch_threads(resolve_thread_count(config.num_threads)), deterministic_algorithms():
        torch.manual_seed(config.seed)
        network = HybridConcatNetwork(inputs, config)
        if has_val:
            start_mse = _validation_mse(network, val)
            keep_best.start_from(network, start_mse)
            epoch_progress.start_from(start_mse)
        loader = torch.utils.data.DataLoader(
            RowBatches(train, config.batch_size, True, config.seed, device), batch_size=None
        )
        val_loader = (
            torch.utils.data.DataLoader(RowBatches(val, 8 * config.batch_size, False, 0, device), batch_size=None)
            if has_val
            else None
        )
        fit_quietly(trainer, network, loader, val_loader)
    best_epoch = keep_best.restore_into(network, trainer)
    history = np.array(keep_best.history, dtype=np.float64).reshape(-1, 4)
    return ConcatFit(export(network), int(best_epoch), history)
