"""The synthetic twin of KuaiRec 2.0: the pipeline's default data source.

``generate_twin(out_dir, profile, seed)`` writes the official file set, with the official names, headers,
column order, formats and traps (docs/KUAIREC.md), into ``out_dir/KuaiRec 2.0/data/``, and the planted truth into
``out_dir/_truth/``:
- ``expected_small.parquet``: for every distinct small_matrix (user_id, video_id) pair, the exact
  ``expected_watch_ratio`` (E[wr]), ``expected_watch_ratio_le3`` (E[wr | wr <= 3]) and ``prob_watch_ratio_gt2``
  (P(wr > 2)) under the generating model, averaged over the pair's rows;
- ``params.json``: profile, seed, sizes, generator version and every behaviour parameter. It is written last:
  its presence marks a complete twin.

How the data are made (details in the synthetic_* modules):
- a view's log engagement ``eta`` = user part (observable one-hots + latent bias) + video part (duration:
  shorter is better, tags, author, latent quality) + taste (latent factors, user x tag affinity, user x
  duration) + a sequential part (the tags of the user's last few views shift the next one);
- exposure in big_matrix follows popularity (long tail) and taste; small_matrix is a dense block whose pairs
  were removed from big_matrix;
- the watch ratio is drawn from a zero / swipe / engaged / replay mixture (heavy tail up to hundreds), whose
  moments have closed forms, so the truth is exact.

Everything is a pure function of (profile, seed): the same seed gives byte-identical files. The folder appears
atomically (built beside ``out_dir`` and renamed into place), so an interrupted run never leaves half a twin.
Credit: KuaiRec, Gao et al., CIKM 2022 (CC BY-SA 4.0); only the schema and summary statistics are borrowed.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import polars as pl

from kuairec_pipeline.atomic import atomic_path
from kuairec_pipeline.dataset import synthetic_reference as reference
from kuairec_pipeline.dataset.schema import (
    ALL_FILES,
    BIG_MATRIX,
    CAPTION_CATEGORY,
    ITEM_CATEGORIES,
    ITEM_DAILY_FEATURES,
    SMALL_MATRIX,
    SOCIAL_NETWORK,
    USER_FEATURES,
)
from kuairec_pipeline.dataset.synthetic_config import (
    DEFAULT_BEHAVIOUR,
    GENERATOR_VERSION,
    PROFILES,
    TwinBehaviour,
    TwinProfile,
)
from kuairec_pipeline.dataset.synthetic_entities import build_users, build_videos
from kuairec_pipeline.dataset.synthetic_interactions import write_interactions
from kuairec_pipeline.dataset.synthetic_side_files import (
    write_caption_category,
    write_item_categories,
    write_item_daily_features,
    write_social_network,
    write_user_features,
)
from kuairec_pipeline.features.scaling import TargetScaler
from kuairec_pipeline.settings import DEFAULT_SEED

__all__ = [
    "DATA_SUBDIR", "GENERATOR_VERSION", "PARAMS_FILE", "PROFILES", "TRUTH_DIR", "TRUTH_FILE", "TwinBehaviour",
    "TwinProfile", "data_dir", "generate_twin", "oracle_difficulty", "read_params", "truth_dir",
    "twin_is_complete", "twin_statistics",
]

DATA_SUBDIR = Path("KuaiRec 2.0") / "data"  # the archive's own layout, space included
TRUTH_DIR = "_truth"
TRUTH_FILE = "expected_small.parquet"
PARAMS_FILE = "params.json"
MAX_WATCH_RATIO = 3.0  # the pipeline's default outlier filter (docs/DESIGN.md)
CREDIT = ("Synthetic twin of KuaiRec 2.0 (Gao et al., CIKM 2022, CC BY-SA 4.0): the official schema and "
          "published statistics, synthetic rows.")


def data_dir(out_dir: str | Path) -> Path:
    return Path(out_dir) / DATA_SUBDIR


def truth_dir(out_dir: str | Path) -> Path:
    return Path(out_dir) / TRUTH_DIR


def read_params(out_dir: str | Path) -> dict | None:
    """The twin's params.json, or None when there is no complete twin in ``out_dir``."""
    path = truth_dir(out_dir) / PARAMS_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def twin_is_complete(out_dir: str | Path, profile: str, seed: int) -> bool:
    """True when ``out_dir`` holds a finished twin of this profile, seed and generator version."""
    params = read_params(out_dir)
    if params is None:
        return False
    if (params.get("profile"), params.get("seed"), params.get("generator_version")) != (
            profile, seed, GENERATOR_VERSION):
        return False
    files = [data_dir(out_dir) / spec.file_name for spec in ALL_FILES] + [truth_dir(out_dir) / TRUTH_FILE]
    return all(path.is_file() for path in files)


def generate_twin(out_dir: Path, profile: str = "demo", seed: int = DEFAULT_SEED) -> Path:
    """Write the twin of ``profile`` for ``seed`` into ``out_dir`` (unless a complete one is already there) and
    return ``out_dir``. ``out_dir`` belongs to the twin: an incomplete or different twin there is replaced."""
    if profile not in PROFILES:
        raise ValueError(f"unknown twin profile {profile!r}; choose one of {', '.join(PROFILES)}")
    out_dir = Path(out_dir)
    if twin_is_complete(out_dir, profile, seed):
        return out_dir
    with atomic_path(out_dir) as building:
        building.mkdir(parents=True)
        _write_twin(building, PROFILES[profile], seed, DEFAULT_BEHAVIOUR)
    return out_dir


def _write_twin(root: Path, profile: TwinProfile, seed: int, behaviour: TwinBehaviour) -> None:
    files = data_dir(root)
    files.mkdir(parents=True)
    videos = build_videos(profile, behaviour, seed)
    users = build_users(profile, behaviour, videos, seed)

    write_user_features(users, files / USER_FEATURES.file_name)
    write_item_categories(videos, files / ITEM_CATEGORIES.file_name)
    write_item_daily_features(videos, seed, files / ITEM_DAILY_FEATURES.file_name)
    write_social_network(users, profile.n_social_users, seed, files / SOCIAL_NETWORK.file_name)
    write_caption_category(videos, seed, files / CAPTION_CATEGORY.file_name)
    with (open(files / BIG_MATRIX.file_name, "wb") as big_file,
          open(files / SMALL_MATRIX.file_name, "wb") as small_file):
        truth, summary = write_interactions(users, videos, profile, behaviour, seed, big_file, small_file)

    truth_folder = truth_dir(root)
    truth_folder.mkdir()
    truth.write_parquet(truth_folder / TRUTH_FILE)
    params = {
        "generator_version": GENERATOR_VERSION,
        "profile": profile.name,
        "seed": seed,
        "sizes": {
            "n_users": profile.n_users,
            "n_videos": profile.n_videos,
            "n_small_users": profile.n_small_users,
            "n_small_videos": profile.n_small_videos,
            "big_rows": summary["big_rows"],
            "small_rows": summary["small_rows"],
            "small_pairs": truth.height,
        },
        "calibration": {key: summary[key] for key in
                        ("eta_offset_big", "eta_offset_small", "mean_eta_big", "mean_eta_small")},
        "profile_definition": asdict(profile),
        "behaviour": behaviour.as_dict(),
        "credit": CREDIT,
    }
    # Written last: its presence is what marks the twin complete.
    (truth_folder / PARAMS_FILE).write_text(json.dumps(params, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _scan_interactions(path: Path) -> pl.LazyFrame:
    # Read as the schema says (never date/timestamp as float32); blanks in small_matrix become nulls.
    return pl.scan_csv(path, schema_overrides={"date": pl.Float64, "timestamp": pl.Float64,
                                               "watch_ratio": pl.Float64, "time": pl.String})


def small_test_pairs(out_dir: str | Path) -> pl.DataFrame:
    """small_matrix as the evaluation sees it: one row per (user_id, video_id), its mean watch ratio."""
    return (
        _scan_interactions(data_dir(out_dir) / SMALL_MATRIX.file_name)
        .group_by("user_id", "video_id")
        .agg(pl.col("watch_ratio").mean())
        .collect()
    )


def oracle_difficulty(out_dir: str | Path, max_watch_ratio: float = MAX_WATCH_RATIO) -> dict[str, float]:
    """How hard the twin is: RMSE of the planted oracle over RMSE of the global mean, on the normalized target.

    train = big_matrix rows with watch_ratio <= 3; scaler = TargetScaler fitted on them; test = small_matrix
    pairs (mean watch ratio over a pair's rows) with mean <= 3; target = scaler.transform(watch ratio);
    oracle = scaler.transform(expected_watch_ratio_le3); global mean = mean of the training targets.
    Real models beat a constant by 7-16%, so the twin aims at a ratio of 0.75-0.85."""
    train = (
        _scan_interactions(data_dir(out_dir) / BIG_MATRIX.file_name)
        .select("watch_ratio")
        .filter(pl.col("watch_ratio") <= max_watch_ratio)
        .collect()["watch_ratio"]
        .to_numpy()
    )
    scaler = TargetScaler.fit(train)
    global_mean = float(scaler.transform(train).mean())
    truth = pl.read_parquet(truth_dir(out_dir) / TRUTH_FILE)
    test = (
        small_test_pairs(out_dir)
        .filter(pl.col("watch_ratio") <= max_watch_ratio)
        .join(truth, on=["user_id", "video_id"], how="inner")
    )
    target = scaler.transform(test["watch_ratio"].to_numpy())
    oracle = scaler.transform(test["expected_watch_ratio_le3"].to_numpy())
    rmse_oracle = float(np.sqrt(np.mean((target - oracle) ** 2)))
    rmse_global_mean = float(np.sqrt(np.mean((target - global_mean) ** 2)))
    return {
        "ratio": rmse_oracle / rmse_global_mean,
        "rmse_oracle": rmse_oracle,
        "rmse_global_mean": rmse_global_mean,
        "train_rows": float(train.shape[0]),
        "test_pairs": float(test.height),
        "scaler_minimum": scaler.minimum,
        "scaler_maximum": scaler.maximum,
    }


def _watch_ratio_statistics(lazy: pl.LazyFrame) -> dict[str, float]:
    wr = pl.col("watch_ratio")
    row = lazy.select(
        pl.len().alias("rows"),
        wr.mean().alias("watch_ratio_mean"),
        wr.median().alias("watch_ratio_median"),
        wr.quantile(0.25, interpolation="linear").alias("watch_ratio_q25"),
        wr.quantile(0.75, interpolation="linear").alias("watch_ratio_q75"),
        (wr >= 1.0).mean().alias("share_ge_1"),
        (wr > 3.0).mean().alias("share_gt_3"),
        (wr > 5.0).mean().alias("share_gt_5"),
        (wr == 0.0).mean().alias("share_zero"),
        wr.max().alias("watch_ratio_max"),
        pl.col("video_duration").median().alias("video_duration_median_ms"),
        pl.col("video_duration").mean().alias("video_duration_mean_ms"),
        pl.corr(pl.col("video_duration").log(), wr.clip(0.0, 5.0)).alias("duration_ratio_correlation"),
        pl.col("time").is_null().mean().alias("empty_time_share"),
        (pl.struct("user_id", "video_id").n_unique()
         / (pl.col("user_id").n_unique() * pl.col("video_id").n_unique())).alias("pair_density"),
    ).collect().row(0, named=True)
    return {key: float(value) for key, value in row.items()}


def twin_statistics(out_dir: str | Path) -> dict[str, dict[str, float]]:
    """The statistics docs/KUAIREC.md tabulates for the real files, measured on the twin (keys as in
    ``synthetic_reference.REFERENCE_STATISTICS``), plus tags per video and the difficulty."""
    files = data_dir(out_dir)
    big = _scan_interactions(files / BIG_MATRIX.file_name)
    small = _scan_interactions(files / SMALL_MATRIX.file_name)
    big_stats = _watch_ratio_statistics(big)
    small_stats = _watch_ratio_statistics(small)

    distinct_rows = big.unique().select(pl.len()).collect().item()
    big_stats["duplicate_share"] = 1.0 - distinct_rows / big_stats["rows"]
    per_user = big.group_by("user_id").agg(pl.len().alias("rows"), pl.col("watch_ratio").mean().alias("mean"))
    user_row = per_user.select(
        pl.col("rows").median().alias("rows_per_user_median"),
        pl.col("rows").min().alias("rows_per_user_min"),
        pl.col("rows").max().alias("rows_per_user_max"),
        pl.col("mean").mean().alias("user_mean_ratio_mean"),
        pl.col("mean").std().alias("user_mean_ratio_std"),
    ).collect().row(0, named=True)
    big_stats.update({key: float(value) for key, value in user_row.items()})
    per_video = big.unique().group_by("video_id").agg(pl.len().alias("rows"))
    video_row = per_video.select(
        pl.col("rows").median().alias("rows_per_video_median"),
        pl.col("rows").max().alias("rows_per_video_max"),
    ).collect().row(0, named=True)
    big_stats.update({key: float(value) for key, value in video_row.items()})

    tags = pl.read_csv(files / ITEM_CATEGORIES.file_name)["feat"].str.count_matches(",") + 1
    tag_shares = {f"tags_per_video_{k}": float((tags == k).mean()) for k in range(1, 5)}
    return {"big_matrix": big_stats, "small_matrix": small_stats, "item_categories": tag_shares,
            "difficulty": oracle_difficulty(out_dir)}


def reference_statistics() -> dict[str, dict[str, float]]:
    """docs/KUAIREC.md's numbers for the real files, in the same layout as ``twin_statistics``."""
    return {
        "big_matrix": dict(reference.REFERENCE_STATISTICS["big_matrix"]),
        "small_matrix": dict(reference.REFERENCE_STATISTICS["small_matrix"]),
        "item_categories": {f"tags_per_video_{k}": v for k, v in reference.REFERENCE_TAGS_PER_VIDEO_SHARE.items()},
    }
