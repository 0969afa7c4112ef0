"""Checks every reader shares: the file exists and is not empty, the header is exactly the schema's, the last
line is whole (a truncated copy ends in a short line), and per-value checks that reduce to one reason per row."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from kuairec_pipeline.dataset.schema import FileSchema
from kuairec_pipeline.errors import KuaiRecDataError

_ROW = "__kuairec_row__"  # row index column added while validating; never in a result
_REASON = "__kuairec_reason__"
_TAIL_BYTES = 1 << 16


@dataclass(frozen=True)
class _ValueCheck:
    reason: str  # short key, e.g. "watch_ratio_negative"
    column: str
    invalid: pl.Expr
    problem: str  # what is wrong, for the error message


def _reason_code(checks: list[_ValueCheck]) -> pl.Expr:
    """0 for a valid row, else 1 + the index of the first check it fails (so each row has one reason)."""
    expr = pl.when(checks[0].invalid).then(pl.lit(1, pl.UInt8))
    for index, check in enumerate(checks[1:], start=2):
        expr = expr.when(check.invalid).then(pl.lit(index, pl.UInt8))
    return expr.otherwise(pl.lit(0, pl.UInt8))


def _count_fields(line: str) -> int:
    return len(next(csv.reader([line.rstrip("\r\n")]), [])) or 1


def _fields(count: int) -> str:
    return f"{count} field" if count == 1 else f"{count} fields"


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
        raise KuaiRecDataError(
            f"the header line is not UTF-8 text ({exc.reason} at byte {exc.start})", file=path, row=0
        ) from None
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
            file=path,
            column=missing[0],
        )
    if missing:
        raise KuaiRecDataError(
            f"column {missing[0]!r} is missing; expected the header {expected_text}", file=path, column=missing[0]
        )
    if extra:
        raise KuaiRecDataError(
            f"unexpected column {extra[0]!r}; expected the header {expected_text}", file=path, column=extra[0]
        )
    if duplicated:
        raise KuaiRecDataError(f"column {duplicated[0]!r} appears more than once", file=path, column=duplicated[0])
    position = next(i for i, (a, b) in enumerate(zip(found, expected, strict=True)) if a != b)
    raise KuaiRecDataError(
        f"columns are out of order: position {position + 1} holds {found[position]!r}, expected "
        f"{expected[position]!r}; expected the header {expected_text}",
        file=path,
        column=found[position],
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
            file=path,
            row=row,
            value=text[-80:],
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


def _describe(dtype: pl.DataType) -> str:
    if dtype.is_integer():
        return f"a whole number ({dtype})"
    if dtype.is_float():
        return "a number"
    return f"a valid {dtype}"
