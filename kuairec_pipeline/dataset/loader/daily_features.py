"""item_daily_features.csv (58 columns), scanned lazily after one validating streaming pass."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from kuairec_pipeline.dataset.loader.checks import (
    _REASON,
    _ROW,
    _check_header,
    _check_last_line,
    _describe,
    _reason_code,
    _ValueCheck,
)
from kuairec_pipeline.dataset.loader.forensics import _collect_or_explain
from kuairec_pipeline.dataset.loader.small_files import _exact_integer
from kuairec_pipeline.dataset.schema import ITEM_DAILY_FEATURES
from kuairec_pipeline.errors import KuaiRecDataError


def _daily_text_columns() -> set[str]:
    # Integer columns that may be blank are read as text and converted exactly: a writer that stores blanks as
    # NaN (pandas) turns such columns into floats ("12.0").
    return {
        name
        for name, dtype in ITEM_DAILY_FEATURES.columns.items()
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
    scan_schema = {
        name: (pl.String() if name in text_columns else dtype) for name, dtype in file_schema.columns.items()
    }

    def typed(lazy: pl.LazyFrame) -> pl.LazyFrame:
        return lazy.with_columns(
            _exact_integer(pl.col(name), file_schema.columns[name]).alias(name) for name in text_columns
        )

    checks = [
        _ValueCheck(f"{name}_blank", name, pl.col(name).is_null(), "is blank, which this column never is")
        for name in file_schema.columns
        if name not in file_schema.nullable
    ] + [
        _ValueCheck(
            f"{name}_not_integral",
            name,
            pl.col(f"{name}__text").is_not_null() & pl.col(name).is_null(),
            f"is not {_describe(file_schema.columns[name])}",
        )
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
            scan(row_index_name=_ROW)
            .with_columns(code.alias(_REASON))
            .filter(pl.col(_REASON) != 0)
            .head(1)
            .collect(engine="streaming")
            .row(0, named=True)
        )
        check = checks[first[_REASON] - 1]
        raise KuaiRecDataError(
            f"{check.problem} ({counts['invalid']:,} invalid rows in this file)",
            file=csv_path,
            column=check.column,
            row=first[_ROW] + 1,
            value=first.get(f"{check.column}__text"),
        )
    return typed(pl.scan_csv(csv_path, schema=scan_schema))
