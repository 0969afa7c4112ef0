"""End to end for ``benchmarks/spark_als.py``: big_matrix.csv to ALS factors, ours against pandas + Spark.

- ours:  the pipeline's loader (``convert_interactions``: parse + validate + write Parquet), the pipeline's
  ``prepare_filtered_ratios`` (duplicates, outliers, the 7-day validation cut, min-max target), the pair
  aggregation and confidences of ``ALSRecommender.fit``, then implicit's ALS: one child process.
- pandas + Spark: ``pandas.read_csv`` + ``to_parquet`` (one child process), then one child that starts a
  ``local[N]`` SparkSession, reads that Parquet, does the same preparation in Spark SQL (exact duplicates dropped,
  training window, ``watch_ratio <= 3``, min-max target, mean per pair), caches and counts it, and fits Spark
  MLlib ALS on it.

Each child is a fresh interpreter (its imports are in its time, for both sides). Peak memory: the child's resident
memory summed with its descendants' (the Spark child's JVM), sampled every 20 ms (``_spark.TreeMemorySampler``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from _spark import TreeMemorySampler

SCRIPT = Path(__file__).resolve().parent / "spark_als.py"
REPO = SCRIPT.parent.parent


@dataclass(frozen=True)
class EndToEndSettings:
    """What every end-to-end child needs, passed as JSON on its command line."""

    csv: str  # big_matrix.csv
    work: str  # folder for the Parquet files
    factors: int
    iterations: int
    regularization: float  # implicit's
    reg_param: float  # Spark's (see _als_matrix.spark_reg_param)
    alpha: float
    threads: int
    seed: int
    driver_memory: str
    spark_blocks: int
    shuffle_partitions: int


def _child_ours(settings: EndToEndSettings) -> dict[str, object]:
    from kuairec_pipeline.models.threads import limited_blas_threads

    phases: dict[str, float] = {}
    started = time.perf_counter()
    import polars as pl
    from implicit.cpu.als import AlternatingLeastSquares

    from kuairec_pipeline.dataset.loader import convert_interactions
    from kuairec_pipeline.dataset.schema import BIG_MATRIX
    from kuairec_pipeline.features.ratios import prepare_filtered_ratios
    from kuairec_pipeline.models.als import confidence_matrix
    from kuairec_pipeline.models.biases import aggregate_pairs
    from kuairec_pipeline.models.data import Interactions
    from kuairec_pipeline.target import SPLIT_TRAIN

    phases["imports"] = time.perf_counter() - started
    parquet = Path(settings.work) / "ours_big_matrix.parquet"
    mark = time.perf_counter()
    report = convert_interactions(settings.csv, parquet, BIG_MATRIX)
    phases["ingest"] = time.perf_counter() - mark
    mark = time.perf_counter()
    raw = pl.scan_parquet(parquet)
    # No small_matrix here (Spark's side has none either): an empty frame of the same schema.
    table, _ = prepare_filtered_ratios(raw, raw.head(0))
    train = Interactions.from_frame(table.filter(pl.col("split") == SPLIT_TRAIN))
    n_users, n_videos = int(table["user_id"].max()) + 1, int(table["video_id"].max()) + 1
    pairs = aggregate_pairs(train, n_users, n_videos)
    confidences = confidence_matrix(pairs, settings.alpha, n_videos)
    del table, train
    phases["prepare"] = time.perf_counter() - mark
    mark = time.perf_counter()
    with limited_blas_threads(1):
        model = AlternatingLeastSquares(
            factors=settings.factors,
            regularization=settings.regularization,
            alpha=1.0,
            dtype="float32",
            use_cg=True,
            iterations=settings.iterations,
            num_threads=settings.threads,
            random_state=settings.seed,
        )
        model.fit(confidences, show_progress=False)
    phases["fit"] = time.perf_counter() - mark
    parquet.unlink()
    return {"phases": phases, "rows": report.rows_kept, "pairs": int(confidences.nnz)}


def _child_pandas(settings: EndToEndSettings) -> dict[str, object]:
    started = time.perf_counter()
    import pandas as pd

    phases = {"imports": time.perf_counter() - started}
    mark = time.perf_counter()
    frame = pd.read_csv(settings.csv)
    frame.to_parquet(Path(settings.work) / "pandas_big_matrix.parquet")
    phases["ingest"] = time.perf_counter() - mark
    return {"phases": phases, "rows": len(frame)}


def _child_spark(settings: EndToEndSettings) -> dict[str, object]:
    started = time.perf_counter()
    from _als_matrix import ZERO_RATING_FLOOR
    from _spark import SparkALSSettings, fit_als, start_session
    from pyspark.sql import functions as F

    from kuairec_pipeline.features.ratios import DUPLICATE_KEY_COLUMNS, SECONDS_PER_DAY, RatioConfig

    phases = {"imports": time.perf_counter() - started}
    mark = time.perf_counter()
    session = start_session(settings.threads, settings.driver_memory, settings.shuffle_partitions)
    phases["session"] = time.perf_counter() - mark
    mark = time.perf_counter()
    config = RatioConfig()
    rows = session.read.parquet(str(Path(settings.work) / "pandas_big_matrix.parquet"))
    rows = rows.select(*DUPLICATE_KEY_COLUMNS).dropDuplicates().cache()
    cutoff = rows.agg(F.max("timestamp")).first()[0] - config.validation_days * SECONDS_PER_DAY
    timestamp = F.col("timestamp")
    train = rows.where((timestamp <= cutoff) | timestamp.isNull()).where(F.col("watch_ratio") <= config.max_watch_ratio)
    low, high = train.agg(F.min("watch_ratio"), F.max("watch_ratio")).first()
    target = F.least(F.greatest((F.col("watch_ratio") - low) / (high - low), F.lit(0.0)), F.lit(1.0))
    ratings = (
        train.groupBy(F.col("user_id").cast("int").alias("user"), F.col("video_id").cast("int").alias("item"))
        .agg(F.avg(target).alias("rating"))
        .withColumn("rating", F.greatest(F.col("rating"), F.lit(ZERO_RATING_FLOOR)).cast("float"))
        .cache()
    )
    pairs = ratings.count()
    rows.unpersist()
    phases["prepare"] = time.perf_counter() - mark
    mark = time.perf_counter()
    fit_als(
        ratings,
        SparkALSSettings(
            settings.factors,
            settings.iterations,
            settings.reg_param,
            settings.alpha,
            settings.seed,
            settings.spark_blocks,
        ),
    )
    phases["fit"] = time.perf_counter() - mark
    session.stop()
    return {"phases": phases, "pairs": int(pairs)}


CHILDREN = {"ours": _child_ours, "pandas": _child_pandas, "spark": _child_spark}


def run_child(method: str, settings_json: str) -> None:
    """Run one side inside this (child) process and print its figures as one JSON line."""
    result = CHILDREN[method](EndToEndSettings(**json.loads(settings_json)))
    print(json.dumps(result))


def _measure(method: str, settings: EndToEndSettings) -> dict[str, object]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), str(SCRIPT.parent), env.get("PYTHONPATH")]))
    command = [sys.executable, str(SCRIPT), "--child", method, "--child-settings", json.dumps(asdict(settings))]
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE)
    # wait4: the cpu time of exactly this child (RUSAGE_CHILDREN would mix every child of this process).
    with TreeMemorySampler(child.pid) as sampler:
        _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    output = child.stdout.read().decode() if child.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"end-to-end child {method} failed with exit code {os.waitstatus_to_exitcode(status)}")
    result = json.loads(output.strip().splitlines()[-1])
    result["wall_s"] = wall
    result["cpu_s"] = usage.ru_utime + usage.ru_stime  # the child and its waited-for children (not a live JVM)
    result["peak_rss_bytes"] = sampler.peak_bytes
    result["peak_rss_by_process"] = sampler.peak_by_name
    return result


def end_to_end(settings: EndToEndSettings) -> dict[str, object]:
    """Run ours, then pandas, then Spark on the pandas Parquet; print and return their figures.

    Returns
    -------
    dict with ``ours``, ``pandas``, ``spark`` (each: wall_s, peak_rss_bytes, phases) and the ratios.
    """
    Path(settings.work).mkdir(parents=True, exist_ok=True)
    ours = _measure("ours", settings)
    pandas = _measure("pandas", settings)
    try:
        spark = _measure("spark", settings)
    finally:
        (Path(settings.work) / "pandas_big_matrix.parquet").unlink(missing_ok=True)
    if ours["pairs"] != spark["pairs"]:
        raise RuntimeError(f"end to end: ours trained on {ours['pairs']} pairs, Spark on {spark['pairs']}")
    theirs_wall = pandas["wall_s"] + spark["wall_s"]
    theirs_peak = max(pandas["peak_rss_bytes"], spark["peak_rss_bytes"])
    result = {
        "ours": ours,
        "pandas": pandas,
        "spark": spark,
        "wall_ratio": theirs_wall / ours["wall_s"],
        "ingest_ratio": pandas["phases"]["ingest"] / ours["phases"]["ingest"],
        "memory_share": ours["peak_rss_bytes"] / theirs_peak,
    }
    mib = 2**20
    print("\nend to end, big_matrix.csv -> ALS factors (each side in fresh child processes):")
    for name, side in (("ours", ours), ("pandas", pandas), ("spark", spark)):
        phases = ", ".join(f"{key} {value:.1f} s" for key, value in side["phases"].items())
        print(f"  {name:7s} {side['wall_s']:7.1f} s wall, peak {side['peak_rss_bytes'] / mib:7.0f} MiB   ({phases})")
    print(
        f"  pandas + Spark / ours: {result['wall_ratio']:.1f}x the wall time "
        f"({theirs_wall:.1f} s vs {ours['wall_s']:.1f} s); ingest alone {result['ingest_ratio']:.2f}x; "
        f"ours at {result['memory_share']:.0%} of their larger peak"
    )
    return result
