"""Wall time to score every user x every video and take each user's top 50, through Recommender.recommend.

    python benchmarks/scoring.py              # 7,176 users x 10,728 videos
    python benchmarks/scoring.py --exclude    # also drop each user's training videos (the serving path)

The models are fitted briefly (1 epoch / 2 iterations on 200,000 rows over the full id space): scoring cost
depends only on the id space and the embedding sizes, not on how long training ran. Target: <= 10 s per model.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import scipy.sparse as sp
import threadpoolctl
from _data import Sizes, synthetic_training_data

from kuairec_pipeline.models.als import ALSConfig, ALSRecommender
from kuairec_pipeline.models.base import Recommender
from kuairec_pipeline.models.hybrid_fusion import HybridFusionConfig, HybridFusionRecommender
from kuairec_pipeline.models.two_tower import TwoTowerConfig, TwoTowerRecommender

TARGET_SECONDS = 10.0
TOP_K = 50


def time_recommend(model: Recommender, users: np.ndarray, exclude: sp.csr_matrix | None) -> float:
    started = time.perf_counter()
    ids, scores = model.recommend(users, k=TOP_K, exclude=exclude)
    elapsed = time.perf_counter() - started
    assert ids.shape == (users.size, TOP_K) and np.isfinite(scores).all()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exclude", action="store_true", help="also time with the training videos excluded")
    args = parser.parse_args()

    sizes = dataclasses.replace(Sizes.full(), train_rows=200_000, val_rows=20_000)
    data = synthetic_training_data(sizes)
    als = ALSRecommender(ALSConfig(iterations=2, num_threads=0)).fit(data)
    two_tower = TwoTowerRecommender(TwoTowerConfig(max_epochs=1, show_progress=False, num_threads=0)).fit(data)
    hybrid = HybridFusionRecommender(HybridFusionConfig(components=("als", "two_tower"))).fit_from_components(
        {"als": als, "two_tower": two_tower}, data
    )
    users = np.arange(data.n_users)
    seen = sp.csr_matrix(
        (np.ones(len(data.train), np.float32), (data.train.user, data.train.video)), shape=(data.n_users, data.n_videos)
    )
    blas = [
        f"{pool['internal_api']} x{pool['num_threads']}"
        for pool in threadpoolctl.threadpool_info()
        if pool["user_api"] == "blas"
    ]
    print(
        f"scoring {data.n_users:,} users x {data.n_videos:,} videos "
        f"({data.n_users * data.n_videos / 1e6:.0f} M cells), top {TOP_K} per user; BLAS: {', '.join(blas)}"
    )
    for name, model in (("two_tower", two_tower), ("als", als), ("hybrid_fusion", hybrid)):
        line = f"  {name:<10} recommend: {time_recommend(model, users, None):6.2f} s"
        if args.exclude:
            line += f"   with training videos excluded: {time_recommend(model, users, seen):6.2f} s"
        print(line + f"   target <= {TARGET_SECONDS:.0f} s")


if __name__ == "__main__":
    main()
