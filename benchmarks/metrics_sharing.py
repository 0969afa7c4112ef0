"""What sharing the hybrids' components saves in the metrics step's evaluation, as a ratio in the same run.

    .venv/bin/python benchmarks/metrics_sharing.py --assets /tmp/demo_run/home/assets --rounds 3

Reads a materialized asset folder (the prepared arrays, the planted truth and every trained model's bundle; e.g.
what ``benchmarks/run_full.py --workdir DIR`` leaves in ``DIR/home/assets``), loads the models as the metrics step
does, and times ``evaluate_models`` over all of them (baselines included), each round in this order:

- baseline: each hybrid with the components of its own bundle (before ``models/components.sharing_components``);
- shared: inside ``sharing_components``, as the metrics step runs now.

The order is fixed, so a warm-up of the first favours the second; rounds show the noise. Per round it prints
both wall times, their ratio, and how many times the sequential models predicted rows (the
work sharing removes); then the median ratio. The coverage re-ranking and the HTML report are not timed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from kuairec_pipeline.evaluation import baselines  # noqa: E402
from kuairec_pipeline.evaluation.metrics import evaluate_models  # noqa: E402
from kuairec_pipeline.models.components import sharing_components  # noqa: E402
from kuairec_pipeline.models.data_store import prepared_from_arrays  # noqa: E402
from kuairec_pipeline.models.registry import TRAINED_MODELS  # noqa: E402
from kuairec_pipeline.models.sequential import SequentialRecommender  # noqa: E402


def evaluation_seconds(assets: Path, share: bool) -> tuple[float, int, pl.DataFrame]:
    """(wall s of evaluate_models, row predictions the sequential models computed, the metrics table)."""

    def bundle(name: str) -> dict[str, np.ndarray]:
        with np.load(assets / f"{name}.npz", allow_pickle=False) as stored:
            return dict(stored)

    data = prepared_from_arrays(bundle("training_arrays"), bundle("evaluation_arrays"))
    truth = pl.read_parquet(assets / "planted_truth.parquet")
    trained = [entry.model_class().from_bundle(bundle(entry.asset_key), name) for name, entry in TRAINED_MODELS.items()]
    models = [*baselines.fit_baselines(data.training, truth), *trained]
    computed = 0
    predict = SequentialRecommender._predict_rows

    def counted(model: SequentialRecommender, rows, history) -> np.ndarray:
        nonlocal computed
        computed += 1
        return predict(model, rows, history)

    SequentialRecommender._predict_rows = counted  # counts only; the work is the model's own
    try:
        started = time.perf_counter()
        with sharing_components(models) if share else contextlib.nullcontext():
            table = evaluate_models(models, data, time_aware_predictions={})
        return time.perf_counter() - started, computed, table
    finally:
        SequentialRecommender._predict_rows = predict


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", type=Path, required=True, help="a materialized asset folder")
    parser.add_argument("--rounds", type=int, default=3, help="baseline-then-shared rounds, 1..10")
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 10:
        parser.error(f"--rounds must be in 1..10, got {args.rounds}")
    print(f"assets {args.assets}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    ratios = []
    for round_number in range(1, args.rounds + 1):
        baseline, baseline_calls, before = evaluation_seconds(args.assets, share=False)
        shared, shared_calls, after = evaluation_seconds(args.assets, share=True)
        if not before.equals(after):
            print("the shared evaluation's table differs from the baseline's", file=sys.stderr)
            return 1
        ratios.append(shared / baseline)
        print(
            f"round {round_number}: baseline {baseline:.2f} s ({baseline_calls} sequential row predictions), "
            f"shared {shared:.2f} s ({shared_calls}), ratio {shared / baseline:.2f}",
            flush=True,
        )
    print(f"median ratio shared / baseline: {statistics.median(ratios):.2f}; the tables are equal")
    return 0


if __name__ == "__main__":
    sys.exit(main())
