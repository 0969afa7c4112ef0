"""The `kuairec` command: generate a synthetic twin, print recommendations or metrics from stored artifacts."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from kuairec_pipeline.settings import DEFAULT_SEED, PROFILES, Settings


def _generate(args: argparse.Namespace) -> int:
    from kuairec_pipeline.dataset.synthetic import generate_twin

    started = time.perf_counter()
    out = generate_twin(Path(args.out), profile=args.profile, seed=args.seed)
    print(f"wrote the {args.profile} twin (seed {args.seed}) to {out} in {time.perf_counter() - started:.1f} s")
    return 0


def _recommend(args: argparse.Namespace) -> int:
    from kuairec_pipeline.asset_storage import readable_asset_folder
    from kuairec_pipeline.recommend import UnknownModelError, UnknownUserError, recommend_from_artifacts

    settings = Settings.from_env()
    try:
        assets = readable_asset_folder(settings)  # KUAIREC_ASSET_STORAGE may be s3://...: a local mirror then
        print(recommend_from_artifacts(assets, args.user, k=args.k, model_name=args.model))
    except (UnknownUserError, UnknownModelError) as error:
        print(f"kuairec recommend: {error}", file=sys.stderr)
        return 2
    except FileNotFoundError as error:
        print(f"kuairec recommend: {error}. Materialize the pipeline first (see README).", file=sys.stderr)
        return 2
    return 0


def _metrics(args: argparse.Namespace) -> int:
    import polars as pl

    from kuairec_pipeline.asset_storage import readable_asset_folder
    from kuairec_pipeline.evaluation.report import metrics_markdown

    try:
        path = readable_asset_folder(Settings.from_env()) / "metrics.parquet"
    except FileNotFoundError as error:
        print(f"kuairec metrics: {error}. Materialize the pipeline first (see README).", file=sys.stderr)
        return 2
    if not path.exists():
        print(f"kuairec metrics: {path} does not exist. Materialize the pipeline first (see README).",
              file=sys.stderr)
        return 2
    table = pl.read_parquet(path)
    print(metrics_markdown(table.filter(pl.col("split") == args.split)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kuairec", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    generate = commands.add_parser("generate", help="write a synthetic twin of KuaiRec 2.0 in the official format")
    generate.add_argument("--profile", choices=PROFILES, default="demo", help="size of the twin")
    generate.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed (same seed, same files)")
    generate.add_argument("--out", required=True, help="folder to write into")
    generate.set_defaults(handler=_generate)

    recommend = commands.add_parser("recommend", help="top videos for one user, from the stored artifacts")
    recommend.add_argument("--user", type=int, required=True, help="user id")
    recommend.add_argument("-k", type=int, default=10, help="how many videos")
    recommend.add_argument("--model", default=None,
                           help="linear, als, two_tower or hybrid (default: the model the recommendations asset chose)")
    recommend.set_defaults(handler=_recommend)

    metrics = commands.add_parser("metrics", help="print the stored metrics table")
    metrics.add_argument("--split", choices=("test", "val"), default="test", help="which split's rows")
    metrics.set_defaults(handler=_metrics)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
