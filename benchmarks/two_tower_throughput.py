"""Training throughput (samples/s) of the two-tower's data feeding against a naive per-row Dataset.

    python benchmarks/two_tower_throughput.py              # 10 s per variant, full-scale id space, 2 M rows
    python benchmarks/two_tower_throughput.py --seconds 3  # a quick run

Every variant trains the SAME network (same config, same optimizer, same loss) for a fixed wall time, on one
torch thread, and counts the rows it consumed:
- ours: the rows live as tensors; each step gathers a whole batch by slicing a shuffled index permutation
  (``IndexBatches`` + ``DataLoader(batch_size=None)``), batch 8,192;
- ours through Lightning: the same feeding inside ``Trainer.fit``, as ``TwoTowerRecommender.fit`` runs it
  (the same number of steps ours took, so about the same time);
- naive: a ``Dataset`` whose ``__getitem__`` returns one row's tensors + ``DataLoader(batch_size=256,
  shuffle=True)``, the common tutorial pattern; and the same naive Dataset at batch 8,192, which isolates the
  per-row feeding cost from the batch size.
Target: ours >= 200,000 samples/s.
"""

from __future__ import annotations

from kuairec_pipeline.models.threads import set_thread_environment

set_thread_environment(blas_threads=1, openmp_threads=1)

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Iterable  # noqa: E402

import lightning.pytorch as lightning  # noqa: E402
import torch  # noqa: E402
from _data import Sizes, synthetic_training_data  # noqa: E402

from kuairec_pipeline.models.data import Interactions  # noqa: E402
from kuairec_pipeline.models.two_tower import Architecture, TwoTowerConfig  # noqa: E402
from kuairec_pipeline.models.two_tower_network import TwoTowerNetwork  # noqa: E402
from kuairec_pipeline.models.two_tower_training import index_batch_loader  # noqa: E402

TARGET_SAMPLES_PER_SECOND = 200_000
WARMUP_BATCHES = 3


class PerRowDataset(torch.utils.data.Dataset):
    """The naive pattern: one row's tensors per __getitem__, batched by the DataLoader's collate."""

    def __init__(self, rows: Interactions) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (
            torch.tensor(int(self.rows.user[index])),
            torch.tensor(int(self.rows.video[index])),
            torch.tensor(float(self.rows.target[index])),
        )


def fresh_network(data, config: TwoTowerConfig) -> TwoTowerNetwork:
    torch.manual_seed(config.seed)
    network = TwoTowerNetwork(Architecture.from_data(data), config)
    network.user_tower.set_features(data.user_categorical, data.user_numeric, None)
    network.video_tower.set_features(data.video_categorical, data.video_numeric, data.video_tags)
    return network.train()


def train_for(network: TwoTowerNetwork, batches: Iterable, seconds: float) -> tuple[float, float, int]:
    """Train until ``seconds`` have passed (after a warm-up); (samples per wall second, per CPU second, samples)."""
    optimizer = network.configure_optimizers()
    samples, started, cpu_started = 0, None, 0.0
    while True:
        for step, (users, videos, target) in enumerate(batches):
            if started is None and step == WARMUP_BATCHES:
                started, cpu_started = time.perf_counter(), time.process_time()
            objective, _ = network.loss(users, videos, target)
            optimizer.zero_grad(set_to_none=True)
            objective.backward()
            optimizer.step()
            if started is not None:
                samples += target.shape[0]
                elapsed = time.perf_counter() - started
                if elapsed >= seconds:
                    return samples / elapsed, samples / (time.process_time() - cpu_started), samples


class StepClock(lightning.Callback):
    """Counts samples and time from the first batch after the warm-up, inside Lightning's loop."""

    def __init__(self) -> None:
        self.started: float | None = None
        self.cpu_started = 0.0
        self.samples = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.started is None and batch_idx == WARMUP_BATCHES:
            self.started, self.cpu_started = time.perf_counter(), time.process_time()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.started is not None:
            self.samples += batch[2].shape[0]


def train_with_lightning(
    network: TwoTowerNetwork, rows: Interactions, config: TwoTowerConfig, steps: int
) -> tuple[float, float, int]:
    """``steps`` timed steps (after the warm-up) of ``Trainer.fit``; (samples per wall second, per CPU second,
    samples)."""
    clock = StepClock()
    trainer = lightning.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=WARMUP_BATCHES + steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[clock],
        log_every_n_steps=50,
    )
    loader = index_batch_loader(rows, config.batch_size, torch.device("cpu"), shuffle=True, seed=config.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the same data-loader notices TwoTowerRecommender.fit silences
        trainer.fit(network, train_dataloaders=loader)
    elapsed, cpu = time.perf_counter() - clock.started, time.process_time() - clock.cpu_started
    return clock.samples / elapsed, clock.samples / cpu, clock.samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000, help="training rows (id space stays full size)")
    parser.add_argument("--seconds", type=float, default=10.0, help="timed training per variant")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    sizes = dataclasses.replace(Sizes.full(), train_rows=args.rows, val_rows=1_000)
    data = synthetic_training_data(sizes)
    config = TwoTowerConfig(num_threads=args.threads, show_progress=False)
    print(
        f"data: {data.n_users:,} users x {data.n_videos:,} videos, {len(data.train):,} train rows; "
        f"{args.threads} torch thread(s); {args.seconds:.0f} s per variant"
    )

    cpu = torch.device("cpu")
    results = {}
    ours = index_batch_loader(data.train, config.batch_size, cpu, shuffle=True, seed=0)
    results["ours (index batches, 8192)"] = train_for(fresh_network(data, config), ours, args.seconds)
    # As many steps as ours managed in the same time, so both run about as long.
    steps = max(10, round(results["ours (index batches, 8192)"][0] * args.seconds / config.batch_size))
    results["ours through Lightning (8192)"] = train_with_lightning(
        fresh_network(data, config), data.train, config, steps
    )
    naive_dataset = PerRowDataset(data.train)
    for batch_size in (256, config.batch_size):
        naive = torch.utils.data.DataLoader(naive_dataset, batch_size=batch_size, shuffle=True)
        results[f"naive per-row Dataset ({batch_size})"] = train_for(
            fresh_network(data, dataclasses.replace(config, batch_size=batch_size)), naive, args.seconds
        )

    baseline = results["naive per-row Dataset (256)"][0]
    # Samples per CPU second: what one uncontended core would give (one torch thread), for a shared machine.
    print(f"  {'variant':<34} {'samples/s':>12} {'per CPU s':>12} {'samples':>11}   vs naive(256)")
    for name, (rate, cpu_rate, samples) in results.items():
        print(f"  {name:<34} {rate:>12,.0f} {cpu_rate:>12,.0f} {samples:>11,}   {rate / baseline:6.1f}x")
    best = results["ours (index batches, 8192)"][0]
    print(
        f"target: ours >= {TARGET_SAMPLES_PER_SECOND:,} samples/s   "
        f"{'OK' if best >= TARGET_SAMPLES_PER_SECOND else 'UNDER'} (wall clock)"
    )


if __name__ == "__main__":
    main()
