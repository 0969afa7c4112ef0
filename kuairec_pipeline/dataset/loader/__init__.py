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

``on_invalid`` (interaction matrices only, ``"error"`` or ``"drop"``) is described in ``interactions``.

Modules: ``discovery`` (finding the files), ``checks`` (header, last line, per-value checks every reader shares),
``forensics`` (naming the row of a parse error), ``interactions`` (big_matrix / small_matrix streaming and
validation), ``daily_logs`` (new days of big_matrix logs, appended after the archive), ``small_files`` (the small
CSV reader and its ``read_*`` functions), ``daily_features``
(item_daily_features), ``raw_videos`` (the raw_videos transform). Import from this package: the names below are
its public API.
"""

from kuairec_pipeline.dataset.loader.daily_features import scan_item_daily_features
from kuairec_pipeline.dataset.loader.daily_logs import (
    append_days,
    convert_daily_log,
    daily_log_name,
    find_daily_logs,
    require_daily_log,
)
from kuairec_pipeline.dataset.loader.discovery import OFFICIAL_FILE_NAMES, KuaiRecFiles, find_kuairec_files
from kuairec_pipeline.dataset.loader.interactions import (
    OnInvalid,
    ParquetSinkConfig,
    ValidationReport,
    convert_interactions,
    require_known_ids,
    scan_interactions,
)
from kuairec_pipeline.dataset.loader.raw_videos import RAW_VIDEOS_SCHEMA, build_raw_videos
from kuairec_pipeline.dataset.loader.small_files import (
    read_captions,
    read_item_categories,
    read_social_network,
    read_user_features,
)

__all__ = [
    "OFFICIAL_FILE_NAMES",
    "RAW_VIDEOS_SCHEMA",
    "KuaiRecFiles",
    "OnInvalid",
    "ParquetSinkConfig",
    "ValidationReport",
    "append_days",
    "build_raw_videos",
    "convert_daily_log",
    "convert_interactions",
    "daily_log_name",
    "find_daily_logs",
    "find_kuairec_files",
    "read_captions",
    "read_item_categories",
    "read_social_network",
    "read_user_features",
    "require_daily_log",
    "require_known_ids",
    "scan_interactions",
    "scan_item_daily_features",
]
