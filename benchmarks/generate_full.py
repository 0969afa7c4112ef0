"""Wall time and peak memory of generating the synthetic twin (default: the full, real-scale profile).

    python benchmarks/generate_full.py                     # full profile into a temporary folder, then deleted
    python benchmarks/generate_full.py --profile demo      # a quick run while developing
    python benchmarks/generate_full.py --out data/twin-full --keep

Targets (full): under 3 minutes and under 4 GB peak RSS on a 2-core machine. The generation runs in a child
process, so the peak RSS is that of the generation alone (ru_maxrss of the child), not of this script.

Measured with this script (generator 1.0.0, seed 20220705; 2 cores shared with other jobs at a load average of
about 5, Python 3.11, polars 2.1); the range is over runs at different loads:
| profile | big_matrix rows | small_matrix rows | wall | peak RSS |
|---|---:|---:|---:|---:|
| tiny | 16,035 | 2,389 | 0.5-1.0 s | 0.13 GiB |
| demo | 500,070 | 179,304 | 1.6-4.5 s | 0.24 GiB |
| full | 12,530,808 | 4,675,581 | 42-67 s (last: 55 s) | 1.3-1.6 GiB (last: 1.55 GiB) |
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kuairec_pipeline.dataset.synthetic import PROFILES, data_dir, read_params
from kuairec_pipeline.settings import DEFAULT_SEED

TARGET_SECONDS = 180.0
TARGET_PEAK_BYTES = 4 * 1024**3

_CHILD = (
    "import sys; from pathlib import Path; from kuairec_pipeline.dataset.synthetic import generate_twin; "
    "generate_twin(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]))"
)


def measure(out_dir: Path, profile: str, seed: int) -> tuple[float, int]:
    """Generate in a fresh child process; return (wall seconds, peak RSS bytes of the child)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", _CHILD, str(out_dir), profile, str(seed)], check=True)
    wall = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # Linux: KiB
    return wall, peak_kib * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="full")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--out", type=Path, default=None, help="twin folder (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the generated twin")
    args = parser.parse_args()

    scratch = None
    if args.out is None:
        scratch = Path(tempfile.mkdtemp(prefix="kuairec-twin-"))
        out_dir = scratch / f"twin-{args.profile}"
    else:
        out_dir = args.out
        if read_params(out_dir) is not None:
            # A complete twin would be reused, and reusing measures nothing.
            shutil.rmtree(out_dir)
    try:
        wall, peak = measure(out_dir, args.profile, args.seed)
        sizes = read_params(out_dir)["sizes"]
        total_bytes = sum(path.stat().st_size for path in data_dir(out_dir).iterdir())
        print(
            f"profile {args.profile}, seed {args.seed}: big_matrix {sizes['big_rows']:,} rows, "
            f"small_matrix {sizes['small_rows']:,} rows, {total_bytes / 1e9:.2f} GB of CSV"
        )
        print(
            f"wall time {wall:.1f} s (target < {TARGET_SECONDS:.0f} s for full): "
            f"{'ok' if wall < TARGET_SECONDS else 'TOO SLOW'}"
        )
        print(
            f"peak RSS {peak / 1024**3:.2f} GiB (target < {TARGET_PEAK_BYTES / 1024**3:.0f} GiB): "
            f"{'ok' if peak < TARGET_PEAK_BYTES else 'TOO MUCH'}"
        )
    finally:
        if scratch is not None and not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
        elif scratch is not None:
            print(f"kept {out_dir}")


if __name__ == "__main__":
    main()
