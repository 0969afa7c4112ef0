"""Gathers the HTML report's inputs around the metrics step and writes it (the asset calls one function)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import polars as pl
from dagster import AssetExecutionContext, AssetKey

from kuairec_pipeline.evaluation import report_inputs
from kuairec_pipeline.evaluation.html_report import RatioDistribution, write_html_report
from kuairec_pipeline.evaluation.selection import select_served_model
from kuairec_pipeline.features.plots import histogram_counts
from kuairec_pipeline.models.base import Recommender
from kuairec_pipeline.models.data import PreparedData
from kuairec_pipeline.orchestration.storage_layout import stored_interaction_files
from kuairec_pipeline.settings import Settings
from kuairec_pipeline.target import SPLIT_TRAIN

COVERAGE_K = 10
EXAMPLE_USERS = 3
ITEM_DAILY_FEATURES = "item_daily_features.csv"


def _max_watch_ratio(context: AssetExecutionContext) -> float | None:
    """The outlier threshold the stored filtered_ratios was built with (its run's config, else the default)."""
    from kuairec_pipeline.orchestration.assets.prepare import FilteredRatiosConfig

    event = context.instance.get_latest_materialization_event(AssetKey("filtered_ratios"))
    if event is None:
        return None
    run = context.instance.get_run_by_id(event.run_id)
    ops = (run.run_config or {}).get("ops", {}) if run is not None else {}
    configured = ops.get("filtered_ratios", {}).get("config", {}).get("max_watch_ratio")
    return float(configured) if configured is not None else FilteredRatiosConfig().max_watch_ratio


def _item_daily_path(assets_dir: Path) -> Path | None:
    manifest = assets_dir / "source_files.parquet"
    if not manifest.exists():
        return None
    rows = pl.read_parquet(manifest).filter(pl.col("file_name") == ITEM_DAILY_FEATURES)
    return Path(rows["path"][0]) if rows.height else None


def write_run_report(
    context: AssetExecutionContext,
    settings: Settings,
    metrics: pl.DataFrame,
    data: PreparedData,
    models: Sequence[Recommender],
    bundles: Mapping[str, Mapping[str, np.ndarray]],
    served: Recommender | None = None,
) -> Path:
    """Write ``$KUAIREC_HOME/reports/report.html`` for the metrics step; returns its path.

    Reads the stored ``raw_interactions`` and ``interaction_days`` (exact counts before filtering), ``raw_videos``
    and the source manifest (captions and tag names) from the asset folder; examples use the trained model with the
    best selection ndcg@10 as the ``recommendations`` asset serves it: ``served``, which the metrics step passes (a
    :class:`~kuairec_pipeline.evaluation.reranking.CoverageReranked` when its penalty is above 0); default: that
    model's own ranking.
    """
    assets = settings.assets_dir
    raw = stored_interaction_files(assets)  # the archive and the appended days: what filtered_ratios read
    ratios = None
    filtered = assets / "filtered_ratios.parquet"
    if raw and filtered.exists():
        ratios = RatioDistribution(
            histogram_counts(pl.scan_parquet(raw, hive_partitioning=False)),
            # The table's float64 ratios, which filtered_ratios' own chart counted (so this one is reused): the
            # training arrays' float32 copies move values that sit on a bin edge into the next bin.
            histogram_counts(pl.scan_parquet(filtered).filter(pl.col("split") == SPLIT_TRAIN)),
            _max_watch_ratio(context),
        )
    curves = [c for name, bundle in bundles.items() if (c := report_inputs.training_curve(name, dict(bundle)))]
    videos = assets / "raw_videos.parquet"
    labels = (
        report_inputs.video_labels(pl.read_parquet(videos), _item_daily_path(assets))
        if videos.exists()
        else pl.DataFrame(schema=report_inputs.LABEL_SCHEMA)
    )
    if served is None:  # the served model's own ranking (raises without a selection slice, as the choice does)
        served = next(m for m in models if m.name == select_served_model(metrics))
    examples = report_inputs.user_examples(served, data, labels, report_inputs.example_users(data, EXAMPLE_USERS))
    path = write_html_report(
        settings.home / "reports",
        metrics,
        ratios=ratios,
        curves=curves,
        coverage=report_inputs.catalogue_coverage(
            [*models, *([served] if served not in models else [])], data, COVERAGE_K
        ),
        coverage_k=COVERAGE_K,
        examples=examples,
        trained_models=list(bundles),
        context={
            "source": settings.source,
            "profile": settings.profile,
            "seed": str(settings.seed),
            "run": context.run.run_id,
            "assets": str(assets),
        },
    )
    context.log.info(f"HTML report written to {path}")
    return path
