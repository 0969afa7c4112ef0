"""The whole test suite's wall time at this checkout against a baseline commit, back to back in one run.

    python benchmarks/suite_time.py --baseline afa44cc          # baseline, then this checkout
    python benchmarks/suite_time.py --baseline afa44cc --rounds 2

These machines change speed by up to 2x within hours (the same suite took 96 s and 184-218 s on one day), so a
single wall time says little; the ratio of two runs made minutes apart says what a change did. Each round runs the
baseline (a temporary git worktree, imported through PYTHONPATH with this checkout's virtual environment) and then
this checkout, each with its own pyproject defaults (``python -m pytest -p no:cacheprovider -q``). Printed per run:
wall seconds, CPU seconds of pytest and every process it started (user + system, from ``RUSAGE_CHILDREN``), and
pytest's summary line; then the ratio of this checkout's wall time to the baseline's. Exit code 1 when a run fails.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SUMMARY = re.compile(r"^=* ?(\d+ (?:passed|failed).* in [\d.]+s.*?) ?=*$", re.MULTILINE)  # with or without -q's rules


def run_suite(folder: Path) -> tuple[float, float, str, int]:
    """(wall s, CPU s of the children, pytest's summary line, exit code) of the suite in ``folder``."""
    env = {**os.environ, "PYTHONPATH": str(folder)}  # the folder's own package and tests, not the editable install
    real = REPO.parent / "shared" / "data" / "kuairec_real"  # a worktree elsewhere has no ../shared beside it
    if real.is_dir() and "KUAIREC_REAL_DATA_DIR" not in env:
        env["KUAIREC_REAL_DATA_DIR"] = str(real)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    found = SUMMARY.findall(result.stdout)
    return wall, cpu, found[-1] if found else result.stdout[-300:], result.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", required=True, help="commit to compare against (any git revision)")
    parser.add_argument("--rounds", type=int, default=1, help="baseline-then-checkout rounds, 1..5")
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 5:
        parser.error(f"--rounds must be in 1..5, got {args.rounds}")
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    print(
        f"checkout {head.stdout.strip()} against {args.baseline}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    failed = False
    with tempfile.TemporaryDirectory(prefix="kuairec-suite-baseline-") as temporary:
        worktree = Path(temporary) / "baseline"
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(worktree), args.baseline], check=True
        )
        try:
            for round_number in range(1, args.rounds + 1):
                walls = {}
                for label, folder in (("baseline", worktree), ("checkout", REPO)):
                    wall, cpu, summary, code = run_suite(folder)
                    walls[label] = wall
                    failed |= code != 0
                    print(
                        f"round {round_number} {label:<8} wall {wall:7.1f} s  cpu {cpu:7.1f} s  exit {code}  {summary}"
                    )
                print(
                    f"round {round_number} ratio checkout / baseline wall: {walls['checkout'] / walls['baseline']:.2f}"
                )
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(worktree)], check=False)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
