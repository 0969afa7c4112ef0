"""The twin's users and videos: observable features (what the files show) and latent traits (what only the
planted truth knows), plus the static part of the log engagement ``eta`` of any (user, video) pair.

Everything is drawn from named random streams (``random_stream``), so adding a stream never shifts another and
the same seed always gives the same world.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from kuairec_pipeline.dataset.schema import MAX_TAGS_PER_VIDEO, NUM_TAGS, ONEHOT_COLUMNS
from kuairec_pipeline.dataset.synthetic import reference
from kuairec_pipeline.dataset.synthetic.config import DAY_MS, PERIOD_DAYS, PERIOD_START_MS, TwinBehaviour, TwinProfile

# One id per purpose: the stream of a purpose depends on (seed, id, chunk) only.
STREAM_VIDEOS = 1
STREAM_USERS = 2
STREAM_USER_FEATURES = 3
STREAM_SUBSETS = 4
STREAM_CHUNK = 5
STREAM_SIDE_FILES = 6
STREAM_CAPTIONS = 7
STREAM_DAILY = 8
STREAM_SOCIAL = 9


def random_stream(seed: int, purpose: int, index: int = 0) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, purpose, index]))


def _standardize(values: np.ndarray) -> np.ndarray:
    spread = values.std()
    return (values - values.mean()) / (spread if spread > 0 else 1.0)


def _quota_counts(rng: np.random.Generator, weights: np.ndarray, n: int) -> np.ndarray:
    """Integer counts summing to ``n`` in proportion to ``weights`` (floors, then the remaining units to
    categories drawn by their fractional parts). At the real size this reproduces the real counts exactly."""
    expected = weights / weights.sum() * n
    counts = np.floor(expected).astype(np.int64)
    fractions = expected - counts
    remainder = n - int(counts.sum())
    if remainder:
        counts[rng.choice(weights.shape[0], size=remainder, replace=False, p=fractions / fractions.sum())] += 1
    return counts


def _draw_from_counts(rng: np.random.Generator, counts: dict[int, int] | dict[str, int], n: int) -> np.ndarray:
    """``n`` values with the real frequencies (quota sampling, shuffled): every real category appears at full
    scale, with its real count."""
    keys = list(counts)
    weights = np.array([counts[key] for key in keys], dtype=np.float64)
    values = np.repeat(np.asarray(keys), _quota_counts(rng, weights, n))
    return rng.permutation(values)


def _zipf_ids(rng: np.random.Generator, cardinality: int, n: int, exponent: float) -> np.ndarray:
    # Many-valued categories (like a city): a few ids are common, most are rare; ids are shuffled ranks. At the
    # real number of users every id occurs at least once (the real cardinality); smaller twins keep fewer ids.
    weights = 1.0 / np.arange(1, cardinality + 1) ** exponent
    guaranteed = np.arange(cardinality) if n >= reference.REAL_USER_COUNT else np.arange(0)
    drawn = rng.choice(cardinality, size=n - guaranteed.shape[0], p=weights / weights.sum())
    ranks = rng.permutation(np.concatenate([guaranteed, drawn]))
    return rng.permutation(cardinality)[ranks]


def _exact_share(rng: np.random.Generator, n: int, share: float) -> np.ndarray:
    """A mask with round(share * n) True values at random positions."""
    mask = np.zeros(n, dtype=bool)
    mask[rng.choice(n, size=int(round(share * n)), replace=False)] = True
    return mask


@dataclass(frozen=True)
class Videos:
    duration_ms: np.ndarray  # int64 (n,)
    tags: np.ndarray  # int8 (n, 4), -1 = no tag; the first tag is the video's main one
    tag_weights: np.ndarray  # float32 (n, 31), each row sums to 1 (share of the video's tags)
    author_id: np.ndarray  # int32 (n,)
    log_popularity: np.ndarray  # float64 (n,), exposure weight in big_matrix
    bias: np.ndarray  # float64 (n,), video part of eta: duration, tags, author, latent quality
    log_duration_z: np.ndarray  # float64 (n,), standardized log duration (for per-user duration taste)
    factors: np.ndarray  # float32 (n, latent_dim)
    small_ids: np.ndarray  # int32, sorted: the small_matrix videos

    @property
    def count(self) -> int:
        return int(self.duration_ms.shape[0])

    @property
    def tag_counts(self) -> np.ndarray:
        return (self.tags >= 0).sum(axis=1)


@dataclass(frozen=True)
class Users:
    features: pl.DataFrame  # user_features.csv, all 31 columns, typed
    bias: np.ndarray  # float64 (n,), user part of eta: observed (features) + latent
    factors: np.ndarray  # float32 (n, latent_dim)
    tag_affinity: np.ndarray  # float32 (n, 31)
    duration_preference: np.ndarray  # float64 (n,), extra eta per std of shortness
    sequence_effect: np.ndarray  # float64 (n,), eta per unit of recent-tag overlap beyond the usual mix
    rows_target: np.ndarray  # int64 (n,), big_matrix rows before exact duplicates are added
    window_start_ms: np.ndarray  # int64 (n,), first moment the user is active (server time)
    window_end_ms: np.ndarray  # int64 (n,)
    clock_skew_ms: np.ndarray  # int64 (n,), device clock error: `time` = server time + skew, `date` = server day
    small_ids: np.ndarray  # int32, sorted: the small_matrix users

    @property
    def count(self) -> int:
        return int(self.bias.shape[0])


def build_videos(profile: TwinProfile, behaviour: TwinBehaviour, seed: int) -> Videos:
    rng = random_stream(seed, STREAM_VIDEOS)
    preference = behaviour.preference
    n = profile.n_videos

    # Tags: 1-4 per video, ids drawn without replacement in proportion to the real tag frequencies.
    tags_per_video = _draw_from_counts(rng, reference.TAGS_PER_VIDEO_COUNTS, n).astype(np.int64)
    tag_probabilities = np.asarray(reference.TAG_OCCURRENCES, dtype=np.float64)
    tag_probabilities /= tag_probabilities.sum()
    # Gumbel top-k = weighted sampling without replacement, for all videos at once.
    keys = np.log(tag_probabilities)[None, :] + rng.gumbel(size=(n, NUM_TAGS))
    ranked = np.argsort(-keys, axis=1)[:, :MAX_TAGS_PER_VIDEO]
    slots = np.arange(MAX_TAGS_PER_VIDEO)[None, :]
    tags = np.where(slots < tags_per_video[:, None], ranked, -1).astype(np.int8)
    tag_weights = np.zeros((n, NUM_TAGS), dtype=np.float32)
    rows = np.repeat(np.arange(n), tags_per_video)
    tag_weights[rows, tags[tags >= 0]] = 1.0
    tag_weights /= tag_weights.sum(axis=1, keepdims=True)

    log_duration = np.log(behaviour.duration_median_ms) + behaviour.duration_log_std * rng.standard_normal(n)
    duration_ms = np.clip(np.round(np.exp(log_duration)), behaviour.duration_min_ms, behaviour.duration_max_ms).astype(
        np.int64
    )
    log_duration_z = _standardize(np.log(duration_ms.astype(np.float64)))

    # Authors: a few prolific ones, many with one video (Zipf over author ranks).
    author_rank_weights = 1.0 / np.arange(1, profile.n_authors + 1) ** 0.8
    author_rank = rng.choice(profile.n_authors, size=n, p=author_rank_weights / author_rank_weights.sum())
    author_id = rng.permutation(profile.n_authors)[author_rank].astype(np.int32)
    author_effect = preference.author_bias_std * rng.standard_normal(profile.n_authors)

    tag_effect = preference.tag_bias_std * rng.standard_normal(NUM_TAGS)
    quality_z = rng.standard_normal(n)
    bias = (
        preference.duration_effect * log_duration_z
        + tag_weights.astype(np.float64) @ tag_effect
        + author_effect[author_id]
        + preference.video_latent_std * quality_z
    )

    exposure = behaviour.exposure
    rho = exposure.popularity_quality_correlation
    log_popularity = exposure.popularity_log_std * (rho * quality_z + np.sqrt(1 - rho * rho) * rng.standard_normal(n))

    factor_scale = np.sqrt(preference.factor_std / np.sqrt(preference.latent_dim))
    factors = (factor_scale * rng.standard_normal((n, preference.latent_dim))).astype(np.float32)

    # small_matrix videos: popular and short ones are likelier (real small videos are as short as big's views).
    subset_rng = random_stream(seed, STREAM_SUBSETS, 0)
    weights = np.exp(
        exposure.small_video_popularity_exponent * log_popularity
        - exposure.small_video_shortness_weight * log_duration_z
    )
    small_ids = np.sort(
        subset_rng.choice(n, size=profile.n_small_videos, replace=False, p=weights / weights.sum())
    ).astype(np.int32)
    return Videos(duration_ms, tags, tag_weights, author_id, log_popularity, bias, log_duration_z, factors, small_ids)


def _range_label(values: np.ndarray, bounds: tuple[tuple[int, str], ...], top_label: str) -> np.ndarray:
    uppers = np.array([upper for upper, _ in bounds])
    labels = np.array([label for _, label in bounds] + [top_label])
    return labels[np.searchsorted(uppers, values, side="left")]


def _heavy_count(
    rng: np.random.Generator, n: int, zero_share: float, log_median: float, log_std: float, cap: int
) -> np.ndarray:
    counts = np.round(np.exp(log_median + log_std * rng.standard_normal(n))).astype(np.int64)
    counts = np.clip(counts, 1, cap)
    return np.where(rng.random(n) < zero_share, 0, counts)


def build_user_features(n_users: int, seed: int) -> pl.DataFrame:
    """user_features.csv: marginals copied from the real file (degrees, flags, one-hot frequencies, blanks)."""
    rng = random_stream(seed, STREAM_USER_FEATURES)
    columns: dict[str, object] = {"user_id": np.arange(n_users, dtype=np.int32)}
    columns["user_active_degree"] = _draw_from_counts(rng, reference.ACTIVE_DEGREE_COUNTS, n_users)
    for name, ones in reference.BINARY_FLAG_ONE_COUNTS.items():
        columns[name] = _exact_share(rng, n_users, ones / reference.REAL_USER_COUNT).astype(np.int8)

    follow = np.clip(_heavy_count(rng, n_users, 0.002, np.log(33), 1.6, 2100), 0, 2100)
    fans = _heavy_count(rng, n_users, 0.30, np.log(3), 1.2, 11_401)
    friends = _heavy_count(rng, n_users, 0.60, np.log(2), 1.1, 1_425)
    register_days = np.clip(np.round(np.exp(np.log(225) + 0.75 * rng.standard_normal(n_users))), 0, 2245)
    register_days = register_days.astype(np.int64)

    def snapshot(values: np.ndarray) -> np.ndarray:
        # The *_range columns were taken at another time than the numbers: ~15% disagree (as in the real file).
        n = values.shape[0]
        drifted = np.round(values * np.exp(0.6 * rng.standard_normal(n)) + rng.integers(-2, 3, n))
        return np.where(rng.random(n) < 0.15, np.maximum(drifted, 0), values)

    columns["follow_user_num"] = follow.astype(np.int32)
    columns["follow_user_num_range"] = _range_label(
        snapshot(follow), reference.FOLLOW_RANGES, reference.FOLLOW_TOP_LABEL
    )
    columns["fans_user_num"] = fans.astype(np.int32)
    columns["fans_user_num_range"] = _range_label(snapshot(fans), reference.FANS_RANGES, reference.FANS_TOP_LABEL)
    columns["friend_user_num"] = friends.astype(np.int32)
    columns["friend_user_num_range"] = _range_label(
        snapshot(friends), reference.FRIEND_RANGES, reference.FRIEND_TOP_LABEL
    )
    columns["register_days"] = register_days.astype(np.int32)
    columns["register_days_range"] = _range_label(
        snapshot(register_days), reference.REGISTER_RANGES, reference.REGISTER_TOP_LABEL
    )

    onehots: dict[str, np.ndarray] = {}
    for name in ONEHOT_COLUMNS:
        if name in reference.ONEHOT_VALUE_COUNTS:
            onehots[name] = _draw_from_counts(rng, reference.ONEHOT_VALUE_COUNTS[name], n_users).astype(np.float64)
        else:
            cardinality, exponent = reference.ONEHOT_CARDINALITY_ZIPF[name]
            onehots[name] = _zipf_ids(rng, cardinality, n_users, exponent).astype(np.float64)
    # Blanks exactly where the real file has them: onehot_feat4, and feat12..17 (mostly the same users).
    onehots["onehot_feat4"][_exact_share(rng, n_users, reference.ONEHOT_FEAT4_BLANK_SHARE)] = np.nan
    blank_block = _exact_share(rng, n_users, reference.ONEHOT_12_TO_17_BLANK_SHARE)
    for index in range(12, 18):
        onehots[f"onehot_feat{index}"][blank_block] = np.nan
    onehots["onehot_feat12"][_exact_share(rng, n_users, reference.ONEHOT_12_ONLY_BLANK_SHARE)] = np.nan

    frame = pl.DataFrame(columns)
    return frame.with_columns(
        [pl.Series(name, values, nan_to_null=True).cast(pl.Int32) for name, values in onehots.items()]
    )


# Features whose categories carry a planted effect on eta (the observable user signal).
USER_EFFECT_FEATURES = ("user_active_degree", "onehot_feat1", "onehot_feat2", "onehot_feat9", "onehot_feat10")


def _observed_user_effect(features: pl.DataFrame, rng: np.random.Generator, target_std: float) -> np.ndarray:
    total = np.zeros(features.height)
    for name in USER_EFFECT_FEATURES:
        codes = features[name].cast(pl.String).fill_null("<blank>").to_numpy()
        categories, inverse = np.unique(codes, return_inverse=True)
        total += rng.standard_normal(categories.shape[0])[inverse]
    return target_std * _standardize(total)


def _activity_multipliers(rng: np.random.Generator, n: int, anchors: tuple[tuple[float, float], ...]) -> np.ndarray:
    quantiles = np.array([q for q, _ in anchors])
    values = np.array([v for _, v in anchors])
    # Stratified uniforms: the extremes (min and max user) appear even in small profiles.
    uniforms = (rng.permutation(n) + rng.random(n)) / n
    return np.interp(uniforms, quantiles, values)


def build_users(profile: TwinProfile, behaviour: TwinBehaviour, videos: Videos, seed: int) -> Users:
    rng = random_stream(seed, STREAM_USERS)
    preference, exposure = behaviour.preference, behaviour.exposure
    n = profile.n_users
    features = build_user_features(n, seed)

    bias = _observed_user_effect(
        features, rng, preference.user_observed_std
    ) + preference.user_latent_std * rng.standard_normal(n)
    factor_scale = np.sqrt(preference.factor_std / np.sqrt(preference.latent_dim))
    factors = (factor_scale * rng.standard_normal((n, preference.latent_dim))).astype(np.float32)
    tag_affinity = (preference.tag_affinity_std * rng.standard_normal((n, NUM_TAGS))).astype(np.float32)
    duration_preference = preference.duration_preference_std * rng.standard_normal(n)
    sequence_effect = np.maximum(
        0.0, preference.sequence_effect_mean + preference.sequence_effect_std * rng.standard_normal(n)
    )

    subset_rng = random_stream(seed, STREAM_SUBSETS, 1)
    small_ids = np.sort(subset_rng.choice(n, size=profile.n_small_users, replace=False)).astype(np.int32)

    # Rows per user: the real shape (median, min, max) scaled so the total hits the profile's target.
    non_duplicate_rows = profile.big_rows * (1.0 - exposure.duplicate_share)
    multipliers = _activity_multipliers(rng, n, exposure.activity_quantiles)
    rows_target = multipliers * non_duplicate_rows / multipliers.sum()
    floor = profile.min_rows_per_user * (1.0 - exposure.duplicate_share)
    rows_target = np.maximum(rows_target, floor)
    rows_target = np.round(rows_target * non_duplicate_rows / rows_target.sum()).astype(np.int64)

    # Active window: most users are there from the start to the end of the two months, some join or leave.
    start_day = np.floor(rng.random(n) ** 3 * 25)
    end_day = PERIOD_DAYS - np.floor(rng.random(n) ** 3 * 20)
    window_start_ms = (PERIOD_START_MS + start_day * DAY_MS).astype(np.int64)
    window_end_ms = (PERIOD_START_MS + end_day * DAY_MS).astype(np.int64)

    skewed = rng.random(n) < exposure.skewed_clock_user_share
    skew_days = rng.uniform(-exposure.max_clock_skew_days_before, exposure.max_clock_skew_days_after, n)
    clock_skew_ms = np.where(skewed, np.round(skew_days * DAY_MS), 0).astype(np.int64)

    return Users(
        features,
        bias,
        factors,
        tag_affinity,
        duration_preference,
        sequence_effect,
        rows_target,
        window_start_ms,
        window_end_ms,
        clock_skew_ms,
        small_ids,
    )


def static_eta(
    users: Users, videos: Videos, user_ids: np.ndarray, video_ids: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Static log engagement of every (user in ``user_ids``) x (video in ``video_ids``, default all) pair, and
    its taste part (everything but the user bias): the feed shows users what they like, whatever their mood.

    Returns two float32 arrays of shape (len(user_ids), n_videos); the context offset is added later."""
    columns = slice(None) if video_ids is None else video_ids
    taste = users.factors[user_ids] @ videos.factors[columns].T
    taste += users.tag_affinity[user_ids] @ videos.tag_weights[columns].T
    taste += np.outer(users.duration_preference[user_ids], -videos.log_duration_z[columns]).astype(np.float32)
    taste += videos.bias[columns].astype(np.float32)[None, :]
    eta = taste + users.bias[user_ids].astype(np.float32)[:, None]
    return eta, taste
