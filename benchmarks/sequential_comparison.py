"""Quality on the demo twin: sequential vs sequential_shuffled vs two_tower, one model and training seed per run.

    KUAIREC_HOME=data python benchmarks/sequential_comparison.py sequential 11   # or shuffled / two_tower, any seed

Reads the prepared-data assets under $KUAIREC_HOME/assets (materialize '*filtered_ratios,*user_features,
*video_features' first), trains on one torch thread on the CPU, evaluates through ``evaluation.metrics.evaluate``
and prints one RESULT line: test mae / rmse (time-aware for the sequential models), ndcg@10 / ndcg@50, val mae,
plus two diagnostics: the mae from the whole-history state (``predict``), and the mae when the history also holds
the user's earlier test rows (strictly before by timestamp; untimed test rows use the training rows only).
"""

import os
import sys
import time

import numpy as np
import polars as pl

from kuairec_pipeline.evaluation.metrics import evaluate
from kuairec_pipeline.models.data import build_training_data
from kuairec_pipeline.models.sequential import SequentialConfig, SequentialRecommender, ShuffledSequentialRecommender
from kuairec_pipeline.models.two_tower import TwoTowerConfig, TwoTowerRecommender

A = os.path.join(os.environ.get("KUAIREC_HOME", "data"), "assets", "")
data = build_training_data(
    pl.read_parquet(A + "filtered_ratios.parquet"),
    pl.read_parquet(A + "user_features.parquet"),
    pl.read_parquet(A + "video_features.parquet"),
)
kind = sys.argv[1]
seed = int(sys.argv[2])
over = {}
for kv in sys.argv[3:]:
    k, v = kv.split("=")
    over[k] = type(getattr(SequentialConfig, k))(eval(v))
if kind == "two_tower":
    m = TwoTowerRecommender(TwoTowerConfig(seed=seed, num_threads=1, accelerator="cpu", show_progress=False, **over))
    t = time.time()
    m.fit(data)
    fit_s = time.time() - t
else:
    cfg = SequentialConfig(seed=seed, num_threads=1, accelerator="cpu", **over)
    cls = ShuffledSequentialRecommender if kind == "shuffled" else SequentialRecommender
    t = time.time()
    m = cls(cfg).fit(data, progress=print)
    fit_s = time.time() - t
t = time.time()
r = evaluate(m, data, include_val=True)
ev_s = time.time() - t
d = {(row["split"], row["metric"]): row["value"] for row in r.iter_rows(named=True)}
from kuairec_pipeline.evaluation.metrics import pointwise_errors

kept = data.test.passes_filter
whole = pointwise_errors(m.predict(data.test.user[kept], data.test.video[kept]), data.test.target[kept])[0]
with_test = float("nan")
if kind != "two_tower":
    # diagnostic: history = train + the user's earlier test rows (strictly before by timestamp; untimed test rows
    # neither join the history nor read it: they use train only)
    from kuairec_pipeline_tests.models.test_sequential import concat, take

    timed = np.flatnonzero(~np.isnan(data.test.timestamp))
    pred = m.predict_rows(data.test, data.train)
    pred[timed] = m.predict_rows(take(data.test, timed), concat(data.train, take(data.test, timed)))
    with_test = pointwise_errors(pred[kept], data.test.target[kept])[0]
print(
    f"RESULT {kind} seed={seed} with_test_history_mae={with_test:.4f} whole_history_mae={whole:.4f} {over} fit={fit_s:.1f}s eval={ev_s:.1f}s best_epoch={m.best_epoch} "
    f"val_mae={d[('val', 'mae')]:.4f} mae={d[('test', 'mae')]:.4f} rmse={d[('test', 'rmse')]:.4f} ndcg@10={d[('test', 'ndcg@10')]:.4f} ndcg@50={d[('test', 'ndcg@50')]:.4f}"
)
