"""Daily logs (``dataset/loader/daily_logs.py``): the drop folder's names, one day's conversion with big_matrix's
checks plus "every row is dated its day", and appending days after the archive without counting a day twice."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from kuairec_pipeline.dataset import loader
from kuairec_pipeline.dataset.loader import daily_logs
from kuairec_pipeline.errors import KuaiRecDataError, KuaiRecSourceError
from kuairec_pipeline_tests.builders import HEADER, ROW, ROW2, ROW3, lines, with_ratio, write

DAY = "2020-07-05"  # the date of ROW and ROW2; ROW3 is dated 2020-07-06


def test_the_drop_folder_holds_one_file_per_real_day(tmp_path: Path) -> None:
    for name in (
        "big_matrix_2020-07-06.csv",
        "big_matrix_2020-07-05.csv",
        "big_matrix_2020-02-30.csv",  # not a calendar date
        ".big_matrix_2020-07-07.csv",  # a copy in progress under a hidden name
        "big_matrix_2020-7-8.csv",
        "big_matrix.csv",
        "notes.txt",
    ):
        write(tmp_path, lines(ROW), name)
    assert list(loader.find_daily_logs(tmp_path)) == ["2020-07-05", "2020-07-06"]
    assert loader.find_daily_logs(tmp_path / "absent") == {}
    assert loader.daily_log_name(DAY) == "big_matrix_2020-07-05.csv"
    assert daily_logs.day_as_date_value(DAY) == 20200705
    for bad in ("2020-7-5", "2020-02-30", "20200705"):
        with pytest.raises(ValueError, match="day"):
            loader.daily_log_name(bad)
    with pytest.raises(KuaiRecSourceError, match="big_matrix_2020-07-09.csv.*2020-07-05, 2020-07-06"):
        loader.require_daily_log(tmp_path, "2020-07-09")


def test_a_day_converts_like_big_matrix(tmp_path: Path) -> None:
    source = write(tmp_path, lines(ROW, ROW2), loader.daily_log_name(DAY))
    report = loader.convert_daily_log(source, tmp_path / "day.parquet", DAY)
    assert report.rows_kept == 2
    stored = pl.read_parquet(tmp_path / "day.parquet")
    assert stored["date"].to_list() == [20200705, 20200705] and stored.schema["date"] == pl.Int32
    assert daily_logs.LOG_READS[str(source)] >= 1


def test_a_row_of_another_day_is_named_and_nothing_is_written(tmp_path: Path) -> None:
    source = write(tmp_path, lines(ROW, ROW2, ROW3), loader.daily_log_name(DAY))
    target = tmp_path / "day.parquet"
    for on_invalid in ("error", "drop"):  # a misfiled row is the file's fault: refused in both modes
        with pytest.raises(KuaiRecDataError) as raised:
            loader.convert_daily_log(source, target, DAY, on_invalid=on_invalid)
        error = raised.value
        assert (error.file, error.column, error.row, error.value) == (str(source), "date", 3, 20200706)
        assert f"day {DAY}" in str(error)
        assert not target.exists() and not list(tmp_path.glob(".day.parquet*"))


def test_a_bad_value_in_a_day_gives_big_matrix_s_error(tmp_path: Path) -> None:
    source = write(tmp_path, lines(ROW, with_ratio("-1.5", ROW2)), loader.daily_log_name(DAY))
    with pytest.raises(KuaiRecDataError) as raised:
        loader.convert_daily_log(source, tmp_path / "day.parquet", DAY)
    assert (raised.value.column, raised.value.row) == ("watch_ratio", 2)
    renamed = write(tmp_path, lines(ROW, header=HEADER.replace("watch_ratio", "ratio")), "big_matrix_2020-07-06.csv")
    with pytest.raises(KuaiRecDataError, match="'watch_ratio' is missing"):
        loader.convert_daily_log(renamed, tmp_path / "day.parquet", "2020-07-06")
    assert not (tmp_path / "day.parquet").exists()


def test_days_follow_the_archive_and_never_repeat_one_of_its_days(tmp_path: Path) -> None:
    loader.convert_interactions(write(tmp_path, lines(ROW, ROW2)), tmp_path / "archive.parquet")
    archive = pl.scan_parquet(tmp_path / "archive.parquet")
    alone, days = loader.append_days(archive, None)
    assert days == [] and alone.collect().height == 2

    later = write(tmp_path, lines(ROW3), "big_matrix_2020-07-06.csv")
    loader.convert_daily_log(later, tmp_path / "later.parquet", "2020-07-06")
    combined, days = loader.append_days(archive, pl.scan_parquet(tmp_path / "later.parquet"))
    assert days == [20200706]
    assert combined.collect()["video_id"].to_list() == [148, 183, 9]

    again = write(tmp_path, lines(ROW2), "big_matrix_2020-07-05.csv")
    loader.convert_daily_log(again, tmp_path / "again.parquet", DAY)
    with pytest.raises(KuaiRecDataError, match="already in big_matrix.csv") as raised:
        loader.append_days(archive, pl.scan_parquet(tmp_path / "again.parquet"))
    assert (raised.value.column, raised.value.value) == ("date", 20200705)
