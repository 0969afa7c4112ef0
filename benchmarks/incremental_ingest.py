"""One-day append against a full re-ingest of big_matrix (issue 10, point 4), measured in one run.

When a new day of logs arrives, the unpartitioned path re-ingests the whole big_matrix.csv (archive plus the new
day); the partitioned path converts only that day's file into its own partition of ``interaction_days``. Both
sides are measured twice:

- ``loader``: the plain functions the assets call (``convert_interactions`` on the whole file, ``convert_daily_log``
  on the day's file): the work itself;
- ``dagster``: one in-process ``materialize`` run of the step (``raw_interactions`` after ``source_files``, or one
  partition of ``interaction_days``) on an ephemeral instance: what a user waits for, Dagster's fixed cost included.

Each measurement runs in a child process of its own (``os.wait4``: wall time, CPU time and peak resident memory of
exactly that child, its interpreter and imports included), the inputs read once beforehand so all find them in the
page cache. The twin is generated and the day cut in a child too: Linux counts the parent's resident memory at the
fork into a child's peak (``ru_maxrss`` survives ``exec``), so the parent stays a bare interpreter. The new day is
the twin's last ``date``: its rows are copied byte for byte from big_matrix.csv into ``big_matrix_YYYY-MM-DD.csv``,
so the full file is exactly "archive + the new day".

    nice -n 5 python benchmarks/incremental_ingest.py --profile demo
    KUAIREC_PROFILE=full nice -n 5 python benchmarks/incremental_ingest.py     # 1 GB twin, generated once (~35 s)

It ends with a markdown block (commit, date, profile, seed, machine load) for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # this checkout's package, also when an installed copy exists elsewhere
    sys.path.insert(0, str(REPO))
METHODS = ("loader_full", "loader_day", "dagster_full", "dagster_day")
PREPARE = "prepare"


@dataclass(frozen=True)
class Measurement:
    method: str
    wall_s: float  # the child process, start to exit (interpreter and imports included)
    call_s: float  # the measured call alone, timed inside the child
    cpu_s: float  # user + system time of the child, all threads
    peak_rss_bytes: int
    rows: int


def _child(method: str, work: Path, twin: Path, day: str) -> None:
    """The measured work, inside the child process; prints the rows written as JSON."""
    from kuairec_pipeline.dataset import loader
    from kuairec_pipeline.dataset.schema import BIG_MATRIX

    big = loader.find_kuairec_files(twin).require(BIG_MATRIX)
    day_log = work / "new_logs" / loader.daily_log_name(day)
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    started = time.perf_counter()
    if method == "loader_full":
        rows = loader.convert_interactions(big, out / "raw_interactions.parquet", BIG_MATRIX).rows_kept
    elif method == "loader_day":
        rows = loader.convert_daily_log(day_log, out / "day.parquet", day).rows_kept
    else:
        from dagster import DagsterInstance, materialize

        from kuairec_pipeline.daily_definitions import build_daily_definitions
        from kuairec_pipeline.definitions import build_definitions
        from kuairec_pipeline.settings import Settings

        settings = Settings(home=out, source=str(twin), new_logs=str(work / "new_logs"))
        if method == "dagster_full":
            defs = build_definitions(settings)
            keys, partition = ["source_files", "raw_interactions"], None
            written = settings.assets_dir / "raw_interactions.parquet"
        else:
            defs = build_daily_definitions(settings)
            keys, partition = ["interaction_days"], day
            written = settings.assets_dir / "interaction_days" / f"day={day}" / "part-0.parquet"
        with DagsterInstance.ephemeral() as instance:
            result = materialize(
                list(defs.assets), resources=defs.resources, selection=keys, partition_key=partition, instance=instance
            )
        if not result.success:
            raise RuntimeError(f"{method}: the run failed")
        import polars as pl

        rows = pl.scan_parquet(written).select(pl.len()).collect().item()
    print(json.dumps({"rows": rows, "call_s": time.perf_counter() - started}))


def _measure(method: str, work: Path, twin: Path, day: str) -> Measurement:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    command = [sys.executable, __file__, "--child", method, "--work", str(work), "--twin", str(twin), "--day", day]
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    output = child.stdout.read().decode() if child.stdout else ""  # read before wait4: a full pipe would block
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{method} failed (exit {os.waitstatus_to_exitcode(status)}); rerun the child to see why")
    reported = json.loads(output.strip().splitlines()[-1])
    return Measurement(
        method, wall, reported["call_s"], usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024, reported["rows"]
    )


def _prepare(profile: str, seed: int, data: Path, work: Path) -> tuple[Path, str, int, int]:
    """The twin (generated once), the new day's log cut from it, in a child process (the parent stays small);
    returns (twin folder, day, day rows, days)."""
    command = [sys.executable, __file__, "--child", PREPARE, "--profile", profile, "--seed", str(seed)]
    command += ["--data", str(data), "--work", str(work)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    print(output.strip().splitlines()[0], flush=True)
    found = json.loads(output.strip().splitlines()[-1])
    return Path(found["twin"]), found["day"], found["day_rows"], found["days"]


def _prepare_child(profile: str, seed: int, data: Path, work: Path) -> None:
    """Inside the child: generate the twin unless complete, write the last day's log; print what was found."""
    from kuairec_pipeline.dataset import loader
    from kuairec_pipeline.dataset.synthetic import generate_twin

    twin = data / f"{profile}-seed{seed}"
    started = time.perf_counter()
    generate_twin(twin, profile, seed)  # returns at once when the twin is already complete
    print(f"twin ready in {twin} ({time.perf_counter() - started:.0f} s)", flush=True)
    big = loader.find_kuairec_files(twin).require("big_matrix.csv")
    counts: dict[bytes, int] = {}
    with open(big, "rb") as handle:
        handle.readline()  # the header
        for line in handle:
            date = line.split(b",", 6)[5]
            counts[date] = counts.get(date, 0) + 1
    last = max(counts)
    day = f"{last[:4].decode()}-{last[4:6].decode()}-{last[6:8].decode()}"
    logs = work / "new_logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(big, "rb") as handle, open(logs / loader.daily_log_name(day), "wb") as out:
        out.write(handle.readline())
        out.writelines(line for line in handle if line.split(b",", 6)[5] == last)
    with open(big, "rb") as handle:  # into the page cache, so the first measured run does not pay for the disk
        while handle.read(1 << 24):
            pass
    print(json.dumps({"twin": str(twin), "day": day, "day_rows": counts[last], "days": len(counts)}))


def _commit() -> str:
    found = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return found.stdout.strip() or "unknown"


def _cell(measured: Measurement) -> str:
    return (
        f"{measured.wall_s:.2f} s, {measured.call_s:.2f} s, {measured.peak_rss_bytes / 2**20:.0f} MiB "
        f"({measured.rows:,} rows)"
    )


def run(profile: str, seed: int, data: Path, work: Path, repeat: int) -> dict[str, Measurement]:
    twin, day, day_rows, days = _prepare(profile, seed, data, work)
    best: dict[str, Measurement] = {}
    for attempt in range(repeat):
        for method in METHODS:
            measured = _measure(method, work, twin, day)
            print(
                f"  run {attempt + 1} {method:13s} {measured.wall_s:7.2f} s wall {measured.call_s:7.2f} s call "
                f"{measured.cpu_s:7.2f} s cpu "
                f"{measured.peak_rss_bytes / 2**20:7.0f} MiB peak {measured.rows:12,d} rows",
                flush=True,
            )
            if method not in best or measured.wall_s < best[method].wall_s:
                best[method] = measured
    shutil.rmtree(work / "out", ignore_errors=True)
    load = os.getloadavg()
    print()
    print(f"### Incremental ingestion: one-day append vs full re-ingest ({profile} profile)")
    print(
        f"`KUAIREC_PROFILE={profile} nice -n 5 python benchmarks/incremental_ingest.py --repeat {repeat}`; commit "
        f"{_commit()}, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; seed {seed}; {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; load average {load[0]:.1f} / {load[1]:.1f} after the run (a shared machine: "
        f"times are upper bounds). Best of {repeat}. New day: {day}, {day_rows:,} rows of {days} dates "
        f"in big_matrix.csv."
    )
    print()
    print(
        "Wall: the child process start to exit (imports included); call: the conversion (or the Dagster run) alone; "
        "peak: the child's peak resident memory."
    )
    print()
    print(
        "| level | full re-ingest: wall, call, peak | one-day append: wall, call, peak "
        "| full / append: wall, call, peak |"
    )
    print("|---|---:|---:|---:|")
    for level in ("loader", "dagster"):
        full, day_run = best[f"{level}_full"], best[f"{level}_day"]
        print(
            f"| {level} | {_cell(full)} | {_cell(day_run)} | {full.wall_s / day_run.wall_s:.1f}x, "
            f"{full.call_s / day_run.call_s:.1f}x, {full.peak_rss_bytes / day_run.peak_rss_bytes:.1f}x |"
        )
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--profile",
        default=os.environ.get("KUAIREC_PROFILE", "demo"),
        choices=["tiny", "demo", "full"],
        help="twin size (default: KUAIREC_PROFILE, else demo)",
    )
    parser.add_argument("--seed", type=int, default=20220705, help="twin seed")
    parser.add_argument("--data", type=Path, default=REPO / "data" / "benchmarks" / "ingest-twin", help="twin folder")
    parser.add_argument("--work", type=Path, default=REPO / "data" / "benchmarks" / "incremental", help="scratch")
    parser.add_argument("--repeat", type=int, default=1, help="runs per method (>= 1); the fastest counts")
    parser.add_argument("--child", choices=[*METHODS, PREPARE], help=argparse.SUPPRESS)
    parser.add_argument("--twin", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--day", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == PREPARE:
        _prepare_child(args.profile, args.seed, args.data, args.work)
        return
    if args.child:
        _child(args.child, args.work, args.twin, args.day)
        return
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    run(args.profile, args.seed, args.data, args.work / args.profile, args.repeat)


if __name__ == "__main__":
    main()
