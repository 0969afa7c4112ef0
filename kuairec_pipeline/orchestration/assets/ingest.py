"""Ingest: find (or generate, or download) the KuaiRec files, then turn each into a typed Parquet asset."""

from pathlib import Path
from typing import Literal

import polars as pl
from dagster import AssetExecutionContext, Config, MetadataValue, Output, asset
from pydantic import Field

from kuairec_pipeline import provenance
from kuairec_pipeline.dataset import loader, schema, source
from kuairec_pipeline.dataset.download import DownloadConfig
from kuairec_pipeline.orchestration.config_gen import dagster_config, to_source
from kuairec_pipeline.orchestration.io_managers import ParquetFileWriter
from kuairec_pipeline.orchestration.metadata import versioned_output
from kuairec_pipeline.orchestration.resources import KuaiRecResource
from kuairec_pipeline.orchestration.versions import code_version

GROUP = "ingest"
TRUTH_FILE = "expected_small.parquet"
SourceFilesConfig = dagster_config(DownloadConfig, "SourceFilesConfig")  # used by KUAIREC_SOURCE=download only


class IngestConfig(Config):
    on_invalid: Literal["error", "drop"] = Field(
        default="error",
        description="'error' stops at the first invalid value (file, column, row named); 'drop' drops such rows "
        "and reports how many.",
    )


def _manifest_paths(source_files: pl.DataFrame) -> dict[str, Path]:
    return {row["file_name"]: Path(row["path"]) for row in source_files.iter_rows(named=True)}


def _require(source_files: pl.DataFrame, file_name: str) -> Path:
    paths = _manifest_paths(source_files)
    if file_name not in paths:
        raise FileNotFoundError(f"{file_name} is not among the KuaiRec source files: {sorted(paths)}")
    return paths[file_name]


@asset(group_name=GROUP, code_version=code_version("source_files"), kinds={"polars", "parquet"})
def source_files(
    context: AssetExecutionContext, config: SourceFilesConfig, kuairec: KuaiRecResource
) -> Output[pl.DataFrame]:
    """The KuaiRec files this run reads: the synthetic twin (generated once per profile and seed), an unpacked
    folder, ``KuaiRec.zip`` (unpacked safely), or the official archive (downloaded as ``config`` says,
    md5-checked)."""
    settings = kuairec.settings
    files = source.resolve_source(settings, to_source(config, DownloadConfig))
    rows = [
        {"file_name": name, "path": str(path), "size_bytes": path.stat().st_size, "role": "official"}
        for name, path in files.items()
    ]
    truth = source.truth_dir(files)
    if truth is not None and (truth / TRUTH_FILE).exists():
        rows.append(
            {
                "file_name": TRUTH_FILE,
                "path": str(truth / TRUTH_FILE),
                "size_bytes": (truth / TRUTH_FILE).stat().st_size,
                "role": "planted_truth",
            }
        )
    context.add_output_metadata({"source": settings.source, "profile": settings.profile, "seed": settings.seed})
    table = pl.DataFrame(
        rows, schema={"file_name": pl.String, "path": pl.String, "size_bytes": pl.Int64, "role": pl.String}
    )
    # The files change without the code changing: their names, sizes and modification times are the data version,
    # so the UI marks everything downstream stale when new files arrive (a code version alone would not).
    stamps = pl.Series([Path(path).stat().st_mtime_ns for path in table["path"]], dtype=pl.Int64)
    version = provenance.frame_fingerprint(table.with_columns(mtime_ns=stamps))
    return versioned_output(table, version)


def _interactions(
    context: AssetExecutionContext,
    source_files: pl.DataFrame,
    file_schema: schema.FileSchema,
    config: IngestConfig,
    known: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    path = _require(source_files, file_schema.file_name)
    lazy, report = loader.scan_interactions(path, file_schema, on_invalid=config.on_invalid)
    unseen: dict[str, int] = {}
    if known is not None:
        lazy, unseen = loader.require_known_ids(lazy, path, known, schema.BIG_MATRIX.file_name, config.on_invalid)
    metadata = report.as_metadata()
    if unseen:
        metadata["rows_dropped"] = int(metadata["rows_dropped"]) + sum(unseen.values())
        metadata["rows_kept"] = int(metadata["rows_kept"]) - sum(unseen.values())
        metadata.update({f"dropped_{reason}": count for reason, count in unseen.items()})
    context.add_output_metadata({"source_file": str(path), **metadata})
    return lazy


@asset(group_name=GROUP, code_version=code_version("raw_interactions"), kinds={"polars", "parquet"})
def raw_interactions(
    context: AssetExecutionContext, config: IngestConfig, source_files: pl.DataFrame
) -> ParquetFileWriter:
    """big_matrix.csv as typed Parquet, streamed (never fully in memory) in one pass: the file is converted, then
    checked from its own column statistics, and only a clean (or cleaned, with on_invalid='drop') file is kept.
    Exact duplicate rows are kept here: raw stays faithful to the file; ``filtered_ratios`` decides about them."""
    path = _require(source_files, schema.BIG_MATRIX.file_name)

    def write(target: Path) -> dict[str, object]:
        report = loader.convert_interactions(
            path, target, schema.BIG_MATRIX, on_invalid=config.on_invalid, already_temporary=True
        )
        return {"source_file": str(path), **report.as_metadata()}

    return ParquetFileWriter(write)


@asset(group_name=GROUP, code_version=code_version("raw_eval_interactions"), kinds={"polars", "parquet"})
def raw_eval_interactions(
    context: AssetExecutionContext, config: IngestConfig, source_files: pl.DataFrame, raw_interactions: pl.LazyFrame
) -> pl.LazyFrame:
    """small_matrix.csv (the fully observed evaluation matrix) as typed Parquet; `time`, `date`, `timestamp`
    stay null in the forced-exposure rows. Its users and videos must all occur in big_matrix (``raw_interactions``):
    an unseen id is an error naming its row (or, with ``on_invalid='drop'``, a dropped row), checked before
    anything is written."""
    return _interactions(context, source_files, schema.SMALL_MATRIX, config, known=raw_interactions)


@asset(group_name=GROUP, code_version=code_version("raw_users"), kinds={"polars", "parquet"})
def raw_users(context: AssetExecutionContext, source_files: pl.DataFrame) -> pl.DataFrame:
    """user_features.csv typed; blank one-hot values stay null."""
    path = _require(source_files, schema.USER_FEATURES.file_name)
    frame = loader.read_user_features(path)
    context.add_output_metadata({"source_file": str(path)})
    return frame


@asset(group_name=GROUP, code_version=code_version("raw_videos"), kinds={"polars", "parquet"})
def raw_videos(context: AssetExecutionContext, source_files: pl.DataFrame) -> pl.DataFrame:
    """One row per video: parsed tags (item_categories.csv), author and duration (item_daily_features.csv, when
    present) and category (kuairec_caption_category.csv, when present)."""
    paths = _manifest_paths(source_files)
    categories = loader.read_item_categories(_require(source_files, schema.ITEM_CATEGORIES.file_name))
    daily_path = paths.get(schema.ITEM_DAILY_FEATURES.file_name)
    captions_path = paths.get(schema.CAPTION_CATEGORY.file_name)
    frame = loader.build_raw_videos(
        categories,
        loader.scan_item_daily_features(daily_path) if daily_path else None,
        loader.read_captions(captions_path) if captions_path else None,
    )
    context.add_output_metadata(
        {
            "with_daily_features": MetadataValue.bool(daily_path is not None),
            "with_captions": MetadataValue.bool(captions_path is not None),
        }
    )
    return frame


PLANTED_TRUTH_SCHEMA = {
    "user_id": pl.Int32,
    "video_id": pl.Int32,
    "expected_watch_ratio": pl.Float64,
    "expected_watch_ratio_le3": pl.Float64,
    "prob_watch_ratio_gt2": pl.Float64,
}


@asset(group_name=GROUP, code_version=code_version("planted_truth"), kinds={"polars", "parquet"})
def planted_truth(context: AssetExecutionContext, source_files: pl.DataFrame) -> pl.DataFrame:
    """The synthetic twin's planted expected watch ratio for every test pair (the oracle); empty on real data."""
    paths = _manifest_paths(source_files)
    if TRUTH_FILE not in paths:
        context.log.info("no planted truth: real data has no oracle")
        return pl.DataFrame(schema=PLANTED_TRUTH_SCHEMA)
    return pl.read_parquet(paths[TRUTH_FILE]).select(
        [pl.col(name).cast(dtype) for name, dtype in PLANTED_TRUTH_SCHEMA.items()]
    )
