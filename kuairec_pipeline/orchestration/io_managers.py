"""IO managers: Parquet (polars) and NumPy, on UPathIOManager so the base path may be any fsspec URL.

Every local write goes to a temporary sibling and is renamed into place, so a crash, a kill -9 or a concurrent run
never leaves a half-written file where the previous good one was. Remote object stores write whole objects.
Output metadata under ``kuairec/`` (a table's fingerprint, its config, what it was built with: see
``kuairec_pipeline.provenance``) is also written into the Parquet file's key-value metadata, so readers without
Dagster (the CLI) can tell which run a file came from.

Both factories validate the run's whole config when the run starts (``run_config.validate_run_config``), before any
step writes anything.
"""

from __future__ import annotations

import io
import tempfile
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from dagster import (
    ConfigurableIOManagerFactory,
    InputContext,
    MetadataValue,
    OutputContext,
    TableColumn,
    TableSchema,
    UPathIOManager,
)
from pydantic import Field
from upath import UPath

from kuairec_pipeline.atomic import atomic_path
from kuairec_pipeline.orchestration.metadata import array_summary
from kuairec_pipeline.orchestration.storage_layout import PARTITION_COLUMN, PARTITION_FILE
from kuairec_pipeline.provenance import PARQUET_METADATA_PREFIX

PREVIEW_ROWS = 5
# zstd level 1: about lz4's write speed on this data with smaller files; one setting for local and remote writes.
PARQUET_WRITE_OPTIONS: dict[str, Any] = {"compression": "zstd", "compression_level": 1}


def _is_local(path: UPath) -> bool:
    return getattr(path, "protocol", "") in ("", "file", "local")


def _local(path: UPath) -> Path:
    return Path(path.path if hasattr(path, "path") else str(path))


def table_metadata(frame: pl.DataFrame | None, schema: pl.Schema, num_rows: int) -> dict[str, Any]:
    """Row count, schema and a markdown preview: what the UI shows for every table asset."""
    metadata: dict[str, Any] = {
        "dagster/row_count": MetadataValue.int(num_rows),
        "dagster/column_schema": MetadataValue.table_schema(
            TableSchema(columns=[TableColumn(name, str(dtype)) for name, dtype in schema.items()])
        ),
    }
    if frame is not None:
        metadata["preview"] = MetadataValue.md(markdown_table(frame.head(PREVIEW_ROWS)))
    return metadata


def markdown_table(frame: pl.DataFrame) -> str:
    def cell(value: Any) -> str:
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        return text.replace("|", "\\|").replace("\n", " ")[:60]

    header = "| " + " | ".join(frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.iter_rows()]
    return "\n".join([header, rule, *rows])


def provenance_entries(context: OutputContext) -> dict[str, str]:
    """The output's ``kuairec/*`` metadata as text, for the Parquet file's key-value metadata."""
    entries = {}
    for key, value in (context.output_metadata or {}).items():
        if key.startswith(PARQUET_METADATA_PREFIX):
            raw = getattr(value, "value", value)
            entries[key] = raw if isinstance(raw, str) else str(raw)
    return entries


class _FoldersOnWrite:
    """Local writes create their folder in ``atomic_path``, which removes it again when the write fails: a failed
    partition leaves no empty ``day=...`` folder behind. UPathIOManager would create it before the write starts."""

    def make_directory(self, path: UPath) -> None:
        if not _is_local(path):
            super().make_directory(path)  # type: ignore[misc]


@dataclass(frozen=True)
class ParquetFileWriter:
    """An asset output that writes its own Parquet file to the path the IO manager hands it.

    For outputs whose writer does more than ``sink_parquet`` in one pass (e.g. the interaction loader converts,
    validates from the file's statistics and only then accepts the file): the IO manager still owns where the file
    goes and the temporary-then-rename. ``write`` returns extra metadata for the materialization.
    """

    write: Callable[[Path], Mapping[str, Any]]


class PolarsParquetIOManager(_FoldersOnWrite, UPathIOManager):
    """Stores a polars DataFrame, or streams a LazyFrame (``sink_parquet``), as ``<asset key>.parquet``; a
    :class:`ParquetFileWriter` output writes the file itself.

    Inputs load eagerly as a DataFrame, or as a LazyFrame when the input is annotated ``pl.LazyFrame``.

    A partitioned asset is a hive-style folder, one file per partition: ``<asset key>/day=<key>/part-0.parquet``
    (DuckDB, Spark and polars' ``hive_partitioning`` read ``day`` from the path). Each partition is written alone,
    atomically. An input of a partitioned asset (an unpartitioned asset reading all its partitions) is one polars
    scan over the partitions stored among those Dagster asks for, or None when none is stored.
    """

    extension = ".parquet"
    partition_column = PARTITION_COLUMN
    partition_file = PARTITION_FILE

    def get_path_for_partition(self, context: InputContext | OutputContext, path: UPath, partition: str) -> UPath:
        return path / f"{self.partition_column}={partition}" / self.partition_file

    def load_input(self, context: InputContext) -> Any:
        if not (context.has_asset_key and context.has_asset_partitions):
            return super().load_input(context)
        return self._load_partitions_as_one(context)

    def _load_partitions_as_one(self, context: InputContext) -> pl.DataFrame | pl.LazyFrame | None:
        # Dagster passes every key of the partitions definition (a daily one: every day since its start), most
        # of them never materialized: one listing of the folder, then a path only for the keys stored (a UPath
        # per key of a daily definition took seconds per read on s3://).
        folder = self._get_path_without_extension(context)
        stored = {found.parent.name for found in folder.glob(f"*/{self.partition_file}{self.extension}")}
        keys = sorted(key for key in context.asset_partition_keys if f"{self.partition_column}={key}" in stored)
        files = [self._with_extension(self.get_path_for_partition(context, folder, key)) for key in keys]
        context.log.info(f"{context.asset_key.to_user_string()}: {len(files)} partition(s) stored, read as one table")
        if not files:
            return None
        if all(_is_local(path) for path in files):
            lazy = pl.scan_parquet([_local(path) for path in files], hive_partitioning=False)
        else:
            lazy = pl.concat([pl.read_parquet(io.BytesIO(path.read_bytes())) for path in files]).lazy()
        wanted_type = context.dagster_type.typing_type
        if wanted_type is pl.LazyFrame or pl.LazyFrame in typing.get_args(wanted_type):
            return lazy
        return lazy.collect()

    def dump_to_path(self, context: OutputContext, obj: Any, path: UPath) -> None:
        if isinstance(obj, ParquetFileWriter):
            self._dump_with_writer(context, obj, path)
            return
        if not isinstance(obj, (pl.DataFrame, pl.LazyFrame)):
            raise TypeError(
                f"{context.asset_key.to_user_string()}: expected a polars DataFrame or LazyFrame, "
                f"got {type(obj).__name__}"
            )
        options = {**PARQUET_WRITE_OPTIONS, "metadata": provenance_entries(context) or None}
        if _is_local(path):
            with atomic_path(_local(path)) as tmp:
                if isinstance(obj, pl.LazyFrame):
                    obj.sink_parquet(tmp, **options)
                else:
                    obj.write_parquet(tmp, **options)
        else:
            frame = obj.collect(engine="streaming") if isinstance(obj, pl.LazyFrame) else obj
            with path.open("wb") as handle:
                frame.write_parquet(handle, **options)
        context.add_output_metadata(self._metadata(path))

    def _dump_with_writer(self, context: OutputContext, writer: ParquetFileWriter, path: UPath) -> None:
        if _is_local(path):
            with atomic_path(_local(path)) as tmp:
                extra = writer.write(tmp)
        else:
            with tempfile.TemporaryDirectory() as folder:
                local = Path(folder) / "output.parquet"
                extra = writer.write(local)
                path.write_bytes(local.read_bytes())
        context.add_output_metadata({**dict(extra), **self._metadata(path)})

    def _metadata(self, path: UPath) -> dict[str, Any]:
        source = _local(path) if _is_local(path) else path.read_bytes()
        if isinstance(source, bytes):
            source = io.BytesIO(source)
        schema = pl.read_parquet_schema(source)
        lazy = pl.scan_parquet(source)
        num_rows = lazy.select(pl.len()).collect().item()
        preview = lazy.head(PREVIEW_ROWS).collect()
        return table_metadata(preview, schema, num_rows)

    def load_from_path(self, context: InputContext, path: UPath) -> pl.DataFrame | pl.LazyFrame:
        source: Any = _local(path) if _is_local(path) else io.BytesIO(path.read_bytes())
        if context.dagster_type.typing_type is pl.LazyFrame:
            return pl.scan_parquet(source)
        return pl.read_parquet(source)


class NumpyIOManager(_FoldersOnWrite, UPathIOManager):
    """Stores a dict of named NumPy arrays as ``<asset key>.npz``; loads it back with ``allow_pickle=False``.

    Object arrays are refused on write, so nothing read back can ever need unpickling.
    """

    extension = ".npz"

    def dump_to_path(self, context: OutputContext, obj: Any, path: UPath) -> None:
        arrays = save_arrays_check(obj, context.asset_key.to_user_string())
        if _is_local(path):
            with atomic_path(_local(path)) as tmp:
                with open(tmp, "wb") as handle:
                    np.savez(handle, **arrays)
        else:
            buffer = io.BytesIO()
            np.savez(buffer, **arrays)
            path.write_bytes(buffer.getvalue())
        context.add_output_metadata(array_summary(arrays))  # one line, not a row per array

    def load_from_path(self, context: InputContext, path: UPath) -> dict[str, np.ndarray]:
        return load_arrays(_local(path) if _is_local(path) else io.BytesIO(path.read_bytes()))


def save_arrays_check(obj: Any, what: str) -> dict[str, np.ndarray]:
    if not isinstance(obj, dict) or not all(isinstance(v, np.ndarray) for v in obj.values()):
        raise TypeError(f"{what}: expected a dict of numpy arrays, got {type(obj).__name__}")
    for name, array in obj.items():
        if array.dtype.hasobject:
            raise TypeError(f"{what}: array {name!r} has dtype object, which would need pickle; refusing")
    return obj


def load_arrays(source: Any) -> dict[str, np.ndarray]:
    with np.load(source, allow_pickle=False) as bundle:
        return {name: bundle[name] for name in bundle.files}


class ParquetIOManagerFactory(ConfigurableIOManagerFactory):
    """Parquet files below ``base_path`` (a local folder or any fsspec URL)."""

    base_path: str = Field(default="data/assets", description="Folder or fsspec URL where asset files are written.")

    def create_io_manager(self, context) -> PolarsParquetIOManager:
        _validate_run(context, self.base_path)
        return PolarsParquetIOManager(base_path=UPath(self.base_path))


class NumpyIOManagerFactory(ConfigurableIOManagerFactory):
    """NumPy ``.npz`` bundles below ``base_path`` (a local folder or any fsspec URL)."""

    base_path: str = Field(default="data/assets", description="Folder or fsspec URL where asset files are written.")

    def create_io_manager(self, context) -> NumpyIOManager:
        _validate_run(context, self.base_path)
        return NumpyIOManager(base_path=UPath(self.base_path))


def _validate_run(context: Any, base_path: str) -> None:
    # IO managers are set up when a run starts, before its first step: the one place every run passes through
    # before anything is written. Imported here: run_config imports the asset modules, which import this one.
    from kuairec_pipeline.orchestration.run_config import validate_run_config

    run = getattr(context, "run", None)  # None when the resource is built outside a run
    if run is not None:
        base = UPath(base_path)
        validate_run_config(run.run_config or {}, _local(base) if _is_local(base) else None)
