"""New days of interaction logs, appended after the initial archive without re-reading it (issue 10, point 4).

How new logs arrive: a *drop folder* (``KUAIREC_NEW_LOGS``, default ``$KUAIREC_HOME/new_logs``) holds one CSV per
day, named ``big_matrix_YYYY-MM-DD.csv``, in big_matrix.csv's exact format (same header, same eight columns, same
types: docs/KUAIREC.md). Every row of a day's file has that day in its ``date`` column (YYYYMMDD), the column
KuaiRec itself dates its rows by; a row of another day is an error naming the file, column and row (a misfiled
row would otherwise be counted under the wrong day and silently duplicated when its own day arrives).

Each day is converted on its own with the same streaming loader and the same checks as big_matrix.csv
(:func:`~kuairec_pipeline.dataset.loader.interactions.convert_interactions`: the same file/column/row errors, the
same ``on_invalid``). :func:`append_days` joins the initial archive's rows and the days' rows into the one table of
interactions the prepared tables are built from; a day that is in both is refused, so no row counts twice.

``LOG_READS`` counts, per file, how often this process converted a daily log: the incremental-ingestion test reads
it to show that appending a day never reads an earlier day's log again.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections import Counter
from pathlib import Path

import polars as pl

from kuairec_pipeline.dataset.loader.checks import _ROW
from kuairec_pipeline.dataset.loader.interactions import (
    OnInvalid,
    ValidationReport,
    _interaction_scan_schema,
    convert_interactions,
)
from kuairec_pipeline.dataset.schema import BIG_MATRIX
from kuairec_pipeline.errors import KuaiRecDataError, KuaiRecSourceError

DAILY_LOG_PREFIX = "big_matrix_"
DAILY_LOG_SUFFIX = ".csv"
_DAILY_LOG_NAME = re.compile(rf"^{DAILY_LOG_PREFIX}(\d{{4}}-\d{{2}}-\d{{2}}){re.escape(DAILY_LOG_SUFFIX)}$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")

# path of a daily log -> how many times this process converted it (read by the incremental-ingestion test)
LOG_READS: Counter[str] = Counter()


def parse_day(day: str) -> dt.date:
    """The calendar day of a partition key or file-name day ``YYYY-MM-DD``.

    Raises
    ------
    ValueError
        When ``day`` is not exactly ``YYYY-MM-DD`` or not a real date (``2020-02-30``).
    """
    if not _DAY.fullmatch(day):
        raise ValueError(f"day {day!r} is not YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(day)
    except ValueError as exc:
        raise ValueError(f"day {day!r} is not a calendar date: {exc}") from None


def day_as_date_value(day: str) -> int:
    """``"2020-09-06"`` -> ``20200906``: the YYYYMMDD integer of KuaiRec's ``date`` column."""
    parsed = parse_day(day)
    return parsed.year * 10_000 + parsed.month * 100 + parsed.day


def daily_log_name(day: str) -> str:
    """The drop-folder file name of ``day``: ``big_matrix_YYYY-MM-DD.csv``."""
    parse_day(day)
    return f"{DAILY_LOG_PREFIX}{day}{DAILY_LOG_SUFFIX}"


def find_daily_logs(folder: str | os.PathLike[str]) -> dict[str, Path]:
    """The daily logs in ``folder``: day (``YYYY-MM-DD``) -> path, sorted by day; {} when the folder is absent.

    Only names of the form ``big_matrix_YYYY-MM-DD.csv`` with a real date count; dot-files (temporary copies) and
    other files are ignored, so a file still being copied under a temporary name is never picked up.
    """
    root = Path(folder)
    if not root.is_dir():
        return {}
    found = {}
    for entry in root.iterdir():
        match = _DAILY_LOG_NAME.fullmatch(entry.name)
        if match is None or not entry.is_file():
            continue
        try:
            parse_day(match[1])
        except ValueError:
            continue
        found[match[1]] = entry
    return dict(sorted(found.items()))


def require_daily_log(folder: str | os.PathLike[str], day: str) -> Path:
    """The path of ``day``'s log in ``folder``.

    Raises
    ------
    KuaiRecSourceError
        When the file is not there (naming the file expected and the days that are there).
    """
    path = Path(folder) / daily_log_name(day)
    if not path.is_file():
        present = ", ".join(find_daily_logs(folder)) or "none"
        raise KuaiRecSourceError(
            f"no log for day {day}: expected {path} (big_matrix.csv's format, one file per day); days present in "
            f"{folder}: {present}"
        )
    return path


def convert_daily_log(
    csv_path: str | os.PathLike[str],
    parquet_path: str | os.PathLike[str],
    day: str,
    on_invalid: OnInvalid = "error",
    already_temporary: bool = False,
) -> ValidationReport:
    """One day's log (big_matrix.csv's format) -> typed Parquet, with big_matrix's checks plus one: every row's
    ``date`` is ``day``.

    Parameters
    ----------
    csv_path : path
        The day's CSV (``big_matrix_YYYY-MM-DD.csv``).
    parquet_path : path
        Where the Parquet file goes; written atomically unless ``already_temporary`` (the caller renames it).
    day : str
        ``YYYY-MM-DD``; the rows' ``date`` must equal it as YYYYMMDD.
    on_invalid : {"error", "drop"}
        As for :func:`~kuairec_pipeline.dataset.loader.interactions.convert_interactions`. A row dated another day
        raises in both modes: the file itself is misfiled, not one value.

    Returns
    -------
    ValidationReport
        Rows read and dropped per reason.

    Raises
    ------
    KuaiRecDataError
        Naming file, column, row and value, for everything big_matrix.csv's loader refuses and for a row of
        another day. Nothing is left at ``parquet_path`` when ``already_temporary`` is False.
    """
    expected = day_as_date_value(day)
    LOG_READS[str(Path(csv_path))] += 1
    report = convert_interactions(
        csv_path, parquet_path, BIG_MATRIX, on_invalid=on_invalid, already_temporary=already_temporary
    )
    written = Path(parquet_path)
    dates = pl.scan_parquet(written, hive_partitioning=False).select(
        pl.col("date").min().alias("lowest"), pl.col("date").max().alias("highest")
    )
    lowest, highest = dates.collect().row(0)
    if lowest != expected or highest != expected:
        if not already_temporary:
            written.unlink(missing_ok=True)
        raise _other_day_error(Path(csv_path), day, expected)
    return report


def _other_day_error(csv_path: Path, day: str, expected: int) -> KuaiRecDataError:
    # The first row of another day, counted in the CSV itself (the Parquet file may have dropped rows before it).
    scan = pl.scan_csv(csv_path, schema=_interaction_scan_schema(BIG_MATRIX), row_index_name=_ROW)
    other = scan.filter(pl.col("date") != expected)
    first = other.select(_ROW, "date").head(1).collect().row(0, named=True)
    count = other.select(pl.len()).collect().item()
    return KuaiRecDataError(
        f"this is the log of day {day} ({expected}), but the row is dated {int(first['date'])} ({count:,} rows of "
        f"other days in this file). Each daily log holds exactly its own day: move the rows to their day's file.",
        file=csv_path,
        column="date",
        row=first[_ROW] + 1,
        value=int(first["date"]),
    )


def append_days(
    archive: pl.LazyFrame, days: pl.LazyFrame | None, archive_name: str = "big_matrix.csv"
) -> tuple[pl.LazyFrame, list[int]]:
    """The archive's interactions followed by the appended days' (the same eight typed columns), and the appended
    days' ``date`` values (YYYYMMDD, ascending; empty when ``days`` is None: the archive alone).

    Costs one streaming pass over both ``date`` columns (a few MB of Parquet for the full archive), to check that
    the days are new.

    Raises
    ------
    KuaiRecDataError
        When a day of ``days`` is also in the archive: its rows would count twice (column ``date``, the first such
        day as value).
    """
    if days is None:
        return archive, []
    appended = set(days.select(pl.col("date").unique()).collect(engine="streaming")["date"].to_list())
    archived = archive.select(pl.col("date").unique()).filter(pl.col("date").is_in(sorted(appended)))
    overlap = sorted(archived.collect(engine="streaming")["date"].to_list())
    if overlap:
        raise KuaiRecDataError(
            f"{len(overlap)} appended day(s) are already in {archive_name}: their rows would count twice. Daily logs "
            "are for days after the archive; remove the day's partition or use an archive without it.",
            file=archive_name,
            column="date",
            value=overlap[0],
        )
    combined = pl.concat([archive, days.select(archive.collect_schema().names())], how="vertical")
    return combined, sorted(appended)
