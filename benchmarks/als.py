"""Wall time of the ALS model's fit at KuaiRec's full scale (7,176 x 10,728, ~10 M distinct pairs).

    python benchmarks/als.py                  # full scale, default factors, 15 iterations, every core
    python benchmarks/als.py --scale 0.3      # a quick run while developing

Target: the whole fit (confidence matrix, 15 implicit iterations, calibration) in <= 60 s.
"""

from __future__ import annotations

from kuairec_pipeline.models.threads import available_cores, set_thread_environment

set_thread_environment(blas_threads=1)  # before NumPy loads: implicit runs its own OpenMP threads

import argparse  # noqa: E402
import time  # noqa: E402

from _data import timed_training_data  # noqa: E402

from kuairec_pipeline.models.als import (  # noqa: E402
    ALSConfig,
    ALSRecommender,
    aggregate_pairs,
    confidence_matrix,
)

TARGET_SECONDS = 60.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full profile's users and videos")
    parser.add_argument("--factors", type=int, default=ALSConfig.factors)
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument("--threads", type=int, default=0, help="implicit's threads (0 = every core)")
    args = parser.parse_args()

    data = timed_training_data(args.scale)
    threads = args.threads or available_cores()
    config = ALSConfig(factors=args.factors, iterations=args.iterations, num_threads=threads)

    started = time.perf_counter()
    matrix = confidence_matrix(aggregate_pairs(data.train, data.n_users, data.n_videos), config.alpha, data.n_videos)
    matrix_seconds = time.perf_counter() - started
    print(
        f"confidence matrix: {matrix.shape[0]:,} x {matrix.shape[1]:,}, {matrix.nnz:,} nonzeros "
        f"from {len(data.train):,} rows in {matrix_seconds:.1f} s"
    )

    started = time.perf_counter()
    model = ALSRecommender(config).fit(data)
    fit_seconds = time.perf_counter() - started

    print(
        f"ALS fit: {args.factors} factors, {args.iterations} iterations, {threads} thread(s) "
        f"(of {available_cores()} cores)"
    )
    print(
        f"  total fit (pairs, matrix, implicit, calibration): {fit_seconds:.1f} s   target <= {TARGET_SECONDS:.0f} s"
        f"   {'OK' if fit_seconds <= TARGET_SECONDS else 'OVER'}"
    )
    print(
        f"  per iteration, matrix time excluded (calibration included): "
        f"{(fit_seconds - matrix_seconds) / args.iterations:.2f} s"
    )
    calibration = model.calibration
    print(
        f"  calibration: global {calibration.global_bias:.3f}, "
        f"per-user coefficients {calibration.user_coefficients.shape}"
    )


if __name__ == "__main__":
    main()
