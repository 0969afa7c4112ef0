"""The whole test suite's wall time at this checkout against a baseline commit, back to back in one run.

    python benchmarks/suite_time.py --baseline afa44cc          # baseline, then this checkout
    python benchmarks/suite_time.py --baseline afa44cc --rounds 2
    python benchmarks/suite_time.py --rounds 5                  # this checkout only: five runs and their median

These machines change speed by up to 2x within hours (the same suite took 96 s and 184-218 s on one day), so a
single wall time says little; the ratio of two runs made minutes apart says what a change did. Each round runs the
baseline (a temporary git worktree, imported through PYTHONPATH with this checkout's virtual environment) and then
this checkout, each with its own pyproject defaults (``python -m pytest -p no:cacheprovider -q``). Printed per run:
wall seconds, CPU seconds, and pytest's summary line; then the ratio of this checkout's wall time to the baseline's.
Without ``--baseline`` only this checkout runs, ``--rounds`` times, and the median and maximum wall time follow.
Exit code 1 when a run fails.

CPU seconds are those of every process the run started, waited for or not, where this process may create a cgroup
(v1 ``cpuacct``, as root on these machines): servers and daemons a test starts and kills are counted too, and a
process still in the group when pytest has exited is reported and killed. Elsewhere they are pytest's and the
children it waited for (``RUSAGE_CHILDREN``), marked "waited".
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SUMMARY = re.compile(r"^=* ?(\d+ (?:passed|failed).* in [\d.]+s.*?) ?=*$", re.MULTILINE)  # with or without -q's rules


CPUACCT = Path("/sys/fs/cgroup/cpuacct")  # cgroup v1's CPU accounting controller


def _own_cpuacct() -> Path:
    """This process's own cpuacct cgroup folder: a group made below it counts in its usage too (cpuacct is
    hierarchical), so a run measured inside another measured run still counts in the outer one."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "cpuacct" in controllers.split(","):
            return CPUACCT / path.lstrip("/")
    return CPUACCT


def _empty(group: Path, deadline_s: float = 30.0) -> int:
    """SIGKILL every process in ``group`` until none is left (one forked meanwhile is killed on the next pass);
    how many distinct processes were killed. RuntimeError if the group is not empty after ``deadline_s``."""
    killed: set[int] = set()
    deadline = time.monotonic() + deadline_s
    while pids := {int(pid) for pid in (group / "cgroup.procs").read_text().split()}:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{group}: processes {sorted(pids)} still running {deadline_s:g} s after SIGKILL")
        for pid in pids - killed:
            with contextlib.suppress(ProcessLookupError):  # it may have exited since the read
                os.kill(pid, signal.SIGKILL)
        killed |= pids
        time.sleep(0.05)
    return len(killed)


@contextlib.contextmanager
def cpu_group() -> Iterator[Path | None]:
    """A new cpuacct cgroup for one run (every process started inside stays in it, waited for or not), below this
    process's own; None where this process may not create one (not root, no cgroup v1 cpuacct mounted). At the
    end, on any way out (an interrupt too), what is still in it is killed and the group removed."""
    try:
        group = Path(tempfile.mkdtemp(prefix="kuairec-suite-", dir=_own_cpuacct()))
    except OSError:
        yield None
        return
    try:
        yield group
    finally:
        _empty(group)
        group.rmdir()


def measure(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, str, int, str]:
    """Run ``command``: (wall s, CPU s, what the CPU covers: "all" or "waited", exit code, its stdout and stderr).
    The output goes to a file, not a pipe: a process left running that holds the pipe would keep a reader waiting
    for its end."""
    with cpu_group() as group, tempfile.TemporaryFile("w+") as output:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
            # the child joins the group before exec, so everything it starts is in it from the first instruction
            preexec_fn=None if group is None else lambda: (group / "cgroup.procs").write_text(str(os.getpid())),
        )
        code = process.wait()
        wall = time.perf_counter() - started
        if group is None:
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu, covers = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), "waited"
        else:
            left = _empty(group)
            cpu = int((group / "cpuacct.usage").read_text()) / 1e9
            covers = "all" if not left else f"all; {left} left running, killed"
        output.seek(0)
        return wall, cpu, covers, code, output.read()


def run_suite(folder: Path) -> tuple[float, float, str, str, int]:
    """(wall s, CPU s, what the CPU covers, pytest's summary line, exit code) of the suite in ``folder``."""
    env = {**os.environ, "PYTHONPATH": str(folder)}  # the folder's own package and tests, not the editable install
    real = REPO.parent / "shared" / "data" / "kuairec_real"  # a worktree elsewhere has no ../shared beside it
    if real.is_dir() and "KUAIREC_REAL_DATA_DIR" not in env:
        env["KUAIREC_REAL_DATA_DIR"] = str(real)
    wall, cpu, covers, code, output = measure(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"], folder, env
    )
    found = SUMMARY.findall(output)
    return wall, cpu, covers, found[-1] if found else output[-300:], code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", help="commit to compare against (any git revision); none: this checkout only")
    parser.add_argument("--rounds", type=int, default=1, help="rounds (baseline then checkout, or checkout), 1..5")
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 5:
        parser.error(f"--rounds must be in 1..5, got {args.rounds}")
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    against = f" against {args.baseline}" if args.baseline else ""
    print(f"checkout {head.stdout.strip()}{against}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    failed = False
    with contextlib.ExitStack() as stack:
        folders = {"checkout": REPO}
        if args.baseline:
            worktree = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kuairec-suite-baseline-")))
            worktree /= "baseline"
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(worktree), args.baseline], check=True
            )
            stack.callback(
                subprocess.run, ["git", "-C", str(REPO), "worktree", "remove", "--force", str(worktree)], check=False
            )
            folders = {"baseline": worktree, **folders}
        checkout_walls = []
        for round_number in range(1, args.rounds + 1):
            walls = {}
            for label, folder in folders.items():
                wall, cpu, covers, summary, code = run_suite(folder)
                walls[label] = wall
                failed |= code != 0
                print(
                    f"round {round_number} {label:<8} wall {wall:7.1f} s  cpu {cpu:7.1f} s ({covers})  exit {code}  "
                    f"{summary}",
                    flush=True,
                )
            checkout_walls.append(walls["checkout"])
            if args.baseline:
                print(
                    f"round {round_number} ratio checkout / baseline wall: {walls['checkout'] / walls['baseline']:.2f}"
                )
        if not args.baseline:
            print(
                f"checkout wall over {len(checkout_walls)} runs: median {statistics.median(checkout_walls):.1f} s, "
                f"max {max(checkout_walls):.1f} s"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
