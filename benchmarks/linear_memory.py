"""Wall time and process peak memory of fitting the linear model from stored training arrays, as the
``linear_baseline`` asset does (``training_arrays.npz`` -> ``LinearRecommender(LinearConfig()).fit``).

    python benchmarks/linear_memory.py --home /tmp/rf_full/home      # a KUAIREC_HOME after a full run

Prints the commit, the resident memory after loading the arrays and the process peak (``ru_maxrss``) after the fit,
so the fit's own addition is the difference.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from kuairec_pipeline.models.data_store import training_from_arrays  # noqa: E402
from kuairec_pipeline.models.linear import LinearConfig, LinearRecommender  # noqa: E402
from kuairec_pipeline.orchestration.io_managers import load_arrays  # noqa: E402

MIB = 1024 * 1024


def resident_mib() -> float:
    """This process's resident set now, MiB (/proc/self/statm)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / MIB


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="KUAIREC_HOME whose assets/ holds training_arrays.npz")
    args = parser.parse_args(argv)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    data = training_from_arrays(load_arrays(args.home / "assets" / "training_arrays.npz"))
    loaded = resident_mib()
    started = time.perf_counter()
    model = LinearRecommender(LinearConfig()).fit(data)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"commit {commit}; {len(data.train):,} train rows, {data.n_users:,} users, {data.n_videos:,} videos")
    print(f"fit {seconds:.1f} s; resident after loading {loaded:.0f} MiB; process peak {peak:.0f} MiB")
    print(f"fit added at most {peak - loaded:.0f} MiB; residual_scale {model.residual_scale:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
