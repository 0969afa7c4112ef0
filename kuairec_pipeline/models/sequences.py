"""Per-user viewing histories as flat arrays and offsets, and the windows a sequential model reads from them.

No per-row Python and no users x max_len tensor of objects: a history is one stable ``lexsort`` of the rows by
(user, timestamp) plus CSR-style offsets; a window is a (start, length) pair into that order, and a batch of windows
becomes an index matrix ``start[:, None] + arange(max_len)`` only when it is consumed.

Conventions shared by training, validation and scoring:
- order: by user, then timestamp; rows without a timestamp come after every timed row of the user (the file order
  breaks ties), which only matters for the whole-history state.
- training windows: each user's history cut into consecutive chunks of ``max_len`` rows from its first row, so a
  chunk's boundaries never depend on later rows; position ``j`` predicts the row after it.
- query windows: the state for a (user, time) query is read from the user's ``n`` history rows strictly before the
  time (all ``n`` rows when the time is NaN): all of them when ``n <= max_len``, else the rows from offset ``o``, the
  smallest multiple of ``stride`` with ``n - o <= max_len`` (so ``max_len - stride < n - o <= max_len`` rows). With
  ``stride = 1`` that is the last ``max_len`` rows (a sliding window); a larger stride lets the queries of one user
  share a window start, so one causal pass over a *block* (the window's rows from that start) gives the states of
  every prefix in it (:func:`window_blocks`). A user with no row before the time has the empty window.
- shuffled order (the order ablation): each window's rows are reordered by a per-row pseudo-random key, a hash of
  (user, video, timestamp, seed), so the permutation of a window depends on its own rows only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kuairec_pipeline.models.data import Interactions


@dataclass(frozen=True)
class History:
    """One split's rows grouped by user and ordered by time (CSR layout)."""

    video: np.ndarray  # int64 (n_rows,), in (user, time) order
    target: np.ndarray  # float32 (n_rows,), scaled watch ratio
    timestamp: np.ndarray  # float64 (n_rows,), +inf where the source had NaN
    key: np.ndarray | None  # uint64 (n_rows,): the shuffle key of each row; None when built without keys
    starts: np.ndarray  # int64 (n_users + 1,): rows of user u are [starts[u], starts[u + 1])

    @property
    def n_users(self) -> int:
        """Number of users the history is indexed by (``starts`` has n_users + 1 entries)."""
        return int(self.starts.shape[0] - 1)

    def __len__(self) -> int:
        return int(self.video.shape[0])

    def lengths(self) -> np.ndarray:
        """History rows per user.

        Returns
        -------
        int64 (n_users,).
        """
        return np.diff(self.starts)


def _mix64(values: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser (Steele et al. 2014): a fast, well-spread hash of uint64 values."""
    with np.errstate(over="ignore"):
        z = values + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def shuffle_keys(user: np.ndarray, video: np.ndarray, timestamp: np.ndarray, seed: int) -> np.ndarray:
    """A pseudo-random key per row from the row's own (user, video, timestamp) and ``seed`` (SplitMix64
    finalizer), so a row's place in a shuffled window does not depend on which other rows are present.

    Parameters
    ----------
    user, video : int (n,) ids.
    timestamp : float (n,) epoch seconds (NaN allowed; rounded to milliseconds).
    seed : the shuffle seed.

    Returns
    -------
    uint64 (n,).
    """
    time_ms = np.nan_to_num(np.asarray(timestamp, dtype=np.float64), nan=-1.0, posinf=-1.0) * 1000.0
    with np.errstate(over="ignore"):
        h = _mix64(np.asarray(user, dtype=np.uint64) ^ np.uint64(seed & 0xFFFFFFFF) << np.uint64(32))
        h = _mix64(h ^ np.asarray(video, dtype=np.uint64))
        return _mix64(h ^ np.round(time_ms).astype(np.int64).astype(np.uint64))


def build_history(rows: Interactions, n_users: int, seed: int = 0, keys: bool = True) -> History:
    """Group ``rows`` by user in time order (two stable sorts, O(n log n), no Python loop over rows).

    Parameters
    ----------
    rows : Interactions
        Any split; users must lie in ``[0, n_users)``.
    n_users : int
        Size of the user id space.
    seed : int
        Seed of the shuffle keys (used only by the order ablation).
    keys : bool
        Compute the shuffle keys (the order ablation needs them; 8 bytes a row and several temporaries of that
        size otherwise spared).

    Raises
    ------
    ValueError
        If a user id is outside ``[0, n_users)``.
    """
    user = rows.user
    if user.size and (user.min() < 0 or user.max() >= n_users):
        raise ValueError(f"history user ids must lie in [0, {n_users}), got [{user.min()}, {user.max()}]")
    timestamp = np.where(np.isnan(rows.timestamp), np.inf, rows.timestamp)
    # By time, then (stable) by user: ties keep the file order, as a lexsort on (user, time, row) would.
    order = np.argsort(timestamp, kind="stable")
    # int16 ids when they fit: NumPy's stable sort of 16-bit integers is a radix sort (linear time).
    sort_user = user.astype(np.int16) if n_users <= np.iinfo(np.int16).max else user
    order = order[np.argsort(sort_user[order], kind="stable")]
    timestamp = timestamp[order]
    starts = np.searchsorted(user[order], np.arange(n_users + 1)).astype(np.int64)
    key = shuffle_keys(user[order], rows.video[order], rows.timestamp[order], seed) if keys else None
    return History(
        video=rows.video[order].astype(np.int64),
        target=rows.target[order].astype(np.float32),
        timestamp=timestamp,
        key=key,
        starts=starts,
    )


def training_windows(history: History, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Consecutive chunks of ``max_len`` rows per user from its first row: (start, length), int64 each.

    Every history row is in exactly one chunk; only a user's last chunk may be shorter.
    """
    lengths = history.lengths()
    n_chunks = -(-lengths // max_len)
    user = np.repeat(np.arange(history.n_users), n_chunks)
    first_chunk = np.cumsum(n_chunks) - n_chunks
    within = np.arange(user.size) - np.repeat(first_chunk, n_chunks)
    start = history.starts[user] + within * max_len
    return start, np.minimum(max_len, history.starts[user + 1] - start)


def prefix_counts(history: History, user: np.ndarray, timestamp: np.ndarray) -> np.ndarray:
    """int64 per query: the user's history rows strictly before the query's timestamp (all of them when NaN).

    A binary search in each queried user's time-ordered rows (``side="left"``), so a history row at exactly the
    query's time is *not* counted: the state never sees the row itself. Rows without a timestamp (+inf) come after
    every timed query. The Python loop runs once per queried user, never per row, and no array of the history's
    size is allocated.
    """
    user = np.asarray(user, dtype=np.int64)
    timestamp = np.asarray(timestamp, dtype=np.float64)
    if user.size == 0:
        return np.zeros(0, dtype=np.int64)
    if user.min() < 0 or user.max() >= history.n_users:
        raise ValueError(f"query user ids must lie in [0, {history.n_users})")
    counts = np.empty(user.size, dtype=np.int64)
    by_user = np.argsort(user, kind="stable")
    bounds = np.flatnonzero(np.diff(user[by_user])) + 1
    for group in np.split(by_user, bounds):
        u = user[group[0]]
        times = history.timestamp[history.starts[u] : history.starts[u + 1]]
        query = timestamp[group]
        counts[group] = np.where(np.isnan(query), times.size, np.searchsorted(times, query, side="left"))
    return counts


def window_matrix(
    history: History, end: np.ndarray, length: np.ndarray, max_len: int, shuffle: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(index matrix int64 (m, max_len) into the history order, valid mask bool (m, max_len)) for windows
    ``[end - length, end)``, right-padded (padding repeats the window's first row, masked out).

    With ``shuffle`` the valid rows of each window are reordered by their shuffle keys (padding stays last).
    """
    offsets = np.arange(max_len)
    valid = offsets[None, :] < length[:, None]
    index = np.where(valid, (end - length)[:, None] + offsets[None, :], (end - length)[:, None])
    if shuffle:
        if history.key is None:
            raise ValueError("a shuffled window needs the shuffle keys: build the history with keys=True")
        keys = np.where(valid, history.key[index], np.iinfo(np.uint64).max)
        order = np.argsort(keys, axis=1, kind="stable")
        index = np.take_along_axis(index, order, axis=1)
    return index, valid


@dataclass(frozen=True)
class QueryPlan:
    """Which state each query reads: the distinct (user, prefix) windows and, per query, its window."""

    window_user: np.ndarray  # int64 (m,)
    window_end: np.ndarray  # int64 (m,): exclusive end in the history order
    window_length: np.ndarray  # int64 (m,), 1..max_len
    query_window: np.ndarray  # int64 (n_queries,): index into the windows, -1 = no history (the empty state)


def plan_queries(history: History, user: np.ndarray, timestamp: np.ndarray, max_len: int, stride: int = 1) -> QueryPlan:
    """Map each (user, timestamp) query to the window of its history rows strictly before it
    (:func:`window_lengths`: the last ``max_len`` of them when ``stride`` is 1).

    Queries sharing a user and a prefix share one window, so a state is computed once per distinct prefix.

    Parameters
    ----------
    history : the users' time-ordered rows.
    user, timestamp : the queries (int ids in the history's range; float epoch seconds, NaN = after every row).
    max_len : window length at most (rows).
    stride : step between window starts (1..max_len).

    Returns
    -------
    QueryPlan.
    """
    user = np.asarray(user, dtype=np.int64)
    counts = prefix_counts(history, user, timestamp)
    has_history = counts > 0
    end = history.starts[user] + counts
    distinct_end, inverse = np.unique(end[has_history], return_inverse=True)
    # end positions are global and users are contiguous, so each distinct end belongs to one user.
    window_user = np.searchsorted(history.starts, distinct_end, side="left") - 1
    window_length = window_lengths(distinct_end - history.starts[window_user], max_len, stride)
    query_window = np.full(user.size, -1, dtype=np.int64)
    query_window[has_history] = inverse
    return QueryPlan(window_user, distinct_end, window_length, query_window)


def window_lengths(prefix: np.ndarray, max_len: int, stride: int) -> np.ndarray:
    """Rows of the query window of a prefix of ``prefix`` rows (>= 1): ``prefix`` up to ``max_len``, beyond it
    ``prefix - o`` with ``o`` the smallest multiple of ``stride`` such that the window has at most ``max_len`` rows.

    Parameters
    ----------
    prefix : int64 (m,) history rows before each query, >= 1.
    max_len : the window length at most (rows).
    stride : the step between window starts (rows, 1..max_len; 1 = the last ``max_len`` rows).

    Returns
    -------
    int64 (m,) in ``[min(prefix, max_len - stride + 1), max_len]``.
    """
    prefix = np.asarray(prefix, dtype=np.int64)
    offset = np.where(prefix > max_len, -(-(prefix - max_len) // stride) * stride, 0)
    return prefix - offset


def final_windows(history: History, max_len: int, stride: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each user's query window after its whole history (the state scoring reads), as :func:`window_lengths`.

    Parameters
    ----------
    history : the users' time-ordered rows.
    max_len : window length at most (rows).
    stride : step between window starts (1 = the last ``max_len`` rows).

    Returns
    -------
    (int64 users with history (m,), int64 window end (exclusive row index, m,), int64 window length (m,)).
    """
    lengths = history.lengths()
    users = np.flatnonzero(lengths > 0)
    return users, history.starts[users + 1], window_lengths(lengths[users], max_len, stride)


def window_blocks(window_end: np.ndarray, window_length: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group windows by their first row: a block is the rows from that start to the longest window's end.

    Under a causal mask the state at position ``j`` of a block depends on its rows ``0..j`` only, so the state of
    each window is the block's state at position ``length - 1``: one pass per block instead of one per window.

    Parameters
    ----------
    window_end : int64 (m,) exclusive end of each window in the history order.
    window_length : int64 (m,) rows of each window (>= 1).

    Returns
    -------
    (block start int64 (b,), block length int64 (b,), block of each window int64 (m,)).
    """
    start = window_end - window_length
    block_start, block = np.unique(start, return_inverse=True)
    block_length = np.zeros(block_start.size, dtype=np.int64)
    np.maximum.at(block_length, block, window_length)
    return block_start, block_length, block.reshape(-1).astype(np.int64)
