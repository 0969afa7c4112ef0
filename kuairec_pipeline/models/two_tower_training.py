"""Training of the two-tower network: batch feeding, the fixed start (exact biases and ridge taste), early stopping
that keeps the best epoch, and the Lightning fit. Split from :mod:`kuairec_pipeline.models.two_tower_network` (the
modules and weight files), which scoring-side code may load without this.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from kuairec_pipeline.models.data import Interactions, TrainingData
from kuairec_pipeline.models.lightning_common import (
    build_trainer,
    fit_callbacks,
    fit_quietly,
    forked_rng,
    logit,
    torch_threads,
)
from kuairec_pipeline.models.threads import deterministic_algorithms, resolve_thread_count
from kuairec_pipeline.models.two_tower_config import HISTORY_COLUMNS, Architecture, TwoTowerConfig
from kuairec_pipeline.models.two_tower_network import TwoTowerNetwork


class IndexBatches(torch.utils.data.IterableDataset):
    """Whole batches of rows gathered from resident tensors by slices of an index permutation.

    The permutation is drawn per epoch from a generator seeded with (seed, epoch), so the order is reproducible
    and independent of any global random state. Used with ``DataLoader(batch_size=None)``.
    """

    def __init__(self, rows: Interactions, batch_size: int, device: torch.device, shuffle: bool, seed: int = 0) -> None:
        super().__init__()
        self.users = torch.from_numpy(rows.user.astype(np.int64)).to(device)
        self.videos = torch.from_numpy(rows.video.astype(np.int64)).to(device)
        self.target = torch.from_numpy(rows.target.astype(np.float32)).to(device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return math.ceil(self.target.shape[0] / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        n_rows = self.target.shape[0]
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            self.epoch += 1
            order = torch.randperm(n_rows, generator=generator).to(self.users.device)
            for first in range(0, n_rows, self.batch_size):
                index = order[first : first + self.batch_size]
                yield self.users[index], self.videos[index], self.target[index]
        else:
            for first in range(0, n_rows, self.batch_size):
                last = first + self.batch_size
                yield self.users[first:last], self.videos[first:last], self.target[first:last]


def index_batch_loader(
    rows: Interactions, batch_size: int, device: torch.device, shuffle: bool, seed: int = 0
) -> torch.utils.data.DataLoader:
    """A DataLoader of whole batches of row indices (``batch_size=None``: the dataset yields batches).

    Parameters
    ----------
    rows : the interactions to iterate.
    batch_size : rows per batch.
    device : where the batch tensors live.
    shuffle : shuffle the rows every epoch (seeded).
    seed : the shuffle seed.

    Returns
    -------
    torch.utils.data.DataLoader over :class:`IndexBatches`.
    """
    return torch.utils.data.DataLoader(IndexBatches(rows, batch_size, device, shuffle, seed), batch_size=None)


def exact_biases(data: TrainingData, bias_l2: float) -> tuple[float, np.ndarray, np.ndarray]:
    """The exact ridge solve of the user_video_bias baseline
    (:func:`kuairec_pipeline.models.biases.fit_biases`), used to start the networks' biases.

    Parameters
    ----------
    data : the training data.
    bias_l2 : ridge penalty on each bias, in training rows (>= 0).

    Returns
    -------
    (global bias float, float64 (n_users,) user biases, float64 (n_videos,) video biases), in target units.
    """
    from kuairec_pipeline.models.biases import aggregate_pairs, fit_biases

    return fit_biases(aggregate_pairs(data.train, data.n_users, data.n_videos), data.n_videos, bias_l2)


def set_fixed_offsets(network: TwoTowerNetwork, config: TwoTowerConfig, data: TrainingData) -> None:
    """Fixed starting point: the exact ridge biases and, with ``taste_l2``, each user's ridge taste on the video's
    explicit features (:func:`kuairec_pipeline.models.taste.per_user_ridge` on the bias residual, with a constant
    that goes into the user's bias): the linear model's taste stage, which the towers then refine."""
    from kuairec_pipeline.models.biases import aggregate_pairs
    from kuairec_pipeline.models.taste import per_user_ridge

    global_bias, user_bias, video_bias = exact_biases(data, config.bias_l2)
    width = network.user_tower.coefficient_width
    if config.taste_l2 is not None and width:
        pairs = aggregate_pairs(data.train, data.n_users, data.n_videos)
        video = network.video_tower
        explicit = torch.cat([video.tag_weights, video.numeric], dim=1).cpu().numpy().astype(np.float64)
        design = np.hstack([np.ones((explicit.shape[0], 1)), explicit])
        residual = pairs.mean_target - global_bias - user_bias[pairs.user] - video_bias[pairs.video]
        taste = per_user_ridge(
            pairs.matrix(pairs.count, data.n_videos),
            pairs.matrix(pairs.count * residual, data.n_videos),
            design,
            config.taste_l2,
        )
        user_bias = user_bias + taste[:, 0]
        network.user_tower.coefficient_offset.copy_(torch.from_numpy(taste[:, 1:].astype(np.float32)))
    network.user_tower.bias_offset.copy_(torch.from_numpy(user_bias.astype(np.float32)))
    network.video_tower.bias_offset.copy_(torch.from_numpy(video_bias.astype(np.float32)))


@torch.no_grad()
def validation_mse(network: TwoTowerNetwork, rows: Interactions, batch_size: int = 65_536) -> float:
    """MSE of the served (clipped) prediction on ``rows``, as the validation loop computes it.

    Parameters
    ----------
    network : a two-tower network.
    rows : the interactions to score.
    batch_size : rows per forward pass.

    Returns
    -------
    float, in squared target units; 0.0 for no rows.
    """
    was_training = network.training
    network.eval()
    squared = 0.0
    for first in range(0, len(rows), batch_size):
        users = torch.from_numpy(rows.user[first : first + batch_size].astype(np.int64))
        videos = torch.from_numpy(rows.video[first : first + batch_size].astype(np.int64))
        prediction = network.predictions(network(users, videos))
        if network.config.link == "identity":
            prediction = prediction.clamp(0.0, 1.0)
        target = torch.from_numpy(rows.target[first : first + batch_size].astype(np.float32))
        squared += float(((prediction - target).double() ** 2).sum())
    network.train(was_training)
    return squared / max(len(rows), 1)


def initial_global_bias(config: TwoTowerConfig, data: TrainingData) -> float:
    """The global bias the network starts from: 0 under a linear start (it holds the global), the ridge global with
    fixed biases, else the mean target (through the inverse link)."""
    if config.linear_start:
        return 0.0
    if config.fixed_biases:
        return exact_biases(data, config.bias_l2)[0]
    mean = float(data.train.target.mean())
    return logit(mean) if config.link == "sigmoid" else mean


def build_network(
    architecture: Architecture,
    config: TwoTowerConfig,
    data: TrainingData,
    start: tuple[np.ndarray, np.ndarray] | None = None,
) -> TwoTowerNetwork:
    """A fresh network at its starting point, as the single-device and the data-parallel fits begin: features
    loaded, and the linear start (``linear_start``) or the fixed biases and taste (``fixed_biases``) held fixed.

    Parameters
    ----------
    architecture : the network's sizes (``start_width`` = the start's width under ``linear_start``).
    config : the model's config.
    data : the training data (features; the fixed biases' rows).
    start : the linear model's (user (n_users, k), video (n_videos, k)) factors
        (:meth:`.LinearRecommender.augmented_factors`); needed with ``linear_start``, ignored without.

    Returns
    -------
    TwoTowerNetwork on CPU, in training mode.

    Raises
    ------
    ValueError
        With ``linear_start`` and no ``start``, or a start whose width differs from ``architecture.start_width``.
    """
    network = TwoTowerNetwork(architecture, config, initial_global_bias(config, data))
    network.user_tower.set_features(data.user_categorical, data.user_numeric, None)
    network.video_tower.set_features(data.video_categorical, data.video_numeric, data.video_tags)
    if config.linear_start:
        if start is None or start[0].shape[1] != architecture.start_width:
            raise ValueError(
                f"TwoTowerConfig.linear_start needs the linear model's factors, {architecture.start_width} columns wide"
            )
        network.set_start(*start)
    elif config.fixed_biases:
        set_fixed_offsets(network, config, data)
    return network


def train_network(
    architecture: Architecture,
    config: TwoTowerConfig,
    data: TrainingData,
    start: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[TwoTowerNetwork, int, np.ndarray]:
    """Fit a fresh network with Lightning (early stopping on ``data.val`` when it has rows).

    Parameters
    ----------
    architecture : the network's sizes.
    config : the model's config (optimizer, epochs, patience, ...).
    data : the training data.
    start : the linear start's factors (see :func:`build_network`).

    Returns
    -------
    (the best epoch's network on CPU, best epoch (0-based), float64 (epochs, 4) history: epoch, train_loss, val_mse,
    val_mae).
    """
    has_val = len(data.val) > 0
    keep_best, progress, callbacks = fit_callbacks(config, "two_tower", has_val)
    logger: Any = False
    if config.log_dir is not None:
        from lightning.pytorch.loggers import CSVLogger

        logger = CSVLogger(config.log_dir, name="two_tower")
    batches_per_epoch = math.ceil(len(data.train) / config.batch_size)
    trainer = build_trainer(config, callbacks, has_val, max(1, min(50, batches_per_epoch)), logger)
    device = trainer.strategy.root_device
    with (
        forked_rng(trainer),
        torch_threads(resolve_thread_count(config.num_threads)),
        deterministic_algorithms(),
    ):
        torch.manual_seed(config.seed)
        network = build_network(architecture, config, data, start)
        if has_val and (config.fixed_biases or config.linear_start):  # a meaningful start (a random one is not)
            start_mse = validation_mse(network, data.val)
            keep_best.start_from(network, start_mse)
            progress.start_from(start_mse)  # the log names the weights actually kept
        train_loader = index_batch_loader(data.train, config.batch_size, device, shuffle=True, seed=config.seed)
        val_loader = index_batch_loader(data.val, 4 * config.batch_size, device, shuffle=False) if has_val else None
        fit_quietly(trainer, network, train_loader, val_loader)
    best_epoch = keep_best.restore_into(network, trainer)
    history = np.array(keep_best.history, dtype=np.float64).reshape(-1, len(HISTORY_COLUMNS))
    return network.cpu().eval(), best_epoch, history
