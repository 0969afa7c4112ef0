"""The interaction matrices (big_matrix is 1 GB): one streaming pass validates every value, then the caller sinks
the typed LazyFrame, or ``convert_interactions`` writes Parquet and validates from its column statistics (one read).

``on_invalid``:

- ``"error"`` (default): the first invalid value stops the read with an error naming file, column, row, value.
- ``"drop"``: rows with an invalid *value* (blank, NaN, infinite or negative where that is impossible, a
  non-integral date) are left out, and :class:`ValidationReport` counts them per reason. Damage to the file
  itself still raises in both modes: a wrong header, text where a number belongs, bytes that are not UTF-8, a
  line with too many fields, a truncated last line.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import polars as pl

from kuairec_pipeline.atomic import atomic_path
from kuairec_pipeline.dataset.loader.checks import (
    _REASON,
    _ROW,
    _check_header,
    _check_last_line,
    _reason_code,
    _ValueCheck,
)
from kuairec_pipeline.dataset.loader.forensics import _collect_or_explain, _explain_parse_failure, _first_invalid_value
from kuairec_pipeline.dataset.schema import BIG_MATRIX, FileSchema
from kuairec_pipeline.errors import KuaiRecDataError

OnInvalid = Literal["error", "drop"]


@dataclass(frozen=True)
class ValidationReport:
    """What a scan of an interaction matrix found: rows read, and rows dropped per reason (``on_invalid="drop"``)."""

    file: str
    rows_read: int
    dropped: Mapping[str, int] = field(default_factory=dict)  # reason -> rows (each row counted once)
    on_invalid: OnInvalid = "error"

    @property
    def rows_dropped(self) -> int:
        return sum(self.dropped.values())

    @property
    def rows_kept(self) -> int:
        return self.rows_read - self.rows_dropped

    def as_metadata(self) -> dict[str, int | str]:
        """Flat key -> value pairs, for Dagster output metadata or a log line."""
        return {
            "rows_read": self.rows_read,
            "rows_kept": self.rows_kept,
            "rows_dropped": self.rows_dropped,
            "on_invalid": self.on_invalid,
            **{f"dropped_{reason}": count for reason, count in self.dropped.items()},
        }


def _interaction_checks(file_schema: FileSchema) -> list[_ValueCheck]:
    checks: list[_ValueCheck] = []

    def blank(column: str) -> None:
        if column not in file_schema.nullable:
            checks.append(
                _ValueCheck(
                    f"{column}_blank", column, pl.col(column).is_null(), "is blank or missing (truncated line?)"
                )
            )

    for column in ("user_id", "video_id"):
        blank(column)
        checks.append(_ValueCheck(f"{column}_negative", column, pl.col(column) < 0, "is a negative id"))
    for column in ("play_duration", "video_duration"):
        blank(column)
        checks.append(_ValueCheck(f"{column}_negative", column, pl.col(column) < 0, "is a negative duration"))
    blank("time")
    blank("date")
    date = pl.col("date")
    checks.append(
        _ValueCheck(
            "date_not_integral",
            "date",
            ~date.is_finite() | (date != date.floor()) | (date < 0) | (date > 2**31 - 1),
            "is not a whole YYYYMMDD number",
        )
    )
    blank("timestamp")
    checks.append(
        _ValueCheck("timestamp_not_finite", "timestamp", ~pl.col("timestamp").is_finite(), "is NaN or infinite")
    )
    blank("watch_ratio")
    ratio = pl.col("watch_ratio")
    checks.append(_ValueCheck("watch_ratio_nan", "watch_ratio", ratio.is_nan(), "is NaN"))
    checks.append(_ValueCheck("watch_ratio_infinite", "watch_ratio", ratio.is_infinite(), "is infinite"))
    checks.append(_ValueCheck("watch_ratio_negative", "watch_ratio", ratio < 0, "is negative"))
    return checks


def _interaction_scan_schema(file_schema: FileSchema) -> dict[str, pl.DataType]:
    # small_matrix writes date as a float (20200705.0); read both matrices' date as float64 (exact for every
    # int32) and cast to int32 only after checking it is integral.
    return {name: (pl.Float64() if name == "date" else dtype) for name, dtype in file_schema.columns.items()}


@dataclass(frozen=True)
class ParquetSinkConfig:
    """How ``convert_interactions`` writes Parquet (chosen with benchmarks/ingest.py on a 2-core machine). It
    always writes min/max/null-count statistics: its checks read them, and readers use them to skip row groups."""

    compression: Literal["lz4", "zstd", "snappy", "uncompressed"] = "lz4"  # lz4 writes fastest; zstd ~20% smaller
    compression_level: int | None = 1  # zstd only: 1 writes fastest; higher levels barely shrink this data


def _suspicious_value_flags(file_schema: FileSchema) -> list[pl.Expr]:
    """Cheap column aggregates (null counts, min, max, NaN) that are all False exactly when no row fails a check of
    ``_interaction_checks``; far cheaper than evaluating every check on every row."""
    flags = [pl.col(name).null_count() > 0 for name in file_schema.columns if name not in file_schema.nullable]
    flags += [pl.col(name).min() < 0 for name in ("user_id", "video_id", "play_duration", "video_duration")]
    date, stamp, ratio = pl.col("date"), pl.col("timestamp"), pl.col("watch_ratio")
    flags += [
        date.is_nan().any(),
        date.min() < 0,
        date.max() > 2**31 - 1,
        (date != date.floor()).any(),
        stamp.is_nan().any(),
        stamp.is_infinite().any(),
        ratio.is_nan().any(),
        ratio.min() < 0,
        ratio.max() == math.inf,
    ]
    return [flag.fill_null(False).alias(f"suspicious_{index}") for index, flag in enumerate(flags)]


def _interaction_rows_and_suspicion(file_schema: FileSchema) -> list[pl.Expr]:
    return [pl.len().alias("rows"), pl.any_horizontal(_suspicious_value_flags(file_schema)).alias("suspicious")]


def _invalid_counts(scan: pl.LazyFrame, checks: list[_ValueCheck], code: pl.Expr) -> dict[str, int]:
    """Rows failing each check (each row counted under its first failed check), in one streaming pass."""
    counts = (
        scan.select((code == index).sum().alias(check.reason) for index, check in enumerate(checks, start=1))
        .collect(engine="streaming")
        .row(0, named=True)
    )
    return {reason: int(count) for reason, count in counts.items() if count}


def scan_interactions(
    path: str | os.PathLike[str],
    schema: FileSchema = BIG_MATRIX,
    on_invalid: OnInvalid = "error",
) -> tuple[pl.LazyFrame, ValidationReport]:
    """Validate big_matrix or small_matrix in one streaming pass and return it as a typed LazyFrame.

    The LazyFrame re-reads the CSV when collected or sunk (``sink_parquet``): nothing is held in memory.
    ``on_invalid``: ``"error"`` raises at the first invalid value; ``"drop"`` leaves out rows with invalid
    values and counts them per reason in the report (see the module docstring for what always raises).
    """
    csv_path = _check_interactions_file(path, schema, on_invalid)
    scan = _scan_interactions_csv(csv_path, schema)
    summary = _collect_or_explain(
        scan.select(_interaction_rows_and_suspicion(schema)), csv_path, _interaction_scan_schema(schema)
    )
    return _finish_scan(csv_path, schema, on_invalid, int(summary["rows"].item()), bool(summary["suspicious"].item()))


def _check_interactions_file(path: str | os.PathLike[str], file_schema: FileSchema, on_invalid: str) -> Path:
    if on_invalid not in ("error", "drop"):
        raise ValueError(f"on_invalid must be 'error' or 'drop', not {on_invalid!r}")
    csv_path = Path(path)
    _check_header(csv_path, file_schema)
    _check_last_line(csv_path, file_schema)
    return csv_path


def _scan_interactions_csv(csv_path: Path, file_schema: FileSchema, **options: object) -> pl.LazyFrame:
    return pl.scan_csv(csv_path, schema=_interaction_scan_schema(file_schema), **options)  # type: ignore[arg-type]


def _finish_scan(
    csv_path: Path, file_schema: FileSchema, on_invalid: OnInvalid, rows: int, suspicious: bool
) -> tuple[pl.LazyFrame, ValidationReport]:
    if rows == 0:
        raise KuaiRecDataError("has a header but no data rows", file=csv_path)
    checks = _interaction_checks(file_schema)
    code = _reason_code(checks)
    invalid = _invalid_counts(_scan_interactions_csv(csv_path, file_schema), checks, code) if suspicious else {}
    if invalid and on_invalid == "error":
        raise _first_invalid_value(
            csv_path,
            _scan_interactions_csv(csv_path, file_schema, row_index_name=_ROW),
            checks,
            code,
            invalid,
            file_schema,
        )
    lazy = _scan_interactions_csv(csv_path, file_schema)
    if invalid:
        lazy = lazy.filter(code == 0)
    lazy = lazy.with_columns(pl.col("date").cast(pl.Int32))
    return lazy, ValidationReport(str(csv_path), rows, invalid, on_invalid)


def convert_interactions(
    csv_path: str | os.PathLike[str],
    parquet_path: str | os.PathLike[str],
    schema: FileSchema = BIG_MATRIX,
    on_invalid: OnInvalid = "error",
    parquet: ParquetSinkConfig = ParquetSinkConfig(),
    already_temporary: bool = False,
) -> ValidationReport:
    """big_matrix / small_matrix CSV -> typed Parquet, streamed, written atomically (temp file then rename).

    ``already_temporary=True``: ``parquet_path`` is itself a temporary path that the caller renames into place
    (the Parquet IO manager does), so it is written directly instead of through a second temporary file.

    Same checks and ``on_invalid`` as :func:`scan_interactions`, but a clean file is read only once: the Parquet
    writer's own per-row-group statistics (null counts, min, max) answer the checks, once invalid values have been
    made to show in them (NaN -> -inf, a non-integral date -> -1). If they flag anything, that output is discarded
    and the error raised, or (``"drop"``) the file is written again without the invalid rows.
    """
    source = _check_interactions_file(csv_path, schema, on_invalid)
    scan_schema = _interaction_scan_schema(schema)
    date = pl.col("date")
    typed = pl.scan_csv(source, schema=scan_schema).with_columns(
        pl.when(date.is_null())
        .then(None)
        .when((date == date.floor()) & (date >= 0) & (date <= 2**31 - 1))
        .then(date)
        .otherwise(-1)
        .cast(pl.Int32)
        .alias("date"),
        pl.col("timestamp").fill_nan(-math.inf),
        pl.col("watch_ratio").fill_nan(-math.inf),
    )
    options: dict[str, object] = {"compression": parquet.compression, "statistics": True, "engine": "streaming"}
    if parquet.compression == "zstd":
        options["compression_level"] = parquet.compression_level
    writing = contextlib.nullcontext(Path(parquet_path)) if already_temporary else atomic_path(parquet_path)
    with writing as tmp:
        try:
            typed.sink_parquet(tmp, **options)  # type: ignore[arg-type]
        except pl.exceptions.PolarsError as exc:
            raise _explain_parse_failure(source, scan_schema, exc) from exc
        rows, suspicious = _suspicion_from_parquet_statistics(tmp, schema)
        lazy, report = _finish_scan(source, schema, on_invalid, rows, suspicious)
        if report.dropped:
            lazy.sink_parquet(tmp, **options)  # type: ignore[arg-type]
    return report


def _suspicion_from_parquet_statistics(path: Path, file_schema: FileSchema) -> tuple[int, bool]:
    """Rows in a Parquet file written by ``convert_interactions``, and whether its footer statistics show a value
    that ``_interaction_checks`` would reject. Missing statistics count as suspicious (the exact pass decides)."""
    import pyarrow.parquet as pq  # only this reads Parquet footers; importing it costs every other caller 0.2 s

    metadata = pq.ParquetFile(path).metadata
    nulls: dict[str, int] = {}
    lowest: dict[str, float] = {}
    highest: dict[str, float] = {}
    for group_index in range(metadata.num_row_groups):
        group = metadata.row_group(group_index)
        for column_index in range(group.num_columns):
            column = group.column(column_index)
            name, stats = column.path_in_schema, column.statistics
            if stats is None or not stats.has_null_count:
                return metadata.num_rows, True
            nulls[name] = nulls.get(name, 0) + stats.null_count
            if stats.has_min_max and isinstance(stats.min, int | float):
                lowest[name] = min(lowest.get(name, math.inf), stats.min)
                highest[name] = max(highest.get(name, -math.inf), stats.max)
            elif stats.null_count < group.num_rows and file_schema.columns[name].is_numeric():
                return metadata.num_rows, True
    suspicious = (
        any(nulls.get(name, 0) for name in file_schema.columns if name not in file_schema.nullable)
        # ids, durations, dates (-1 stands for a non-integral one) and watch_ratio (-inf for NaN) are never negative
        or any(
            lowest.get(name, 0) < 0
            for name in ("user_id", "video_id", "play_duration", "video_duration", "date", "watch_ratio")
        )
        or highest.get("watch_ratio", 0) == math.inf
        or not -math.inf < lowest.get("timestamp", 0) <= highest.get("timestamp", 0) < math.inf
    )
    return metadata.num_rows, suspicious


def require_known_ids(
    lazy: pl.LazyFrame,
    path: str | os.PathLike[str],
    known: pl.LazyFrame,
    known_file: str = BIG_MATRIX.file_name,
    on_invalid: OnInvalid = "error",
) -> tuple[pl.LazyFrame, dict[str, int]]:
    """small_matrix's users and videos are subsets of big_matrix's (docs/KUAIREC.md): check ``lazy`` (the rows of
    ``path``, as returned by :func:`scan_interactions`) against the ids of ``known`` (big_matrix's rows).

    ``"error"``: raise KuaiRecDataError at the first row holding an id ``known`` never has, naming the file,
    column, row and id. ``"drop"``: leave such rows out; returns how many per reason (``{column}_unseen``).
    """
    known_ids = {
        column: known.select(pl.col(column).unique()).collect(engine="streaming")[column]
        for column in ("user_id", "video_id")
    }
    unseen = {column: ~pl.col(column).is_in(ids.implode()) for column, ids in known_ids.items()}
    code = pl.when(unseen["user_id"]).then(pl.lit(1, pl.UInt8)).when(unseen["video_id"]).then(pl.lit(2, pl.UInt8))
    code = code.otherwise(pl.lit(0, pl.UInt8))
    counts = lazy.select((code == 1).sum().alias("user_id_unseen"), (code == 2).sum().alias("video_id_unseen"))
    counts = {
        reason: int(count) for reason, count in counts.collect(engine="streaming").row(0, named=True).items() if count
    }
    if not counts:
        return lazy, {}
    if on_invalid == "drop":
        return lazy.filter(code == 0), counts
    # In "error" mode ``lazy`` holds every data row of the file in order, so the row index is the file's row.
    first = (
        lazy.with_row_index(_ROW)
        .with_columns(code.alias(_REASON))
        .filter(pl.col(_REASON) != 0)
        .select(_ROW, _REASON, "user_id", "video_id")
        .sort(_ROW)
        .head(1)
        .collect()
        .row(0, named=True)
    )
    column = "user_id" if first[_REASON] == 1 else "video_id"
    summary = ", ".join(f"{count:,} {reason}" for reason, count in counts.items())
    raise KuaiRecDataError(
        f"{column.removesuffix('_id')} {first[column]} never appears in {known_file}; every user and video of "
        f"{Path(path).name} must also be in {known_file} (train on big, evaluate on small). Rows with unseen ids: "
        f"{summary}. Check that both files come from the same copy of KuaiRec, or read with on_invalid='drop'.",
        file=path,
        column=column,
        row=first[_ROW] + 1,
        value=first[column],
    )
