"""Does *which* videos a user was shown (the exposure pattern, not the watch ratios) carry the taste the models miss?

    .venv/bin/python benchmarks/exposure_signal.py --profile demo --seed 11

The twin draws big_matrix exposure with weight ``popularity x exp(taste_weight x taste)`` (DESIGN.md, synthetic
twin), so the set of videos in a user's training rows might reveal taste that the noisy watch ratios (R^2 ~0.08
per row, ``taste_levers.py``) do not. This diagnostic factorizes the binary users x videos exposure matrix of the
training rows and asks whether the result adds anything on the test grid:

- implicit-feedback ALS (Hu, Koren & Volinsky, ICDM 2008; the ``implicit`` package, as ``als_factors`` uses it) on
  the 0/1 exposure matrix, for a few ranks, regularizations and confidence gains ``alpha``; the score of a cell is
  the user and video factors' dot product;
- item-kNN (cosine similarity of the videos' exposure columns; Sarwar et al., WWW 2001): the mean similarity of the
  cell's video to the videos the user was shown.

For each score: its correlation with the oracle's personal residual on the test grid (the planted E[target] minus
its best additive fit, ``GridSetup.truth_additive``), after removing the score's own per-user and per-video means
on the grid; and the test ndcg@10 of ``user_video_bias + c x z(score)`` for the best ``c`` of a fixed grid. **That
c is chosen on the test grid**, so the ndcg column is an upper bound of what the signal could give, not a model.
Synthetic twin only (the oracle is the planted truth).
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from _taste import load_test_grid  # noqa: E402

COEFFICIENTS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.08)  # scaled-target units per standard deviation of the score


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="demo", choices=("tiny", "demo", "full"))
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--home", type=Path, default=Path("/tmp/kuairec-exposure"))
    parser.add_argument("--factors", type=int, nargs="*", default=[16, 64])
    parser.add_argument("--regularization", type=float, nargs="*", default=[1.0, 30.0])
    parser.add_argument("--alpha", type=float, nargs="*", default=[1.0, 10.0])
    args = parser.parse_args(argv)

    import implicit  # here: after the thread variables above

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    setup = load_test_grid(args.home, args.profile, args.seed)
    train = setup.data.training.train
    exposure = sp.csr_matrix((np.ones(len(train), np.float32), (train.user, train.video)), shape=setup.shape)
    exposure.data[:] = 1.0  # repeated views count once: the question is which videos were shown
    personal = setup.truth - setup.truth_additive()
    bias_ndcg, _ = setup.test_metrics(setup.bias)
    oracle_ndcg, _ = setup.test_metrics(setup.oracle)
    print(f"profile {args.profile}, twin seed {args.seed}, commit {commit}, {today}")
    print(
        f"exposed pairs {exposure.nnz:,}; per user median {np.median(np.diff(exposure.indptr)):.0f}; "
        f"test ndcg@10 user_video_bias {bias_ndcg:.4f}, oracle {oracle_ndcg:.4f}"
    )
    print("| score | corr with personal residual | best test ndcg@10 (c on test: upper bound) | c | gap closed |")
    print("|---|---:|---:|---:|---:|")

    def report(label: str, score: np.ndarray) -> None:
        score = score.astype(np.float64)
        residual = score - setup.additive_fit(score, sweeps=30)  # its own per-user and per-video means out
        z = residual / residual.std()
        ndcg, coefficient = max(
            (setup.test_metrics(setup.on_grid(setup.bias_cells + c * z))[0], c) for c in COEFFICIENTS
        )
        gap = (ndcg - bias_ndcg) / (oracle_ndcg - bias_ndcg)
        correlation = np.corrcoef(residual, personal)[0, 1]
        print(f"| {label} | {correlation:.3f} | {ndcg:.4f} | {coefficient:g} | {gap:.1%} |", flush=True)

    for factors in args.factors:
        for regularization in args.regularization:
            for alpha in args.alpha:
                model = implicit.als.AlternatingLeastSquares(
                    factors=factors, regularization=regularization, alpha=alpha, iterations=15, random_state=0
                )
                model.fit(exposure, show_progress=False)
                users, videos = np.asarray(model.user_factors), np.asarray(model.item_factors)
                score = np.einsum("ij,ij->i", users[setup.cell_users], videos[setup.cell_videos])
                report(f"implicit ALS, {factors} factors, regularization {regularization:g}, alpha {alpha:g}", score)

    norms = np.sqrt(np.asarray(exposure.multiply(exposure).sum(axis=0))).ravel() + 1e-9
    normalized = exposure.multiply(1.0 / norms[None, :]).tocsr()
    similarity = (normalized.T @ normalized).tocsr()
    similarity.setdiag(0)
    knn = exposure @ similarity  # users x videos: summed similarity to the videos each user was shown
    shown = np.maximum(np.diff(exposure.indptr)[setup.cell_users], 1)
    report("item-kNN, cosine", np.asarray(knn[setup.cell_users, setup.cell_videos]).ravel() / shown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
