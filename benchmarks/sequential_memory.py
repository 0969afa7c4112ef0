"""Peak resident memory and wall time of the sequential asset, step by step, from its prepared inputs.

    python benchmarks/sequential_memory.py --home /tmp/kuairec-full          # KUAIREC_HOME holding assets/*.parquet
    python benchmarks/sequential_memory.py --home ... --shuffled --test     # the ablation, plus the test pointwise step

The prepared tables (``filtered_ratios``, ``user_features``, ``video_features``) must already be materialized under
``<home>/assets/`` (e.g. ``dagster asset materialize -m kuairec_pipeline.definitions --select
'*filtered_ratios,*user_features,*video_features'`` with ``KUAIREC_PROFILE=full``). This process then runs what the
``sequential_model`` asset runs (load the three tables as the IO manager does, ``build_training_data``, ``fit``, the
validation metrics, the bundle), so its resident set is the asset's own, with no earlier asset's leftovers (a
whole-graph run, ``benchmarks/run_full.py``, adds those). A sampler thread reads /proc/self/statm every
``--sample-ms``; the functions named in ``MARKED`` are wrapped so each sample is attributed to the innermost step
running when it was taken. With ``--test`` the metrics step's pointwise part (``predict_rows`` over the test rows
from the training history) is timed as well.
"""

from __future__ import annotations

from kuairec_pipeline.models.threads import set_thread_environment

set_thread_environment(blas_threads=1, openmp_threads=1)

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import functools  # noqa: E402
import importlib  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import polars as pl  # noqa: E402
from run_full import MIB, RssSampler, commit, rss_bytes  # noqa: E402

# (module, attribute) pairs wrapped to mark steps; a dotted attribute wraps a method.
MARKED = (
    ("kuairec_pipeline.models.data", "build_training_data"),
    ("kuairec_pipeline.models.sequences", "build_history"),
    ("kuairec_pipeline.models.sequential_training", "WindowBatches.__init__"),
    ("kuairec_pipeline.models.sequential_training", "query_batch"),
    ("lightning.pytorch", "Trainer.fit"),
    ("kuairec_pipeline.models.sequential", "SequentialRecommender._states"),
    ("kuairec_pipeline.evaluation.metrics", "validation_metrics"),
    ("kuairec_pipeline.models.base", "Recommender.bundle"),
)


class Steps:
    """A stack of running step names; ``spans`` holds (name, start, end) of every finished call."""

    def __init__(self) -> None:
        self.stack: list[tuple[str, float]] = []
        self.spans: list[tuple[str, float, float]] = []

    def wrap(self, name: str, function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            self.stack.append((name, time.time()))
            try:
                return function(*args, **kwargs)
            finally:
                _, start = self.stack.pop()
                self.spans.append((name, start, time.time()))

        return wrapper

    def install(self) -> None:
        for module_name, attribute in MARKED:
            owner = importlib.import_module(module_name)
            *path, leaf = attribute.split(".")
            for part in path:
                owner = getattr(owner, part)
            setattr(owner, leaf, self.wrap(attribute, getattr(owner, leaf)))


def attribute(sampler: RssSampler, steps: Steps, base: int) -> list[tuple[str, int, float, float]]:
    """Per step: (name, calls, total seconds, peak resident MiB over its calls, innermost spans only)."""
    rows = []
    for name in dict.fromkeys(name for name, _, _ in steps.spans):
        spans = [(start, end) for step, start, end in steps.spans if step == name]
        inner = [
            rss
            for t, rss in sampler.samples
            for start, end in spans
            if start <= t <= end
            and not any(
                other != name and start <= s <= t <= e <= end for other, s, e in steps.spans
            )  # a sample inside a nested marked call belongs to that call
        ]
        peak = max(inner) if inner else 0
        rows.append((name, len(spans), sum(end - start for start, end in spans), peak / MIB))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="KUAIREC_HOME whose assets/ holds the tables")
    parser.add_argument("--shuffled", action="store_true", help="the order ablation (sequential_shuffled)")
    parser.add_argument("--test", action="store_true", help="also time predict_rows over the test rows")
    parser.add_argument("--max-epochs", type=int, default=0, help="override max_epochs (0 = the default)")
    parser.add_argument("--sample-ms", type=int, default=20, help="resident-memory sampling period, ms")
    args = parser.parse_args()

    import torch

    from kuairec_pipeline.models.data import Interactions
    from kuairec_pipeline.models.progress import quiet_lightning_notices
    from kuairec_pipeline.models.sequential import (
        SequentialConfig,
        SequentialRecommender,
        ShuffledSequentialRecommender,
    )
    from kuairec_pipeline.target import SPLIT_TEST

    torch.set_num_threads(1)
    steps = Steps()
    steps.install()
    from kuairec_pipeline.evaluation import metrics
    from kuairec_pipeline.models import data as data_module

    revision = commit()  # the code this run imported (a commit made while it runs must not relabel it)
    sampler = RssSampler(args.sample_ms / 1000)
    sampler.start()
    base = rss_bytes()
    started = time.time()
    assets = args.home / "assets"
    tables = {name: pl.read_parquet(assets / f"{name}.parquet") for name in PREPARED}
    loaded = time.time()
    config = SequentialConfig()
    if args.max_epochs:
        config = dataclasses.replace(config, max_epochs=args.max_epochs)
    model = (ShuffledSequentialRecommender if args.shuffled else SequentialRecommender)(config)
    data = data_module.build_training_data(*tables.values())
    with quiet_lightning_notices():
        model.fit(data, progress=lambda line: print(f"  {time.time() - started:7.1f} s  {line}", flush=True))
    scores = metrics.validation_metrics(model, data)
    bundle = model.bundle()
    finished = time.time()
    test_seconds = None
    if args.test:
        test = Interactions.from_frame(tables["filtered_ratios"].filter(pl.col("split") == SPLIT_TEST))
        test_started, test_cpu = time.time(), time.process_time()
        predictions = model.predict_rows(test, data.train)
        test_seconds, test_cpu = time.time() - test_started, time.process_time() - test_cpu
    sampler.stop()
    peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, max(rss for _, rss in sampler.samples))
    asset_peak = max(rss for t, rss in sampler.samples if t <= finished)

    print(f"{model.name}, commit {revision}, {time.strftime('%Y-%m-%d %H:%M')}; home {args.home}")
    print(f"train rows {len(data.train):,}, val rows {len(data.val):,}; epochs {model.history.shape[0]}")
    print(f"rss before loading {base / MIB:.0f} MiB; load of the tables {loaded - started:.1f} s")
    print(f"  {'step (innermost)':<42} {'calls':>5} {'seconds':>8} {'peak MiB':>9}")
    for name, calls, seconds, step_peak in attribute(sampler, steps, base):
        print(f"  {name:<42} {calls:>5} {seconds:>8.1f} {step_peak:>9.0f}")
    print(f"asset steps {finished - started:.1f} s, peak resident {asset_peak / MIB:.0f} MiB; val {scores}")
    print(f"bundle {sum(v.nbytes for v in bundle.values()) / MIB:.1f} MiB")
    if test_seconds is not None:
        kept = test.passes_filter
        mae = float(abs(predictions[kept] - test.target[kept]).mean())
        print(
            f"pointwise test predict_rows: {len(test):,} rows in {test_seconds:.1f} s wall, {test_cpu:.1f} s CPU; "
            f"test mae {mae:.4f}"
        )
    print(f"process peak resident {peak / MIB:.0f} MiB")


PREPARED = ("filtered_ratios", "user_features", "video_features")

if __name__ == "__main__":
    main()
