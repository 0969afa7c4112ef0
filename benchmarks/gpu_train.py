"""Train the neural models on a CUDA GPU: throughput (training rows/s) and the test metrics.

    python benchmarks/gpu_train.py                       # full profile, the prepared tables from a fresh run
    python benchmarks/gpu_train.py --profile demo --assets data/assets   # reuse prepared tables

Without a CUDA GPU it says so and exits with code 3, before anything is generated or trained. The prepared tables
(``filtered_ratios``, ``user_features``, ``video_features``) come from ``--assets`` when given, else from a fresh
Dagster run of their part of the graph in a temporary KUAIREC_HOME. The two-tower then trains once per precision
(``32-true``, then ``bf16-mixed`` when the GPU supports it) through ``TwoTowerRecommender.fit``, i.e. exactly as the
``two_tower_embeddings`` asset does (early stopping on validation included); throughput = training rows x epochs /
fit wall time. One GPU: the asset trains on one device (several GPUs: models/data_parallel.py, not wired here).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

PREPARED = ("filtered_ratios", "user_features", "video_features")
NO_GPU_EXIT = 3


def prepared_tables(profile: str, seed: int, assets: Path | None) -> dict[str, pl.DataFrame]:
    if assets is not None:
        return {key: pl.read_parquet(assets / f"{key}.parquet") for key in PREPARED}
    workdir = Path(tempfile.mkdtemp(prefix="kuairec-gpu-"))
    try:
        os.environ.update(
            {
                "KUAIREC_HOME": str(workdir),
                "KUAIREC_PROFILE": profile,
                "KUAIREC_SEED": str(seed),
                "KUAIREC_SOURCE": "synthetic",
            }
        )
        os.environ.pop("KUAIREC_ASSET_STORAGE", None)
        from dagster import AssetSelection, DagsterInstance

        from kuairec_pipeline.definitions import build_definitions

        defs = build_definitions()
        selection = AssetSelection.assets(*PREPARED).upstream()
        job = defs.get_implicit_global_asset_job_def().get_subset(
            asset_selection=set(selection.resolve(defs.resolve_asset_graph()))
        )
        with DagsterInstance.ephemeral() as instance:
            job.execute_in_process(instance=instance, raise_on_error=True)
        return {key: pl.read_parquet(workdir / "assets" / f"{key}.parquet") for key in PREPARED}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=("tiny", "demo", "full"), default="full", help="synthetic twin size")
    parser.add_argument("--seed", type=int, default=20220705, help="seed of the synthetic twin")
    parser.add_argument("--assets", type=Path, default=None, help="folder holding the prepared tables to reuse")
    parser.add_argument("--epochs", type=int, default=None, help="max epochs, >= 1 (default: the asset's default)")
    args = parser.parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        parser.error(f"--epochs must be >= 1, got {args.epochs}")

    import torch

    if not torch.cuda.is_available():
        print(
            "gpu_train: no CUDA GPU visible to torch (torch.cuda.is_available() is False; torch "
            f"{torch.__version__}, CUDA build {torch.version.cuda}): nothing measured. Run it on a machine with "
            "an NVIDIA GPU and a CUDA build of torch.",
            file=sys.stderr,
        )
        return NO_GPU_EXIT

    from kuairec_pipeline.evaluation.metrics import evaluate
    from kuairec_pipeline.models.data import build_training_data
    from kuairec_pipeline.models.two_tower import TwoTowerConfig, TwoTowerRecommender

    print(
        f"GPU: {torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}, torch {torch.__version__}, "
        f"CUDA {torch.version.cuda}; profile {args.profile}, seed {args.seed}"
    )
    started = time.perf_counter()
    tables = prepared_tables(args.profile, args.seed, args.assets)
    data = build_training_data(*(tables[key] for key in PREPARED))
    print(
        f"prepared tables in {time.perf_counter() - started:.1f} s: {len(data.train):,} training rows, "
        f"{len(data.val):,} validation, {len(data.test):,} test"
    )

    base = TwoTowerConfig(accelerator="gpu", show_progress=False)
    if args.epochs is not None:
        base = dataclasses.replace(base, max_epochs=args.epochs)
    precisions = ["32-true"] + (["bf16-mixed"] if torch.cuda.is_bf16_supported() else [])
    for precision in precisions:
        config = dataclasses.replace(base, precision=precision)
        torch.cuda.synchronize()
        begin = time.perf_counter()
        model = TwoTowerRecommender(config).fit(data)
        epochs = model.epochs_trained
        torch.cuda.synchronize()
        seconds = time.perf_counter() - begin
        rate = len(data.train) * epochs / seconds
        metrics = evaluate(model, data)
        row = {r["metric"]: r["value"] for r in metrics.iter_rows(named=True)}
        print(
            f"two_tower {precision} : {epochs} epochs in {seconds:.1f} s = "
            f"{rate:,.0f} rows/s; test mae {row['mae']:.4f} rmse {row['rmse']:.4f} ndcg@10 {row['ndcg@10']:.4f} "
            f"ndcg@50 {row['ndcg@50']:.4f}; peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:,.0f} MiB"
        )
        torch.cuda.reset_peak_memory_stats()
    return 0


if __name__ == "__main__":
    sys.exit(main())
