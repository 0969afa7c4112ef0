"""Test metrics and pointwise time of the sequential models for several query-window strides, one training each.

    python benchmarks/sequential_query_stride.py --home /tmp/kuairec-demo-11 --strides 1 25 50

``--home`` is a KUAIREC_HOME whose ``assets/`` holds the prepared tables (``filtered_ratios``, ``user_features``,
``video_features``), e.g. from ``dagster asset materialize -m kuairec_pipeline.definitions --select
'*filtered_ratios,*user_features,*video_features'``. Each model (``sequential``, ``sequential_shuffled``) is
trained once with the default config (``query_stride`` only changes which window a state is read from, not the
training, except the validation rows of early stopping, which come after every training row and so read the
final window); then, for each stride, the whole-history states are recomputed and the metrics step's
``evaluate`` gives test ndcg@10 and mae (pointwise from the history before each test row, timed).
"""

from __future__ import annotations

from kuairec_pipeline.models.threads import set_thread_environment

set_thread_environment(blas_threads=1, openmp_threads=1)

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import polars as pl  # noqa: E402
from run_full import commit  # noqa: E402

from kuairec_pipeline.evaluation.metrics import evaluate  # noqa: E402
from kuairec_pipeline.models.data import build_prepared_data  # noqa: E402
from kuairec_pipeline.models.sequential import (  # noqa: E402
    SequentialConfig,
    SequentialRecommender,
    ShuffledSequentialRecommender,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="KUAIREC_HOME whose assets/ holds the tables")
    parser.add_argument("--strides", type=int, nargs="+", default=[1, 25, 50], help="query strides to compare")
    parser.add_argument("--seed", type=int, default=SequentialConfig.seed, help="the models' training seed")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    tables = [
        pl.read_parquet(args.home / "assets" / f"{name}.parquet")
        for name in ("filtered_ratios", "user_features", "video_features")
    ]
    prepared = build_prepared_data(*tables)
    print(f"commit {commit()}, {time.strftime('%Y-%m-%d %H:%M')}; home {args.home}; training seed {args.seed}")
    print(f"train rows {len(prepared.training.train):,}, test rows {len(prepared.test):,}")
    print(f"{'model':<20} {'stride':>6} {'ndcg@10':>8} {'mae':>8} {'evaluate s':>10}")
    for model_class in (SequentialRecommender, ShuffledSequentialRecommender):
        started = time.perf_counter()
        model = model_class(SequentialConfig(seed=args.seed, num_threads=1)).fit(prepared.training)
        print(f"{model.name}: trained in {time.perf_counter() - started:.0f} s, best epoch {model.best_epoch}")
        for stride in args.strides:
            model.config = dataclasses.replace(model.config, query_stride=stride)
            model.store_final_states(prepared.training.train)
            started = time.perf_counter()
            table = evaluate(model, prepared)
            seconds = time.perf_counter() - started
            test = table.filter(pl.col("split") == "test")
            value = dict(zip(test["metric"].to_list(), test["value"].to_list(), strict=True))
            print(f"{model.name:<20} {stride:>6} {value['ndcg@10']:>8.4f} {value['mae']:>8.4f} {seconds:>10.1f}")


if __name__ == "__main__":
    main()
