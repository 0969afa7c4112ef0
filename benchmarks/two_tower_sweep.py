"""Issue 7: with its dot product able to train (the saddle fix, 06b5b02), does any free width or step size let the
two-tower beat its linear start on the validation rows, and what does that give on the test grid?

    OPENBLAS_NUM_THREADS=1 python benchmarks/two_tower_sweep.py --profile demo --seeds 11 12 13

Per twin seed: the prepared data in-process (``_taste.load_test_grid``, the graph's own assets), the linear model
fitted once, then one two-tower fit per (``embedding_dim``, ``learning_rate``) on top of it, as the pipeline does
(``fit_from_components``, early stopping on the tuning val rows, patience counted from the start). The default is
``embedding_dim`` 42 (8 free dimensions beside KuaiRec's 34 explicit ones) and learning rate 1e-3, both chosen
before the fix. Printed per fit: epochs run, the epoch kept (-1 = the start), the start's and the kept weights'
val MSE, test ndcg@10 and mae (``evaluate``), and the share of the ndcg@10 gap between ``user_video_bias`` and the
oracle closed. The test grid chooses nothing; a setting that beats the start only on test is no finding.
"""

from __future__ import annotations

import argparse
import datetime
import time
from pathlib import Path

import _taste
from quality import commit_label

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="demo", choices=("tiny", "demo", "full"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[11])
    parser.add_argument("--home", type=Path, default=Path("/tmp/kuairec-two-tower-sweep"))
    parser.add_argument("--embedding-dims", type=int, nargs="+", default=[42, 50, 66])
    parser.add_argument("--learning-rates", type=float, nargs="+", default=[1e-3, 3e-3])
    args = parser.parse_args(argv)

    import torch

    from kuairec_pipeline.models.linear import LinearRecommender
    from kuairec_pipeline.models.two_tower import TwoTowerConfig, TwoTowerRecommender

    torch.set_num_threads(2)
    now = f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC"
    print(f"profile {args.profile}, seeds {args.seeds}, commit {commit_label(REPO)}, {now}")
    for seed in args.seeds:
        grid = _taste.load_test_grid(args.home, args.profile, seed)
        bias_ndcg, _ = grid.test_metrics(grid.bias)
        oracle_ndcg, oracle_mae = grid.test_metrics(grid.oracle)
        linear = LinearRecommender().fit(grid.data.training)
        linear_ndcg, linear_mae = grid.test_metrics(linear)
        start = _start_val_mse(linear, grid.data.training)  # every fit's start, before its first epoch

        def gap(ndcg: float, bias: float = bias_ndcg, oracle: float = oracle_ndcg) -> float:
            return 100 * (ndcg - bias) / (oracle - bias)

        print(f"\n### seed {seed}: bias ndcg@10 {bias_ndcg:.4f}, oracle {oracle_ndcg:.4f} (mae {oracle_mae:.4f})")
        print(f"linear: ndcg@10 {linear_ndcg:.4f}, mae {linear_mae:.4f}, gap {gap(linear_ndcg):.1f}%")
        print(
            "| embedding_dim | learning_rate | epochs | kept | val mse start | val mse kept | ndcg@10 | mae | gap | s |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for dim in args.embedding_dims:
            for rate in args.learning_rates:
                config = TwoTowerConfig(embedding_dim=dim, learning_rate=rate, show_progress=False)
                started = time.perf_counter()
                model = TwoTowerRecommender(config).fit_from_components({"linear": linear}, grid.data.training)
                seconds = time.perf_counter() - started
                history = model.history
                kept = history[model.best_epoch, 2] if model.best_epoch >= 0 else float("nan")
                ndcg, mae = grid.test_metrics(model)
                print(
                    f"| {dim} | {rate:g} | {history.shape[0]} | {model.best_epoch} | {start:.5f} | {kept:.5f} | "
                    f"{ndcg:.4f} | {mae:.4f} | {gap(ndcg):.1f}% | {seconds:.0f} |"
                )
    return 0


def _start_val_mse(linear, data) -> float:
    """Validation MSE of the linear start (what the two-tower's untrained network predicts, before the clip)."""
    from kuairec_pipeline.models.biases import pair_dot

    start_user, start_video = linear.augmented_factors()
    predicted = pair_dot(start_user, start_video, data.val.user, data.val.video)
    return float(((predicted - data.val.target) ** 2).mean())


if __name__ == "__main__":
    raise SystemExit(main())
