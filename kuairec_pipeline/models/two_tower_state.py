"""The bridge between a fitted two-tower network and NumPy: rebuild it from stored arrays, export its state and
augmented embeddings, run its own forward pass as a check, and save / load its weights with torch.

Split from :mod:`kuairec_pipeline.models.two_tower_network` (the network); imported only by
:class:`kuairec_pipeline.models.two_tower.TwoTowerRecommender` when weights are touched.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from kuairec_pipeline.atomic import atomic_path
from kuairec_pipeline.models.lightning_common import torch_threads
from kuairec_pipeline.models.two_tower_config import Architecture, TwoTowerConfig
from kuairec_pipeline.models.two_tower_network import TwoTowerNetwork


def network_from_state(
    architecture: Architecture, config: TwoTowerConfig, state: dict[str, np.ndarray]
) -> TwoTowerNetwork:
    """Rebuild a network from a state dict held as NumPy arrays (as stored in the model's bundle).

    Parameters
    ----------
    architecture : the sizes the network was built with.
    config : the model's config.
    state : parameter/buffer name -> array, as :func:`state_arrays` gives.

    Returns
    -------
    TwoTowerNetwork on CPU.

    Raises
    ------
    RuntimeError
        If the state does not match the architecture (torch's ``load_state_dict``).
    """
    network = TwoTowerNetwork(architecture, config)
    network.load_state_dict({name: torch.from_numpy(np.array(value)) for name, value in state.items()})
    return network.eval()


def state_arrays(network: TwoTowerNetwork) -> dict[str, np.ndarray]:
    """The network's state dict as NumPy arrays (CPU copies).

    Parameters
    ----------
    network : a two-tower network.

    Returns
    -------
    dict of name -> ndarray.
    """
    return {name: value.detach().cpu().numpy() for name, value in network.state_dict().items()}


def embeddings(network: TwoTowerNetwork, threads: int) -> tuple[np.ndarray, np.ndarray]:
    """:meth:`TwoTowerNetwork.augmented_embeddings` computed with ``threads`` torch threads.

    Parameters
    ----------
    network : a two-tower network.
    threads : intra-op threads (>= 1).

    Returns
    -------
    (float32 (n_users, d + 2 + k), float32 (n_videos, d + 2 + k)): see the method.
    """
    with torch_threads(threads):
        return network.augmented_embeddings()


def forward_probabilities(network: TwoTowerNetwork, user_ids: np.ndarray, video_ids: np.ndarray) -> np.ndarray:
    """The network's own forward pass on (user, video) pairs (eval mode, CPU).

    Parameters
    ----------
    network : a two-tower network (moved to CPU).
    user_ids, video_ids : int (n,) paired ids.

    Returns
    -------
    float32 (n,): the served prediction (link applied, clipped to [0, 1]).
    """
    network = network.cpu().eval()
    with torch.no_grad():
        logits = network(
            torch.from_numpy(np.asarray(user_ids, dtype=np.int64)),
            torch.from_numpy(np.asarray(video_ids, dtype=np.int64)),
        )
    return (
        network.predictions(logits).clamp(0.0, 1.0).numpy()
        if network.config.link == "identity"
        else torch.sigmoid(logits).numpy()
    )


def save_state(network: TwoTowerNetwork, path: str | Path) -> Path:
    """``torch.save`` of the state dict (tensors only, so ``weights_only`` loading works), atomically.

    Parameters
    ----------
    network : a two-tower network.
    path : the target file.

    Returns
    -------
    The path written.
    """
    target = Path(path)
    with atomic_path(target) as tmp:
        torch.save(network.state_dict(), tmp)
    return target


def load_state(network: TwoTowerNetwork, path: str | Path) -> None:
    """Load a state dict written by :func:`save_state`; ``weights_only=True`` refuses pickled objects.

    Parameters
    ----------
    network : the network to load into (same architecture).
    path : a file written by :func:`save_state`.

    Raises
    ------
    RuntimeError
        If the state does not match the network.
    """
    network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
