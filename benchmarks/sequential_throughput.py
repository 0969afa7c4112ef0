"""Training throughput (history positions/s) of the sequential model's window batches against a naive per-user
Dataset + DataLoader over the same network, in one run, and the ratio between them.

    python benchmarks/sequential_throughput.py                # 10 s per variant, full-scale id space, 2 M rows
    python benchmarks/sequential_throughput.py --seconds 3    # a quick run

Both variants train the SAME network (default SequentialConfig, same optimizer and loss, one torch thread) for a
fixed wall time and count the valid history positions they consumed:
- ours (``WindowBatches``): the ordered history lives as tensors; each step turns a slice of a shuffled window
  permutation into an index matrix and gathers the batch (what ``SequentialRecommender.fit`` runs);
- naive: the common tutorial pattern, a ``Dataset`` holding a Python list of rows per user, whose ``__getitem__``
  returns one window (``max_len`` rows of one user) as tensors, padded and batched by a ``collate_fn``
  (``pad_sequence``), ``DataLoader(shuffle=True)`` at the same windows per batch.
Goal: ours >= 10x naive. The feeding alone (batches produced without a training step) is measured too: it shows how
much of a training step the feeding is, i.e. the most any feeding can gain.
"""

from __future__ import annotations

from kuairec_pipeline.models.threads import set_thread_environment

set_thread_environment(blas_threads=1, openmp_threads=1)

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterable  # noqa: E402

import torch  # noqa: E402
from _data import Sizes, synthetic_training_data  # noqa: E402
from torch.nn.utils.rnn import pad_sequence  # noqa: E402

from kuairec_pipeline.models import sequences  # noqa: E402
from kuairec_pipeline.models.sequential_config import SequentialArchitecture, SequentialConfig  # noqa: E402
from kuairec_pipeline.models.sequential_network import SequentialNetwork  # noqa: E402
from kuairec_pipeline.models.sequential_training import WindowBatches  # noqa: E402

GOAL_RATIO = 10.0
WARMUP_BATCHES = 3


class PerUserWindows(torch.utils.data.Dataset):
    """The naive pattern: per-user Python lists of (video, ratio) built row by row; one window per item."""

    def __init__(self, rows, max_len: int) -> None:
        per_user: dict[int, list[tuple[int, float, float]]] = {}
        for user, video, target, timestamp in zip(
            rows.user.tolist(), rows.video.tolist(), rows.target.tolist(), rows.timestamp.tolist(), strict=False
        ):
            per_user.setdefault(user, []).append((timestamp, video, target))
        self.windows: list[tuple[int, list[tuple[float, int, float]], bool, tuple[int, float] | None]] = []
        for user, views in per_user.items():
            views.sort()
            for first in range(0, len(views), max_len):
                nxt = views[first + max_len] if first + max_len < len(views) else None
                self.windows.append(
                    (user, views[first : first + max_len], first == 0, None if nxt is None else (nxt[1], nxt[2]))
                )

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        user, views, first, nxt = self.windows[index]
        video = torch.tensor([v for _, v, _ in views])
        ratio = torch.tensor([r for _, _, r in views], dtype=torch.float32)
        target_video = torch.cat([video[1:], torch.tensor([nxt[0] if nxt else 0])])
        target = torch.cat([ratio[1:], torch.tensor([nxt[1] if nxt else 0.0])])
        valid = torch.ones(len(views), dtype=torch.bool)
        valid[-1] = nxt is not None
        return {
            "video": video,
            "ratio": ratio,
            "user": torch.tensor(user),
            "first": torch.tensor(first),
            "target_video": target_video,
            "target": target,
            "target_valid": valid,
        }


def collate(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    padded = {
        name: pad_sequence([item[name] for item in items], batch_first=True)
        for name in ("video", "ratio", "target_video", "target", "target_valid")
    }
    padded["user"] = torch.stack([item["user"] for item in items])
    padded["first"] = torch.stack([item["first"] for item in items])
    return padded


def fresh_network(data, config: SequentialConfig) -> SequentialNetwork:
    torch.manual_seed(config.seed)
    network = SequentialNetwork(SequentialArchitecture.from_data(data), config)
    network.set_video_features(data.video_tags, data.video_categorical)
    network.log = lambda *args, **kwargs: None  # outside a Trainer: nothing to log to
    return network.train()


def train_for(network: SequentialNetwork, batches: Iterable, seconds: float) -> tuple[float, int]:
    """Train until ``seconds`` have passed after a warm-up; (valid positions per wall second, positions)."""
    optimizer = network.configure_optimizers()
    positions, started = 0, None
    while True:
        for step, batch in enumerate(batches):
            if started is None and step == WARMUP_BATCHES:
                started = time.perf_counter()
            loss = network.training_step(batch, step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if started is not None:
                positions += int(batch["target_valid"].sum()) + int(batch["first"].sum())
                elapsed = time.perf_counter() - started
                if elapsed >= seconds:
                    return positions / elapsed, positions


def feed_for(batches: Iterable, seconds: float) -> float:
    """Batches produced per wall second without training (the feeding alone), as valid positions per second."""
    positions, started = 0, time.perf_counter()
    while True:
        for batch in batches:
            positions += int(batch["target_valid"].sum()) + int(batch["first"].sum())
            elapsed = time.perf_counter() - started
            if elapsed >= seconds:
                return positions / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000, help="training rows (id space stays full size)")
    parser.add_argument("--seconds", type=float, default=10.0, help="timed training per variant")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    sizes = dataclasses.replace(Sizes.full(), train_rows=args.rows, val_rows=1_000)
    data = synthetic_training_data(sizes)
    config = SequentialConfig(num_threads=args.threads, accelerator="cpu")
    print(
        f"data: {data.n_users:,} users x {data.n_videos:,} videos, {len(data.train):,} train rows; max_len "
        f"{config.max_len}, {config.batch_windows} windows per batch; {args.threads} torch thread(s); "
        f"{args.seconds:.0f} s per variant"
    )

    started = time.perf_counter()
    history = sequences.build_history(data.train, data.n_users, config.seed)
    ours = WindowBatches(history, dataclasses.replace(config, positions_per_epoch=0), torch.device("cpu"))
    ours_setup = time.perf_counter() - started
    started = time.perf_counter()
    naive_dataset = PerUserWindows(data.train, config.max_len)
    naive_setup = time.perf_counter() - started
    naive = torch.utils.data.DataLoader(
        naive_dataset, batch_size=config.batch_windows, shuffle=True, collate_fn=collate
    )

    results = {
        "ours (WindowBatches)": train_for(fresh_network(data, config), ours, args.seconds),
        "naive per-user Dataset + DataLoader": train_for(fresh_network(data, config), naive, args.seconds),
    }
    feeding = {"ours": feed_for(ours, args.seconds / 2), "naive": feed_for(naive, args.seconds / 2)}
    print(
        f"feeding alone (no training step): ours {feeding['ours']:,.0f} positions/s, naive "
        f"{feeding['naive']:,.0f} positions/s: {feeding['ours'] / feeding['naive']:.1f}x"
    )
    print(f"setup: ours {ours_setup:.2f} s (history + windows), naive {naive_setup:.2f} s (per-user lists)")
    baseline = results["naive per-user Dataset + DataLoader"][0]
    print(f"  {'variant':<38} {'positions/s':>12} {'positions':>11}   vs naive")
    for name, (rate, positions) in results.items():
        print(f"  {name:<38} {rate:>12,.0f} {positions:>11,}   {rate / baseline:6.1f}x")
    ratio = results["ours (WindowBatches)"][0] / baseline
    print(f"ratio ours / naive: {ratio:.1f}x (goal >= {GOAL_RATIO:.0f}x: {'met' if ratio >= GOAL_RATIO else 'MISSED'})")


if __name__ == "__main__":
    main()
