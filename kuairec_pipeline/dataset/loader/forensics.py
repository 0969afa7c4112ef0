"""Parse-error forensics: polars' own parse errors name no row, so when a typed scan fails (or a value check
flags rows) the file is re-read as text to name the first offending row, column and value."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import polars as pl

from kuairec_pipeline.dataset.loader.checks import _REASON, _ROW, _count_fields, _describe, _fields, _ValueCheck
from kuairec_pipeline.dataset.schema import FileSchema
from kuairec_pipeline.errors import KuaiRecDataError


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
        file=path,
        column=check.column,
        row=row,
        value=value,
    )


def _raw_lines(source: Path | bytes) -> pl.LazyFrame:
    """Each data line as one string (no quoting, no splitting), with its 0-based data row index."""
    return pl.scan_csv(
        source,
        has_header=False,
        skip_lines=1,
        schema={"line": pl.String()},
        separator="\x1f",
        quote_char=None,
        encoding="utf8-lossy",
        truncate_ragged_lines=True,
        row_index_name=_ROW,
        empty_string_is_null=False,
    )


_QUOTED = r'"(?:[^"]|"")*"'


def _field_count(line: pl.Expr) -> pl.Expr:
    # Quoted sections may hold commas: remove them before counting separators.
    return line.str.strip_chars_end("\r").str.replace_all(_QUOTED, "").str.count_matches(",") + 1


def _raw_line(source: Path, row: int) -> str | None:
    found = _raw_lines(source).filter(pl.col(_ROW) == row - 1).select("line").collect(engine="streaming")
    return found.item() if found.height else None


def _collect_or_explain(query: pl.LazyFrame, path: Path, scan_schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    try:
        return query.collect(engine="streaming")
    except pl.exceptions.PolarsError as exc:
        raise _explain_parse_failure(path, scan_schema, exc) from exc


_PARSE_FAILURE = re.compile(
    r"could not parse `(?P<value>.*?)` as dtype `(?P<dtype>[^`]*)` at column '(?P<column>[^']*)'", re.DOTALL
)


def _explain_parse_failure(
    path: Path, scan_schema: Mapping[str, pl.DataType], exc: pl.exceptions.PolarsError
) -> KuaiRecDataError:
    """Turn polars' parse error (which names no row) into one that names the row, by re-reading as text."""
    message = str(exc)
    first_line = message.strip().splitlines()[0] if message.strip() else type(exc).__name__
    text_scan = pl.scan_csv(
        path,
        schema={name: pl.String() for name in scan_schema},
        encoding="utf8-lossy",
        truncate_ragged_lines=True,
        row_index_name=_ROW,
    )
    if "utf-8" in message.lower() or "utf8" in message.lower():
        columns = list(scan_schema)
        bad = pl.any_horizontal([pl.col(c).str.contains("\ufffd", literal=True) for c in columns])
        found = text_scan.filter(bad).head(1).collect(engine="streaming")
        if found.height:
            record = found.row(0, named=True)
            column = next(c for c in columns if record[c] is not None and "\ufffd" in record[c])
            return KuaiRecDataError(
                "holds bytes that are not UTF-8 text (the file must be UTF-8)",
                file=path,
                column=column,
                row=record[_ROW] + 1,
                value=record[column],
            )
        return KuaiRecDataError("holds bytes that are not UTF-8 text (the file must be UTF-8)", file=path)
    if "more fields" in message:
        expected = len(scan_schema)
        found = (
            _raw_lines(path)
            .with_columns(_field_count(pl.col("line")).alias("fields"))
            .filter(pl.col("fields") > expected)
            .head(1)
            .collect(engine="streaming")
        )
        if found.height:
            record = found.row(0, named=True)
            return KuaiRecDataError(
                f"the line has {_fields(record['fields'])}, expected {expected}",
                file=path,
                row=record[_ROW] + 1,
                value=record["line"][:200],
            )
        return KuaiRecDataError(f"a line has more than {expected} fields", file=path)
    match = _PARSE_FAILURE.search(message)
    if match and match["column"] in scan_schema:
        column = match["column"]
        dtype = scan_schema[column]
        text = pl.col(column)
        found = (
            text_scan.select(_ROW, column)
            .filter(text.is_not_null() & text.cast(dtype, strict=False).is_null())
            .head(1)
            .collect(engine="streaming")
        )
        if found.height:
            row_index, value = found.row(0)
            return KuaiRecDataError(
                f"is not {_describe(dtype)}", file=path, column=column, row=row_index + 1, value=value
            )
        return KuaiRecDataError(f"is not {_describe(dtype)}", file=path, column=column, value=match["value"])
    return KuaiRecDataError(f"could not be read as CSV: {first_line}", file=path)
