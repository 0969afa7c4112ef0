"""models/sequences.py: the vectorized histories and windows, against brute-force per-row Python."""

from __future__ import annotations

import numpy as np
import pytest

from kuairec_pipeline.models import sequences
from kuairec_pipeline.models.data import Interactions
from kuairec_pipeline.target import TargetScaler


def random_rows(seed: int = 0, n_rows: int = 400, n_users: int = 12, nan_share: float = 0.1) -> Interactions:
    rng = np.random.default_rng(seed)
    # Few distinct times, so equal timestamps (ties) are common.
    timestamp = rng.integers(0, 40, n_rows).astype(np.float64)
    timestamp[rng.random(n_rows) < nan_share] = np.nan
    ratio = rng.random(n_rows).astype(np.float32) * 3
    return Interactions(
        user=rng.integers(0, n_users - 2, n_rows).astype(np.int32),  # the last two users have no rows
        video=rng.integers(0, 50, n_rows).astype(np.int32),
        target=TargetScaler(0.0, 3.0).transform(ratio).astype(np.float32),
        watch_ratio=ratio,
        timestamp=timestamp,
        passes_filter=np.ones(n_rows, bool),
    )


def test_history_is_grouped_by_user_in_time_order_with_untimed_rows_last() -> None:
    rows = random_rows()
    history = sequences.build_history(rows, n_users=12)
    assert history.starts[0] == 0 and history.starts[-1] == len(rows)
    for user in range(12):
        part = slice(history.starts[user], history.starts[user + 1])
        mine = np.flatnonzero(rows.user == user)
        expected = sorted(mine, key=lambda i: (np.inf if np.isnan(rows.timestamp[i]) else rows.timestamp[i], i))
        np.testing.assert_array_equal(history.video[part], rows.video[expected])
        np.testing.assert_array_equal(history.target[part], rows.target[expected])
    assert history.lengths()[-2:].tolist() == [0, 0]


def test_history_refuses_users_outside_the_id_space() -> None:
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        sequences.build_history(random_rows(), n_users=5)


@pytest.mark.parametrize("max_len", [1, 3, 7, 50])
def test_training_windows_cover_every_row_once_and_never_cross_users(max_len: int) -> None:
    history = sequences.build_history(random_rows(), n_users=12)
    start, length = sequences.training_windows(history, max_len)
    covered = np.concatenate([np.arange(s, s + n) for s, n in zip(start, length, strict=False)])
    np.testing.assert_array_equal(np.sort(covered), np.arange(len(history)))
    assert (length >= 1).all() and (length <= max_len).all()
    user_of_row = np.repeat(np.arange(12), history.lengths())
    assert (user_of_row[start] == user_of_row[start + length - 1]).all()
    # Boundaries from each user's first row: every window but a user's last is full.
    assert ((start - history.starts[user_of_row[start]]) % max_len == 0).all()


def test_prefix_counts_count_rows_strictly_before_the_time_and_all_rows_without_one() -> None:
    rows = random_rows(1)
    history = sequences.build_history(rows, n_users=12)
    rng = np.random.default_rng(2)
    users = rng.integers(0, 12, 300)
    times = rng.integers(-1, 42, 300).astype(np.float64)
    times[::7] = np.nan
    counts = sequences.prefix_counts(history, users, times)
    for user, time, count in zip(users, times, counts, strict=False):
        mine = rows.timestamp[rows.user == user]
        expected = mine.size if np.isnan(time) else int((mine < time).sum())  # untimed rows: never "before"
        assert count == expected


def test_query_windows_are_the_last_rows_before_the_time_and_shared_by_equal_prefixes() -> None:
    rows = random_rows(3, nan_share=0.0)
    history = sequences.build_history(rows, n_users=12)
    users = np.array([0, 0, 0, 1, 11])
    times = np.array([20.0, 20.0, 0.0, 39.5, 10.0])
    plan = sequences.plan_queries(history, users, times, max_len=4)
    assert plan.query_window[0] == plan.query_window[1]  # same prefix, one state
    assert plan.query_window[2] == -1  # nothing before time 0
    assert plan.query_window[4] == -1  # user 11 has no rows
    window = plan.query_window[0]
    index, valid = sequences.window_matrix(history, plan.window_end[[window]], plan.window_length[[window]], 4, False)
    mine = np.flatnonzero((rows.user == 0) & (rows.timestamp < 20.0))
    last = sorted(mine, key=lambda i: (rows.timestamp[i], i))[-4:]
    np.testing.assert_array_equal(history.video[index[0][valid[0]]], rows.video[last])


def test_shuffled_windows_hold_the_same_rows_in_a_key_order_that_depends_on_the_rows_only() -> None:
    rows = random_rows(4, nan_share=0.0)
    history = sequences.build_history(rows, n_users=12, seed=5)
    users, end, length = sequences.final_windows(history, 8)
    ordered, valid = sequences.window_matrix(history, end, length, 8, shuffle=False)
    shuffled, valid_shuffled = sequences.window_matrix(history, end, length, 8, shuffle=True)
    np.testing.assert_array_equal(valid, valid_shuffled)
    np.testing.assert_array_equal(
        np.sort(np.where(valid, ordered, -1), axis=1), np.sort(np.where(valid, shuffled, -1), axis=1)
    )
    assert not np.array_equal(ordered, shuffled)
    keys = history.key[shuffled]
    assert all((np.diff(k[v].astype(np.float64)) >= 0).all() for k, v in zip(keys, valid, strict=False))
    # A row's key is a function of (user, video, timestamp, seed): the same in a history with other rows.
    first_half = sequences.build_history(
        Interactions(
            *(getattr(rows, f)[:200] for f in ("user", "video", "target", "watch_ratio", "timestamp", "passes_filter"))
        ),
        n_users=12,
        seed=5,
    )
    np.testing.assert_array_equal(
        np.sort(first_half.key),
        np.sort(sequences.shuffle_keys(rows.user[:200], rows.video[:200], rows.timestamp[:200], 5)),
    )
    other_seed = sequences.build_history(rows, n_users=12, seed=6)
    assert not np.array_equal(other_seed.key, history.key)


def test_a_history_without_keys_refuses_a_shuffled_window_and_orders_like_one_with_keys() -> None:
    rows = random_rows()
    with_keys = sequences.build_history(rows, n_users=12, seed=5)
    bare = sequences.build_history(rows, n_users=12, seed=5, keys=False)
    assert bare.key is None
    np.testing.assert_array_equal(bare.video, with_keys.video)
    np.testing.assert_array_equal(bare.starts, with_keys.starts)
    end, length = np.array([bare.starts[1]]), np.array([1])
    sequences.window_matrix(bare, end, length, 4, shuffle=False)
    with pytest.raises(ValueError, match="shuffle keys"):
        sequences.window_matrix(bare, end, length, 4, shuffle=True)
