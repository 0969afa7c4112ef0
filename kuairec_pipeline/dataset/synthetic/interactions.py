"""big_matrix.csv and small_matrix.csv of the twin, generated user chunk by user chunk (bounded memory) and
appended to the two files in user order, so both come out sorted by user then time without a global sort.

Per chunk of users:
1. exposure: which videos each user saw in big_matrix, drawn with probability 1 - exp(-c_u * w_uv), where
   w_uv = popularity_v * exp(taste_weight * taste_uv) and c_u is solved so the expected count is the user's
   target; small_matrix videos are never exposed to small_matrix users here (those pairs were removed).
2. re-watches of seen pairs, the dense small_matrix block, and a time for every view.
3. the sequential effect: each view's tags against the user's last few views (both files interleaved in
   time, as the user lived them), beyond the user's usual tag mix.
4. one watch ratio per view from the noise model; exact duplicates in big, blank times in small.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import polars as pl

from kuairec_pipeline.dataset.synthetic.config import (
    BEIJING_OFFSET_MS,
    DAY_MS,
    PERIOD_START_MS,
    TwinBehaviour,
    TwinProfile,
)
from kuairec_pipeline.dataset.synthetic.entities import STREAM_CHUNK, Users, Videos, random_stream, static_eta
from kuairec_pipeline.dataset.synthetic.noise import planted_moments, sample_watch_ratio

# Share of views per Beijing hour (0..23): quiet at night, peaks at lunch and in the evening.
HOURLY_ACTIVITY = np.array(
    [
        3.0,
        1.8,
        1.0,
        0.6,
        0.5,
        0.6,
        1.2,
        2.2,
        3.0,
        3.4,
        3.6,
        4.0,
        5.0,
        5.2,
        4.4,
        4.0,
        4.0,
        4.4,
        5.0,
        5.8,
        6.6,
        7.0,
        6.4,
        4.8,
    ]
)
HOURLY_CDF = np.cumsum(HOURLY_ACTIVITY) / HOURLY_ACTIVITY.sum()

KIND_FIRST_VIEW, KIND_REWATCH, KIND_SMALL = 0, 1, 2

TIME_FORMAT = "%Y-%m-%d %H:%M:%S%.3f"


@dataclass(frozen=True)
class EtaOffsets:
    """Constant added to the static eta so each file's mean eta is the fitted one (set from a pre-pass)."""

    big: float
    small: float


@dataclass
class ChunkResult:
    big: pl.DataFrame  # big_matrix rows of the chunk, in file order and format
    small: pl.DataFrame  # small_matrix rows
    truth: pl.DataFrame  # one row per small_matrix view: user_id, video_id and its planted moments
    big_eta_mean: float  # mean eta of the chunk's big_matrix views (before duplicates), for params.json
    small_eta_mean: float


def _available_mask(chunk_users: np.ndarray, users: Users, videos: Videos) -> np.ndarray:
    available = np.ones((chunk_users.shape[0], videos.count), dtype=bool)
    in_small = np.isin(chunk_users, users.small_ids)
    available[np.ix_(in_small, videos.small_ids)] = False  # small pairs were removed from big_matrix
    return available


def distinct_targets(
    chunk_users: np.ndarray, users: Users, available: np.ndarray, behaviour: TwinBehaviour
) -> np.ndarray:
    exposure = behaviour.exposure
    share_first_views = 1.0 - exposure.rewatch_share / (1.0 - exposure.duplicate_share)
    wanted = users.rows_target[chunk_users] * share_first_views
    cap = exposure.max_share_of_catalogue * available.sum(axis=1)
    return np.minimum(wanted, cap)


def exposure_probabilities(
    taste: np.ndarray,
    log_popularity: np.ndarray,
    available: np.ndarray,
    expected_counts: np.ndarray,
    taste_weight: float,
) -> np.ndarray:
    """P(user saw video) = 1 - exp(-c_u w_uv), with c_u such that each row sums to ``expected_counts``."""
    log_weight = taste_weight * taste + log_popularity.astype(np.float32)[None, :]
    log_weight -= log_weight.max(axis=1, keepdims=True)
    weight = np.exp(log_weight) * available
    total = weight.sum(axis=1, dtype=np.float64)
    scale = expected_counts / total  # first-order guess; f is concave, so Newton from here never overshoots
    for _ in range(30):
        decay = np.exp(-scale.astype(np.float32)[:, None] * weight)
        # Unavailable cells have weight 0, so their decay is 1 and they add nothing to the expected count.
        shortfall = expected_counts - (weight.shape[1] - decay.sum(axis=1, dtype=np.float64))
        slope = (weight * decay).sum(axis=1, dtype=np.float64)
        scale = scale + shortfall / np.maximum(slope, 1e-30)
        if np.all(np.abs(shortfall) < 0.5):
            break
    return (1.0 - np.exp(-scale.astype(np.float32)[:, None] * weight)) * available


def calibrate_offsets(users: Users, videos: Videos, behaviour: TwinBehaviour, seed: int) -> EtaOffsets:
    """Offsets that put the mean static eta of big_matrix views and of the small block at the fitted values.

    The user bias (the part that varies most between users) is averaged exactly over all users, weighted by
    their rows; the rest (taste, video part) is the expectation over first views (exposure-weighted) and
    re-watches (which favour popular videos) of a sample of users, so the cost is a few chunks. The
    sequential part is centred by construction and needs no offset."""
    rng = random_stream(seed, STREAM_CHUNK, 10_000_000)
    sample = np.sort(rng.choice(users.count, size=min(users.count, 600), replace=False))
    _, taste = static_eta(users, videos, sample)
    available = _available_mask(sample, users, videos)
    first_view = exposure_probabilities(
        taste,
        videos.log_popularity,
        available,
        distinct_targets(sample, users, available, behaviour),
        behaviour.exposure.taste_weight,
    )
    expected_first = first_view.sum(axis=1, dtype=np.float64)
    expected_rewatch = np.maximum(users.rows_target[sample] - expected_first, 0.0)
    rewatch_weight = first_view * _rewatch_weight(videos, behaviour).astype(np.float32)[None, :]
    rewatch_mean = (rewatch_weight * taste).sum(axis=1, dtype=np.float64) / np.maximum(
        rewatch_weight.sum(axis=1, dtype=np.float64), 1e-30
    )
    taste_total = (first_view * taste).sum(dtype=np.float64) + (expected_rewatch * rewatch_mean).sum()
    big_taste_mean = taste_total / (expected_first.sum() + expected_rewatch.sum())
    big_user_mean = np.average(users.bias, weights=users.rows_target)

    small_sample = users.small_ids[:: max(1, users.small_ids.shape[0] // 600)]
    _, small_taste = static_eta(users, videos, small_sample, videos.small_ids)
    small_mean = users.bias[users.small_ids].mean() + small_taste.mean(dtype=np.float64)
    preference = behaviour.preference
    return EtaOffsets(
        big=float(preference.big_mean_eta - big_user_mean - big_taste_mean),
        small=float(preference.small_mean_eta - small_mean),
    )


def guaranteed_viewers(users: Users, videos: Videos, seed: int) -> np.ndarray:
    """One viewer per video (an active user allowed to see it in big_matrix), so that every video, the small
    ones included, occurs in big_matrix as in the real files, however unpopular and however small the twin."""
    rng = random_stream(seed, STREAM_CHUNK, 10_000_001)
    activity = users.rows_target.astype(np.float64)
    outside_small = activity * ~np.isin(np.arange(users.count), users.small_ids)
    viewers = rng.choice(users.count, size=videos.count, p=activity / activity.sum())
    viewers[videos.small_ids] = rng.choice(
        users.count, size=videos.small_ids.shape[0], p=outside_small / outside_small.sum()
    )
    return viewers


def _rewatch_weight(videos: Videos, behaviour: TwinBehaviour) -> np.ndarray:
    # Which seen video a re-watch goes to: the feed re-shows popular videos more.
    return np.exp(behaviour.exposure.rewatch_popularity_exponent * videos.log_popularity)


def _time_of_day_ms(rng: np.random.Generator, n: int) -> np.ndarray:
    hour = np.searchsorted(HOURLY_CDF, rng.random(n), side="right")
    return hour * 3_600_000 + rng.integers(0, 3_600_000, n)


def _view_times(rng: np.random.Generator, start_ms: np.ndarray, end_ms: np.ndarray) -> np.ndarray:
    """One server time (epoch ms) per view, uniform over the user's active days, diurnal within a day."""
    days = (end_ms - start_ms) // DAY_MS
    day = np.floor(rng.random(start_ms.shape[0]) * days).astype(np.int64)
    return start_ms + day * DAY_MS + _time_of_day_ms(rng, start_ms.shape[0])


def _group_starts(sorted_keys: np.ndarray) -> np.ndarray:
    """For each position of an array sorted by key, the position where its key's run starts."""
    is_start = np.ones(sorted_keys.shape[0], dtype=bool)
    is_start[1:] = sorted_keys[1:] != sorted_keys[:-1]
    return np.maximum.accumulate(np.where(is_start, np.arange(sorted_keys.shape[0]), 0))


def sequential_signal(
    user_local: np.ndarray, video: np.ndarray, videos: Videos, window: int, decay: float
) -> np.ndarray:
    """Overlap between a view's tags and the (decayed) tags of the user's previous ``window`` views, minus the
    overlap with the user's usual tag mix: what the order adds beyond the user's static taste.

    Rows must be sorted by user then time; users are contiguous."""
    n = user_local.shape[0]
    tags = videos.tag_weights[video]  # (n, 31) float32
    starts = _group_starts(user_local)
    recent = np.zeros_like(tags)
    norm = np.zeros(n, dtype=np.float32)
    positions = np.arange(n)
    for lag in range(1, window + 1):
        if lag >= n:
            break
        weight = np.float32(decay ** (lag - 1))
        valid = (positions[lag:] - lag) >= starts[lag:]
        recent[lag:] += tags[:-lag] * (weight * valid)[:, None]
        norm[lag:] += weight * valid
    has_history = norm > 0
    recent[has_history] /= norm[has_history, None]

    boundaries = np.flatnonzero(np.r_[True, user_local[1:] != user_local[:-1]])
    counts = np.diff(np.r_[boundaries, n])
    usual_mix = np.add.reduceat(tags, boundaries, axis=0) / counts[:, None].astype(np.float32)
    group_of_row = np.repeat(np.arange(boundaries.shape[0]), counts)
    signal = ((recent - usual_mix[group_of_row]) * tags).sum(axis=1)
    return np.where(has_history, signal, 0.0).astype(np.float64)


_DATE_TABLE_FIRST_DAY = -40  # day indices relative to 2020-07-05, wide enough for every clock skew


def _yyyymmdd_table() -> np.ndarray:
    first = dt.date(2020, 7, 5) + dt.timedelta(days=_DATE_TABLE_FIRST_DAY)
    return np.array([int((first + dt.timedelta(days=i)).strftime("%Y%m%d")) for i in range(160)], dtype=np.int32)


YYYYMMDD = _yyyymmdd_table()


def _server_date(server_ms: np.ndarray) -> np.ndarray:
    day_index = (server_ms - PERIOD_START_MS) // DAY_MS
    return YYYYMMDD[day_index - _DATE_TABLE_FIRST_DAY]


def interaction_frame(
    user: np.ndarray,
    video: np.ndarray,
    play_ms: np.ndarray,
    duration_ms: np.ndarray,
    client_ms: np.ndarray,
    date: np.ndarray,
    blank_time: np.ndarray | None,
    float_date: bool,
) -> pl.DataFrame:
    """Rows in the official column order and formats: Beijing `time` with ms, epoch `timestamp` with a ms
    fraction, `date` YYYYMMDD (a float like 20200705.0 in small_matrix), full-precision watch_ratio."""
    frame = pl.DataFrame(
        {
            "user_id": user.astype(np.int32),
            "video_id": video.astype(np.int32),
            "play_duration": play_ms.astype(np.int64),
            "video_duration": duration_ms.astype(np.int64),
            "client_ms": client_ms.astype(np.int64),
            "date": date.astype(np.float64 if float_date else np.int32),
            # numpy's division is correctly rounded, so 1593878903438 ms prints as 1593878903.438, as in the files.
            "timestamp": client_ms / 1000.0,
            "watch_ratio": play_ms / duration_ms,
        }
    )
    time_expr = pl.from_epoch(pl.col("client_ms") + BEIJING_OFFSET_MS, time_unit="ms").dt.strftime(TIME_FORMAT)
    timestamp_expr = pl.col("timestamp")
    date_expr = pl.col("date")
    if blank_time is not None:
        blank = pl.Series("blank", blank_time)
        frame = frame.with_columns(blank)
        time_expr = pl.when(pl.col("blank")).then(None).otherwise(time_expr)
        timestamp_expr = pl.when(pl.col("blank")).then(None).otherwise(timestamp_expr)
        date_expr = pl.when(pl.col("blank")).then(None).otherwise(date_expr)
    return frame.select(
        "user_id",
        "video_id",
        "play_duration",
        "video_duration",
        time_expr.alias("time"),
        date_expr.alias("date"),
        timestamp_expr.alias("timestamp"),
        "watch_ratio",
    )


def generate_chunk(
    chunk_index: int,
    chunk_users: np.ndarray,
    users: Users,
    videos: Videos,
    behaviour: TwinBehaviour,
    offsets: EtaOffsets,
    viewers: np.ndarray,
    seed: int,
) -> ChunkResult:
    """All views of the users ``chunk_users`` (contiguous ids); ``viewers`` from ``guaranteed_viewers``."""
    rng = random_stream(seed, STREAM_CHUNK, chunk_index)
    exposure, preference = behaviour.exposure, behaviour.preference
    n_chunk = chunk_users.shape[0]

    # 1. Exposure in big_matrix.
    eta_static, taste = static_eta(users, videos, chunk_users)
    available = _available_mask(chunk_users, users, videos)
    probability = exposure_probabilities(
        taste,
        videos.log_popularity,
        available,
        distinct_targets(chunk_users, users, available, behaviour),
        exposure.taste_weight,
    )
    del taste
    seen = rng.random(probability.shape, dtype=np.float32) < probability
    del probability
    guaranteed = np.flatnonzero((viewers >= chunk_users[0]) & (viewers <= chunk_users[-1]))
    seen[viewers[guaranteed] - chunk_users[0], guaranteed] = True
    first_local, first_video = np.nonzero(seen)
    del seen

    # 2. Re-watches: the rest of each user's row target, popular videos re-shown more often.
    first_counts = np.bincount(first_local, minlength=n_chunk)
    rewatch_counts = np.maximum(users.rows_target[chunk_users] - first_counts, 0)
    pair_weight = _rewatch_weight(videos, behaviour)[first_video]
    cumulative = np.cumsum(pair_weight)
    group_end = np.cumsum(first_counts)
    group_start = group_end - first_counts
    lower = np.where(group_start > 0, cumulative[np.maximum(group_start - 1, 0)], 0.0)
    upper = cumulative[np.maximum(group_end - 1, 0)]
    rewatch_user = np.repeat(np.arange(n_chunk), rewatch_counts)
    has_pairs = first_counts[rewatch_user] > 0
    rewatch_user = rewatch_user[has_pairs]
    draw = lower[rewatch_user] + rng.random(rewatch_user.shape[0]) * (upper - lower)[rewatch_user]
    rewatch_pair = np.minimum(np.searchsorted(cumulative, draw, side="right"), group_end[rewatch_user] - 1)

    # The dense small block for this chunk's small users (0.4% of cells missing).
    small_local = np.flatnonzero(np.isin(chunk_users, users.small_ids))
    block_user = np.repeat(small_local, videos.small_ids.shape[0])
    block_video = np.tile(videos.small_ids, small_local.shape[0])
    kept = rng.random(block_user.shape[0]) < exposure.small_density
    block_user, block_video = block_user[kept], block_video[kept]

    # Times (server clock).
    start_ms = users.window_start_ms[chunk_users]
    end_ms = users.window_end_ms[chunk_users]
    first_time = _view_times(rng, start_ms[first_local], end_ms[first_local])
    original_time = first_time[rewatch_pair]
    rewatch_time = (
        original_time
        + 1_000
        + np.floor(
            rng.random(rewatch_pair.shape[0]) * np.maximum(end_ms[rewatch_user] - original_time - 1_000, 1)
        ).astype(np.int64)
    )
    rewatch_time = np.minimum(rewatch_time, end_ms[rewatch_user] - 1)  # stays inside the log's last day
    block_time = _view_times(rng, start_ms[block_user], end_ms[block_user])

    local = np.concatenate([first_local, rewatch_user, block_user])
    video = np.concatenate([first_video, first_video[rewatch_pair], block_video])
    server_ms = np.concatenate([first_time, rewatch_time, block_time])
    kind = np.concatenate(
        [
            np.full(first_local.shape[0], KIND_FIRST_VIEW, np.int8),
            np.full(rewatch_user.shape[0], KIND_REWATCH, np.int8),
            np.full(block_user.shape[0], KIND_SMALL, np.int8),
        ]
    )
    order = np.lexsort((server_ms, local))
    local, video, server_ms, kind = local[order], video[order], server_ms[order], kind[order]

    # 3. Log engagement of each view: static + context offset + sequential effect.
    in_small = kind == KIND_SMALL
    sequence = sequential_signal(local, video, videos, preference.sequence_window, preference.sequence_decay)
    eta = (
        eta_static[local, video].astype(np.float64)
        + np.where(in_small, offsets.small, offsets.big)
        + users.sequence_effect[chunk_users[local]] * sequence
    )
    del eta_static

    # 4. Watch ratios, quantized to whole milliseconds of play as in the real files.
    watch_ratio = sample_watch_ratio(eta, in_small, behaviour.watch_ratio, rng)
    duration_ms = videos.duration_ms[video]
    play_ms = np.round(watch_ratio * duration_ms).astype(np.int64)
    user = chunk_users[local]
    client_ms = server_ms + users.clock_skew_ms[user]
    date = _server_date(server_ms)

    big_rows = np.flatnonzero(~in_small)
    # Exact duplicates: copies of random rows, next to their original (the sort is stable).
    n_duplicates = int(round(big_rows.shape[0] * exposure.duplicate_share / (1.0 - exposure.duplicate_share)))
    duplicated = rng.choice(big_rows, size=n_duplicates, replace=True) if big_rows.shape[0] else big_rows
    big_rows = np.sort(np.concatenate([big_rows, duplicated]), kind="stable")
    big = interaction_frame(
        user[big_rows],
        video[big_rows],
        play_ms[big_rows],
        duration_ms[big_rows],
        client_ms[big_rows],
        date[big_rows],
        None,
        float_date=False,
    )

    small_rows = np.flatnonzero(in_small)
    blank = rng.random(small_rows.shape[0]) < exposure.small_empty_time_share
    # Blank-time rows go last within their user (a sort with nulls last, as pandas does).
    small_order = np.lexsort((blank, user[small_rows]))
    small_rows, blank = small_rows[small_order], blank[small_order]
    small = interaction_frame(
        user[small_rows],
        video[small_rows],
        play_ms[small_rows],
        duration_ms[small_rows],
        client_ms[small_rows],
        date[small_rows],
        blank,
        float_date=True,
    )

    moments = planted_moments(eta[small_rows], True, behaviour.watch_ratio)
    truth = pl.DataFrame(
        {
            "user_id": user[small_rows].astype(np.int32),
            "video_id": video[small_rows].astype(np.int32),
            "expected_watch_ratio": moments.expected_watch_ratio,
            "expected_watch_ratio_le3": moments.expected_watch_ratio_le3,
            "prob_watch_ratio_gt2": moments.prob_watch_ratio_gt2,
        }
    )
    return ChunkResult(
        big,
        small,
        truth,
        float(eta[~in_small].mean()) if (~in_small).any() else 0.0,
        float(eta[in_small].mean()) if in_small.any() else 0.0,
    )


def write_interactions(
    users: Users,
    videos: Videos,
    profile: TwinProfile,
    behaviour: TwinBehaviour,
    seed: int,
    big_file: BinaryIO,
    small_file: BinaryIO,
) -> tuple[pl.DataFrame, dict]:
    """Write both matrices chunk by chunk; return the planted truth (one row per small pair) and a summary."""
    offsets = calibrate_offsets(users, videos, behaviour, seed)
    viewers = guaranteed_viewers(users, videos, seed)
    truth_parts: list[pl.DataFrame] = []
    big_rows = small_rows = 0
    big_eta = small_eta = 0.0
    # The header goes out with the first chunk only; later chunks append rows.
    for chunk_index, chunk_start in enumerate(range(0, users.count, profile.users_per_chunk)):
        chunk_users = np.arange(chunk_start, min(chunk_start + profile.users_per_chunk, users.count))
        result = generate_chunk(chunk_index, chunk_users, users, videos, behaviour, offsets, viewers, seed)
        result.big.write_csv(big_file, include_header=chunk_index == 0)
        result.small.write_csv(small_file, include_header=chunk_index == 0)
        truth_parts.append(result.truth)
        big_rows += result.big.height
        small_rows += result.small.height
        big_eta += result.big_eta_mean * result.big.height
        small_eta += result.small_eta_mean * result.small.height
    truth = (
        pl.concat(truth_parts)
        .group_by("user_id", "video_id", maintain_order=True)
        .agg(pl.col("expected_watch_ratio", "expected_watch_ratio_le3", "prob_watch_ratio_gt2").mean())
        .sort("user_id", "video_id")
    )
    summary = {
        "big_rows": big_rows,
        "small_rows": small_rows,
        "eta_offset_big": offsets.big,
        "eta_offset_small": offsets.small,
        "mean_eta_big": big_eta / max(big_rows, 1),
        "mean_eta_small": small_eta / max(small_rows, 1),
    }
    return truth, summary
