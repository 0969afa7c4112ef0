"""Beyond-accuracy metrics of top-k lists: how much of the catalogue they use and how unusual their videos are.

All take the lists as an int array of video ids, one row per user, best first (``top[:, :k]``), as
:func:`kuairec_pipeline.evaluation.metrics.evaluate` ranks them over the test videos, so they describe the very
ranking the ndcg scores.
"""

from __future__ import annotations

import numpy as np

from kuairec_pipeline.models.data import Interactions


def exposure_counts(top: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """int64 (len(candidates),): in how many lists each candidate video appears.

    Parameters
    ----------
    top : int (n_users, k), video ids of each user's list
    candidates : int (n_candidates,), sorted distinct video ids that could have been listed
    """
    position = np.searchsorted(candidates, top.ravel())
    if top.size and (position.max() >= candidates.size or not np.array_equal(candidates[position], top.ravel())):
        raise ValueError("a listed video is not among the candidates")
    return np.bincount(position, minlength=candidates.size).astype(np.int64)


def catalogue_coverage(top: np.ndarray, candidates: np.ndarray) -> float:
    """Distinct videos over all lists / number of candidate videos (aggregate diversity, Adomavicius & Kwon,
    "Improving aggregate recommendation diversity using ranking-based techniques", IEEE TKDE 2012)."""
    return float(np.unique(top).size / candidates.size) if candidates.size else float("nan")


def top_item_share(top: np.ndarray) -> float:
    """Share of users whose list holds the most frequently listed video (1.0: one video is in every list).

    Parameters
    ----------
    top : int (n_users, k) video ids, each at most once per row.

    Returns
    -------
    float in (0, 1]; NaN for no users.
    """
    if top.shape[0] == 0:
        return float("nan")
    _, counts = np.unique(top, return_counts=True)  # a video occurs at most once per list
    return float(counts.max() / top.shape[0])


def self_information(train: Interactions, n_videos: int) -> np.ndarray:
    """float64 (n_videos,): ``-log2 p(i)``, p(i) the share of training users who watched video i.

    Zhou et al., "Solving the apparent diversity-accuracy dilemma of recommender systems", PNAS 2010 (novelty as
    the self-information log2(U / k_i) of an item collected by k_i of U users); Vargas & Castells, "Rank and
    relevance in novelty and diversity metrics for recommender systems", RecSys 2011. Add-one smoothing,
    p(i) = (k_i + 1) / (U + 1), keeps a video no training user watched finite (it gets the largest value).
    """
    user = train.user.astype(np.int64)
    # A users x videos boolean map (KuaiRec: 7,176 x 10,728 bytes = 77 MB) in one pass, instead of sorting every
    # training pair (a unique over 11 M rows on the full profile).
    watched = np.zeros((int(user.max()) + 1 if user.size else 0, n_videos), dtype=bool)
    watched[user, train.video.astype(np.int64)] = True
    watchers = watched.sum(axis=0, dtype=np.int64).astype(np.float64)
    n_train_users = int(np.count_nonzero(watched.any(axis=1)))
    return -np.log2((watchers + 1.0) / (n_train_users + 1.0))


def novelty(top: np.ndarray, information: np.ndarray) -> float:
    """Mean self-information (bits) of the listed videos over every list entry (Zhou et al., PNAS 2010; see
    :func:`self_information`).

    Parameters
    ----------
    top : int (n_users, k) video ids.
    information : float (n_videos,), :func:`self_information` indexed by video id, in bits.

    Returns
    -------
    float, in bits; NaN for empty lists.
    """
    return float(information[top].mean()) if top.size else float("nan")


def gini_index(exposure: np.ndarray) -> float:
    """Gini index of how list slots are shared among the candidate videos: 0 = every video equally often,
    1 = one video takes every slot (Fleder & Hosanagar, "Blockbuster culture's next rise or fall", Management
    Science 2009). G = sum_i (2i - n - 1) x_(i) / (n sum x), x ascending, i = 1..n."""
    values = np.sort(np.asarray(exposure, dtype=np.float64))
    n, total = values.size, values.sum()
    if n == 0 or total == 0:
        return float("nan")
    ranks = np.arange(1, n + 1, dtype=np.float64)
    return float(((2.0 * ranks - n - 1.0) * values).sum() / (n * total))


def beyond_accuracy_metrics(
    top: np.ndarray, candidates: np.ndarray, information: np.ndarray, k: int
) -> dict[str, float]:
    """``catalogue_coverage@k``, ``top_item_share@k``, ``novelty@k`` and ``gini@k`` of the lists ``top[:, :k]``.

    Parameters
    ----------
    top : int (n_users, >= k or all candidates), video ids best first
    candidates : int (n_candidates,), sorted distinct candidate video ids
    information : float (n_videos,), :func:`self_information` indexed by video id
    k : list length
    """
    lists = top[:, :k]
    return {
        f"catalogue_coverage@{k}": catalogue_coverage(lists, candidates),
        f"top_item_share@{k}": top_item_share(lists),
        f"novelty@{k}": novelty(lists, information),
        f"gini@{k}": gini_index(exposure_counts(lists, candidates)),
    }
