"""Write the results tables: the whole graph on the synthetic twin, one table per seed and a summary.

    .venv/bin/python benchmarks/quality.py --profile demo --seeds 11 12 13

For each seed the twin is generated under ``--home/<profile>-seed<seed>`` (the graph's own ``source_files`` asset
does it) and the whole asset graph is materialized in-process with Dagster (the ``full_pipeline`` job, an
ephemeral instance): what a user gets from the README's first command, with nothing re-implemented here. The
tables are read back from the stored ``metrics`` and ``recommendations`` assets.

Columns: test ndcg@10 and mae; beyond accuracy over each test user's top 10 of the test videos (catalogue
coverage, top-item share, novelty in bits); the selection-slice ndcg@10 the served model is chosen on; and the
share of the ndcg@10 gap between ``user_video_bias`` and the oracle a model closes,
``(ndcg - ndcg_bias) / (ndcg_oracle - ndcg_bias)``. Under each table, the served model's own top-10 lists over
every video (the ``recommendations`` asset, seen videos excluded, ranked with the coverage penalty the metrics step
chose: the ``<served>+coverage`` row): catalogue coverage and top-item share, and the same without the penalty.
The profile, seeds, commit and date are printed above the tables.
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import time
from pathlib import Path

import numpy as np
import polars as pl

GAP_BASE, GAP_CEILING = "user_video_bias", "oracle"
COLUMNS = [
    ("test", "ndcg@10"),
    ("test", "mae"),
    ("test", "catalogue_coverage@10"),
    ("test", "top_item_share@10"),
    ("test", "novelty@10"),
    ("selection", "ndcg@10"),
]


def commit_label(repository: Path) -> str:
    """``git rev-parse HEAD``, with ``+uncommitted`` when the work tree differs from it."""
    head = subprocess.run(
        ["git", "-C", str(repository), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(repository), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return head + (" +uncommitted changes" if dirty else "")


def run_graph(home: Path, profile: str, seed: int) -> Path:
    """Materialize the whole graph for one twin; returns its assets folder."""
    from dagster import DagsterInstance

    from kuairec_pipeline.definitions import build_definitions
    from kuairec_pipeline.settings import Settings

    settings = Settings(home=home.absolute(), source="synthetic", profile=profile, seed=seed)
    job = build_definitions(settings).resolve_job_def("full_pipeline")
    with DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(instance=instance, raise_on_error=True)
    if not result.success:
        raise RuntimeError(f"the graph failed for profile {profile}, seed {seed}")
    return settings.assets_dir


def served_list_metrics(recommendations: pl.DataFrame, n_videos: int, k: int = 10) -> dict[str, float]:
    """Catalogue coverage (over all ``n_videos``) and top-item share of the served top-``k`` lists."""
    top = recommendations.filter(pl.col("rank") <= k)
    users = top["user_id"].n_unique()
    counts = top.group_by("video_id").len()["len"]
    return {
        "model": recommendations["model"][0],
        "coverage": top["video_id"].n_unique() / n_videos,
        "top_item_share": float(counts.max()) / users,
        "users": users,
    }


def seed_table(metrics: pl.DataFrame) -> pl.DataFrame:
    """One row per model: the COLUMNS plus the share of the bias-to-oracle ndcg@10 gap closed."""
    wide = {"model": metrics["model"].unique(maintain_order=True).to_list()}
    for split, metric in COLUMNS:
        chosen = dict(
            metrics.filter((pl.col("split") == split) & (pl.col("metric") == metric))
            .select("model", "value")
            .iter_rows()
        )
        wide[metric if split == "test" else f"{metric} ({split})"] = [chosen.get(m) for m in wide["model"]]
    table = pl.DataFrame(wide, strict=False)
    ndcg = dict(zip(table["model"], table["ndcg@10"], strict=False))
    gap = ndcg[GAP_CEILING] - ndcg[GAP_BASE]
    return table.with_columns(gap_closed=(pl.col("ndcg@10") - ndcg[GAP_BASE]) / gap)


def markdown(table: pl.DataFrame) -> str:
    def cell(value) -> str:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return ""
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(table.columns) + " |", "|---|" + "---:|" * (table.width - 1)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.iter_rows()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="demo", choices=("tiny", "demo", "full"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13])
    parser.add_argument(
        "--home",
        type=Path,
        default=Path("/tmp/kuairec_quality"),
        help="each seed's KUAIREC_HOME is <home>/<profile>-seed<seed>",
    )
    args = parser.parse_args(argv)

    repository = Path(__file__).resolve().parents[1]
    print(f"profile: {args.profile}; seeds: {' '.join(map(str, args.seeds))}")
    print(f"commit: {commit_label(repository)}")
    print(f"date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}\n")
    tables = []
    for seed in args.seeds:
        started = time.perf_counter()
        assets = run_graph(args.home / f"{args.profile}-seed{seed}", args.profile, seed)
        metrics = pl.read_parquet(assets / "metrics.parquet")
        n_videos = pl.read_parquet(assets / "video_features.parquet", columns=["video_id"]).height
        served = served_list_metrics(pl.read_parquet(assets / "recommendations.parquet"), n_videos)
        table = seed_table(metrics)
        # The summary follows the served model whatever its name on each seed: "served" (its plain ranking) and
        # "served+coverage" (the re-ranked lists); the per-seed "<name>+coverage" rows stay in the seed tables.
        aliases = [
            table.filter(pl.col("model") == f"{name}{suffix}").with_columns(model=pl.lit(f"served{suffix}"))
            for name in [served["model"]]
            for suffix in ("", "+coverage")
        ]
        tables.append(
            pl.concat([table.filter(~pl.col("model").str.ends_with("+coverage")), *aliases]).with_columns(
                seed=pl.lit(seed)
            )
        )
        print(f"### seed {seed} (whole graph {time.perf_counter() - started:.0f} s)\n")
        print(markdown(table))
        serving = dict(
            metrics.filter(pl.col("split") == "serving")
            .select(pl.concat_str("model", pl.lit(" "), "metric"), "value")
            .iter_rows()
        )
        name = served["model"]
        print(
            f"\nserved model: {name}, coverage penalty {serving[f'{name}+coverage penalty']:g} (target "
            f"{'reached' if serving[f'{name}+coverage reached_target'] else 'not reached'}); its top-10 lists over all "
            f"{n_videos:,} videos for {served['users']:,} users: catalogue coverage {served['coverage']:.4f}, "
            f"top-item share {served['top_item_share']:.4f} (without the penalty: "
            f"{serving[f'{name} catalogue_coverage@10']:.4f}, {serving[f'{name} top_item_share@10']:.4f})\n"
        )
    summary = (
        pl.concat(tables)
        .group_by("model", maintain_order=True)
        .agg(
            pl.col("ndcg@10", "mae", "catalogue_coverage@10", "gap_closed").mean(),
            pl.col("gap_closed").min().alias("gap_closed_min"),
        )
    )
    print(f"### summary: mean over seeds {' '.join(map(str, args.seeds))}\n")
    print(markdown(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
