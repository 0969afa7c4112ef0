"""Read the official KuaiRec 2.0 files as typed polars frames. No Dagster here.

Every problem in a file raises :class:`KuaiRecDataError` naming the file and, where it can be known, the column,
the 1-based data row (the header is row 0) and the offending value.

Two ways of reading, chosen by size:

- The interaction matrices (big_matrix is 1 GB) and item_daily_features are scanned lazily with polars and an
  explicit schema. One streaming aggregate pass validates every value (cheap column aggregates; the per-row,
  per-reason pass runs only when they flag something); the caller then sinks the returned LazyFrame
  (``sink_parquet``), so the file never sits in memory. ``convert_interactions`` does both in a single read.
  Polars' own parse errors name no row, so when the typed scan fails the file is re-scanned as text to find the
  first offending row and value.
- The small files (a few MB) are split into records with the ``csv`` module, which sees exactly how many fields
  each record has (polars reads a truncated line as trailing nulls, indistinguishable from blanks), then cast
  column by column, so a bad value is reported with its row directly.

``on_invalid`` (interaction matrices only):

- ``"error"`` (default): the first invalid value stops the read with an error naming file, column, row, value.
- ``"drop"``: rows with an invalid *value* (blank, NaN, infinite or negative where that is impossible, a
  non-integral date) are left out, and :class:`ValidationReport` counts them per reason. Damage to the file
  itself still raises in both modes: a wrong header, text where a number belongs, bytes that are not UTF-8, a
  line with too many fields, a truncated last line.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import polars as pl

from kuairec_pipeline.atomic import atomic_path
from kuairec_pipeline.dataset.schema import (
    ALL_FILES,
    BIG_MATRIX,
    CAPTION_CATEGORY,
    ITEM_CATEGORIES,
    ITEM_DAILY_FEATURES,
    MAX_TAGS_PER_VIDEO,
    MISSING_CATEGORY_ID,
    NUM_TAGS,
    REQUIRED_FILES,
    SOCIAL_NETWORK,
    USER_FEATURES,
    FileSchema,
)
from kuairec_pipeline.errors import KuaiRecDataError, KuaiRecSourceError

OnInvalid = Literal["error", "drop"]

OFFICIAL_FILE_NAMES = frozenset(file_schema.file_name for file_schema in ALL_FILES)
# Folders never searched: the twin's planted truth, hidden folders, macOS resource forks inside zips.
_SKIPPED_FOLDERS = frozenset({"_truth", "__MACOSX"})

_ROW = "__kuairec_row__"  # row index column added while validating; never in a result
_REASON = "__kuairec_reason__"
# Stand-in for a bare carriage return while the csv module splits records (it would end the record there:
# kuairec_caption_category.csv has 4 captions with a bare \r, outside quotes). Restored afterwards.
_CR_STAND_IN = "\x1e"
_TAIL_BYTES = 1 << 16


# --------------------------------------------------------------------------------------------------------------
# Finding the files
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KuaiRecFiles(Mapping[str, Path]):
    """The official files found below ``root``: file name (e.g. ``"big_matrix.csv"``) -> path."""

    root: Path
    paths: Mapping[str, Path] = field(default_factory=dict)

    def __getitem__(self, name: str | FileSchema) -> Path:
        return self.paths[_file_name(name)]

    def __iter__(self) -> Iterator[str]:
        return iter(self.paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str | FileSchema) and _file_name(name) in self.paths

    def get(self, name: str | FileSchema, default: Path | None = None) -> Path | None:  # type: ignore[override]
        return self.paths.get(_file_name(name), default)

    def require(self, name: str | FileSchema) -> Path:
        """The path of ``name``; KuaiRecSourceError if that file was not found."""
        file_name = _file_name(name)
        if file_name not in self.paths:
            raise KuaiRecSourceError(
                f"{file_name} was not found below {self.root} (found: {', '.join(sorted(self.paths)) or 'nothing'})"
            )
        return self.paths[file_name]


def _file_name(name: str | FileSchema) -> str:
    return name.file_name if isinstance(name, FileSchema) else name


def find_kuairec_files(root: str | os.PathLike[str]) -> KuaiRecFiles:
    """Find the official files by name anywhere below ``root`` (the archive unpacks to ``KuaiRec 2.0/data/``).

    ``_truth/`` folders, hidden folders and dot-files (temporary files) are ignored. Raises KuaiRecSourceError
    when a required file (``schema.REQUIRED_FILES``) is missing or a file name occurs twice.
    """
    root_path = Path(root).expanduser()
    if not root_path.is_dir():
        raise KuaiRecSourceError(f"{root_path} is not a folder holding the KuaiRec files")
    found: dict[str, list[Path]] = {}
    visited: set[Path] = set()
    for folder, subfolders, file_names in os.walk(root_path, followlinks=True):
        real = Path(folder).resolve()
        if real in visited:  # a symlink loop
            subfolders[:] = []
            continue
        visited.add(real)
        subfolders[:] = sorted(d for d in subfolders if d not in _SKIPPED_FOLDERS and not d.startswith("."))
        for name in file_names:
            if name in OFFICIAL_FILE_NAMES:
                found.setdefault(name, []).append(Path(folder) / name)
    duplicated = {name: paths for name, paths in found.items() if len(paths) > 1}
    if duplicated:
        listing = "; ".join(f"{name}: {', '.join(str(p) for p in paths)}" for name, paths in sorted(duplicated.items()))
        raise KuaiRecSourceError(
            f"more than one copy of a KuaiRec file below {root_path} ({listing}); point KUAIREC_SOURCE at the "
            "folder of one copy"
        )
    missing = [f.file_name for f in REQUIRED_FILES if f.file_name not in found]
    if missing:
        raise KuaiRecSourceError(
            f"required KuaiRec file(s) {', '.join(missing)} not found anywhere below {root_path} "
            f"(found: {', '.join(sorted(found)) or 'none of the official files'})"
        )
    return KuaiRecFiles(root_path, {name: paths[0] for name, paths in sorted(found.items())})


# --------------------------------------------------------------------------------------------------------------
# Interaction matrices
# --------------------------------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class _ValueCheck:
    reason: str  # short key, e.g. "watch_ratio_negative"
    column: str
    invalid: pl.Expr
    problem: str  # what is wrong, for the error message


def _interaction_checks(file_schema: FileSchema) -> list[_ValueCheck]:
    checks: list[_ValueCheck] = []

    def blank(column: str) -> None:
        if column not in file_schema.nullable:
            checks.append(_ValueCheck(f"{column}_blank", column, pl.col(column).is_null(),
                                      "is blank or missing (truncated line?)"))

    for column in ("user_id", "video_id"):
        blank(column)
        checks.append(_ValueCheck(f"{column}_negative", column, pl.col(column) < 0, "is a negative id"))
    for column in ("play_duration", "video_duration"):
        blank(column)
        checks.append(_ValueCheck(f"{column}_negative", column, pl.col(column) < 0, "is a negative duration"))
    blank("time")
    blank("date")
    date = pl.col("date")
    checks.append(_ValueCheck(
        "date_not_integral", "date",
        ~date.is_finite() | (date != date.floor()) | (date < 0) | (date > 2**31 - 1),
        "is not a whole YYYYMMDD number",
    ))
    blank("timestamp")
    checks.append(_ValueCheck("timestamp_not_finite", "timestamp", ~pl.col("timestamp").is_finite(),
                              "is NaN or infinite"))
    blank("watch_ratio")
    ratio = pl.col("watch_ratio")
    checks.append(_ValueCheck("watch_ratio_nan", "watch_ratio", ratio.is_nan(), "is NaN"))
    checks.append(_ValueCheck("watch_ratio_infinite", "watch_ratio", ratio.is_infinite(), "is infinite"))
    checks.append(_ValueCheck("watch_ratio_negative", "watch_ratio", ratio < 0, "is negative"))
    return checks


def _reason_code(checks: list[_ValueCheck]) -> pl.Expr:
    """0 for a valid row, else 1 + the index of the first check it fails (so each row has one reason)."""
    expr = pl.when(checks[0].invalid).then(pl.lit(1, pl.UInt8))
    for index, check in enumerate(checks[1:], start=2):
        expr = expr.when(check.invalid).then(pl.lit(index, pl.UInt8))
    return expr.otherwise(pl.lit(0, pl.UInt8))


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
        date.is_nan().any(), date.min() < 0, date.max() > 2**31 - 1, (date != date.floor()).any(),
        stamp.is_nan().any(), stamp.is_infinite().any(),
        ratio.is_nan().any(), ratio.min() < 0, ratio.max() == math.inf,
    ]
    return [flag.fill_null(False).alias(f"suspicious_{index}") for index, flag in enumerate(flags)]


def _interaction_rows_and_suspicion(file_schema: FileSchema) -> list[pl.Expr]:
    return [pl.len().alias("rows"), pl.any_horizontal(_suspicious_value_flags(file_schema)).alias("suspicious")]


def _invalid_counts(scan: pl.LazyFrame, checks: list[_ValueCheck], code: pl.Expr) -> dict[str, int]:
    """Rows failing each check (each row counted under its first failed check), in one streaming pass."""
    counts = scan.select(
        (code == index).sum().alias(check.reason) for index, check in enumerate(checks, start=1)
    ).collect(engine="streaming").row(0, named=True)
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
    summary = _collect_or_explain(scan.select(_interaction_rows_and_suspicion(schema)), csv_path,
                                  _interaction_scan_schema(schema))
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
        raise _first_invalid_value(csv_path, _scan_interactions_csv(csv_path, file_schema, row_index_name=_ROW),
                                   checks, code, invalid, file_schema)
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
        pl.when(date.is_null()).then(None)
        .when((date == date.floor()) & (date >= 0) & (date <= 2**31 - 1)).then(date)
        .otherwise(-1).cast(pl.Int32).alias("date"),
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
        or any(lowest.get(name, 0) < 0 for name in ("user_id", "video_id", "play_duration", "video_duration",
                                                    "date", "watch_ratio"))
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
    known_ids = {column: known.select(pl.col(column).unique()).collect(engine="streaming")[column]
                 for column in ("user_id", "video_id")}
    unseen = {column: ~pl.col(column).is_in(ids.implode()) for column, ids in known_ids.items()}
    code = pl.when(unseen["user_id"]).then(pl.lit(1, pl.UInt8)).when(unseen["video_id"]).then(pl.lit(2, pl.UInt8))
    code = code.otherwise(pl.lit(0, pl.UInt8))
    counts = lazy.select((code == 1).sum().alias("user_id_unseen"), (code == 2).sum().alias("video_id_unseen"))
    counts = {reason: int(count) for reason, count in counts.collect(engine="streaming").row(0, named=True).items()
              if count}
    if not counts:
        return lazy, {}
    if on_invalid == "drop":
        return lazy.filter(code == 0), counts
    # In "error" mode ``lazy`` holds every data row of the file in order, so the row index is the file's row.
    first = (lazy.with_row_index(_ROW).with_columns(code.alias(_REASON)).filter(pl.col(_REASON) != 0)
             .select(_ROW, _REASON, "user_id", "video_id").sort(_ROW).head(1).collect().row(0, named=True))
    column = "user_id" if first[_REASON] == 1 else "video_id"
    summary = ", ".join(f"{count:,} {reason}" for reason, count in counts.items())
    raise KuaiRecDataError(
        f"{column.removesuffix('_id')} {first[column]} never appears in {known_file}; every user and video of "
        f"{Path(path).name} must also be in {known_file} (train on big, evaluate on small). Rows with unseen ids: "
        f"{summary}. Check that both files come from the same copy of KuaiRec, or read with on_invalid='drop'.",
        file=path, column=column, row=first[_ROW] + 1, value=first[column],
    )


def _first_invalid_value(
    path: Path,
    scan_with_row: pl.LazyFrame,
    checks: list[_ValueCheck],
    code: pl.Expr,
    invalid: dict[str, int],
    file_schema: FileSchema,
) -> KuaiRecDataError:
    first = (
        scan_with_row.with_columns(code.alias(_REASON))
        .filter(pl.col(_REASON) != 0)
        .head(1)
        .collect(engine="streaming")
        .row(0, named=True)
    )
    check = checks[first[_REASON] - 1]
    row = first[_ROW] + 1
    value = first[check.column]
    summary = ", ".join(f"{count:,} {reason}" for reason, count in invalid.items())
    problem = f"{check.column} {check.problem}"
    if value is None:
        line = _raw_line(path, row)
        expected = len(file_schema.columns)
        if line is not None and not line.strip():
            problem = "the line is blank (a data row was lost, or an empty line slipped in)"
        elif line is not None and _count_fields(line) != expected:
            problem = f"the line has {_fields(_count_fields(line))}, expected {expected} (truncated or damaged line)"
            value = line[:200]
    return KuaiRecDataError(
        f"{problem}. Invalid rows in this file: {summary}. Fix the file, or read it with on_invalid='drop' to "
        "leave such rows out.",
        file=path, column=check.column, row=row, value=value,
    )


def _raw_lines(source: Path | bytes) -> pl.LazyFrame:
    """Each data line as one string (no quoting, no splitting), with its 0-based data row index."""
    return pl.scan_csv(
        source, has_header=False, skip_lines=1, schema={"line": pl.String()}, separator="\x1f", quote_char=None,
        encoding="utf8-lossy", truncate_ragged_lines=True, row_index_name=_ROW, empty_string_is_null=False,
    )


_QUOTED = r'"(?:[^"]|"")*"'


def _field_count(line: pl.Expr) -> pl.Expr:
    # Quoted sections may hold commas: remove them before counting separators.
    return line.str.strip_chars_end("\r").str.replace_all(_QUOTED, "").str.count_matches(",") + 1


def _raw_line(source: Path, row: int) -> str | None:
    found = _raw_lines(source).filter(pl.col(_ROW) == row - 1).select("line").collect(engine="streaming")
    return found.item() if found.height else None


def _count_fields(line: str) -> int:
    return len(next(csv.reader([line.rstrip("\r\n")]), [])) or 1


def _fields(count: int) -> str:
    return f"{count} field" if count == 1 else f"{count} fields"


# --------------------------------------------------------------------------------------------------------------
# Shared checks: empty file, header, last line, parse failures
# --------------------------------------------------------------------------------------------------------------


def _check_header(path: Path, file_schema: FileSchema) -> None:
    """Raise unless ``path`` exists, is not empty, and starts with exactly ``file_schema``'s header."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise KuaiRecDataError("file not found", file=path) from None
    if size == 0:
        raise KuaiRecDataError(
            f"the file is empty (0 bytes); expected the header {','.join(file_schema.column_names)} and data rows",
            file=path,
        )
    with open(path, "rb") as handle:
        header_bytes = handle.readline(_TAIL_BYTES)
        has_data = bool(handle.read(_TAIL_BYTES).strip())
    try:
        header_text = header_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise KuaiRecDataError(f"the header line is not UTF-8 text ({exc.reason} at byte {exc.start})",
                               file=path, row=0) from None
    _check_header_names(_split_header(header_text), file_schema, path)
    if not has_data:
        raise KuaiRecDataError("has a header but no data rows", file=path)


def _split_header(text: str) -> list[str]:
    text = text.removeprefix("\ufeff").rstrip("\r\n")
    return next(csv.reader([text]), [])


def _check_header_names(found: list[str], file_schema: FileSchema, path: Path) -> None:
    expected = file_schema.column_names
    if found == expected:
        return
    expected_text = ",".join(expected)
    missing = [name for name in expected if name not in found]
    extra = [name for name in found if name not in expected]
    duplicated = sorted({name for name in found if found.count(name) > 1})
    if missing and extra:
        raise KuaiRecDataError(
            f"column {missing[0]!r} is missing and {extra[0]!r} is not a {file_schema.file_name} column "
            f"(renamed?); expected the header {expected_text}",
            file=path, column=missing[0],
        )
    if missing:
        raise KuaiRecDataError(f"column {missing[0]!r} is missing; expected the header {expected_text}",
                               file=path, column=missing[0])
    if extra:
        raise KuaiRecDataError(f"unexpected column {extra[0]!r}; expected the header {expected_text}",
                               file=path, column=extra[0])
    if duplicated:
        raise KuaiRecDataError(f"column {duplicated[0]!r} appears more than once", file=path, column=duplicated[0])
    position = next(i for i, (a, b) in enumerate(zip(found, expected, strict=True)) if a != b)
    raise KuaiRecDataError(
        f"columns are out of order: position {position + 1} holds {found[position]!r}, expected "
        f"{expected[position]!r}; expected the header {expected_text}",
        file=path, column=found[position],
    )


def _check_last_line(path: Path, file_schema: FileSchema) -> None:
    """A file cut short (an interrupted copy or download) ends in a line with too few fields: find it cheaply."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        handle.seek(max(0, size - _TAIL_BYTES))
        tail = handle.read()
    lines = tail.rstrip(b"\r\n").split(b"\n")
    last = lines[-1].rstrip(b"\r")
    if len(lines) < 2 and size > _TAIL_BYTES:  # one line longer than the tail: not a CSV we can judge here
        return
    text = last.decode("utf-8", errors="replace")
    fields = _count_fields(text)
    if fields < len(file_schema.columns):
        row = _count_lines(path, end=size - len(tail) + len(tail.rstrip(b"\r\n")))
        raise KuaiRecDataError(
            f"the last line has {_fields(fields)}, expected {len(file_schema.columns)}: the file looks truncated "
            "(an interrupted copy or download?)",
            file=path, row=row, value=text[-80:],
        )


def _count_lines(path: Path, end: int) -> int:
    """Newlines in the first ``end`` bytes: the 1-based data row of a line that starts after them."""
    count = 0
    with open(path, "rb") as handle:
        remaining = end
        while remaining > 0:
            chunk = handle.read(min(remaining, 1 << 24))
            if not chunk:
                break
            count += chunk.count(b"\n")
            remaining -= len(chunk)
    return count


def _collect_or_explain(query: pl.LazyFrame, path: Path, scan_schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    try:
        return query.collect(engine="streaming")
    except pl.exceptions.PolarsError as exc:
        raise _explain_parse_failure(path, scan_schema, exc) from exc


_PARSE_FAILURE = re.compile(r"could not parse `(?P<value>.*?)` as dtype `(?P<dtype>[^`]*)` at column '(?P<column>[^']*)'",
                            re.DOTALL)


def _explain_parse_failure(path: Path, scan_schema: Mapping[str, pl.DataType],
                           exc: pl.exceptions.PolarsError) -> KuaiRecDataError:
    """Turn polars' parse error (which names no row) into one that names the row, by re-reading as text."""
    message = str(exc)
    first_line = message.strip().splitlines()[0] if message.strip() else type(exc).__name__
    text_scan = pl.scan_csv(
        path, schema={name: pl.String() for name in scan_schema}, encoding="utf8-lossy",
        truncate_ragged_lines=True, row_index_name=_ROW,
    )
    if "utf-8" in message.lower() or "utf8" in message.lower():
        columns = list(scan_schema)
        bad = pl.any_horizontal([pl.col(c).str.contains("\ufffd", literal=True) for c in columns])
        found = text_scan.filter(bad).head(1).collect(engine="streaming")
        if found.height:
            record = found.row(0, named=True)
            column = next(c for c in columns if record[c] is not None and "\ufffd" in record[c])
            return KuaiRecDataError("holds bytes that are not UTF-8 text (the file must be UTF-8)",
                                    file=path, column=column, row=record[_ROW] + 1, value=record[column])
        return KuaiRecDataError("holds bytes that are not UTF-8 text (the file must be UTF-8)", file=path)
    if "more fields" in message:
        expected = len(scan_schema)
        found = (
            _raw_lines(path).with_columns(_field_count(pl.col("line")).alias("fields"))
            .filter(pl.col("fields") > expected).head(1).collect(engine="streaming")
        )
        if found.height:
            record = found.row(0, named=True)
            return KuaiRecDataError(f"the line has {_fields(record['fields'])}, expected {expected}",
                                    file=path, row=record[_ROW] + 1, value=record["line"][:200])
        return KuaiRecDataError(f"a line has more than {expected} fields", file=path)
    match = _PARSE_FAILURE.search(message)
    if match and match["column"] in scan_schema:
        column = match["column"]
        dtype = scan_schema[column]
        text = pl.col(column)
        found = (
            text_scan.select(_ROW, column)
            .filter(text.is_not_null() & text.cast(dtype, strict=False).is_null())
            .head(1).collect(engine="streaming")
        )
        if found.height:
            row_index, value = found.row(0)
            return KuaiRecDataError(f"is not {_describe(dtype)}", file=path, column=column, row=row_index + 1,
                                    value=value)
        return KuaiRecDataError(f"is not {_describe(dtype)}", file=path, column=column, value=match["value"])
    return KuaiRecDataError(f"could not be read as CSV: {first_line}", file=path)


def _describe(dtype: pl.DataType) -> str:
    if dtype.is_integer():
        return f"a whole number ({dtype})"
    if dtype.is_float():
        return "a number"
    return f"a valid {dtype}"


# --------------------------------------------------------------------------------------------------------------
# Small files, read eagerly
# --------------------------------------------------------------------------------------------------------------


def _exact_integer(text: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """Text -> integer, accepting ``12`` and ``12.0`` (pandas writes int columns with blanks as floats) but
    nothing that is not a whole number; null where it is not one."""
    return pl.coalesce(
        text.cast(dtype, strict=False),
        text.str.replace(r"\.0*$", "").cast(dtype, strict=False),
    )


def _typed_column(text: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if dtype.is_integer():
        return _exact_integer(text, dtype)
    if dtype == pl.String():
        return text
    return text.cast(dtype, strict=False)


def _read_small_csv(path: str | os.PathLike[str], file_schema: FileSchema) -> pl.DataFrame:
    """A small file (a few MB) -> a DataFrame typed per ``file_schema``; blanks are null, allowed only in the
    schema's nullable columns."""
    csv_path = Path(path)
    _check_header(csv_path, file_schema)
    raw = csv_path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise KuaiRecDataError(
            f"holds bytes that are not UTF-8 text ({exc.reason} at byte {exc.start}; the file must be UTF-8)",
            file=csv_path, column=_column_at(raw, exc.start, file_schema), row=raw.count(b"\n", 0, exc.start),
            value=raw[max(0, exc.start - 20):exc.end + 20].decode("utf-8", errors="replace"),
        ) from None
    if _CR_STAND_IN in text:
        raise KuaiRecDataError("holds the control character U+001E, which no KuaiRec file has", file=csv_path)
    text = re.sub("\r(?!\n)", _CR_STAND_IN, text.removeprefix("\ufeff"))
    names = file_schema.column_names
    records = csv.reader(io.StringIO(text, newline=""), strict=True)
    next(records)  # the header, already checked
    values: list[list[str]] = []
    try:
        for record in records:
            row = len(values) + 1
            if not record:
                raise KuaiRecDataError("the line is blank (a data row was lost, or an empty line slipped in)",
                                       file=csv_path, row=row)
            if len(record) != len(names):
                raise KuaiRecDataError(
                    f"the line has {_fields(len(record))}, expected {len(names)}"
                    + (" (truncated or damaged line)" if len(record) < len(names) else ""),
                    file=csv_path, row=row, value=",".join(record)[:200].replace(_CR_STAND_IN, "\r"),
                )
            values.append(record)
    except csv.Error as exc:
        raise KuaiRecDataError(f"is not valid CSV ({exc})", file=csv_path, row=len(values) + 1) from None
    if not values:
        raise KuaiRecDataError("has a header but no data rows", file=csv_path)
    text_frame = pl.DataFrame(
        {name: [record[i] for record in values] for i, name in enumerate(names)},
        schema={name: pl.String() for name in names},
    ).with_columns(
        pl.when(pl.col(name) == "").then(None).otherwise(pl.col(name).str.replace_all(_CR_STAND_IN, "\r", literal=True))
        .alias(name)
        for name in names
    )
    typed = text_frame.select(_typed_column(pl.col(name), dtype).alias(name)
                              for name, dtype in file_schema.columns.items())
    for name, dtype in file_schema.columns.items():
        unparsed = text_frame[name].is_not_null() & typed[name].is_null()
        if unparsed.any():
            index = int(unparsed.arg_true()[0])
            raise KuaiRecDataError(f"is not {_describe(dtype)}", file=csv_path, column=name, row=index + 1,
                                   value=text_frame[name][index])
        if name not in file_schema.nullable and typed[name].null_count():
            index = int(typed[name].is_null().arg_true()[0])
            raise KuaiRecDataError("is blank, which this column never is", file=csv_path, column=name, row=index + 1)
    return typed


def _column_at(raw: bytes, offset: int, file_schema: FileSchema) -> str | None:
    """The column whose field holds byte ``offset`` of ``raw`` (a CSV file), judged from that one line."""
    start = raw.rfind(b"\n", 0, offset) + 1
    before = raw[start:offset].decode("utf-8", errors="replace")
    fields = next(csv.reader([before + "x"]), [])  # "x" stands for the bad byte: the last field is its field
    names = file_schema.column_names
    return names[len(fields) - 1] if 0 < len(fields) <= len(names) else None


def _require_unique(frame: pl.DataFrame, column: str, path: str | os.PathLike[str]) -> None:
    repeated = ~frame[column].is_first_distinct()
    if repeated.any():
        index = int(repeated.arg_true()[0])
        raise KuaiRecDataError("appears twice (one row per id expected)", file=path, column=column, row=index + 1,
                               value=frame[column][index])


def _require_non_negative(frame: pl.DataFrame, column: str, path: str | os.PathLike[str]) -> None:
    negative = frame[column] < 0
    if negative.any():
        index = int(negative.arg_true()[0])
        raise KuaiRecDataError("is a negative id", file=path, column=column, row=index + 1, value=frame[column][index])


_INT_LIST = re.compile(r"^\s*\[\s*(?:\d+\s*(?:,\s*\d+\s*)*)?\]\s*$").pattern


def _parse_int_list(frame: pl.DataFrame, column: str, path: str | os.PathLike[str]) -> pl.Series:
    """A list literal such as ``[8]`` or ``[27, 9]`` -> list[int64], as data (a regex, never eval)."""
    text = frame[column]
    malformed = text.is_null() | ~text.str.contains(_INT_LIST)
    if malformed.any():
        index = int(malformed.arg_true()[0])
        raise KuaiRecDataError("is not a list of whole numbers such as [27, 9]", file=path, column=column,
                               row=index + 1, value=text[index])
    # 18 digits always fit an int64; longer numbers are out of every id range anyway.
    too_long = text.str.contains(r"\d{19}")
    if too_long.any():
        index = int(too_long.arg_true()[0])
        raise KuaiRecDataError("holds a number out of range", file=path, column=column, row=index + 1,
                               value=text[index])
    return text.str.extract_all(r"\d+").cast(pl.List(pl.Int64()))


def _read_keyed_csv(path: str | os.PathLike[str], file_schema: FileSchema, key: str) -> pl.DataFrame:
    """A per-entity side file: typed, with ``key`` (user_id / video_id) non-negative and unique."""
    frame = _read_small_csv(path, file_schema)
    _require_non_negative(frame, key, path)
    _require_unique(frame, key, path)
    return frame


def read_user_features(path: str | os.PathLike[str]) -> pl.DataFrame:
    """user_features.csv typed per ``schema.USER_FEATURES``; blanks allowed only in the nullable one-hot
    columns, kept as null."""
    frame = _read_keyed_csv(path, USER_FEATURES, "user_id")
    return frame


def read_item_categories(path: str | os.PathLike[str]) -> pl.DataFrame:
    """item_categories.csv -> ``video_id`` int32, ``tags`` list[int8]: 1 to 4 tag ids, each 0..30."""
    frame = _read_keyed_csv(path, ITEM_CATEGORIES, "video_id")
    tags = _parse_int_list(frame, "feat", path)
    counts = tags.list.len()
    bad_count = (counts < 1) | (counts > MAX_TAGS_PER_VIDEO)
    if bad_count.any():
        index = int(bad_count.arg_true()[0])
        raise KuaiRecDataError(f"holds {counts[index]} tags; every video has 1 to {MAX_TAGS_PER_VIDEO}", file=path,
                               column="feat", row=index + 1, value=frame["feat"][index])
    out_of_range = tags.list.eval((pl.element() < 0) | (pl.element() >= NUM_TAGS)).list.any()
    if out_of_range.any():
        index = int(out_of_range.arg_true()[0])
        raise KuaiRecDataError(f"holds a tag id outside 0..{NUM_TAGS - 1}", file=path, column="feat", row=index + 1,
                               value=frame["feat"][index])
    return pl.DataFrame({"video_id": frame["video_id"], "tags": tags.cast(pl.List(pl.Int8()))})


def read_captions(path: str | os.PathLike[str]) -> pl.DataFrame:
    """kuairec_caption_category.csv typed per ``schema.CAPTION_CATEGORY``. Bare carriage returns inside captions
    stay in the text (they do not split rows); ``-124`` / ``UNKNOWN`` are kept as given."""
    frame = _read_keyed_csv(path, CAPTION_CATEGORY, "video_id")
    return frame


def read_social_network(path: str | os.PathLike[str]) -> pl.DataFrame:
    """social_network.csv -> ``user_id`` int32, ``friend_list`` list[int32]."""
    frame = _read_keyed_csv(path, SOCIAL_NETWORK, "user_id")
    friends = _parse_int_list(frame, "friend_list", path)
    too_large = friends.list.max() > 2**31 - 1
    if too_large.any():
        index = int(too_large.arg_true()[0])
        raise KuaiRecDataError("holds a user id out of range", file=path, column="friend_list", row=index + 1,
                               value=frame["friend_list"][index])
    return pl.DataFrame({"user_id": frame["user_id"], "friend_list": friends.cast(pl.List(pl.Int32()))})


# --------------------------------------------------------------------------------------------------------------
# item_daily_features, lazily
# --------------------------------------------------------------------------------------------------------------


def _daily_text_columns() -> set[str]:
    # Integer columns that may be blank are read as text and converted exactly: a writer that stores blanks as
    # NaN (pandas) turns such columns into floats ("12.0").
    return {
        name for name, dtype in ITEM_DAILY_FEATURES.columns.items()
        if dtype.is_integer() and name in ITEM_DAILY_FEATURES.nullable
    }


def scan_item_daily_features(path: str | os.PathLike[str]) -> pl.LazyFrame:
    """item_daily_features.csv (58 columns) as a LazyFrame typed per ``schema.ITEM_DAILY_FEATURES``.

    One streaming pass validates it first (header, parse errors, blanks where the schema allows none, integers
    written as non-integral floats), so collecting the result does not fail later on bad data.
    """
    csv_path = Path(path)
    file_schema = ITEM_DAILY_FEATURES
    _check_header(csv_path, file_schema)
    _check_last_line(csv_path, file_schema)
    text_columns = _daily_text_columns()
    scan_schema = {name: (pl.String() if name in text_columns else dtype)
                   for name, dtype in file_schema.columns.items()}

    def typed(lazy: pl.LazyFrame) -> pl.LazyFrame:
        return lazy.with_columns(_exact_integer(pl.col(name), file_schema.columns[name]).alias(name)
                                 for name in text_columns)

    checks = [
        _ValueCheck(f"{name}_blank", name, pl.col(name).is_null(), "is blank, which this column never is")
        for name in file_schema.columns if name not in file_schema.nullable
    ] + [
        _ValueCheck(f"{name}_not_integral", name, pl.col(f"{name}__text").is_not_null() & pl.col(name).is_null(),
                    f"is not {_describe(file_schema.columns[name])}")
        for name in sorted(text_columns)
    ]
    code = _reason_code(checks)

    def scan(**options: object) -> pl.LazyFrame:
        lazy = pl.scan_csv(csv_path, schema=scan_schema, **options)  # type: ignore[arg-type]
        return typed(lazy.with_columns(pl.col(name).alias(f"{name}__text") for name in text_columns))

    counts = _collect_or_explain(
        scan().select(pl.len().alias("rows"), (code != 0).sum().alias("invalid")), csv_path, scan_schema
    ).row(0, named=True)
    if counts["rows"] == 0:
        raise KuaiRecDataError("has a header but no data rows", file=csv_path)
    if counts["invalid"]:
        first = (
            scan(row_index_name=_ROW).with_columns(code.alias(_REASON)).filter(pl.col(_REASON) != 0).head(1)
            .collect(engine="streaming").row(0, named=True)
        )
        check = checks[first[_REASON] - 1]
        raise KuaiRecDataError(f"{check.problem} ({counts['invalid']:,} invalid rows in this file)", file=csv_path,
                               column=check.column, row=first[_ROW] + 1, value=first.get(f"{check.column}__text"))
    return typed(pl.scan_csv(csv_path, schema=scan_schema))


# --------------------------------------------------------------------------------------------------------------
# raw_videos
# --------------------------------------------------------------------------------------------------------------

RAW_VIDEOS_SCHEMA: dict[str, pl.DataType] = {
    "video_id": pl.Int32(),
    "tags": pl.List(pl.Int8()),
    "author_id": pl.Int32(),
    "video_duration_ms": pl.Float64(),
    "video_type": pl.String(),
    "upload_dt": pl.String(),
    "first_level_category_id": pl.Int32(),
    "caption": pl.String(),
}


def build_raw_videos(
    item_categories: pl.DataFrame,
    daily: pl.LazyFrame | None,
    captions: pl.DataFrame | None,
) -> pl.DataFrame:
    """One row per video of ``item_categories`` (the video universe), with the columns of ``RAW_VIDEOS_SCHEMA``.

    From ``daily`` (item_daily_features): the earliest non-null author_id, video_type and upload_dt, and the
    median of the non-null daily durations. From ``captions``: first_level_category_id (``-124`` -> null) and
    the caption. A missing optional source leaves its columns null.
    """
    videos = item_categories.select(pl.col("video_id").cast(pl.Int32), pl.col("tags").cast(pl.List(pl.Int8())))
    if daily is not None:
        duration = pl.col("video_duration")

        def earliest(name: str) -> pl.Expr:
            return pl.col(name).sort_by("date").drop_nulls().first()

        per_video = (
            daily.group_by("video_id")
            .agg(
                earliest("author_id"),
                duration.filter(duration.is_not_null() & duration.is_finite()).median().alias("video_duration_ms"),
                earliest("video_type"),
                earliest("upload_dt"),
            )
            .with_columns(pl.col("video_id").cast(pl.Int32))
            .collect(engine="streaming")
        )
        videos = videos.join(per_video, on="video_id", how="left", maintain_order="left")
    if captions is not None:
        category = pl.col("first_level_category_id")
        per_caption = captions.select(
            pl.col("video_id").cast(pl.Int32),
            pl.when(category == MISSING_CATEGORY_ID).then(None).otherwise(category).alias("first_level_category_id"),
            pl.col("caption"),
        )
        videos = videos.join(per_caption, on="video_id", how="left", maintain_order="left")
    return videos.select(
        (pl.col(name) if name in videos.columns else pl.lit(None)).cast(dtype).alias(name)
        for name, dtype in RAW_VIDEOS_SCHEMA.items()
    )
