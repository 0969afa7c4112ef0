"""The closing summary of a pipeline run (``kuairec summary``): where the results are, headline metrics, next steps.

Reads only the stored files (Parquet statistics and small scans), so it answers in well under a second.
"""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl

from kuairec_pipeline.evaluation.reranking import SPLIT_SERVING, SUFFIX
from kuairec_pipeline.settings import Settings

HEADLINE = ("rmse", "ndcg@10")
REPORT_PATH = Path("reports") / "report.html"  # below KUAIREC_HOME; written by the metrics step


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.4f}"


def recommendations_depth(path: str | Path) -> int | None:
    """Largest rank stored in a recommendations table (the k it was built with), ``None`` if it is empty."""
    depth = pl.scan_parquet(path).select(pl.col("rank").max()).collect().item()
    return None if depth is None else int(depth)


def _reranking_note(metrics: pl.DataFrame, model: str) -> str:
    """', re-ranked for coverage: penalty P, top-10 coverage a -> b' from the metrics table's ``serving`` rows;
    empty when the table has none for ``model`` (written before re-ranking) or the penalty is 0."""
    serving = metrics.filter(pl.col("split") == SPLIT_SERVING)
    values = {(m, k): v for m, k, v in serving.select("model", "metric", "value").iter_rows()}
    penalty = values.get((model + SUFFIX, "penalty"), 0.0)
    if not penalty:
        return ""
    before = values.get((model, "catalogue_coverage@10"), float("nan"))
    after = values.get((model + SUFFIX, "catalogue_coverage@10"), float("nan"))
    return f", re-ranked for coverage: penalty {penalty:g}, top-10 coverage of all videos {before:.3f} -> {after:.3f}"


def closing_summary(settings: Settings) -> str:
    """A short text: the data folder, report, metrics and recommendations files, the test metrics ``HEADLINE`` of
    every model (the best non-reference value marked ``*``), and the commands to run next.

    Raises ``FileNotFoundError`` naming the metrics file when the pipeline has not been materialized.
    """
    assets = settings.assets_dir
    metrics_path = assets / "metrics.parquet"
    if not metrics_path.exists():
        raise FileNotFoundError(f"{metrics_path} does not exist")
    table = pl.read_parquet(metrics_path).filter((pl.col("split") == "test") & pl.col("metric").is_in(HEADLINE))
    models = table["model"].unique(maintain_order=True).to_list()
    values = {(m, k): v for m, k, v in table.select("model", "metric", "value").iter_rows()}
    best = {}
    for metric in HEADLINE:
        scored = [values[(m, metric)] for m in models if m != "oracle" and (m, metric) in values]
        if scored:
            best[metric] = min(scored) if metric == "rmse" else max(scored)

    lines = [f"Results in {settings.home} (KUAIREC_HOME; source {settings.source}, profile {settings.profile})"]
    report = settings.home / REPORT_PATH
    lines.append(f"  report           {report}" + ("" if report.exists() else "  (missing: re-run metrics)"))
    lines.append(f"  metrics          {metrics_path}")
    recommendations = assets / "recommendations.parquet"
    example_user = 0
    if recommendations.exists():
        first_user = pl.scan_parquet(recommendations).select(pl.col("user_id").min()).collect().item()
        example_user = 0 if first_user is None else int(first_user)
        first = pl.scan_parquet(recommendations).select("model").head(1).collect()
        model = first.item() if first.height else "?"
        lines.append(
            f"  recommendations  {recommendations} (top {recommendations_depth(recommendations)} per user, "
            f"model {model}{_reranking_note(pl.read_parquet(metrics_path), model)})"
        )
    width = max([len(m) for m in models] + [5])
    lines.append("")
    lines.append("Test metrics (* best, oracle = the planted ceiling):")
    lines.append(f"  {'model'.ljust(width)}  " + "  ".join(m.rjust(9) for m in HEADLINE))
    for model in models:
        cells = []
        for metric in HEADLINE:
            value = values.get((model, metric))
            mark = "*" if value is not None and model != "oracle" and best.get(metric) == value else " "
            cells.append((_fmt(value) + mark).rjust(9))
        lines.append(f"  {model.ljust(width)}  " + "  ".join(cells))
    lines += [
        "",
        "Next:",
        f"  .venv/bin/kuairec recommend --user {example_user} -k 10      # one user's top 10",
        "  .venv/bin/kuairec metrics                       # every metric",
        "  .venv/bin/dagster dev -h 127.0.0.1 -p 3000      # the web UI",
    ]
    return "\n".join(lines) + "\n"
