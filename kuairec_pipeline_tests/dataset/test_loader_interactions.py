"""The loader on small hand-written interaction files (big_matrix, small_matrix): every way one can be wrong,
and the right answer when not."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kuairec_pipeline.dataset import loader
from kuairec_pipeline.dataset.schema import BIG_MATRIX, SMALL_MATRIX
from kuairec_pipeline.errors import KuaiRecDataError
from kuairec_pipeline_tests.builders import HEADER, ROW, ROW2, ROW3, lines, scan, with_ratio, write

# --------------------------------------------------------------------------------------------------------------
# Interactions: the happy path
# --------------------------------------------------------------------------------------------------------------


def test_big_matrix_typed_exactly(tmp_path: Path) -> None:
    frame, report = scan(write(tmp_path, lines(ROW, ROW2, ROW3)))
    assert frame.schema == pl.Schema(BIG_MATRIX.columns)
    assert frame.row(0) == (14, 148, 4381, 6067, "2020-07-05 05:27:48.378", 20200705, 1593898068.378, 0.722103)
    assert frame["timestamp"][1] == 1593898080.057  # float64: the ms survive
    assert report.rows_read == 3 and report.rows_kept == 3 and report.dropped == {}


def test_small_matrix_float_date_and_empty_time_rows(tmp_path: Path) -> None:
    forced = "14,148,4381,6067,,,,0.722103"
    path = write(tmp_path, lines(ROW.replace("20200705", "20200705.0"), forced), "small_matrix.csv")
    frame, report = scan(path, SMALL_MATRIX)
    assert frame["date"].dtype == pl.Int32
    assert frame["date"].to_list() == [20200705, None]
    assert frame.row(1)[4:7] == (None, None, None)
    assert report.rows_read == 2


def test_empty_time_rows_are_an_error_in_big_matrix(tmp_path: Path) -> None:
    path = write(tmp_path, lines(ROW, "14,148,4381,6067,,,,0.722103"))
    with pytest.raises(KuaiRecDataError) as caught:
        scan(path, BIG_MATRIX)
    assert (caught.value.column, caught.value.row) == ("time", 2)
    assert "big_matrix.csv" in str(caught.value)


def test_windows_line_endings_are_read(tmp_path: Path) -> None:
    frame, _ = scan(write(tmp_path, lines(ROW, ROW2).replace("\n", "\r\n")))
    assert frame["watch_ratio"].to_list() == [0.722103, 1.907377]
    assert frame["time"][1] == "2020-07-05 05:28:00.057"


def test_convert_interactions_writes_typed_parquet(tmp_path: Path) -> None:
    out = tmp_path / "out" / "raw.parquet"
    report = loader.convert_interactions(write(tmp_path, lines(ROW, ROW2, ROW3)), out, BIG_MATRIX)
    assert report.rows_read == 3
    written = pl.read_parquet(out)
    assert written.schema == pl.Schema(BIG_MATRIX.columns)
    assert written["video_id"].to_list() == [148, 183, 9]
    assert [p.name for p in out.parent.iterdir()] == ["raw.parquet"]


def test_convert_interactions_leaves_nothing_on_error(tmp_path: Path) -> None:
    out = tmp_path / "out" / "raw.parquet"
    with pytest.raises(KuaiRecDataError):
        loader.convert_interactions(write(tmp_path, lines(ROW, with_ratio("-1"))), out)
    assert not out.exists()
    assert not out.parent.exists() or list(out.parent.iterdir()) == []  # no temporary file left either


def test_convert_interactions_drop_mode(tmp_path: Path) -> None:
    out = tmp_path / "raw.parquet"
    path = write(tmp_path, lines(ROW, with_ratio("nan"), ROW2, with_ratio("-0.5")))
    report = loader.convert_interactions(path, out, BIG_MATRIX, on_invalid="drop")
    assert report.dropped == {"watch_ratio_nan": 1, "watch_ratio_negative": 1}
    assert pl.read_parquet(out)["video_id"].to_list() == [148, 183]


_ratios = st.floats(min_value=0, max_value=600, allow_nan=False, allow_infinity=False)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(st.integers(0, 2**31 - 1), st.integers(0, 10**12), _ratios, st.integers(19700101, 29991231)),
        min_size=1,
        max_size=20,
    )
)
def test_values_round_trip_exactly(tmp_path: Path, rows: list[tuple[int, int, float, int]]) -> None:
    body = [
        f"{uid},{uid % 1000},{dur},{dur + 1},2020-07-05 00:00:00.000,{date},{1593878903.438 + uid},{ratio!r}"
        for uid, dur, ratio, date in rows
    ]
    frame, _ = scan(write(tmp_path, lines(*body)))
    assert frame["user_id"].to_list() == [r[0] for r in rows]
    assert frame["play_duration"].to_list() == [r[1] for r in rows]
    assert frame["watch_ratio"].to_list() == [r[2] for r in rows]
    assert frame["date"].to_list() == [r[3] for r in rows]


# --------------------------------------------------------------------------------------------------------------
# Interactions: header, structure, encoding
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "column", "words"),
    [
        (HEADER.replace(",watch_ratio", ""), "watch_ratio", "missing"),
        (HEADER + ",extra", "extra", "unexpected column"),
        (HEADER.replace("watch_ratio", "watchratio"), "watch_ratio", "renamed"),
        (HEADER.replace("user_id,video_id", "video_id,user_id"), "video_id", "out of order"),
    ],
)
def test_header_must_match_exactly(tmp_path: Path, header: str, column: str, words: str) -> None:
    path = write(tmp_path, lines(ROW, header=header))
    with pytest.raises(KuaiRecDataError, match=words) as caught:
        scan(path)
    assert caught.value.column == column
    assert caught.value.file == str(path)


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(KuaiRecDataError, match="empty"):
        scan(write(tmp_path, ""))


def test_header_only_file(tmp_path: Path) -> None:
    with pytest.raises(KuaiRecDataError, match="no data rows"):
        scan(write(tmp_path, HEADER + "\n"))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KuaiRecDataError, match="not found"):
        scan(tmp_path / "big_matrix.csv")


@pytest.mark.parametrize("on_invalid", ["error", "drop"])
def test_truncated_last_line(tmp_path: Path, on_invalid: loader.OnInvalid) -> None:
    path = write(tmp_path, lines(ROW, ROW2).rstrip("\n") + "\n14,148,4381,6067,2020-07-0")
    with pytest.raises(KuaiRecDataError, match="truncated") as caught:
        scan(path, on_invalid=on_invalid)
    assert caught.value.row == 3


def test_short_line_in_the_middle_names_row_and_field_count(tmp_path: Path) -> None:
    with pytest.raises(KuaiRecDataError, match="3 fields, expected 8") as caught:
        scan(write(tmp_path, lines(ROW, "14,148,4381", ROW2)))
    assert caught.value.row == 2


def test_blank_line_in_the_middle(tmp_path: Path) -> None:
    with pytest.raises(KuaiRecDataError, match="blank") as caught:
        scan(write(tmp_path, lines(ROW, "", ROW2)))
    assert caught.value.row == 2


def test_line_with_too_many_fields(tmp_path: Path) -> None:
    with pytest.raises(KuaiRecDataError, match="9 fields, expected 8") as caught:
        scan(write(tmp_path, lines(ROW, ROW2 + ",7", ROW3)))
    assert caught.value.row == 2


def test_non_utf8_byte_names_file_and_row(tmp_path: Path) -> None:
    data = lines(ROW, ROW2).encode() + with_ratio("0.5").encode().replace(b"2020-07-05", b"2020-07-\xff5") + b"\n"
    path = write(tmp_path, data)
    with pytest.raises(KuaiRecDataError, match="not UTF-8") as caught:
        scan(path)
    assert (caught.value.file, caught.value.row, caught.value.column) == (str(path), 3, "time")


@pytest.mark.parametrize(
    ("bad_row", "column", "value"),
    [
        (ROW.replace("4381", "43x1"), "play_duration", "43x1"),
        (ROW.replace("14,148", "14,abc"), "video_id", "abc"),
        (with_ratio("0.7 ratio"), "watch_ratio", "0.7 ratio"),
        (ROW.replace("20200705", "2020-07-05"), "date", "2020-07-05"),
        (ROW.replace("1593898068.378", "yesterday"), "timestamp", "yesterday"),
    ],
)
def test_non_numeric_value_names_row_column_and_value(tmp_path: Path, bad_row: str, column: str, value: str) -> None:
    path = write(tmp_path, lines(ROW, ROW2, ROW3, bad_row, ROW))
    with pytest.raises(KuaiRecDataError) as caught:
        scan(path)
    error = caught.value
    assert (error.file, error.column, error.row, error.value) == (str(path), column, 4, value)
    assert "row 4" in str(error) and repr(value) in str(error)


# --------------------------------------------------------------------------------------------------------------
# Interactions: values
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad_row", "column", "words"),
    [
        (with_ratio("-0.5"), "watch_ratio", "negative"),
        (with_ratio("nan"), "watch_ratio", "NaN"),
        (with_ratio("NaN"), "watch_ratio", "NaN"),
        (with_ratio("inf"), "watch_ratio", "infinite"),
        (with_ratio("-inf"), "watch_ratio", "infinite"),
        (with_ratio(""), "watch_ratio", "blank"),
        (ROW.replace("4381", "-4381"), "play_duration", "negative"),
        (ROW.replace("6067", ""), "video_duration", "blank"),
        (ROW.replace("14,148", ",148"), "user_id", "blank"),
        (ROW.replace("14,148", "14,-1"), "video_id", "negative"),
        (ROW.replace("20200705", "20200705.5"), "date", "whole"),
        (ROW.replace("1593898068.378", "nan"), "timestamp", "NaN"),
    ],
)
def test_invalid_value_names_row_and_column(tmp_path: Path, bad_row: str, column: str, words: str) -> None:
    path = write(tmp_path, lines(ROW, ROW2, bad_row, ROW3))
    with pytest.raises(KuaiRecDataError, match=words) as caught:
        scan(path)
    assert (caught.value.column, caught.value.row) == (column, 3)
    assert "on_invalid='drop'" in str(caught.value)
    # convert_interactions checks in its own way (the written file's statistics): same verdict, nothing written.
    out = tmp_path / "raw.parquet"
    with pytest.raises(KuaiRecDataError, match=words) as converted:
        loader.convert_interactions(path, out)
    assert (converted.value.column, converted.value.row) == (column, 3)
    assert not out.exists()
    report = loader.convert_interactions(path, out, on_invalid="drop")
    kept, scanned = scan(path, on_invalid="drop")
    assert pl.read_parquet(out).equals(kept) and report == scanned


@pytest.mark.parametrize(
    ("bad_row", "reason"),
    [
        (ROW.replace("20200705", "20200705.5"), "date_not_integral"),
        (ROW.replace("20200705", "nan"), "date_not_integral"),
        (ROW.replace("1593898068.378", "nan"), "timestamp_not_finite"),
        (ROW.replace("1593898068.378", "-inf"), "timestamp_not_finite"),
        (with_ratio("nan"), "watch_ratio_nan"),
    ],
)
def test_small_matrix_invalid_values_where_blanks_are_allowed(tmp_path: Path, bad_row: str, reason: str) -> None:
    # date and timestamp may be blank in small_matrix, so a bad one must not pass as a blank.
    path = write(tmp_path, lines(ROW, "14,148,4381,6067,,,,0.5", bad_row), "small_matrix.csv")
    for read in (
        lambda: scan(path, SMALL_MATRIX),
        lambda: loader.convert_interactions(path, tmp_path / "o.parquet", SMALL_MATRIX),
    ):
        with pytest.raises(KuaiRecDataError) as caught:
            read()
        assert caught.value.row == 3 and reason in str(caught.value)
    report = loader.convert_interactions(path, tmp_path / "o.parquet", SMALL_MATRIX, on_invalid="drop")
    assert report.dropped == {reason: 1}
    assert pl.read_parquet(tmp_path / "o.parquet").height == 2


def test_error_reports_the_first_invalid_row_and_the_totals(tmp_path: Path) -> None:
    path = write(tmp_path, lines(ROW, with_ratio("inf"), with_ratio("-1"), with_ratio("-2")))
    with pytest.raises(KuaiRecDataError) as caught:
        scan(path)
    assert caught.value.row == 2
    assert caught.value.value == math.inf
    assert "2 watch_ratio_negative" in str(caught.value) and "1 watch_ratio_infinite" in str(caught.value)


def test_drop_mode_counts_each_reason(tmp_path: Path) -> None:
    rows = [
        ROW,
        with_ratio("nan"),
        with_ratio("-1"),
        with_ratio("-2"),
        with_ratio("inf"),
        with_ratio(""),
        ROW2,
        ROW.replace("14,148", ",148"),
        ROW.replace("20200705", "20200705.5"),
        ROW3,
        "14,148,4381,6067,,20200705,1593898068.378,0.5",
    ]
    frame, report = scan(write(tmp_path, lines(*rows)), on_invalid="drop")
    assert frame["video_id"].to_list() == [148, 183, 9]
    assert report.rows_read == 11 and report.rows_kept == 3 and report.rows_dropped == 8
    assert report.dropped == {
        "user_id_blank": 1,
        "time_blank": 1,
        "date_not_integral": 1,
        "watch_ratio_blank": 1,
        "watch_ratio_nan": 1,
        "watch_ratio_infinite": 1,
        "watch_ratio_negative": 2,
    }
    metadata = report.as_metadata()
    assert metadata["rows_dropped"] == 8 and metadata["dropped_watch_ratio_negative"] == 2
    assert metadata["on_invalid"] == "drop"


def test_drop_mode_still_refuses_a_damaged_file(tmp_path: Path) -> None:
    with pytest.raises(KuaiRecDataError, match="whole number"):
        scan(write(tmp_path, lines(ROW, ROW.replace("4381", "43x1"))), on_invalid="drop")


def test_drop_mode_on_small_keeps_forced_exposure_rows(tmp_path: Path) -> None:
    forced = "14,148,4381,6067,,,,0.722103"
    path = write(tmp_path, lines(forced, with_ratio("-3", forced)), "small_matrix.csv")
    frame, report = scan(path, SMALL_MATRIX, on_invalid="drop")
    assert frame.height == 1 and report.dropped == {"watch_ratio_negative": 1}


def test_on_invalid_must_be_known(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="on_invalid"):
        loader.scan_interactions(write(tmp_path, lines(ROW)), BIG_MATRIX, on_invalid="ignore")  # type: ignore[arg-type]


def test_convert_interactions_names_the_row_of_a_non_numeric_value(tmp_path: Path) -> None:
    out = tmp_path / "raw.parquet"
    path = write(tmp_path, lines(ROW, ROW2, ROW.replace("6067", "6O67")))
    with pytest.raises(KuaiRecDataError) as caught:
        loader.convert_interactions(path, out)
    assert (caught.value.column, caught.value.row, caught.value.value) == ("video_duration", 3, "6O67")
    assert not out.exists()


@pytest.mark.parametrize("on_invalid", ["error", "drop"])
def test_convert_interactions_never_writes_a_truncated_date(tmp_path: Path, on_invalid: loader.OnInvalid) -> None:
    out = tmp_path / "raw.parquet"
    path = write(tmp_path, lines(ROW, ROW2.replace("20200705", "20200705.5")))
    if on_invalid == "error":
        with pytest.raises(KuaiRecDataError, match="whole"):
            loader.convert_interactions(path, out, on_invalid=on_invalid)
        assert not out.exists()
    else:
        report = loader.convert_interactions(path, out, on_invalid=on_invalid)
        assert report.dropped == {"date_not_integral": 1}
        assert pl.read_parquet(out)["date"].to_list() == [20200705]


@pytest.mark.parametrize("compression", ["zstd", "lz4", "snappy", "uncompressed"])
def test_convert_interactions_parquet_options(tmp_path: Path, compression: str) -> None:
    out = tmp_path / "raw.parquet"
    config = loader.ParquetSinkConfig(compression=compression)  # type: ignore[arg-type]
    loader.convert_interactions(write(tmp_path, lines(ROW, ROW2)), out, parquet=config)
    assert pl.read_parquet(out).height == 2


def test_convert_interactions_keeps_order_across_many_batches(tmp_path: Path) -> None:
    n = 300_000  # several streaming batches
    frame = pl.DataFrame(
        {
            "user_id": pl.int_range(n, eager=True).cast(pl.Int32) // 100,
            "video_id": (pl.int_range(n, eager=True) % 10_728).cast(pl.Int32),
            "play_duration": pl.int_range(n, eager=True),
            "video_duration": pl.int_range(n, eager=True) + 1,
            "time": pl.repeat("2020-07-05 00:08:23.438", n, eager=True),
            "date": pl.repeat(20200705, n, eager=True, dtype=pl.Int32),
            "timestamp": pl.int_range(n, eager=True).cast(pl.Float64) / 1000 + 1593878903.0,
            "watch_ratio": pl.int_range(n, eager=True) / (pl.int_range(n, eager=True) + 1),
        }
    )
    path = tmp_path / "big_matrix.csv"
    frame.write_csv(path)
    out = tmp_path / "raw.parquet"
    report = loader.convert_interactions(path, out)
    assert report.rows_read == n
    assert pl.read_parquet(out).equals(frame)
    bad = frame.with_columns(
        pl.when(pl.col("play_duration") == n - 5).then(-1.0).otherwise(pl.col("watch_ratio")).alias("watch_ratio")
    )
    bad.write_csv(path)
    with pytest.raises(KuaiRecDataError) as caught:
        loader.convert_interactions(path, out)
    assert (caught.value.row, caught.value.column) == (n - 4, "watch_ratio")
