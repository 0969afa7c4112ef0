"""The loader on small hand-written files: every way a KuaiRec file can be wrong, and the right answer when not."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kuairec_pipeline.dataset import loader, schema
from kuairec_pipeline.dataset.schema import BIG_MATRIX, SMALL_MATRIX
from kuairec_pipeline.errors import KuaiRecDataError, KuaiRecSourceError

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


def scan(path: Path, file_schema: schema.FileSchema = BIG_MATRIX, on_invalid: loader.OnInvalid = "error"):
    lazy, report = loader.scan_interactions(path, file_schema, on_invalid=on_invalid)
    return lazy.collect(), report


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
@given(st.lists(st.tuples(st.integers(0, 2**31 - 1), st.integers(0, 10**12), _ratios,
                          st.integers(19700101, 29991231)), min_size=1, max_size=20))
def test_values_round_trip_exactly(tmp_path: Path, rows: list[tuple[int, int, float, int]]) -> None:
    body = [f"{uid},{uid % 1000},{dur},{dur + 1},2020-07-05 00:00:00.000,{date},{1593878903.438 + uid},{ratio!r}"
            for uid, dur, ratio, date in rows]
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
    for read in (lambda: scan(path, SMALL_MATRIX), lambda: loader.convert_interactions(path, tmp_path / "o.parquet",
                                                                                         SMALL_MATRIX)):
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
        ROW, with_ratio("nan"), with_ratio("-1"), with_ratio("-2"), with_ratio("inf"), with_ratio(""), ROW2,
        ROW.replace("14,148", ",148"), ROW.replace("20200705", "20200705.5"), ROW3,
        "14,148,4381,6067,,20200705,1593898068.378,0.5",
    ]
    frame, report = scan(write(tmp_path, lines(*rows)), on_invalid="drop")
    assert frame["video_id"].to_list() == [148, 183, 9]
    assert report.rows_read == 11 and report.rows_kept == 3 and report.rows_dropped == 8
    assert report.dropped == {
        "user_id_blank": 1, "time_blank": 1, "date_not_integral": 1, "watch_ratio_blank": 1,
        "watch_ratio_nan": 1, "watch_ratio_infinite": 1, "watch_ratio_negative": 2,
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


# --------------------------------------------------------------------------------------------------------------
# user_features, item_categories, captions, social network
# --------------------------------------------------------------------------------------------------------------

USER_HEADER = ",".join(schema.USER_FEATURES.column_names)


def user_row(user_id: int = 0, feat4: str = "2", feat17: str = "0", feat0: str = "0") -> str:
    onehots = [feat0, "1", "17", "638", feat4, "0", "1", "6", "184", "6", "3", "0", "0", "0", "0", "0", "0", feat17]
    return ",".join([str(user_id), "high_active", "0", "0", "0", "5", '"(0,10]"', "0", "0", "0", "0", "107",
                     "61-90", *onehots])


def test_user_features_blank_one_hots_stay_null(tmp_path: Path) -> None:
    path = write(tmp_path, lines(user_row(0), user_row(1, feat4="", feat17=""), header=USER_HEADER),
                 "user_features.csv")
    users = loader.read_user_features(path)
    assert users.schema == pl.Schema(schema.USER_FEATURES.columns)
    assert users["onehot_feat4"].to_list() == [2, None]
    assert users["onehot_feat17"].to_list() == [0, None]
    assert users["follow_user_num_range"][0] == "(0,10]"


def test_user_features_accept_integers_written_as_floats(tmp_path: Path) -> None:
    # A writer that stores blanks as NaN turns such a column into floats: "2.0" is still the integer 2.
    path = write(tmp_path, lines(user_row(0, feat4="2.0"), header=USER_HEADER), "user_features.csv")
    assert loader.read_user_features(path)["onehot_feat4"].to_list() == [2]


@pytest.mark.parametrize(
    ("row", "column", "words"),
    [
        (user_row(1, feat0=""), "onehot_feat0", "blank"),
        (user_row(1, feat4="2.5"), "onehot_feat4", "whole number"),
        (user_row(1, feat4="two"), "onehot_feat4", "whole number"),
        (user_row(0), "user_id", "twice"),
    ],
)
def test_user_features_errors_name_column_and_row(tmp_path: Path, row: str, column: str, words: str) -> None:
    path = write(tmp_path, lines(user_row(0), row, header=USER_HEADER), "user_features.csv")
    with pytest.raises(KuaiRecDataError, match=words) as caught:
        loader.read_user_features(path)
    assert (caught.value.column, caught.value.row) == (column, 2)


def test_user_features_truncated_last_line(tmp_path: Path) -> None:
    truncated = user_row(1).rsplit(",", 6)[0]  # ends inside the nullable one-hots: blanks would hide it
    path = write(tmp_path, lines(user_row(0), truncated, header=USER_HEADER), "user_features.csv")
    with pytest.raises(KuaiRecDataError, match="25 fields, expected 31") as caught:
        loader.read_user_features(path)
    assert caught.value.row == 2


def test_user_features_non_utf8(tmp_path: Path) -> None:
    data = lines(user_row(0), user_row(1), header=USER_HEADER).encode().replace(b"61-90", b"61-\xe990", 2)
    with pytest.raises(KuaiRecDataError, match="not UTF-8") as caught:
        loader.read_user_features(write(tmp_path, data, "user_features.csv"))
    assert caught.value.row == 1
    assert caught.value.column == "register_days_range"


def test_item_categories_parse_list_literals(tmp_path: Path) -> None:
    path = write(tmp_path, lines("0,[8]", '1,"[27, 9]"', '2,"[0,30,1,2]"', header="video_id,feat"),
                 "item_categories.csv")
    categories = loader.read_item_categories(path)
    assert categories.schema == pl.Schema({"video_id": pl.Int32(), "tags": pl.List(pl.Int8())})
    assert categories["tags"].to_list() == [[8], [27, 9], [0, 30, 1, 2]]


@pytest.mark.parametrize(
    ("feat", "words"),
    [
        ("[31]", "outside 0..30"),
        ('"[1, 2, 3, 4, 5]"', "5 tags"),
        ("[]", "0 tags"),
        ("8", "list of whole numbers"),
        ("[-1]", "list of whole numbers"),
        ("[x]", "list of whole numbers"),
        ("\"__import__('os').system('true')\"", "list of whole numbers"),
        ("", "blank"),
        ("[99999999999999999999]", "out of range"),
    ],
)
def test_item_categories_bad_tags(tmp_path: Path, feat: str, words: str) -> None:
    path = write(tmp_path, lines("0,[8]", f"1,{feat}", header="video_id,feat"), "item_categories.csv")
    with pytest.raises(KuaiRecDataError, match=words) as caught:
        loader.read_item_categories(path)
    assert (caught.value.column, caught.value.row) == ("feat", 2)


def test_item_categories_duplicate_video(tmp_path: Path) -> None:
    path = write(tmp_path, lines("0,[8]", "1,[2]", "0,[3]", header="video_id,feat"), "item_categories.csv")
    with pytest.raises(KuaiRecDataError, match="twice") as caught:
        loader.read_item_categories(path)
    assert (caught.value.column, caught.value.row, caught.value.value) == ("video_id", 3, 0)


CAPTION_HEADER = ",".join(schema.CAPTION_CATEGORY.column_names)


def test_captions_keep_bare_carriage_returns_and_sentinels(tmp_path: Path) -> None:
    rows = [
        "0,UNKNOWN,精神小伙,[],8,颜值,673,颜值随拍,-124,UNKNOWN",
        "1,UNKNOWN,ends with cr\r,[],34,其他,418,生活泛拍,-124,UNKNOWN",
        '2,cover,"quoted, with comma",\"[a,b]\",-124,UNKNOWN,-124,UNKNOWN,-124,UNKNOWN',
        "3,UNKNOWN,,[],9,喜剧,727,搞笑互动,-124,UNKNOWN",
    ]
    captions = loader.read_captions(write(tmp_path, lines(*rows, header=CAPTION_HEADER),
                                          "kuairec_caption_category.csv"))
    assert captions.height == 4
    assert captions["caption"].to_list() == ["精神小伙", "ends with cr\r", "quoted, with comma", None]
    assert captions["topic_tag"][2] == "[a,b]"
    assert captions["first_level_category_id"].to_list() == [8, 34, -124, 9]
    assert captions["video_id"].dtype == pl.Int32


def test_social_network_friend_lists(tmp_path: Path) -> None:
    path = write(tmp_path, lines('0,"[1, 2]"', "1,[0]", "2,[]", header="user_id,friend_list"), "social_network.csv")
    social = loader.read_social_network(path)
    assert social.schema == pl.Schema({"user_id": pl.Int32(), "friend_list": pl.List(pl.Int32())})
    assert social["friend_list"].to_list() == [[1, 2], [0], []]


# --------------------------------------------------------------------------------------------------------------
# item_daily_features and raw_videos
# --------------------------------------------------------------------------------------------------------------


def daily_row(video_id: int, date: int, **values: str) -> str:
    defaults = {"video_id": str(video_id), "date": str(date), "author_id": "3309", "video_type": "NORMAL",
                "upload_dt": "2020-03-30", "upload_type": "ShortImport", "visible_status": "public",
                "video_duration": "5966.0", "video_width": "720", "video_height": "1280", "music_id": "3612",
                "video_tag_id": "2", "video_tag_name": "情感", "play_progress": "0.5"}
    defaults.update(values)
    return ",".join(defaults.get(name, "7") for name in schema.ITEM_DAILY_FEATURES.column_names)


DAILY_HEADER = ",".join(schema.ITEM_DAILY_FEATURES.column_names)


def test_item_daily_features_typed_lazily(tmp_path: Path) -> None:
    path = write(tmp_path, lines(daily_row(0, 20200705), daily_row(0, 20200706, collect_cnt="", music_id="12.0"),
                                 header=DAILY_HEADER), "item_daily_features.csv")
    daily = loader.scan_item_daily_features(path)
    assert isinstance(daily, pl.LazyFrame)
    frame = daily.collect()
    assert frame.schema == pl.Schema(schema.ITEM_DAILY_FEATURES.columns)
    assert len(frame.columns) == 58
    assert frame["collect_cnt"].to_list() == [7, None]
    assert frame["music_id"].to_list() == [3612, 12]


@pytest.mark.parametrize(
    ("values", "column", "words"),
    [
        ({"show_cnt": ""}, "show_cnt", "blank"),
        ({"music_id": "12.5"}, "music_id", "whole number"),
        ({"like_cnt": "many"}, "like_cnt", "whole number"),
    ],
)
def test_item_daily_features_errors(tmp_path: Path, values: dict[str, str], column: str, words: str) -> None:
    path = write(tmp_path, lines(daily_row(0, 20200705), daily_row(0, 20200706, **values), header=DAILY_HEADER),
                 "item_daily_features.csv")
    with pytest.raises(KuaiRecDataError, match=words) as caught:
        loader.scan_item_daily_features(path)
    assert (caught.value.column, caught.value.row) == (column, 2)


def test_build_raw_videos_from_all_sources(tmp_path: Path) -> None:
    categories = pl.DataFrame({"video_id": [0, 1, 2], "tags": [[8], [27, 9], [3]]},
                              schema={"video_id": pl.Int32, "tags": pl.List(pl.Int8)})
    daily_path = write(tmp_path, lines(
        daily_row(0, 20200706, author_id="11", video_duration="3000.0"),
        daily_row(0, 20200705, author_id="10", video_duration="1000.0", video_type="AD"),
        daily_row(0, 20200707, author_id="12", video_duration=""),
        daily_row(0, 20200708, video_duration="8000.0"),
        daily_row(1, 20200705, author_id="21", video_duration="", upload_dt="", video_type=""),
        daily_row(1, 20200706, author_id="20", video_duration="500.0"),
        daily_row(9, 20200706),  # not in item_categories: ignored
        header=DAILY_HEADER,
    ), "item_daily_features.csv")
    captions = pl.DataFrame({"video_id": [0, 2], "first_level_category_id": [8, -124], "caption": ["hi", None]},
                            schema={"video_id": pl.Int32, "first_level_category_id": pl.Int32, "caption": pl.String})
    videos = loader.build_raw_videos(categories, loader.scan_item_daily_features(daily_path), captions)
    assert videos.schema == pl.Schema(loader.RAW_VIDEOS_SCHEMA)
    assert videos.to_dicts() == [
        {"video_id": 0, "tags": [8], "author_id": 10, "video_duration_ms": 3000.0, "video_type": "AD",
         "upload_dt": "2020-03-30", "first_level_category_id": 8, "caption": "hi"},
        {"video_id": 1, "tags": [27, 9], "author_id": 21, "video_duration_ms": 500.0, "video_type": "NORMAL",
         "upload_dt": "2020-03-30", "first_level_category_id": None, "caption": None},
        {"video_id": 2, "tags": [3], "author_id": None, "video_duration_ms": None, "video_type": None,
         "upload_dt": None, "first_level_category_id": None, "caption": None},
    ]


def test_build_raw_videos_without_optional_files() -> None:
    categories = pl.DataFrame({"video_id": [5], "tags": [[1]]},
                              schema={"video_id": pl.Int32, "tags": pl.List(pl.Int8)})
    videos = loader.build_raw_videos(categories, None, None)
    assert videos.columns == list(loader.RAW_VIDEOS_SCHEMA)
    assert videos.schema == pl.Schema(loader.RAW_VIDEOS_SCHEMA)
    assert videos.row(0) == (5, [1], None, None, None, None, None, None)


# --------------------------------------------------------------------------------------------------------------
# Finding the files
# --------------------------------------------------------------------------------------------------------------


def official_layout(root: Path, names: list[str] | None = None) -> Path:
    data = root / "KuaiRec 2.0" / "data"
    data.mkdir(parents=True)
    for name in names or [f.file_name for f in schema.ALL_FILES]:
        (data / name).write_text("x\n")
    return data


def test_find_files_below_the_official_folder_with_a_space(tmp_path: Path) -> None:
    data = official_layout(tmp_path)
    (tmp_path / "_truth").mkdir()
    (tmp_path / "_truth" / "big_matrix.csv").write_text("planted\n")  # never a source file
    (data / ".big_matrix.csv.1234.abcd.tmp").write_text("half-written\n")
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "small_matrix.csv").write_text("hidden\n")
    files = loader.find_kuairec_files(tmp_path)
    assert set(files) == {f.file_name for f in schema.ALL_FILES}
    assert files.require("big_matrix.csv") == data / "big_matrix.csv"
    assert files[BIG_MATRIX] == data / "big_matrix.csv"
    assert files.get("social_network.csv") == data / "social_network.csv"
    assert files.root == tmp_path


def test_find_files_optional_ones_may_be_missing(tmp_path: Path) -> None:
    official_layout(tmp_path, [f.file_name for f in schema.REQUIRED_FILES])
    files = loader.find_kuairec_files(tmp_path)
    assert files.get("item_daily_features.csv") is None
    assert "item_daily_features.csv" not in files
    with pytest.raises(KuaiRecSourceError, match="item_daily_features.csv"):
        files.require("item_daily_features.csv")


def test_find_files_names_what_is_missing_and_where(tmp_path: Path) -> None:
    official_layout(tmp_path, ["user_features.csv", "item_categories.csv"])
    with pytest.raises(KuaiRecSourceError) as caught:
        loader.find_kuairec_files(tmp_path)
    message = str(caught.value)
    assert "big_matrix.csv" in message and "small_matrix.csv" in message and str(tmp_path) in message


def test_find_files_refuses_two_copies(tmp_path: Path) -> None:
    official_layout(tmp_path / "a")
    official_layout(tmp_path / "b", ["big_matrix.csv"])
    with pytest.raises(KuaiRecSourceError, match="more than one copy"):
        loader.find_kuairec_files(tmp_path)


def test_find_files_needs_a_folder(tmp_path: Path) -> None:
    with pytest.raises(KuaiRecSourceError, match="not a folder"):
        loader.find_kuairec_files(tmp_path / "nowhere")


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
    frame = pl.DataFrame({
        "user_id": pl.int_range(n, eager=True).cast(pl.Int32) // 100,
        "video_id": (pl.int_range(n, eager=True) % 10_728).cast(pl.Int32),
        "play_duration": pl.int_range(n, eager=True),
        "video_duration": pl.int_range(n, eager=True) + 1,
        "time": pl.repeat("2020-07-05 00:08:23.438", n, eager=True),
        "date": pl.repeat(20200705, n, eager=True, dtype=pl.Int32),
        "timestamp": pl.int_range(n, eager=True).cast(pl.Float64) / 1000 + 1593878903.0,
        "watch_ratio": pl.int_range(n, eager=True) / (pl.int_range(n, eager=True) + 1),
    })
    path = tmp_path / "big_matrix.csv"
    frame.write_csv(path)
    out = tmp_path / "raw.parquet"
    report = loader.convert_interactions(path, out)
    assert report.rows_read == n
    assert pl.read_parquet(out).equals(frame)
    bad = frame.with_columns(pl.when(pl.col("play_duration") == n - 5).then(-1.0).otherwise(pl.col("watch_ratio"))
                             .alias("watch_ratio"))
    bad.write_csv(path)
    with pytest.raises(KuaiRecDataError) as caught:
        loader.convert_interactions(path, out)
    assert (caught.value.row, caught.value.column) == (n - 4, "watch_ratio")


# Each field's possible texts, and the reason a row fails with it (None: valid; "blank": invalid only where the
# schema allows no blank). The order is the order of the loader's checks: a row counts under its first failure.
_FIELD_CASES: dict[str, dict[str, str | None]] = {
    "user_id": {"14": None, "": "blank", "-3": "negative"},
    "video_id": {"148": None, "": "blank", "-1": "negative"},
    "play_duration": {"4381": None, "0": None, "": "blank", "-5": "negative"},
    "video_duration": {"6067": None, "": "blank", "-5": "negative"},
    "time": {"2020-07-05 05:27:48.378": None, "": "blank"},
    "date": {"20200705": None, "20200705.0": None, "": "blank", "20200705.5": "not_integral",
             "nan": "not_integral", "-1": "not_integral"},
    "timestamp": {"1593898068.378": None, "": "blank", "nan": "not_finite", "inf": "not_finite"},
    "watch_ratio": {"0.72": None, "0": None, "": "blank", "nan": "nan", "inf": "infinite", "-0.1": "negative"},
}
_REASON_ORDER = {
    "user_id": ["blank", "negative"], "video_id": ["blank", "negative"], "play_duration": ["blank", "negative"],
    "video_duration": ["blank", "negative"], "time": ["blank"], "date": ["blank", "not_integral"],
    "timestamp": ["blank", "not_finite"], "watch_ratio": ["blank", "nan", "infinite", "negative"],
}


def _expected_reason(fields: dict[str, str], file_schema: schema.FileSchema) -> str | None:
    for column, order in _REASON_ORDER.items():
        found = _FIELD_CASES[column][fields[column]]
        if found == "blank" and column in file_schema.nullable:
            found = None
        if found is not None and found in order:
            return f"{column}_{found}"
    return None


_VALID_ROW = {column: next(text for text, reason in cases.items() if reason is None)
              for column, cases in _FIELD_CASES.items()}


@st.composite
def _row(draw: st.DrawFn) -> dict[str, str]:
    """A valid row with up to two fields replaced by any of their cases (valid or not)."""
    row = dict(_VALID_ROW)
    for column in draw(st.lists(st.sampled_from(list(_FIELD_CASES)), max_size=2)):
        row[column] = draw(st.sampled_from(list(_FIELD_CASES[column])))
    return row


_rows = st.lists(_row(), min_size=1, max_size=12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=_rows, small=st.booleans())
def test_every_check_path_agrees_with_a_reference(tmp_path: Path, rows: list[dict[str, str]], small: bool) -> None:
    """scan_interactions (column aggregates, then the per-row pass) and convert_interactions (the Parquet footer's
    statistics) must drop exactly the rows a plain per-field reference rejects, counted under the same reasons."""
    file_schema = SMALL_MATRIX if small else BIG_MATRIX
    path = write(tmp_path, lines(*[",".join(row[c] for c in _FIELD_CASES) for row in rows]), file_schema.file_name)
    expected = [_expected_reason(row, file_schema) for row in rows]
    expected_counts: dict[str, int] = {}
    for reason in expected:
        if reason is not None:
            expected_counts[reason] = expected_counts.get(reason, 0) + 1
    kept, report = scan(path, file_schema, on_invalid="drop")
    assert dict(report.dropped) == expected_counts
    assert kept.height == expected.count(None)
    out = tmp_path / "out.parquet"
    converted = loader.convert_interactions(path, out, file_schema, on_invalid="drop")
    assert converted == report
    assert pl.read_parquet(out).equals(kept)
    if expected_counts:
        with pytest.raises(KuaiRecDataError) as caught:
            loader.convert_interactions(path, out, file_schema)
        assert caught.value.row == expected.index(next(r for r in expected if r is not None)) + 1
