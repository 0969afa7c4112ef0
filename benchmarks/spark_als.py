"""Spark MLlib ALS side by side with our ALS (implicit) on the same matrix, and end to end against pandas + Spark.

    python benchmarks/spark_als.py --profile demo
    KUAIREC_PROFILE=full nice -n 5 python benchmarks/spark_als.py --json benchmarks/results/spark_als_full.json

1. The matrix: the synthetic twin of ``--profile`` / ``--seed`` ingested and prepared exactly as the pipeline does
   (``convert_interactions``, ``prepare_filtered_ratios``); its training pairs become implicit's confidence matrix
   and Spark's ratings (``_als_matrix``: the same confidences, checked cell by cell before anything is timed).
2. Fit only: implicit's CPU ALS (conjugate gradients, as the pipeline runs it; then once more with Cholesky, the
   solver Spark uses) with ``--threads`` OpenMP threads and BLAS at 1, against ``pyspark.ml.recommendation.ALS``
   (``implicitPrefs=True``) on ``local[--threads]``, the ratings read from Parquet, cached and counted first. Same
   rank, iterations, alpha and seed; regularization mapped as ``_als_matrix.spark_reg_param`` says. Ours runs before
   and after Spark; the ratio uses their mean.
3. Quality sanity: the implicit objective's data term and the val ndcg@10 of both factorizations (and of random
   factors), so the speed ratio is for comparable work.
4. End to end (``_spark_e2e``): our ingest + preparation + ALS against pandas read_csv + to_parquet + Spark reading
   that Parquet + the same preparation in Spark SQL + Spark ALS.

Java is installed from Debian's packages when missing (``default-jre-headless``, as root); pyspark is the optional
``bench`` extra (``pip install -e '.[bench]'``). The script prints a markdown block for benchmarks/RESULTS.md.
"""

from __future__ import annotations

from kuairec_pipeline.models.threads import set_thread_environment

set_thread_environment(blas_threads=1)  # before NumPy loads: implicit runs its own OpenMP threads

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from _als_matrix import (  # noqa: E402
    build_problem,
    implicit_confidences,
    implicit_loss,
    spark_confidences,
    spark_ratings,
    spark_reg_param,
    training_pairs,
    val_ndcg,
)
from _spark import (  # noqa: E402
    SparkALSSettings,
    TreeMemorySampler,
    ensure_java,
    factors_as_arrays,
    fit_als,
    java_version,
    jvm_pid,
    require_pyspark,
    spark_blas,
    start_session,
    timed,
)
from _spark_e2e import EndToEndSettings, end_to_end, run_child  # noqa: E402

from kuairec_pipeline.models.als import ALSConfig  # noqa: E402
from kuairec_pipeline.models.threads import limited_blas_threads  # noqa: E402
from kuairec_pipeline.settings import DEFAULT_SEED  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TARGET_FIT_SPEEDUP = 15.0  # issue 10: our ALS at least 15x faster than Spark MLlib ALS on the same work
MIB = 2**20


def fit_implicit(confidences, args: argparse.Namespace, use_cg: bool):
    """implicit's CPU ALS on the confidences; returns (user factors, video factors, fit seconds, peak RSS bytes)."""
    from implicit.cpu.als import AlternatingLeastSquares

    with limited_blas_threads(1), TreeMemorySampler(os.getpid(), children=False) as sampler:
        model = AlternatingLeastSquares(
            factors=args.factors,
            regularization=args.regularization,
            alpha=1.0,  # the confidences already carry alpha, as in ALSRecommender.fit
            dtype=np.float32,
            use_cg=use_cg,
            iterations=args.iterations,
            num_threads=args.threads,
            random_state=args.seed_factors,
        )
        _, seconds = timed(model.fit, confidences, show_progress=False)
    return np.asarray(model.user_factors), np.asarray(model.item_factors), seconds, sampler.peak_bytes


def git_commit() -> str:
    def git(*arguments: str) -> str:
        return subprocess.run(["git", *arguments], cwd=REPO, capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + (" (uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else "")


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({model}), {memory:.1f} GiB, Python {platform.python_version()}"


def side_by_side(args: argparse.Namespace) -> dict[str, object]:
    work = args.work / f"{args.profile}-seed{args.seed}"
    problem = build_problem(args.data / f"{args.profile}-seed{args.seed}", args.profile, args.seed, work)
    pairs = training_pairs(problem)
    confidences = implicit_confidences(pairs, args.alpha, problem.n_videos)
    ratings = spark_ratings(pairs)
    from_spark = spark_confidences(ratings, args.alpha, confidences.shape)
    same = from_spark.nnz == confidences.nnz and abs(from_spark - confidences).max() <= 1e-5 * (1 + args.alpha)
    if not same:
        raise RuntimeError("Spark's ratings do not give implicit's confidence matrix: the comparison would be unfair")
    reg_param = (
        args.spark_reg_param if args.spark_reg_param is not None else spark_reg_param(args.regularization, confidences)
    )
    print(
        f"same matrix for both: {confidences.shape[0]:,} x {confidences.shape[1]:,}, {confidences.nnz:,} pairs "
        f"(confidence 1 + {args.alpha:g} * mean scaled target; Spark: rating = mean target, alpha {args.alpha:g})"
    )
    print(
        f"factors {args.factors}, iterations {args.iterations}, implicit regularization {args.regularization:g} "
        f"= Spark regParam {reg_param:.5f} (x positives per row), {args.threads} threads each"
    )
    ratings_path = work / "spark_ratings.parquet"
    ratings.write_parquet(ratings_path)

    runs = [fit_implicit(confidences, args, use_cg=True)]
    print(f"ours (implicit, CG)       fit {runs[0][2]:7.2f} s, process peak {runs[0][3] / MIB:6.0f} MiB")

    java = ensure_java(install=not args.no_install)
    spark_version = require_pyspark()
    session, session_s = timed(start_session, args.threads, args.driver_memory, args.shuffle_partitions)
    blas = spark_blas(session)
    frame = session.read.parquet(str(ratings_path)).cache()
    count, load_s = timed(frame.count)
    if count != confidences.nnz:
        raise RuntimeError(f"Spark read {count} ratings, expected {confidences.nnz}")
    settings = SparkALSSettings(
        args.factors, args.iterations, reg_param, args.alpha, args.seed_factors, args.spark_blocks
    )
    with TreeMemorySampler(jvm_pid(session)) as jvm:
        model, spark_s = timed(fit_als, frame, settings)
    spark_users, spark_videos = factors_as_arrays(model, problem.n_users, problem.n_videos)
    session.stop()
    print(
        f"Spark MLlib ALS           fit {spark_s:7.2f} s, JVM peak {jvm.peak_bytes / MIB:6.0f} MiB "
        f"(session start {session_s:.1f} s, load + cache + count {load_s:.1f} s; {blas}; {java_version(java)})"
    )
    runs.append(fit_implicit(confidences, args, use_cg=True))
    print(f"ours (implicit, CG) again fit {runs[1][2]:7.2f} s")
    cholesky = fit_implicit(confidences, args, use_cg=False)
    print(f"ours (implicit, Cholesky) fit {cholesky[2]:7.2f} s")
    ratings_path.unlink()

    ours_s = float(np.mean([run[2] for run in runs]))
    rng = np.random.default_rng(0)
    scale = float(np.std(runs[0][0]))
    random_users = rng.normal(0, scale, runs[0][0].shape)
    random_videos = rng.normal(0, float(np.std(runs[0][1])), runs[0][1].shape)
    quality = {}
    for name, users, videos in (
        ("ours (CG)", runs[0][0], runs[0][1]),
        ("ours (Cholesky)", cholesky[0], cholesky[1]),
        ("Spark MLlib", spark_users, spark_videos),
        ("random factors", random_users, random_videos),
    ):
        ndcg, ranked = val_ndcg(users, videos, problem)
        quality[name] = {"loss": implicit_loss(users, videos, confidences), "val_ndcg@10": ndcg, "users": ranked}
    print("\nquality sanity (implicit objective's data term per cell, lower is better; val ndcg@10 of raw scores):")
    for name, values in quality.items():
        print(
            f"  {name:16s} loss {values['loss']:.5f}   val ndcg@10 {values['val_ndcg@10']:.4f} "
            f"({values['users']} users)"
        )
    speedup = spark_s / ours_s
    print(
        f"\nSpark MLlib / ours, fit only: {speedup:.1f}x (ours {ours_s:.2f} s = mean of "
        f"{', '.join(f'{run[2]:.2f}' for run in runs)}; Spark {spark_s:.2f} s); against ours with Cholesky "
        f"{spark_s / cholesky[2]:.1f}x   target >= {TARGET_FIT_SPEEDUP:g}x: "
        f"{'MET' if speedup >= TARGET_FIT_SPEEDUP else 'MISSED'}"
    )
    return {
        "matrix": {"n_users": problem.n_users, "n_videos": problem.n_videos, "pairs": int(confidences.nnz)},
        "train_rows": len(problem.train),
        "reg_param": reg_param,
        "ours_fit_s": [run[2] for run in runs],
        "ours_cholesky_fit_s": cholesky[2],
        "ours_peak_rss_bytes": max(run[3] for run in runs),
        "spark_fit_s": spark_s,
        "spark_session_s": session_s,
        "spark_load_s": load_s,
        "spark_jvm_peak_rss_bytes": jvm.peak_bytes,
        "spark_blas": blas,
        "java": java_version(java),
        "pyspark": spark_version,
        "speedup": speedup,
        "speedup_vs_cholesky": spark_s / cholesky[2],
        "quality": quality,
    }


def markdown(args: argparse.Namespace, fit: dict, e2e: dict | None, when: str, load: str) -> str:
    lines = [
        f"### {args.profile} profile, seed {args.seed}",
        f"`{' '.join(['python', 'benchmarks/spark_als.py', *sys.argv[1:]])}`; commit {git_commit()}, {when}; "
        f"{machine()}; Java {fit['java']}, pyspark {fit['pyspark']} (`local[{args.threads}]`, driver memory "
        f"{args.driver_memory}, {args.spark_blocks} blocks, BLAS `{fit['spark_blas']}`). Load average {load}: "
        "the machine was shared with other helpers' work, so every time is noisy.",
        "",
        f"Matrix: {fit['matrix']['n_users']:,} x {fit['matrix']['n_videos']:,}, {fit['matrix']['pairs']:,} pairs "
        f"from {fit['train_rows']:,} train rows; {args.factors} factors, {args.iterations} iterations, "
        f"alpha {args.alpha:g}, implicit regularization {args.regularization:g} = Spark regParam "
        f"{fit['reg_param']:.5f}, factor seed {args.seed_factors}.",
        "",
        "| fit only | wall s | peak MiB | loss (data term) | val ndcg@10 |",
        "|---|---:|---:|---:|---:|",
    ]
    quality = fit["quality"]
    ours = " / ".join(f"{value:.2f}" for value in fit["ours_fit_s"])
    rows = [
        (
            f"ours: implicit CG, {args.threads} threads (before / after Spark)",
            ours,
            fit["ours_peak_rss_bytes"],
            "ours (CG)",
        ),
        ("ours: implicit Cholesky", f"{fit['ours_cholesky_fit_s']:.2f}", None, "ours (Cholesky)"),
        ("Spark MLlib ALS (JVM)", f"{fit['spark_fit_s']:.2f}", fit["spark_jvm_peak_rss_bytes"], "Spark MLlib"),
        ("random factors", "", None, "random factors"),
    ]
    for label, wall, peak, key in rows:
        peak_text = f"{peak / MIB:.0f}" if peak else ""
        lines.append(
            f"| {label} | {wall} | {peak_text} | {quality[key]['loss']:.5f} | {quality[key]['val_ndcg@10']:.4f} |"
        )
    lines += [
        "",
        f"**Spark / ours, fit only: {fit['speedup']:.1f}x** (target >= {TARGET_FIT_SPEEDUP:g}x: "
        f"{'met' if fit['speedup'] >= TARGET_FIT_SPEEDUP else 'missed'}); against our Cholesky fit "
        f"{fit['speedup_vs_cholesky']:.1f}x. Spark session start {fit['spark_session_s']:.1f} s and load + cache + "
        f"count {fit['spark_load_s']:.1f} s are not in its fit time.",
    ]
    if e2e is not None:
        lines += ["", "| end to end (fresh processes) | wall s | peak MiB | phases s |", "|---|---:|---:|---|"]
        for name, label in (
            ("ours", "ours: loader + prepare + implicit"),
            ("pandas", "pandas read_csv + to_parquet"),
            ("spark", "Spark: read Parquet + prepare + ALS"),
        ):
            side = e2e[name]
            phases = ", ".join(f"{key} {value:.1f}" for key, value in side["phases"].items())
            lines.append(f"| {label} | {side['wall_s']:.1f} | {side['peak_rss_bytes'] / MIB:.0f} | {phases} |")
        lines += [
            "",
            f"**pandas + Spark / ours end to end: {e2e['wall_ratio']:.1f}x**; ingest alone (pandas read_csv + "
            f"to_parquet / our loader): {e2e['ingest_ratio']:.2f}x; our peak is {e2e['memory_share']:.0%} of the "
            "larger of theirs (Spark: the child and its JVM summed).",
        ]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    config = ALSConfig()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default=os.environ.get("KUAIREC_PROFILE", "demo"), choices=["tiny", "demo", "full"])
    p.add_argument("--seed", type=int, default=int(os.environ.get("KUAIREC_SEED", DEFAULT_SEED)), help="twin seed")
    p.add_argument("--data", type=Path, default=REPO / "data" / "benchmarks" / "ingest-twin", help="twin folders")
    p.add_argument("--work", type=Path, default=REPO / "data" / "benchmarks" / "spark-als", help="scratch folder")
    p.add_argument("--factors", type=int, default=config.factors, help="rank, both engines")
    p.add_argument("--iterations", type=int, default=config.iterations, help="ALS sweeps, both engines")
    p.add_argument("--regularization", type=float, default=config.regularization, help="implicit's L2")
    p.add_argument("--alpha", type=float, default=config.alpha, help="confidence gain, both engines")
    p.add_argument("--spark-reg-param", type=float, default=None, help="override the mapped regParam")
    p.add_argument("--seed-factors", type=int, default=config.seed, help="factor initialization seed, both")
    p.add_argument("--threads", type=int, default=2, help="implicit's threads and Spark's local[N]")
    p.add_argument("--driver-memory", default=None, help="Spark driver heap (default 8g on full, else 2g)")
    p.add_argument("--spark-blocks", type=int, default=10, help="Spark numUserBlocks = numItemBlocks")
    p.add_argument("--shuffle-partitions", type=int, default=8, help="spark.sql.shuffle.partitions")
    p.add_argument("--skip-e2e", action="store_true", help="fit only, no end-to-end comparison")
    p.add_argument("--no-install", action="store_true", help="fail instead of installing Java with apt-get")
    p.add_argument("--json", type=Path, default=None, help="also write the figures as JSON here")
    p.add_argument("--child", choices=["ours", "pandas", "spark"], help=argparse.SUPPRESS)
    p.add_argument("--child-settings", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.child:
        run_child(args.child, args.child_settings)
        return 0
    args.driver_memory = args.driver_memory or ("8g" if args.profile == "full" else "2g")
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_before = os.getloadavg()[0]
    fit = side_by_side(args)
    e2e = None
    if not args.skip_e2e:
        from kuairec_pipeline.dataset.loader import find_kuairec_files

        csv = find_kuairec_files(args.data / f"{args.profile}-seed{args.seed}").require("big_matrix.csv")
        e2e = end_to_end(
            EndToEndSettings(
                csv=str(csv),
                work=str(args.work / f"{args.profile}-seed{args.seed}"),
                factors=args.factors,
                iterations=args.iterations,
                regularization=args.regularization,
                reg_param=fit["reg_param"],
                alpha=args.alpha,
                threads=args.threads,
                seed=args.seed_factors,
                driver_memory=args.driver_memory,
                spark_blocks=args.spark_blocks,
                shuffle_partitions=args.shuffle_partitions,
            )
        )
    load = f"{load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    block = markdown(args, fit, e2e, when, load)
    print("\n" + block)
    print(f"\n(this process's peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB)")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        figures = {"when": when, "commit": git_commit(), "machine": machine(), "profile": args.profile}
        args.json.write_text(
            json.dumps({**figures, "seed": args.seed, "fit": fit, "end_to_end": e2e, "markdown": block}, indent=2)
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
