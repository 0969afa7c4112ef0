"""The whole asset graph in a fresh KUAIREC_HOME: wall time and peak resident memory per asset step, and the total.

    python benchmarks/run_full.py                          # full profile (12.5 M rows): minutes, about 3 GB
    python benchmarks/run_full.py --profile tiny           # a quick check of the script itself
    python benchmarks/run_full.py --json results/run_full.json
    python benchmarks/run_full.py --select '*als_factors'  # only part of the graph (and what it needs)

What runs is what ``dagster asset materialize -m kuairec_pipeline.definitions --select '*'`` runs with the default
in-process executor: every asset and asset check, one process, against a persistent instance in a temporary
DAGSTER_HOME. Per step, the wall time is from Dagster's own STEP_START and STEP_SUCCESS events; the peak resident
memory is the highest resident set size of this process that a sampler thread (every ``--sample-ms``, from
/proc/self/statm) saw between those events, so it includes what earlier steps left allocated; ``rss at start``
shows that base. The total peak is the larger of the kernel's ``ru_maxrss`` of the process and the highest
sample (the pipeline starts no child processes with the in-process executor).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024


def rss_bytes() -> int:
    """Resident set size of this process, from /proc/self/statm (Linux)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * PAGE


class RssSampler(threading.Thread):
    """Records (wall time, resident bytes) every ``interval`` seconds until stopped."""

    def __init__(self, interval: float) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.samples.append((time.time(), rss_bytes()))
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()
        self.samples.append((time.time(), rss_bytes()))

    def peak_between(self, start: float, end: float) -> tuple[int, int]:
        """(rss at ``start``, highest rss in [start, end]): the last sample before start counts as the base."""
        before = [rss for t, rss in self.samples if t <= start]
        inside = [rss for t, rss in self.samples if start <= t <= end]
        base = before[-1] if before else (inside[0] if inside else 0)
        return base, max([base, *inside])


@dataclass
class StepFigure:
    step: str
    seconds: float
    rss_start_mib: float
    peak_rss_mib: float


def machine() -> dict[str, object]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kib = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "python": platform.python_version(),
    }


def commit() -> str:
    result = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
    ).stdout.strip()
    return result.stdout.strip() + ("+uncommitted" if dirty else "")


def prepare_instance(folder: Path) -> Path:
    """A DAGSTER_HOME holding the project's dagster.yaml with its storage redirected into ``folder``."""
    home = folder / "dagster_home"
    home.mkdir(parents=True)
    text = (REPO / "dagster.yaml").read_text().replace("data/dagster", str(folder / "dagster_storage"))
    (home / "dagster.yaml").write_text(text)
    return home


def run(
    profile: str,
    seed: int,
    workdir: Path,
    sample_interval: float,
    ops_config: dict | None = None,
    select: str = "*",
) -> dict[str, object]:
    revision = commit()  # before the run: a child forked later would inherit a large resident set
    os.environ.update(
        {
            "KUAIREC_HOME": str(workdir / "home"),
            "KUAIREC_PROFILE": profile,
            "KUAIREC_SEED": str(seed),
            "KUAIREC_SOURCE": "synthetic",
            "DAGSTER_HOME": str(prepare_instance(workdir)),
        }
    )
    os.environ.pop("KUAIREC_ASSET_STORAGE", None)
    sampler = RssSampler(sample_interval)
    sampler.start()
    started = time.time()
    from dagster import AssetSelection, DagsterEventType, DagsterInstance

    from kuairec_pipeline.definitions import build_definitions

    defs = build_definitions()
    # The CLI's --select syntax (comma-separated Dagster selections), resolved on the same graph; '*' runs the job
    # as it is (every asset and asset check).
    graph = defs.resolve_asset_graph()
    keys = None if select == "*" else AssetSelection.from_coercible(select.split(",")).resolve(graph)
    imported = time.time()
    with DagsterInstance.get() as instance:
        result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance,
            asset_selection=None if keys is None else sorted(keys),
            raise_on_error=True,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}, "ops": ops_config or {}},
        )  # events still stored
        finished = time.time()
        sampler.stop()
        records = instance.all_logs(result.run_id)
    starts: dict[str, float] = {}
    figures = []
    for record in records:
        event = record.dagster_event
        if event is None or record.step_key is None:
            continue
        if event.event_type == DagsterEventType.STEP_START:
            starts[record.step_key] = record.timestamp
        elif event.event_type == DagsterEventType.STEP_SUCCESS:
            begin = starts[record.step_key]
            base, peak = sampler.peak_between(begin, record.timestamp)
            figures.append(
                StepFigure(
                    record.step_key, round(record.timestamp - begin, 2), round(base / MIB, 1), round(peak / MIB, 1)
                )
            )
    return {
        "profile": profile,
        "seed": seed,
        "commit": revision,
        "date": dt.datetime.fromtimestamp(started, dt.UTC).isoformat(timespec="seconds"),  # when the run began
        "machine": machine(),
        "executor": "in_process",
        "select": select,
        "ops_config": ops_config or {},
        "steps": [asdict(f) for f in figures],
        "import_and_definitions_s": round(imported - started, 2),
        "run_s": round(finished - imported, 2),
        "total_s": round(finished - started, 2),
        # The kernel updates ru_maxrss lazily (hiwater_rss), so a sample can exceed it slightly: take the larger.
        "peak_rss_mib": round(
            max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, max(rss for _, rss in sampler.samples))
            / MIB,
            1,
        ),
    }


def report(figures: dict[str, object]) -> str:
    steps = sorted(figures["steps"], key=lambda f: -f["seconds"])
    width = max(len(f["step"]) for f in steps)
    lines = [
        f"profile {figures['profile']}, seed {figures['seed']}, commit {figures['commit']}, {figures['date']}",
        *([f"selection: {figures['select']}"] if figures.get("select", "*") != "*" else []),
        f"machine: {figures['machine']}",
        *([f"run config (ops): {json.dumps(figures['ops_config'])}"] if figures.get("ops_config") else []),
        f"{'step':<{width}}  {'wall s':>8}  {'rss at start MiB':>16}  {'peak rss MiB':>12}",
    ]
    lines += [
        f"{f['step']:<{width}}  {f['seconds']:>8.2f}  {f['rss_start_mib']:>16.1f}  {f['peak_rss_mib']:>12.1f}"
        for f in steps
    ]
    lines.append(
        f"sum of steps {sum(f['seconds'] for f in steps):.1f} s; run {figures['run_s']} s; imports and "
        f"definitions {figures['import_and_definitions_s']} s; total {figures['total_s']} s "
        f"({figures['total_s'] / 60:.1f} min)"
    )
    lines.append(f"peak resident: {figures['peak_rss_mib']} MiB (the process: ru_maxrss or the highest sample)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=("tiny", "demo", "full"), default="full", help="synthetic twin size")
    parser.add_argument("--seed", type=int, default=20220705, help="seed of the synthetic twin")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="fresh folder for KUAIREC_HOME and the instance (default: a temporary one, removed)",
    )
    parser.add_argument("--sample-ms", type=int, default=50, help="resident-memory sampling period, 5..1000 ms")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="JSON run config as `dagster asset materialize -c` takes it; its `ops` part is used (default: none)",
    )
    parser.add_argument(
        "--select",
        default="*",
        help="assets to run, as `dagster asset materialize --select` takes them (default: '*', the whole graph)",
    )
    args = parser.parse_args(argv)
    if not 5 <= args.sample_ms <= 1000:
        parser.error(f"--sample-ms must be in 5..1000, got {args.sample_ms}")
    if args.workdir is not None and args.workdir.exists() and any(args.workdir.iterdir()):
        parser.error(f"--workdir {args.workdir} is not empty: the run must start from nothing")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="kuairec-run-full-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        ops_config = json.loads(args.config.read_text()).get("ops", {}) if args.config is not None else None
        figures = run(args.profile, args.seed, workdir, args.sample_ms / 1000, ops_config, args.select)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(report(figures))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
