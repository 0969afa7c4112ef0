"""What the coverage re-ranking adds to the metrics step, as a ratio to one model's evaluation in the same run.

    .venv/bin/python benchmarks/reranking_cost.py --assets /tmp/kuairec_quality/full-seed11/assets

Reads a materialized asset folder (the stored prepared arrays, the metrics table and the served model's bundle;
e.g. one that ``benchmarks/quality.py`` left), then times, on the served model:

- baseline: ``evaluate(model, data, include_selection=True)``, the work the metrics step does for every model;
- re-ranking: ``coverage_rows(...)`` with the metrics step's defaults (the mean-score pass, the list statistics of
  every penalty of the grid, the selection ndcg per penalty and the re-ranked model's own evaluation).

Prints both wall times and their ratio (the machine is shared and noisy; the ratio is what to compare), and the
chosen penalty, which must equal the stored table's.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from kuairec_pipeline.evaluation.metrics import evaluate, seen_matrix  # noqa: E402
from kuairec_pipeline.evaluation.reranking import coverage_rows, served_penalty  # noqa: E402
from kuairec_pipeline.evaluation.selection import select_served_model  # noqa: E402
from kuairec_pipeline.models.data_store import prepared_from_arrays  # noqa: E402
from kuairec_pipeline.models.registry import TRAINED_MODELS  # noqa: E402
from kuairec_pipeline.orchestration.assets.evaluate import MetricsConfig  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=Path, required=True, help="a materialized asset folder")
    args = parser.parse_args(argv)

    def arrays(name: str) -> dict[str, np.ndarray]:
        with np.load(args.assets / f"{name}.npz", allow_pickle=False) as bundle:
            return dict(bundle)

    data = prepared_from_arrays(arrays("training_arrays"), arrays("evaluation_arrays"))
    metrics = pl.read_parquet(args.assets / "metrics.parquet")
    served = select_served_model(metrics)
    entry = TRAINED_MODELS[served]
    model = entry.model_class().from_bundle(arrays(entry.asset_key), entry.asset_key)
    config = MetricsConfig()
    print(f"assets {args.assets}; served model {served}; {data.n_users:,} users x {data.n_videos:,} videos")

    started = time.perf_counter()
    evaluate(model, data, include_selection=True)
    baseline = time.perf_counter() - started
    started = time.perf_counter()
    _, choice = coverage_rows(
        model,
        data,
        seen_matrix(data),
        config.target_coverage,
        config.max_selection_ndcg_loss,
        config.max_top_item_share,
    )
    reranking = time.perf_counter() - started
    print(f"baseline (one model's evaluate): {baseline:.1f} s")
    print(f"coverage re-ranking (coverage_rows): {reranking:.1f} s = {reranking / baseline:.2f}x the baseline")
    print(f"penalty {choice.penalty:g} (stored table: {served_penalty(metrics, served):g})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
