"""How the twin compares with the real files: the statistics docs/KUAIREC.md tabulates, and the twin's difficulty.

These read a written twin back (plain polars scans, not the project's loader) and serve its calibration:
``benchmarks/twin_stats.py`` prints them beside ``reference.REFERENCE_STATISTICS``, and the twin's tests bound them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from kuairec_pipeline.dataset.schema import BIG_MATRIX, ITEM_CATEGORIES, SMALL_MATRIX
from kuairec_pipeline.dataset.synthetic import reference
from kuairec_pipeline.dataset.synthetic.generator import TRUTH_FILE, data_dir, truth_dir
from kuairec_pipeline.target import TargetScaler

__all__ = ["MAX_WATCH_RATIO", "oracle_difficulty", "reference_statistics", "small_test_pairs", "twin_statistics"]

MAX_WATCH_RATIO = 3.0  # the pipeline's default outlier filter (docs/DESIGN.md)


def _scan_interactions(path: Path) -> pl.LazyFrame:
    # Read as the schema says (never date/timestamp as float32); blanks in small_matrix become nulls.
    return pl.scan_csv(
        path,
        schema_overrides={"date": pl.Float64, "timestamp": pl.Float64, "watch_ratio": pl.Float64, "time": pl.String},
    )


def small_test_pairs(out_dir: str | Path) -> pl.DataFrame:
    """small_matrix as the evaluation sees it: one row per (user_id, video_id) with its mean watch ratio.

    Parameters
    ----------
    out_dir : str or Path
        A twin's root folder (as written by ``generate_twin``).

    Returns
    -------
    pl.DataFrame
        Columns ``user_id``, ``video_id``, ``watch_ratio`` (f64, the mean over the pair's rows), in no set order.
    """
    return (
        _scan_interactions(data_dir(out_dir) / SMALL_MATRIX.file_name)
        .group_by("user_id", "video_id")
        .agg(pl.col("watch_ratio").mean())
        .collect()
    )


def oracle_difficulty(out_dir: str | Path, max_watch_ratio: float = MAX_WATCH_RATIO) -> dict[str, float]:
    """How hard the twin is: RMSE of the planted oracle over RMSE of the global mean, on the normalized target.

    train = big_matrix rows with watch_ratio <= ``max_watch_ratio``; the target is their min-max scaling
    (the pipeline's ``TargetScaler``: clip((wr - min) / (max - min), 0, 1), min and max of the train rows);
    test = small_matrix pairs (mean watch ratio over a pair's rows) with mean <= ``max_watch_ratio``;
    oracle = the scaled ``expected_watch_ratio_le3``; global mean = mean of the training targets.
    Real models beat a constant by 7-16% (KuaiRec, Gao et al., CIKM 2022), so the twin aims at 0.75-0.85.

    Parameters
    ----------
    out_dir : str or Path
        A twin's root folder (as written by ``generate_twin``), truth included.
    max_watch_ratio : float
        The outlier filter applied to train rows and test pairs (watch ratio, a multiple of the video's length).

    Returns
    -------
    dict[str, float]
        ``ratio`` (rmse_oracle / rmse_global_mean), ``rmse_oracle``, ``rmse_global_mean`` (in target units, [0, 1]),
        ``train_rows``, ``test_pairs``, ``scaler_minimum``, ``scaler_maximum`` (watch ratios).

    Raises
    ------
    ValueError
        If no train row passes the filter, or all of them have the same watch ratio (no scaling range).
    """
    train = (
        _scan_interactions(data_dir(out_dir) / BIG_MATRIX.file_name)
        .select("watch_ratio")
        .filter(pl.col("watch_ratio") <= max_watch_ratio)
        .collect()["watch_ratio"]
        .to_numpy()
    )
    if train.size == 0:
        raise ValueError(f"no big_matrix row with watch_ratio <= {max_watch_ratio} to fit the target scaling on")
    scaler = TargetScaler(float(train.min()), float(train.max()))  # the pipeline's own target scaling
    minimum, maximum = scaler.minimum, scaler.maximum
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
        "scaler_minimum": minimum,
        "scaler_maximum": maximum,
    }


def _watch_ratio_statistics(lazy: pl.LazyFrame) -> dict[str, float]:
    wr = pl.col("watch_ratio")
    row = (
        lazy.select(
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
            (
                pl.struct("user_id", "video_id").n_unique()
                / (pl.col("user_id").n_unique() * pl.col("video_id").n_unique())
            ).alias("pair_density"),
        )
        .collect()
        .row(0, named=True)
    )
    return {key: float(value) for key, value in row.items()}


def twin_statistics(out_dir: str | Path) -> dict[str, dict[str, float]]:
    """The statistics docs/KUAIREC.md tabulates for the real files, measured on the twin.

    Parameters
    ----------
    out_dir : str or Path
        A twin's root folder (as written by ``generate_twin``).

    Returns
    -------
    dict[str, dict[str, float]]
        ``big_matrix`` and ``small_matrix`` (keys as in ``reference.REFERENCE_STATISTICS``), ``item_categories``
        (share of videos with 1..4 tags) and ``difficulty`` (:func:`oracle_difficulty`).
    """
    files = data_dir(out_dir)
    big = _scan_interactions(files / BIG_MATRIX.file_name)
    small = _scan_interactions(files / SMALL_MATRIX.file_name)
    big_stats = _watch_ratio_statistics(big)
    small_stats = _watch_ratio_statistics(small)

    distinct_rows = big.unique().select(pl.len()).collect().item()
    big_stats["duplicate_share"] = 1.0 - distinct_rows / big_stats["rows"]
    per_user = big.group_by("user_id").agg(pl.len().alias("rows"), pl.col("watch_ratio").mean().alias("mean"))
    user_row = (
        per_user.select(
            pl.col("rows").median().alias("rows_per_user_median"),
            pl.col("rows").min().alias("rows_per_user_min"),
            pl.col("rows").max().alias("rows_per_user_max"),
            pl.col("mean").mean().alias("user_mean_ratio_mean"),
            pl.col("mean").std().alias("user_mean_ratio_std"),
        )
        .collect()
        .row(0, named=True)
    )
    big_stats.update({key: float(value) for key, value in user_row.items()})
    per_video = big.unique().group_by("video_id").agg(pl.len().alias("rows"))
    video_row = (
        per_video.select(
            pl.col("rows").median().alias("rows_per_video_median"),
            pl.col("rows").max().alias("rows_per_video_max"),
        )
        .collect()
        .row(0, named=True)
    )
    big_stats.update({key: float(value) for key, value in video_row.items()})

    tags = pl.read_csv(files / ITEM_CATEGORIES.file_name)["feat"].str.count_matches(",") + 1
    tag_shares = {f"tags_per_video_{k}": float((tags == k).mean()) for k in range(1, 5)}
    return {
        "big_matrix": big_stats,
        "small_matrix": small_stats,
        "item_categories": tag_shares,
        "difficulty": oracle_difficulty(out_dir),
    }


def reference_statistics() -> dict[str, dict[str, float]]:
    """docs/KUAIREC.md's numbers for the real files, in the layout of :func:`twin_statistics` (no ``difficulty``).

    Returns
    -------
    dict[str, dict[str, float]]
        ``big_matrix``, ``small_matrix`` and ``item_categories``, copied from ``reference``.
    """
    return {
        "big_matrix": dict(reference.REFERENCE_STATISTICS["big_matrix"]),
        "small_matrix": dict(reference.REFERENCE_STATISTICS["small_matrix"]),
        "item_categories": {f"tags_per_video_{k}": v for k, v in reference.REFERENCE_TAGS_PER_VIDEO_SHARE.items()},
    }
