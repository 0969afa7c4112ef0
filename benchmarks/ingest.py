"""Ingest benchmark: big_matrix.csv -> typed Parquet, our loader against the naive pandas way.

- ours:   ``kuairec_pipeline.dataset.loader.convert_interactions`` (validated, streamed, atomic write)
- pandas: ``pandas.read_csv(path)`` with default dtypes, then ``.to_parquet()``

Each method runs in a child process of its own, so the peak resident memory reported is that method's alone (the
rusage of exactly that child, from ``os.wait4``); the child's interpreter and imports are included, for both.
The CSV is read once beforehand so that both methods find it in the page cache.

The data: the full-profile synthetic twin's big_matrix.csv (12.5 M rows, about 1 GB; generated into --data on
the first run, 2-3 minutes, then reused), or any big_matrix-shaped CSV given with --csv.

    python benchmarks/ingest.py                      # full twin, the real scale
    python benchmarks/ingest.py --profile demo       # a quick run on a smaller twin
    python benchmarks/ingest.py --csv path/to/big_matrix.csv --results benchmarks/results/ingest.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET_SPEEDUP = 3.0  # ours at least this many times faster than pandas (wall time)
TARGET_MEMORY_SHARE = 1 / 3  # ours at most this share of pandas' peak memory
TARGET_PEAK_BYTES = 2**30  # and under 1 GiB in absolute terms


@dataclass(frozen=True)
class BenchConfig:
    data: Path = REPO / "data" / "benchmarks" / "ingest-twin"  # folder of the twin (generated once, then reused)
    profile: str = "full"  # twin size: full (real scale), demo or tiny (quick runs, not the reported figures)
    seed: int = 20220705  # twin seed
    csv: Path | None = None  # benchmark this big_matrix-shaped CSV instead of a twin
    threads: int | None = None  # POLARS_MAX_THREADS for ours; None: polars' default (all cores)
    repeat: int = 1  # runs per method; the fastest run is reported
    work: Path = REPO / "data" / "benchmarks" / "ingest-out"  # where the Parquet outputs go (deleted after)
    results: Path | None = None  # also write the figures as JSON here


@dataclass(frozen=True)
class Measurement:
    method: str
    wall_s: float
    cpu_s: float  # user + system time of the child, all its threads
    peak_rss_bytes: int
    rows: int
    parquet_bytes: int


def _child(method: str, csv_path: Path, out_path: Path) -> None:
    """The measured work, run inside the child process."""
    if method == "ours":
        from kuairec_pipeline.dataset.loader import convert_interactions
        from kuairec_pipeline.dataset.schema import BIG_MATRIX

        rows = convert_interactions(csv_path, out_path, BIG_MATRIX).rows_kept
    elif method == "pandas":
        import pandas as pd

        frame = pd.read_csv(csv_path)
        frame.to_parquet(out_path)
        rows = len(frame)
    else:
        raise ValueError(f"unknown method {method!r}")
    print(json.dumps({"rows": rows}))


def _measure(method: str, csv_path: Path, out_path: Path, threads: int | None) -> Measurement:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    if threads is not None and method == "ours":
        env["POLARS_MAX_THREADS"] = str(threads)
    command = [sys.executable, __file__, "--child", method, "--csv", str(csv_path), "--out", str(out_path)]
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE)
    # wait4 gives the resource usage of exactly this child (RUSAGE_CHILDREN would mix all children together).
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    output = child.stdout.read().decode() if child.stdout else ""
    if child.returncode != 0:
        raise RuntimeError(f"{method} failed with exit code {child.returncode}")
    rows = json.loads(output.strip().splitlines()[-1])["rows"]
    return Measurement(
        method=method,
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        peak_rss_bytes=usage.ru_maxrss * 1024,  # Linux reports kilobytes
        rows=rows,
        parquet_bytes=out_path.stat().st_size,
    )


def _big_matrix(config: BenchConfig) -> Path:
    if config.csv is not None:
        return config.csv
    from kuairec_pipeline.dataset.loader import find_kuairec_files
    from kuairec_pipeline.dataset.synthetic import generate_twin

    folder = config.data / f"{config.profile}-seed{config.seed}"
    started = time.perf_counter()
    generate_twin(folder, config.profile, config.seed)  # returns at once when the twin is already complete
    print(f"twin ready in {folder} ({time.perf_counter() - started:.0f} s)")
    return find_kuairec_files(folder).require("big_matrix.csv")


def _warm_page_cache(path: Path) -> None:
    with open(path, "rb") as handle:
        while handle.read(1 << 24):
            pass


def run(config: BenchConfig) -> dict[str, object]:
    csv_path = _big_matrix(config)
    size = csv_path.stat().st_size
    print(f"input: {csv_path} ({size / 2**30:.2f} GiB)")
    config.work.mkdir(parents=True, exist_ok=True)
    _warm_page_cache(csv_path)
    best: dict[str, Measurement] = {}
    for attempt in range(config.repeat):
        for method in ("ours", "pandas"):
            out_path = config.work / f"{method}.parquet"
            measured = _measure(method, csv_path, out_path, config.threads)
            out_path.unlink()
            print(
                f"  run {attempt + 1} {method:6s}: {measured.wall_s:6.2f} s wall, {measured.cpu_s:6.2f} s cpu, "
                f"peak {measured.peak_rss_bytes / 2**20:7.0f} MiB"
            )
            if method not in best or measured.wall_s < best[method].wall_s:
                best[method] = measured
    ours, pandas = best["ours"], best["pandas"]
    if ours.rows != pandas.rows:
        raise RuntimeError(f"row counts differ: ours {ours.rows}, pandas {pandas.rows}")
    speedup = pandas.wall_s / ours.wall_s
    memory_share = ours.peak_rss_bytes / pandas.peak_rss_bytes
    checks = {
        f"ours >= {TARGET_SPEEDUP:g}x faster": speedup >= TARGET_SPEEDUP,
        "ours <= 1/3 of pandas' peak memory": memory_share <= TARGET_MEMORY_SHARE,
        "ours < 1 GiB peak": ours.peak_rss_bytes < TARGET_PEAK_BYTES,
    }
    print()
    print(f"{'method':8s} {'wall s':>8s} {'cpu s':>8s} {'peak MiB':>9s} {'rows':>12s} {'parquet MiB':>12s}")
    for measured in (ours, pandas):
        print(
            f"{measured.method:8s} {measured.wall_s:8.2f} {measured.cpu_s:8.2f} "
            f"{measured.peak_rss_bytes / 2**20:9.0f} {measured.rows:12,d} {measured.parquet_bytes / 2**20:12.0f}"
        )
    print(
        f"pandas / ours: {speedup:.2f}x the wall time, {1 / memory_share:.2f}x the peak memory "
        f"(ours uses {memory_share:.0%} of pandas' peak)"
    )
    for name, passed in checks.items():
        print(f"  {'PASS' if passed else 'FAIL'}  {name}")
    results: dict[str, object] = {
        "input": str(csv_path),
        "input_bytes": size,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "polars_max_threads": config.threads,
        "repeat": config.repeat,
        "ours": dataclasses.asdict(ours),
        "pandas": dataclasses.asdict(pandas),
        "speedup": speedup,
        "memory_share": memory_share,
        "targets_met": checks,
    }
    if config.results is not None:
        config.results.parent.mkdir(parents=True, exist_ok=True)
        config.results.write_text(json.dumps(results, indent=2) + "\n")
    return results


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = BenchConfig()
    parser.add_argument("--data", type=Path, default=defaults.data, help="folder of the twin (reused if complete)")
    parser.add_argument(
        "--profile",
        default=defaults.profile,
        choices=["tiny", "demo", "full"],
        help="twin size; full is the real scale",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="twin seed")
    parser.add_argument("--csv", type=Path, default=None, help="benchmark this big_matrix-shaped CSV instead")
    parser.add_argument("--threads", type=int, default=None, help="POLARS_MAX_THREADS for ours")
    parser.add_argument("--repeat", type=int, default=defaults.repeat, help="runs per method; the fastest counts")
    parser.add_argument("--work", type=Path, default=defaults.work, help="where outputs are written (then deleted)")
    parser.add_argument("--results", type=Path, default=None, help="also write the figures as JSON here")
    parser.add_argument("--child", choices=["ours", "pandas"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if str(REPO) not in sys.path:  # run from a checkout without `pip install -e .`
        sys.path.insert(0, str(REPO))
    if args.child:
        _child(args.child, args.csv, args.out)
        return 0
    config = BenchConfig(
        data=args.data,
        profile=args.profile,
        seed=args.seed,
        csv=args.csv,
        threads=args.threads,
        repeat=args.repeat,
        work=args.work,
        results=args.results,
    )
    results = run(config)
    return 0 if all(results["targets_met"].values()) else 1  # type: ignore[union-attr]


if __name__ == "__main__":
    sys.exit(main())
