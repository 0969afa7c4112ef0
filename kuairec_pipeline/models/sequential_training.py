"""The Lightning fit of the sequential network: batches of whole windows gathered from the resident history, the
validation batch of every tuning row's history before it, per-epoch progress lines, and ``train_network``. Split
from :mod:`kuairec_pipeline.models.sequential_network` (the network itself), as two_tower_training is from
two_tower_network.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from kuairec_pipeline.models import sequences
from kuairec_pipeline.models.data import TrainingData
from kuairec_pipeline.models.lightning_common import (
    build_trainer,
    fit_callbacks,
    fit_quietly,
    forked_rng,
    logit,
    torch_threads,
)
from kuairec_pipeline.models.sequential_config import SequentialArchitecture, SequentialConfig
from kuairec_pipeline.models.sequential_network import SequentialNetwork
from kuairec_pipeline.models.threads import resolve_thread_count


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
        self.key = (
            torch.from_numpy((history.key >> np.uint64(1)).astype(np.int64)).to(device)
            if config.shuffle_positions
            else None
        )
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
    plan = sequences.plan_queries(history, rows.user, rows.timestamp, config.max_len, config.effective_query_stride)
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


@dataclass(frozen=True)
class TrainResult:
    weights: dict[str, np.ndarray]  # the best epoch's state dict, as arrays
    best_epoch: int
    history: np.ndarray  # float64 (epochs, 4): epoch, train_loss, val_mse, val_mae
    input_vectors: np.ndarray  # float32 (n_videos, d)
    video_vectors: np.ndarray  # float32 (n_videos, d + 1): [c_v, b_v + b_global]
    start_user: np.ndarray | None  # float32 (n_users, k): the fixed start's user factors (None without one)
    start_video: np.ndarray | None  # float32 (n_videos, k)


def start_mse(start_user: np.ndarray, start_video: np.ndarray, rows) -> float:
    """Validation MSE of the fixed start alone, clipped as served (what the untrained network predicts: its
    candidate vectors start at zero).

    Parameters
    ----------
    start_user, start_video : the start's factors (:meth:`.LinearRecommender.augmented_factors`).
    rows : the validation interactions.

    Returns
    -------
    float, squared target units.
    """
    from kuairec_pipeline.models.biases import pair_dot

    prediction = np.clip(pair_dot(start_user, start_video, rows.user, rows.video), 0.0, 1.0)
    return float(np.mean((prediction - rows.target) ** 2))


def train_network(
    architecture: SequentialArchitecture,
    config: SequentialConfig,
    data: TrainingData,
    progress: Callable[[str], None] | None = None,
    history: sequences.History | None = None,
    start: tuple[np.ndarray, np.ndarray] | None = None,
) -> TrainResult:
    """Fit a fresh network with Lightning on ``data.train``, early stopping on ``data.val``.

    Parameters
    ----------
    architecture : the network's sizes.
    config : the model's config.
    data : the training data.
    progress : receives one line per epoch; None for silence.
    history : ``data.train`` already grouped by :func:`.sequences.build_history` (with keys when the config
        shuffles); None builds it here.
    start : the fixed start's (user (n_users, k), video (n_videos, k)) factors, e.g. a fitted linear model's
        :meth:`.LinearRecommender.augmented_factors`; needed with ``config.fixed_start``, ignored without.

    Returns
    -------
    TrainResult: the best epoch's weights, that epoch, the per-epoch history, the video vectors and the start.

    Raises
    ------
    ValueError
        With ``config.fixed_start`` and no ``start``.
    """
    has_val = len(data.val) > 0
    label = "sequential_shuffled" if config.shuffle_positions else "sequential"  # the log line names the model
    keep_best, epoch_lines, callbacks = fit_callbacks(config, label, has_val, log=progress)
    trainer = build_trainer(config, callbacks, has_val)
    device = trainer.strategy.root_device
    if history is None:
        history = sequences.build_history(data.train, data.n_users, config.seed, keys=config.shuffle_positions)
    with forked_rng(trainer), torch_threads(resolve_thread_count(config.num_threads)):
        torch.manual_seed(config.seed)
        start = start if config.fixed_start else None
        if config.fixed_start and start is None:
            raise ValueError("SequentialConfig.fixed_start needs the start's factors (a fitted linear model)")
        global_logit = 0.0 if start is not None else logit(float(data.train.target.mean()) if len(data.train) else 0.5)
        network = SequentialNetwork(architecture, config, global_logit)
        network.set_video_features(data.video_tags, data.video_categorical)
        if start is not None:
            network.set_start(*start)
            if has_val:  # the start is a candidate: a fit no epoch of which beats it keeps it
                mse = start_mse(*start, data.val)
                keep_best.start_from(network, mse)
                epoch_lines.start_from(mse)
        batches = WindowBatches(history, config, device)
        train_loader = torch.utils.data.DataLoader(batches, batch_size=None)
        val_loader = (
            torch.utils.data.DataLoader([query_batch(history, data.val, config, device)], batch_size=None)
            if has_val
            else None
        )
        fit_quietly(trainer, network, train_loader, val_loader)
    best_epoch = keep_best.restore_into(network, trainer)
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
        start_user=None if start is None else start[0],
        start_video=None if start is None else start[1],
    )
