"""How much of the ndcg@10 gap between ``user_video_bias`` and the oracle is personal taste, which part of it each
planted component explains, and whether a plain latent-factor model on the training residuals recovers any of it.

    .venv/bin/python benchmarks/taste_ceiling.py --profile demo --seed 11

Synthetic twin only (it reads the twin's planted entities, which real data does not have). The prepared tables
are materialized in-process into ``--home/<profile>-seed<seed>``; nothing of the pipeline is re-implemented.

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
import polars as pl  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from kuairec_pipeline.models.base import Recommender  # noqa: E402


class GridScores(Recommender):
    """Scores given as a sparse (user x video) matrix; 0 outside it. Only for evaluating fixed score grids."""

    name = "grid_scores"

    def __init__(self, scores: sp.csr_matrix) -> None:
        self.scores = scores.tocsr()
        self.n_users, self.n_videos = scores.shape

    def fit(self, data):  # noqa: D102 - fixed scores, nothing to learn
        return self

    def score_all(self, user_ids, video_ids=None):  # noqa: D102
        block = self.scores[np.asarray(user_ids)]
        if video_ids is not None:
            block = block[:, np.asarray(video_ids)]
        return np.clip(block.toarray(), 0.0, 1.0).astype(np.float32)

    def to_arrays(self):  # noqa: D102
        raise NotImplementedError("a benchmark helper, never stored")

    @classmethod
    def from_arrays(cls, arrays):  # noqa: D102
        raise NotImplementedError("a benchmark helper, never stored")


def prepared_tables(home: Path, profile: str, seed: int) -> Path:
    """Materialize the prepared tables and the planted truth in-process; returns the assets folder."""
    from dagster import AssetSelection, DagsterInstance, define_asset_job

    from kuairec_pipeline.definitions import build_definitions
    from kuairec_pipeline.settings import Settings

    settings = Settings(home=home.absolute(), source="synthetic", profile=profile, seed=seed)
    selection = AssetSelection.assets("filtered_ratios", "user_features", "video_features", "planted_truth")
    job = define_asset_job("taste_ceiling_inputs", selection=selection.upstream())
    definitions = build_definitions(settings)
    from dagster import Definitions

    merged = Definitions.merge(definitions, Definitions(jobs=[job]))
    with DagsterInstance.ephemeral() as instance:
        result = merged.resolve_job_def("taste_ceiling_inputs").execute_in_process(instance=instance)
    if not result.success:
        raise RuntimeError("materializing the prepared tables failed")
    return settings.assets_dir


def residual_factors(
    users: np.ndarray, videos: np.ndarray, residual: np.ndarray, shape: tuple[int, int], rank: int, l2: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Alternating ridge solves of ``sum_rows (r - p_u . q_v)^2 + l2 (|P|^2 + |Q|^2)``; 10 sweeps."""
    counts = sp.csr_matrix((np.ones_like(residual), (users, videos)), shape=shape)
    sums = sp.csr_matrix((residual, (users, videos)), shape=shape)
    counts.sum_duplicates()
    sums.sum_duplicates()
    rng = np.random.default_rng(seed)
    user_factors = np.zeros((shape[0], rank))
    video_factors = 0.1 * rng.standard_normal((shape[1], rank))

    def solve(c: sp.csr_matrix, s: sp.csr_matrix, fixed: np.ndarray) -> np.ndarray:
        out = np.zeros((c.shape[0], rank))
        for i in range(c.shape[0]):
            lo, hi = c.indptr[i], c.indptr[i + 1]
            if lo == hi:
                continue
            f = fixed[c.indices[lo:hi]]
            gram = (f * c.data[lo:hi, None]).T @ f + l2 * np.eye(rank)
            out[i] = np.linalg.solve(gram, f.T @ s.data[lo:hi])
        return out

    counts_t, sums_t = counts.T.tocsr(), sums.T.tocsr()
    for _ in range(10):
        user_factors = solve(counts, sums, video_factors)
        video_factors = solve(counts_t, sums_t, user_factors)
    return user_factors, video_factors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="demo", choices=("tiny", "demo", "full"))
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--home", type=Path, default=Path("/tmp/kuairec-taste-ceiling"))
    parser.add_argument("--ranks", type=int, nargs="*", default=[4, 16])
    parser.add_argument("--l2", type=float, nargs="*", default=[1.0, 3.0, 10.0, 30.0])
    args = parser.parse_args(argv)

    from kuairec_pipeline.dataset.synthetic.config import DEFAULT_BEHAVIOUR, PROFILES
    from kuairec_pipeline.dataset.synthetic.entities import build_users, build_videos
    from kuairec_pipeline.evaluation.baselines import OracleRecommender, UserVideoBiasRecommender
    from kuairec_pipeline.evaluation.metrics import evaluate
    from kuairec_pipeline.models.data import build_prepared_data

    assets = prepared_tables(args.home / f"{args.profile}-seed{args.seed}", args.profile, args.seed)
    tables = ("filtered_ratios", "user_features", "video_features")
    data = build_prepared_data(*(pl.read_parquet(assets / f"{name}.parquet") for name in tables))
    shape = (data.n_users, data.n_videos)
    training = data.training
    bias = UserVideoBiasRecommender().fit(training)
    oracle = OracleRecommender.from_truth(
        pl.read_parquet(assets / "planted_truth.parquet"), data.scaler, data.n_users, data.n_videos
    )
    grid = oracle.expected_target.tocoo()
    cell_users, cell_videos, truth = grid.row, grid.col, grid.data.astype(np.float64)
    bias_cells = bias.predict(cell_users.astype(np.int32), cell_videos.astype(np.int32)).astype(np.float64)

    rows: list[tuple[str, float, float]] = []

    def add(label: str, model: Recommender) -> None:
        table = evaluate(model, data).filter(pl.col("split") == "test")
        values = dict(table.select("metric", "value").iter_rows())
        rows.append((label, values["ndcg@10"], values["mae"]))

    def on_grid(values: np.ndarray) -> GridScores:
        return GridScores(sp.csr_matrix((values.astype(np.float32), (cell_users, cell_videos)), shape=shape))

    add("user_video_bias", bias)
    add("oracle", oracle)
    # best additive fit to the oracle itself (alternating means converge for a complete-ish grid)
    user_index = np.unique(cell_users, return_inverse=True)[1]
    video_index = np.unique(cell_videos, return_inverse=True)[1]
    user_part, video_part, mean = np.zeros(user_index.max() + 1), np.zeros(video_index.max() + 1), truth.mean()
    for _ in range(50):
        user_part = np.bincount(user_index, truth - mean - video_part[video_index]) / np.bincount(user_index)
        video_part = np.bincount(video_index, truth - mean - user_part[user_index]) / np.bincount(video_index)
    additive = mean + user_part[user_index] + video_part[video_index]
    personal = truth - additive
    add("truth_additive", on_grid(additive))
    add("bias + true personal", on_grid(bias_cells + personal))

    videos = build_videos(PROFILES[args.profile], DEFAULT_BEHAVIOUR, args.seed)
    users = build_users(PROFILES[args.profile], DEFAULT_BEHAVIOUR, videos, args.seed)
    parts = {
        "latent factors": np.einsum("ij,ij->i", users.factors[cell_users], videos.factors[cell_videos]),
        "user x tag affinity": np.einsum("ij,ij->i", users.tag_affinity[cell_users], videos.tag_weights[cell_videos]),
        "user x duration": users.duration_preference[cell_users] * -videos.log_duration_z[cell_videos],
    }
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
