"""The synthetic twin's statistics next to KuaiRec 2.0's (docs/KUAIREC.md), as a markdown table, plus its difficulty.

    python benchmarks/twin_stats.py                              # demo twin (generated if missing)
    python benchmarks/twin_stats.py --profile full --out data/twin-full
    python benchmarks/twin_stats.py --profile tiny --seed 7

The twin is generated only when ``--out`` holds no complete twin of that profile and seed. Counts that depend
on the size (rows per user, rows per video) are shown with KuaiRec's value scaled to the profile in brackets.
Difficulty: RMSE(oracle) / RMSE(global mean) on the normalized test target; the twin aims at 0.75-0.85.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from kuairec_pipeline.dataset.synthetic import (
    PROFILES,
    generate_twin,
    reference_statistics,
    twin_is_complete,
    twin_statistics,
)
from kuairec_pipeline.settings import DEFAULT_SEED, Settings

# (key, label, format); format "pct" prints a share as a percentage.
ROWS = (
    ("rows", "rows", ",.0f"),
    ("watch_ratio_mean", "watch_ratio mean", ".3f"),
    ("watch_ratio_median", "watch_ratio median", ".3f"),
    ("watch_ratio_q25", "watch_ratio q25", ".3f"),
    ("watch_ratio_q75", "watch_ratio q75", ".3f"),
    ("share_ge_1", "share >= 1", "pct"),
    ("share_gt_3", "share > 3", "pct"),
    ("share_gt_5", "share > 5", "pct"),
    ("share_zero", "share = 0", "pct"),
    ("watch_ratio_max", "watch_ratio max", ".0f"),
    ("video_duration_median_ms", "video_duration median (ms)", ",.0f"),
    ("video_duration_mean_ms", "video_duration mean (ms)", ",.0f"),
    ("duration_ratio_correlation", "corr(log duration, wr clipped at 5)", ".3f"),
    ("duplicate_share", "exact duplicate rows", "pct"),
    ("empty_time_share", "rows with empty time", "pct"),
    ("pair_density", "distinct-pair density", "pct"),
    ("rows_per_user_median", "rows per user: median", ",.0f"),
    ("rows_per_user_min", "rows per user: min", ",.0f"),
    ("rows_per_user_max", "rows per user: max", ",.0f"),
    ("rows_per_video_median", "rows per video (dedup): median", ",.0f"),
    ("rows_per_video_max", "rows per video (dedup): max", ",.0f"),
    ("user_mean_ratio_mean", "per-user mean watch_ratio: mean", ".3f"),
    ("user_mean_ratio_std", "per-user mean watch_ratio: std", ".3f"),
)
# Statistics that grow with the profile: KuaiRec's value is also shown scaled by rows per user / per video.
PER_USER_SCALED = {"rows_per_user_median", "rows_per_user_min", "rows_per_user_max"}
PER_VIDEO_SCALED = {"rows_per_video_median", "rows_per_video_max"}
FULL = PROFILES["full"]


def _format(value: float | None, style: str) -> str:
    if value is None:
        return ""
    return f"{100 * value:.2f}%" if style == "pct" else format(value, style)


def _reference_cell(key: str, value: float | None, style: str, profile: str) -> str:
    text = _format(value, style)
    if value is None or profile == "full":
        return text
    chosen = PROFILES[profile]
    if key in PER_USER_SCALED:
        scale = (chosen.big_rows / chosen.n_users) / (FULL.big_rows / FULL.n_users)
    elif key in PER_VIDEO_SCALED:
        scale = (chosen.big_rows / chosen.n_videos) / (FULL.big_rows / FULL.n_videos)
    elif key == "rows":
        scale = chosen.big_rows / FULL.big_rows
    else:
        return text
    return f"{text} [{_format(value * scale, style)}]"


def statistics_table(out_dir: Path, profile: str) -> str:
    twin, real = twin_statistics(out_dir), reference_statistics()
    lines = [
        "| statistic | twin big_matrix | KuaiRec big_matrix | twin small_matrix | KuaiRec small_matrix |",
        "|---|---:|---:|---:|---:|",
    ]
    for key, label, style in ROWS:
        cells = []
        for matrix in ("big_matrix", "small_matrix"):
            cells.append(_format(twin[matrix].get(key), style))
            reference_value = real[matrix].get(key)
            if matrix == "big_matrix":
                cells.append(_reference_cell(key, reference_value, style, profile))
            else:  # small_matrix's size is the profile's own block: no scaling
                cells.append(_format(reference_value, style))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    lines += ["", "| tags per video | twin | KuaiRec |", "|---|---:|---:|"]
    for count in range(1, 5):
        key = f"tags_per_video_{count}"
        lines.append(
            f"| {count} | {_format(twin['item_categories'][key], 'pct')} | "
            f"{_format(real['item_categories'][key], 'pct')} |"
        )

    difficulty = twin["difficulty"]
    lines += [
        "",
        f"Difficulty: RMSE(oracle) / RMSE(global mean) = **{difficulty['ratio']:.3f}** "
        f"(oracle {difficulty['rmse_oracle']:.4f}, global mean {difficulty['rmse_global_mean']:.4f}, "
        f"{difficulty['test_pairs']:,.0f} test pairs, {difficulty['train_rows']:,.0f} train rows; "
        "target 0.75-0.85)",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="demo")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="twin folder (default: the pipeline's, data/source/synthetic-<profile>-seed<seed>)",
    )
    args = parser.parse_args()
    out_dir = args.out or Settings(home=Path("data").absolute(), profile=args.profile, seed=args.seed).synthetic_dir

    if not twin_is_complete(out_dir, args.profile, args.seed):
        started = time.perf_counter()
        generate_twin(out_dir, args.profile, args.seed)
        print(f"generated the {args.profile} twin in {time.perf_counter() - started:.1f} s: {out_dir}\n")
    else:
        print(f"reusing the {args.profile} twin in {out_dir}\n")
    print(f"### Synthetic twin ({args.profile}, seed {args.seed}) vs KuaiRec 2.0\n")
    print(statistics_table(out_dir, args.profile))


if __name__ == "__main__":
    main()
