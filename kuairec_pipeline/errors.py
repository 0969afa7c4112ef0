"""Errors a user can act on: each names the file and, where known, the column and the row."""

from __future__ import annotations

from pathlib import Path


class KuaiRecDataError(ValueError):
    """Bad input data. ``row`` is the 1-based data row (the header is row 0), as a spreadsheet user counts."""

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        column: str | None = None,
        row: int | None = None,
        value: object = None,
    ) -> None:
        self.file = str(file) if file is not None else None
        self.column = column
        self.row = row
        self.value = value
        self.detail = message
        where = []
        if self.file is not None:
            where.append(f"file {self.file}")
        if column is not None:
            where.append(f"column {column!r}")
        if row is not None:
            where.append(f"row {row}")
        if value is not None:
            where.append(f"value {value!r}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class KuaiRecSourceError(RuntimeError):
    """The data source cannot be found, fetched or unpacked (missing file, offline, bad checksum, unsafe zip)."""
