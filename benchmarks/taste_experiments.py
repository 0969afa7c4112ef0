"""Do the models learn each user's taste? Fits every model in-process on generated demo twins and prints, per
seed, ndcg@10, mae, top-10 catalogue coverage and the share of lists holding the most frequent video, beside
user_video_bias, an approximate personal baseline (biases + shrunken user x tag residual mean) and the oracle.

    python benchmarks/taste_experiments.py --profile demo --seeds 11 12 13 [--models linear als two_tower hybrid]
        [--by-activity]

Twins are generated once under --root (default /tmp/taste_twins) and reused. Threads are pinned to 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dataclasses  # noqa: E402

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from benchmarks._twin_data import twin_training_data  # noqa: E402
from kuairec_pipeline.evaluation.baselines import (  # noqa: E402
    AdditiveRecommender,
    OracleRecommender,
    UserVideoBiasRecommender,
)
from kuairec_pipeline.evaluation.metrics import (  # noqa: E402
    EvaluationGrid,
    evaluate_models,
    iter_grid_scores,
    ndcg_at_k,
    ranking_hits,
    top_k_test_videos,
)
from kuairec_pipeline.models.als import ALSConfig, ALSRecommender, aggregate_pairs, fit_biases  # noqa: E402
from kuairec_pipeline.models.base import Recommender  # noqa: E402
from kuairec_pipeline.models.data import TrainingData  # noqa: E402
from kuairec_pipeline.models.hybrid import HybridRecommender  # noqa: E402
from kuairec_pipeline.models.linear import LinearConfig, LinearRecommender  # noqa: E402
from kuairec_pipeline.models.two_tower import TwoTowerConfig, TwoTowerRecommender  # noqa: E402


class ApproxPersonalBaseline(Recommender):
    """Biases + a shrunken per (user, tag) mean of the bias residual, averaged over the video's tags: the
    approximation of the personal baseline the trained models must beat (the pipeline's own lives elsewhere)."""

    name = "personal_approx"

    def __init__(self, shrinkage: float = 10.0) -> None:
        self.shrinkage = shrinkage

    def fit(self, data: TrainingData) -> ApproxPersonalBaseline:
        pairs = aggregate_pairs(data.train, data.n_users, data.n_videos)
        global_bias, user_bias, video_bias = fit_biases(pairs, data.n_videos, 5.0)
        residual = data.train.target - global_bias - user_bias[data.train.user] - video_bias[data.train.video]
        tags = data.video_tag_multi_hot[data.train.video]  # (rows, 31)
        n_tags = tags.shape[1]
        sums = np.zeros((data.n_users, n_tags))
        counts = np.zeros((data.n_users, n_tags))
        np.add.at(sums, data.train.user, tags * residual[:, None])
        np.add.at(counts, data.train.user, tags)
        self.affinity = sums / (counts + self.shrinkage)
        weights = data.video_tag_multi_hot / np.maximum(data.video_tag_multi_hot.sum(axis=1, keepdims=True), 1)
        self.video_tags = weights
        self.user_part = global_bias + user_bias
        self.video_part = video_bias
        self.n_users, self.n_videos = data.n_users, data.n_videos
        return self

    def score_all(self, user_ids, video_ids=None):
        videos = np.arange(self.n_videos) if video_ids is None else np.asarray(video_ids)
        users = np.asarray(user_ids)
        scores = (self.user_part[users][:, None] + self.video_part[videos][None, :]
                  + self.affinity[users] @ self.video_tags[videos].T)
        return np.clip(scores, 0, 1).astype(np.float32)

    def to_arrays(self):
        return {}

    @classmethod
    def from_arrays(cls, arrays):
        raise NotImplementedError("experiment-only baseline")


def beyond_accuracy(model: Recommender, data: TrainingData, k: int = 10) -> tuple[float, float]:
    """(catalogue coverage of the top-k test lists over test videos, share of lists holding the commonest video)."""
    _, top = top_k_test_videos(model, data, k)
    _, counts = np.unique(top, return_counts=True)
    return counts.size / data.test_videos.size, counts.max() / top.shape[0]


def ndcg_by_activity(models: list[Recommender], data: TrainingData, k: int = 10, bins: int = 3) -> pl.DataFrame:
    """Mean ndcg@k per model over test users grouped into ``bins`` quantile bins of their training rows: the
    learning curve against rows per user."""
    grid = EvaluationGrid.from_interactions(data.test)
    n_relevant = np.asarray(grid.relevant.sum(axis=1)).ravel().astype(np.int64)
    rows = np.bincount(data.train.user, minlength=data.n_users)[grid.users]
    edges = np.quantile(rows, np.linspace(0, 1, bins + 1))
    group = np.clip(np.searchsorted(edges, rows, side="right") - 1, 0, bins - 1)
    records = []
    for model in models:
        hits = np.zeros((grid.users.size, k), dtype=bool)
        for first, last, scores in iter_grid_scores(model, grid):
            hits[first:last] = ranking_hits(scores, grid.relevant[first:last].toarray(),
                                            grid.observed[first:last].toarray(), k)
        per_user = ndcg_at_k(hits, n_relevant, k)
        for b in range(bins):
            chosen = (group == b) & (n_relevant > 0)
            records.append((model.name, f"{int(edges[b])}-{int(edges[b + 1])} rows", float(per_user[chosen].mean())))
    return pl.DataFrame(records, schema=["model", "train_rows", f"ndcg@{k}"], orient="row").pivot(
        "train_rows", index="model", values=f"ndcg@{k}")


def fit_models(data: TrainingData, names: list[str]) -> tuple[dict[str, Recommender], dict[str, float]]:
    models: dict[str, Recommender] = {}
    seconds: dict[str, float] = {}
    quiet = TwoTowerConfig(show_progress=False, num_threads=1)
    for name in names:
        start = time.perf_counter()
        if name == "linear":
            models[name] = LinearRecommender(LinearConfig()).fit(data)
        elif name == "als":
            models[name] = ALSRecommender(ALSConfig()).fit(data)
        elif name == "two_tower":
            models[name] = TwoTowerRecommender(quiet).fit(data)
        elif name == "hybrid":
            als = models.get("als") or ALSRecommender(ALSConfig()).fit(data)
            tower = models.get("two_tower") or TwoTowerRecommender(quiet).fit(data)
            models[name] = HybridRecommender.from_components(als, tower, data)
        seconds[name] = time.perf_counter() - start
    return models, seconds


def run_seed(root: Path, profile: str, seed: int, names: list[str], by_activity: bool = False) -> pl.DataFrame:
    data, truth = twin_training_data(root, profile, seed)
    references: list[Recommender] = [
        UserVideoBiasRecommender().fit(data),
        ApproxPersonalBaseline().fit(data),
        OracleRecommender.from_truth(truth, data.scaler, data.n_users, data.n_videos).fit(data),
    ]
    models, seconds = fit_models(data, names)
    everything = references + list(models.values())
    table = evaluate_models(everything, data, include_val=False).filter(
        pl.col("metric").is_in(["ndcg@10", "mae"])).pivot("metric", index="model", values="value")
    extra = []
    for model in everything:
        coverage, top_share = beyond_accuracy(model, data)
        extra.append((model.name, coverage, top_share, seconds.get(model.name, 0.0), _stopping(model)))
    extra_frame = pl.DataFrame(extra, schema=["model", "coverage@10", "top_video_share", "fit_s", "stopping"],
                               orient="row")
    if by_activity:
        print(ndcg_by_activity(everything, data))
    return table.join(extra_frame, on="model").with_columns(pl.lit(seed).alias("seed"))


def _stopping(model: Recommender) -> str:
    history = getattr(model, "history", None)
    if history is not None and getattr(model, "best_epoch", None) is not None:
        return f"best {model.best_epoch} of {history.shape[0]}"
    return ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13])
    parser.add_argument("--models", nargs="+", default=["linear", "als", "two_tower", "hybrid"])
    parser.add_argument("--root", type=Path, default=Path("/tmp/taste_twins"))
    parser.add_argument("--by-activity", action="store_true", help="also ndcg@10 per tercile of training rows")
    args = parser.parse_args()
    pl.Config.set_tbl_rows(100)
    pl.Config.set_tbl_cols(20)
    frames = []
    for seed in args.seeds:
        frame = run_seed(args.root, args.profile, seed, args.models, args.by_activity)
        print(frame, flush=True)
        frames.append(frame)
    all_seeds = pl.concat(frames)
    bias = all_seeds.filter(pl.col("model") == "user_video_bias").select("seed", pl.col("ndcg@10").alias("b"))
    oracle = all_seeds.filter(pl.col("model") == "oracle").select("seed", pl.col("ndcg@10").alias("o"))
    gap = all_seeds.join(bias, on="seed").join(oracle, on="seed").with_columns(
        ((pl.col("ndcg@10") - pl.col("b")) / (pl.col("o") - pl.col("b"))).alias("gap_closed"))
    print(gap.group_by("model", maintain_order=True).agg(
        pl.col("ndcg@10").mean(), pl.col("mae").mean(), pl.col("gap_closed").mean(), pl.col("coverage@10").mean(),
        pl.col("top_video_share").mean(), pl.col("fit_s").mean()))


if __name__ == "__main__":
    main()
