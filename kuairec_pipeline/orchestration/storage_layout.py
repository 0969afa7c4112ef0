"""Where the IO managers put partitioned tables, for readers outside Dagster's input loading.

A partitioned asset is a hive-style folder, one file per partition: ``<asset key>/day=<key>/part-0.parquet``.
"""

from __future__ import annotations

from pathlib import Path

# The one partitioned table (interaction_days) is partitioned by log day; hive-style readers see a ``day`` column.
PARTITION_COLUMN = "day"
PARTITION_FILE = "part-0"  # each partition is one file; the IO manager adds the extension
ARCHIVE_TABLE = "raw_interactions.parquet"
DAYS_TABLE = "interaction_days"


def stored_interaction_files(assets_dir: Path) -> list[Path]:
    """``raw_interactions.parquet`` followed by every stored day of ``interaction_days``, oldest first: the
    interactions the prepared tables read (the run-config check and the HTML report read them this way). Empty
    when the archive is not stored. Local asset folders only."""
    archive = assets_dir / ARCHIVE_TABLE
    if not archive.is_file():
        return []
    return [archive, *sorted((assets_dir / DAYS_TABLE).glob(f"{PARTITION_COLUMN}=*/{PARTITION_FILE}.parquet"))]
