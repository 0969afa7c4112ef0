"""Small hand-written interaction files for the loader's tests: the official header, three valid rows, and
helpers that write them and read them back through ``loader.scan_interactions``."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from kuairec_pipeline.dataset import loader, schema
from kuairec_pipeline.dataset.schema import BIG_MATRIX

HEADER = "user_id,video_id,play_duration,video_duration,time,date,timestamp,watch_ratio"
ROW = "14,148,4381,6067,2020-07-05 05:27:48.378,20200705,1593898068.378,0.722103"
ROW2 = "14,183,11635,6100,2020-07-05 05:28:00.057,20200705,1593898080.057,1.907377"
ROW3 = "21,9,3300,11000,2020-07-06 10:00:00.000,20200706,1593997200.0,0.3"


def write(tmp_path: Path, text: str | bytes, name: str = "big_matrix.csv") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_bytes(text.encode("utf-8"))
    return path


def lines(*rows: str, header: str = HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


def with_ratio(ratio: str, row: str = ROW) -> str:
    return row.rsplit(",", 1)[0] + "," + ratio


def scan(
    path: Path, file_schema: schema.FileSchema = BIG_MATRIX, on_invalid: loader.OnInvalid = "error"
) -> tuple[pl.DataFrame, loader.ValidationReport]:
    """``loader.scan_interactions`` collected: the typed frame and the validation report."""
    lazy, report = loader.scan_interactions(path, file_schema, on_invalid=on_invalid)
    return lazy.collect(), report
