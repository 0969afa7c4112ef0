"""The `kuairec` command: generate a synthetic twin; print recommendations, metrics or a run summary from stored
artifacts."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from kuairec_pipeline.settings import DEFAULT_SEED, PROFILES, Settings

if TYPE_CHECKING:
    from kuairec_pipeline.provenance import StaleArtifactError

DEFAULT_DEPTH = 50  # the recommendations asset's default k: the cap when no stored table tells another


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _generate(args: argparse.Namespace) -> int:
    from kuairec_pipeline.dataset.synthetic import generate_twin, twin_is_complete

    out_dir = Path(args.out)
    if twin_is_complete(out_dir, args.profile, args.seed):
        print(f"{out_dir} already holds the complete {args.profile} twin (seed {args.seed}): nothing written")
        return 0
    started = time.perf_counter()
    out = generate_twin(out_dir, profile=args.profile, seed=args.seed)
    print(f"wrote the {args.profile} twin (seed {args.seed}) to {out} in {time.perf_counter() - started:.1f} s")
    return 0


def _capped_k(k: int, assets_dir: Path) -> int:
    """Every path answers at most as many videos as the stored recommendations hold per user (one rule, whether
    the rows are read from the table or scored on the spot), with a note on stderr when ``k`` is cut."""
    from kuairec_pipeline.summary import recommendations_depth

    stored = assets_dir / "recommendations.parquet"
    depth = (recommendations_depth(stored) if stored.exists() else None) or DEFAULT_DEPTH
    if k > depth:
        print(
            f"kuairec recommend: -k {k} capped at {depth}, the depth of the stored recommendations "
            f"(re-materialize recommendations with a larger k for more)",
            file=sys.stderr,
        )
    return min(k, depth)


def _recommend(args: argparse.Namespace) -> int:
    import warnings

    from kuairec_pipeline.asset_storage import readable_asset_folder
    from kuairec_pipeline.provenance import ProvenanceWarning, StaleArtifactError
    from kuairec_pipeline.recommend import UnknownModelError, UnknownUserError, recommend_from_artifacts

    settings = Settings.from_env()
    try:
        assets = readable_asset_folder(settings)  # KUAIREC_ASSET_STORAGE may be s3://...: a local mirror then
        k = _capped_k(args.k, assets)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ProvenanceWarning)
            answer = recommend_from_artifacts(assets, args.user, k=k, model_name=args.model)
        for warning in caught:
            print(f"kuairec recommend: warning: {warning.message}", file=sys.stderr)
        print(answer)
    except StaleArtifactError as error:
        note = _days_note(error, settings)
        print(f"kuairec recommend: {error}" + (f" What differs: {note}." if note else ""), file=sys.stderr)
        return 2
    except (UnknownUserError, UnknownModelError) as error:
        print(f"kuairec recommend: {error}", file=sys.stderr)
        return 2
    except FileNotFoundError as error:
        print(f"kuairec recommend: {error}. Materialize the pipeline first (see README).", file=sys.stderr)
        return 2
    return 0


def _dagster_instance_folder() -> Path | None:
    """The folder of the Dagster instance the ``dagster`` command would use here: ``$DAGSTER_HOME``, else the current
    folder when it holds a ``dagster.yaml`` (the repository root: the project's file); None when neither is there."""
    home = os.environ.get("DAGSTER_HOME")
    if home:
        folder = Path(home).expanduser()
        return folder if folder.is_dir() else None
    return Path.cwd() if (Path.cwd() / "dagster.yaml").is_file() else None


def _warn_if_metrics_are_stale(command: str, settings: Settings) -> None:
    """One line on stderr when a model or table the stored metrics were computed from was materialized again since
    (from the Dagster instance's records, ``orchestration/run_history.py``; importing Dagster for it costs about
    a second); the exit status stays as it is."""
    folder = _dagster_instance_folder()
    if folder is None:
        return  # no run history to compare with (and no Dagster import: the command stays fast)
    from dagster import DagsterError

    from kuairec_pipeline.orchestration.run_history import stale_metrics_warning_for

    try:
        warning = stale_metrics_warning_for(settings.asset_location, folder)
    except (DagsterError, OSError) as error:
        warning = f"could not read the Dagster instance in {folder} to check that the metrics are current: {error}"
    if warning:
        print(f"{command}: warning: {warning}", file=sys.stderr)


def _days_note(error: StaleArtifactError, settings: Settings) -> str | None:
    """For a model refused because filtered_ratios changed: which appended days the two tables read differently,
    from the run history (None when it does not tell)."""
    then, now, folder = error.recorded, error.current, _dagster_instance_folder()
    if error.table != "filtered_ratios" or not then or not now or folder is None:
        return None
    from dagster import DagsterError

    from kuairec_pipeline.orchestration.run_history import appended_days_difference_for

    try:
        return appended_days_difference_for(settings.asset_location, folder, then, now)
    except (DagsterError, OSError) as failure:
        return f"unknown (could not read the Dagster instance in {folder}: {failure})"


def _metrics(args: argparse.Namespace) -> int:
    import polars as pl

    from kuairec_pipeline.asset_storage import readable_asset_folder
    from kuairec_pipeline.evaluation.report import metrics_markdown

    settings = Settings.from_env()
    try:
        path = readable_asset_folder(settings) / "metrics.parquet"
    except FileNotFoundError as error:
        print(f"kuairec metrics: {error}. Materialize the pipeline first (see README).", file=sys.stderr)
        return 2
    if not path.exists():
        print(f"kuairec metrics: {path} does not exist. Materialize the pipeline first (see README).", file=sys.stderr)
        return 2
    table = pl.read_parquet(path)
    print(metrics_markdown(table.filter(pl.col("split") == args.split)))
    _warn_if_metrics_are_stale("kuairec metrics", settings)
    return 0


def _summary(args: argparse.Namespace) -> int:
    from kuairec_pipeline.summary import closing_summary

    settings = Settings.from_env()
    try:
        print(closing_summary(settings), end="")
    except FileNotFoundError as error:
        print(f"kuairec summary: {error}. Materialize the pipeline first (see README).", file=sys.stderr)
        return 2
    _warn_if_metrics_are_stale("kuairec summary", settings)
    return 0


def _model_help() -> str:
    # From the registry, so that a model added there is listed here too (the CLI accepts every registry name).
    from kuairec_pipeline.models.registry import SERVED_ALIASES, TRAINED_MODELS

    aliases = "".join(f" or {name} (the model the {key} asset holds)" for name, key in SERVED_ALIASES.items())
    return (
        f"a trained model ({', '.join(TRAINED_MODELS)}){aliases}; default: the model the recommendations asset chose "
        "(hybrid_model holds whichever hybrid ranks better on the selection slice)"
    )


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
    recommend.add_argument(
        "-k",
        type=_positive_int,
        default=10,
        help="how many videos (>= 1; at most the depth of the stored recommendations, 50 by default)",
    )
    recommend.add_argument("--model", default=None, help=_model_help())
    recommend.set_defaults(handler=_recommend)

    metrics = commands.add_parser("metrics", help="print the stored metrics table")
    metrics.add_argument(
        "--split",
        choices=("test", "selection", "val", "serving"),
        default="test",
        help="which split's rows: test (reported), selection (model choice), val (tuning), serving (the served lists "
        "over every video, with and without the coverage re-ranking)",
    )
    metrics.set_defaults(handler=_metrics)

    summary = commands.add_parser("summary", help="where the results and the report are, headline metrics, next steps")
    summary.set_defaults(handler=_summary)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
