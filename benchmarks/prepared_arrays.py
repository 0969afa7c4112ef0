"""Prepared arrays: building them from the three prepared tables (what every model, metrics, recommendations and
hybrid_model asset did before the ``training_arrays`` / ``evaluation_arrays`` assets) against loading them once
stored as ``.npz`` (``models/data_store.py``: what those steps do now).

Per repeat, timed separately (median of --repeats, wall clock, one process, a warm page cache):

- build:       read filtered_ratios / user_features / video_features (Parquet) + ``build_prepared_data``
- fingerprint: ``provenance.frame_fingerprint`` of the three tables (what the array assets add, once per run)
- load:        ``np.load`` of the stored training and evaluation parts + ``prepared_from_arrays``
- load (training only): the training part alone, as a model asset would read it

The one-time cost of writing the two parts (``np.savez``, uncompressed) is reported too. The tables come from an
asset folder of a pipeline run, e.g. demo:

    KUAIREC_PROFILE=demo KUAIREC_HOME=/tmp/bench dagster asset materialize -m kuairec_pipeline.definitions \\
        --select '*filtered_ratios,*user_features,*video_features'
    python benchmarks/prepared_arrays.py --assets /tmp/bench/assets
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from kuairec_pipeline.models.data import build_prepared_data
from kuairec_pipeline.models.data_store import (
    evaluation_to_arrays,
    prepared_from_arrays,
    training_from_arrays,
    training_to_arrays,
)
from kuairec_pipeline.provenance import frame_fingerprint

TABLES = ("filtered_ratios", "user_features", "video_features")


def _read_tables(assets: Path) -> list[pl.DataFrame]:
    return [pl.read_parquet(assets / f"{name}.parquet") for name in TABLES]


def _load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as stored:
        return {key: stored[key] for key in stored.files}


def _timed(function) -> tuple[float, object]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=Path, required=True, help="asset folder holding the three prepared tables")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    times: dict[str, list[float]] = {"build": [], "fingerprint": [], "load": [], "load (training only)": []}
    with tempfile.TemporaryDirectory() as folder:
        training_path, evaluation_path = Path(folder) / "training.npz", Path(folder) / "evaluation.npz"
        tables = _read_tables(args.assets)
        fingerprints = {name: frame_fingerprint(frame) for name, frame in zip(TABLES, tables, strict=True)}
        prepared = build_prepared_data(*tables)
        write_seconds, _ = _timed(
            lambda: (
                np.savez(training_path, **training_to_arrays(prepared.training, fingerprints)),
                np.savez(evaluation_path, **evaluation_to_arrays(prepared.selection, prepared.test, fingerprints)),
            )
        )
        for _ in range(args.repeats):
            seconds, _ = _timed(lambda: build_prepared_data(*_read_tables(args.assets)))
            times["build"].append(seconds)
            frames = _read_tables(args.assets)
            times["fingerprint"].append(_timed(lambda frames=frames: [frame_fingerprint(f) for f in frames])[0])
            times["load"].append(_timed(lambda: prepared_from_arrays(_load(training_path), _load(evaluation_path)))[0])
            times["load (training only)"].append(_timed(lambda: training_from_arrays(_load(training_path)))[0])
        sizes = {path.name: path.stat().st_size / 2**20 for path in (training_path, evaluation_path)}

    data = prepared.training
    print(
        f"{args.assets}: {len(data.train):,} train, {len(data.val):,} val, {len(prepared.selection):,} selection, "
        f"{len(prepared.test):,} test rows; {data.n_users:,} users x {data.n_videos:,} videos"
    )
    print("stored parts: " + ", ".join(f"{name} {size:.1f} MiB" for name, size in sizes.items()))
    print(f"write once (np.savez, both parts): {write_seconds:.3f} s")
    for name, values in times.items():
        print(f"{name:>22}: median {statistics.median(values):.3f} s over {len(values)} (min {min(values):.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
