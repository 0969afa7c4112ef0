"""How much of the ndcg@10 gap between ``user_video_bias`` and the oracle is personal taste, which part of it each
planted component explains, and whether a plain latent-factor model on the training residuals recovers any of it.

    .venv/bin/python benchmarks/taste_ceiling.py --profile demo --seed 11

Synthetic twin only (it reads the twin's planted entities, which real data does not have). The prepared tables
are materialized in-process into ``--home/<profile>-seed<seed>``; nothing of the pipeline is re-implemented. The
setup and the residual MF live in ``_taste.py``, shared with ``taste_levers.py``.

Rows of the printed table (test ndcg@10 and mae, the same ``evaluate`` as the metrics asset):

- ``user_video_bias`` and ``oracle`` (the planted E[target]) as in the metrics table;
- ``truth_additive``: the best additive model, ``g + a_u + b_v`` least-squares fitted to the oracle's own scores
  on the test grid: what perfect user and video biases give; its distance to the bias row is the part of the gap a
  better bias estimate could close;
- ``bias + true personal``: the bias model plus the oracle's non-additive residual: the part of the gap that is
  personal taste;
- ``bias + planted <part>``: the bias model plus one planted taste component (the latent factor dot product, the
  user x tag affinity, the user x duration preference; each scaled by its least-squares coefficient on the
  personal residual): what a model that learned that component perfectly would reach;
- ``residual MF rank r, l2 L``: explicit matrix factorization (alternating ridge solves, Koren, Bell & Volinsky,
  "Matrix factorization techniques for recommender systems", IEEE Computer 2009) of the training residuals
  ``target - bias prediction``, added to the bias model: whether the latent taste is recoverable from the
  training rows by the textbook method.
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from _taste import load_test_grid, planted_parts, residual_factors  # noqa: E402

from kuairec_pipeline.models.base import Recommender  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="demo", choices=("tiny", "demo", "full"))
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--home", type=Path, default=Path("/tmp/kuairec-taste-ceiling"))
    parser.add_argument("--ranks", type=int, nargs="*", default=[4, 16])
    parser.add_argument("--l2", type=float, nargs="*", default=[1.0, 3.0, 10.0, 30.0])
    args = parser.parse_args(argv)

    setup = load_test_grid(args.home, args.profile, args.seed)
    training, shape, on_grid = setup.data.training, setup.shape, setup.on_grid
    bias, oracle, truth, bias_cells = setup.bias, setup.oracle, setup.truth, setup.bias_cells
    cell_users, cell_videos = setup.cell_users, setup.cell_videos

    rows: list[tuple[str, float, float]] = []

    def add(label: str, model: Recommender) -> None:
        rows.append((label, *setup.test_metrics(model)))

    add("user_video_bias", bias)
    add("oracle", oracle)
    additive = setup.truth_additive()
    personal = truth - additive
    add("truth_additive", on_grid(additive))
    add("bias + true personal", on_grid(bias_cells + personal))

    parts = planted_parts(args.profile, args.seed, cell_users, cell_videos)
    design = np.column_stack([*parts.values(), np.ones_like(truth)])
    coefficients = np.linalg.lstsq(design, personal, rcond=None)[0]
    explained = 1.0 - np.var(personal - design @ coefficients) / np.var(personal)
    for (label, part), coefficient in zip(parts.items(), coefficients, strict=False):
        add(f"bias + planted {label}", on_grid(bias_cells + coefficient * part))
    add("bias + all three planted parts", on_grid(bias_cells + design[:, :-1] @ coefficients[:-1]))

    residual = training.train.target.astype(np.float64) - bias.predict(training.train.user, training.train.video)
    for rank in args.ranks:
        for l2 in args.l2:
            user_factors, video_factors = residual_factors(
                training.train.user, training.train.video, residual, shape, rank, l2, args.seed
            )
            dot = np.einsum("ij,ij->i", user_factors[cell_users], video_factors[cell_videos])
            add(f"residual MF rank {rank}, l2 {l2:g}", on_grid(bias_cells + dot))

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"profile {args.profile}, twin seed {args.seed}, commit {commit}, {datetime.date.today().isoformat()}")
    print(
        f"personal residual: {np.var(personal) / np.var(truth):.1%} of the oracle's variance on the test grid; "
        f"the three planted taste parts explain {explained:.1%} of it (R^2)"
    )
    base, ceiling = rows[0][1], rows[1][1]
    print("| row | ndcg@10 | mae | gap closed |\n|---|---:|---:|---:|")
    for label, ndcg, mae in rows:
        print(f"| {label} | {ndcg:.4f} | {mae:.4f} | {(ndcg - base) / (ceiling - base):.1%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
