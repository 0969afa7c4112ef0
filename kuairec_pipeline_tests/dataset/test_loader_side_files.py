"""The loader on small hand-written side files: user_features, item_categories, captions, social network,
item_daily_features, and the raw_videos transform built from them."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from kuairec_pipeline.dataset import loader, schema
from kuairec_pipeline.errors import KuaiRecDataError
from kuairec_pipeline_tests.builders import lines, write

# --------------------------------------------------------------------------------------------------------------
# user_features, item_categories, captions, social network
# --------------------------------------------------------------------------------------------------------------

USER_HEADER = ",".join(schema.USER_FEATURES.column_names)


def user_row(user_id: int = 0, feat4: str = "2", feat17: str = "0", feat0: str = "0") -> str:
    onehots = [feat0, "1", "17", "638", feat4, "0", "1", "6", "184", "6", "3", "0", "0", "0", "0", "0", "0", feat17]
    return ",".join(
        [str(user_id), "high_active", "0", "0", "0", "5", '"(0,10]"', "0", "0", "0", "0", "107", "61-90", *onehots]
    )


def test_user_features_blank_one_hots_stay_null(tmp_path: Path) -> None:
    path = write(
        tmp_path, lines(user_row(0), user_row(1, feat4="", feat17=""), header=USER_HEADER), "user_features.csv"
    )
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
    path = write(
        tmp_path, lines("0,[8]", '1,"[27, 9]"', '2,"[0,30,1,2]"', header="video_id,feat"), "item_categories.csv"
    )
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
        '2,cover,"quoted, with comma","[a,b]",-124,UNKNOWN,-124,UNKNOWN,-124,UNKNOWN',
        "3,UNKNOWN,,[],9,喜剧,727,搞笑互动,-124,UNKNOWN",
    ]
    captions = loader.read_captions(
        write(tmp_path, lines(*rows, header=CAPTION_HEADER), "kuairec_caption_category.csv")
    )
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
    defaults = {
        "video_id": str(video_id),
        "date": str(date),
        "author_id": "3309",
        "video_type": "NORMAL",
        "upload_dt": "2020-03-30",
        "upload_type": "ShortImport",
        "visible_status": "public",
        "video_duration": "5966.0",
        "video_width": "720",
        "video_height": "1280",
        "music_id": "3612",
        "video_tag_id": "2",
        "video_tag_name": "情感",
        "play_progress": "0.5",
    }
    defaults.update(values)
    return ",".join(defaults.get(name, "7") for name in schema.ITEM_DAILY_FEATURES.column_names)


DAILY_HEADER = ",".join(schema.ITEM_DAILY_FEATURES.column_names)


def test_item_daily_features_typed_lazily(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        lines(daily_row(0, 20200705), daily_row(0, 20200706, collect_cnt="", music_id="12.0"), header=DAILY_HEADER),
        "item_daily_features.csv",
    )
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
    path = write(
        tmp_path,
        lines(daily_row(0, 20200705), daily_row(0, 20200706, **values), header=DAILY_HEADER),
        "item_daily_features.csv",
    )
    with pytest.raises(KuaiRecDataError, match=words) as caught:
        loader.scan_item_daily_features(path)
    assert (caught.value.column, caught.value.row) == (column, 2)


def test_build_raw_videos_from_all_sources(tmp_path: Path) -> None:
    categories = pl.DataFrame(
        {"video_id": [0, 1, 2], "tags": [[8], [27, 9], [3]]}, schema={"video_id": pl.Int32, "tags": pl.List(pl.Int8)}
    )
    daily_path = write(
        tmp_path,
        lines(
            daily_row(0, 20200706, author_id="11", video_duration="3000.0"),
            daily_row(0, 20200705, author_id="10", video_duration="1000.0", video_type="AD"),
            daily_row(0, 20200707, author_id="12", video_duration=""),
            daily_row(0, 20200708, video_duration="8000.0"),
            daily_row(1, 20200705, author_id="21", video_duration="", upload_dt="", video_type=""),
            daily_row(1, 20200706, author_id="20", video_duration="500.0"),
            daily_row(9, 20200706),  # not in item_categories: ignored
            header=DAILY_HEADER,
        ),
        "item_daily_features.csv",
    )
    captions = pl.DataFrame(
        {"video_id": [0, 2], "first_level_category_id": [8, -124], "caption": ["hi", None]},
        schema={"video_id": pl.Int32, "first_level_category_id": pl.Int32, "caption": pl.String},
    )
    videos = loader.build_raw_videos(categories, loader.scan_item_daily_features(daily_path), captions)
    assert videos.schema == pl.Schema(loader.RAW_VIDEOS_SCHEMA)
    assert videos.to_dicts() == [
        {
            "video_id": 0,
            "tags": [8],
            "author_id": 10,
            "video_duration_ms": 3000.0,
            "video_type": "AD",
            "upload_dt": "2020-03-30",
            "first_level_category_id": 8,
            "caption": "hi",
        },
        {
            "video_id": 1,
            "tags": [27, 9],
            "author_id": 21,
            "video_duration_ms": 500.0,
            "video_type": "NORMAL",
            "upload_dt": "2020-03-30",
            "first_level_category_id": None,
            "caption": None,
        },
        {
            "video_id": 2,
            "tags": [3],
            "author_id": None,
            "video_duration_ms": None,
            "video_type": None,
            "upload_dt": None,
            "first_level_category_id": None,
            "caption": None,
        },
    ]


def test_build_raw_videos_without_optional_files() -> None:
    categories = pl.DataFrame({"video_id": [5], "tags": [[1]]}, schema={"video_id": pl.Int32, "tags": pl.List(pl.Int8)})
    videos = loader.build_raw_videos(categories, None, None)
    assert videos.columns == list(loader.RAW_VIDEOS_SCHEMA)
    assert videos.schema == pl.Schema(loader.RAW_VIDEOS_SCHEMA)
    assert videos.row(0) == (5, [1], None, None, None, None, None, None)
