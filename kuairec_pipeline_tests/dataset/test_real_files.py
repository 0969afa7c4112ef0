"""The three real KuaiRec files we have (user_features, item_categories, captions) through the loader."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from kuairec_pipeline.dataset import loader, schema
from kuairec_pipeline.errors import KuaiRecSourceError

N_USERS = 7_176
N_VIDEOS = 10_728
CR_CAPTION_VIDEO_IDS = [1378, 1613, 5910, 6331]


@pytest.fixture(scope="module")
def users(real_data_dir: Path) -> pl.DataFrame:
    return loader.read_user_features(real_data_dir / "user_features.csv")


@pytest.fixture(scope="module")
def categories(real_data_dir: Path) -> pl.DataFrame:
    return loader.read_item_categories(real_data_dir / "item_categories.csv")


@pytest.fixture(scope="module")
def captions(real_data_dir: Path) -> pl.DataFrame:
    return loader.read_captions(real_data_dir / "kuairec_caption_category.csv")


def test_user_features_typed_with_blanks_kept_as_nulls(users: pl.DataFrame) -> None:
    assert users.height == N_USERS
    assert users.schema == pl.Schema(schema.USER_FEATURES.columns)
    assert users["user_id"].to_list() == list(range(N_USERS))
    nulls = {name: count for name, count in users.null_count().row(0, named=True).items() if count}
    assert nulls == {
        "onehot_feat4": 201,
        "onehot_feat12": 77,
        "onehot_feat13": 75,
        "onehot_feat14": 75,
        "onehot_feat15": 74,
        "onehot_feat16": 74,
        "onehot_feat17": 74,
    }
    degrees = dict(users["user_active_degree"].value_counts().iter_rows())
    assert degrees == {"full_active": 6092, "high_active": 938, "UNKNOWN": 118, "middle_active": 28}
    cardinality = {name: users[name].drop_nulls().n_unique() for name in schema.ONEHOT_COLUMNS}
    assert cardinality["onehot_feat3"] == 1076
    assert cardinality["onehot_feat8"] == 340
    assert cardinality["onehot_feat0"] == 2


def test_user_features_first_rows_match_the_file(users: pl.DataFrame) -> None:
    first = users.row(0, named=True)
    assert first["user_active_degree"] == "high_active"
    assert first["follow_user_num"] == 5
    assert first["follow_user_num_range"] == "(0,10]"
    assert first["register_days_range"] == "61-90"
    assert first["onehot_feat3"] == 638
    assert users.row(1, named=True)["fans_user_num_range"] == "[1,10)"


def test_item_categories_tags_parsed(categories: pl.DataFrame) -> None:
    assert categories.height == N_VIDEOS
    assert categories.schema == pl.Schema({"video_id": pl.Int32(), "tags": pl.List(pl.Int8())})
    assert categories["video_id"].to_list() == list(range(N_VIDEOS))
    per_video = dict(categories["tags"].list.len().value_counts().iter_rows())
    assert per_video == {1: 8970, 2: 1562, 3: 185, 4: 11}
    all_tags = categories["tags"].explode()
    assert all_tags.min() == 0 and all_tags.max() == schema.NUM_TAGS - 1
    assert all_tags.n_unique() == schema.NUM_TAGS
    tag_counts = dict(all_tags.value_counts().iter_rows())
    assert (tag_counts[11], tag_counts[28], tag_counts[8]) == (2027, 1360, 1112)
    assert categories["tags"][0].to_list() == [8]
    assert categories["tags"][1].to_list() == [27, 9]  # order as written


def test_captions_row_count_ids_and_bare_carriage_returns(captions: pl.DataFrame) -> None:
    assert captions.height == N_VIDEOS
    assert captions.schema == pl.Schema(schema.CAPTION_CATEGORY.columns)
    assert sorted(captions["video_id"].to_list()) == list(range(N_VIDEOS))
    with_cr = captions.filter(pl.col("caption").str.contains("\r", literal=True))
    assert with_cr["video_id"].to_list() == CR_CAPTION_VIDEO_IDS
    # The carriage return stays where it was, inside the caption, e.g. at the very end for video 5910.
    assert captions.filter(pl.col("video_id") == 5910)["caption"].item().endswith("说不会就是不会\r")
    assert captions["caption"].null_count() == 1355
    assert (captions["first_level_category_id"] == schema.MISSING_CATEGORY_ID).sum() == 40
    assert (captions["third_level_category_name"] == "UNKNOWN").sum() > 0
    assert captions.row(4, named=True)["topic_tag"] == "[五爱市场,感谢快手我要上热门,搞笑]"


def test_captions_match_a_line_based_reference_parse(real_data_dir: Path, captions: pl.DataFrame) -> None:
    # Reference: split on \n only (no record spans lines in this file), then csv-parse each line.
    import csv

    # read_bytes, not read_text: universal newlines would turn the bare \r into line ends.
    lines = (real_data_dir / "kuairec_caption_category.csv").read_bytes().decode("utf-8").split("\n")
    records = [next(csv.reader([line.replace("\r", "\x1e")])) for line in lines[1:] if line]
    assert len(records) == N_VIDEOS
    expected = [(record[2].replace("\x1e", "\r") or None) for record in records]
    assert captions["caption"].to_list() == expected
    assert captions["video_id"].to_list() == [int(record[0]) for record in records]


def test_raw_videos_from_real_categories_and_captions(categories: pl.DataFrame, captions: pl.DataFrame) -> None:
    videos = loader.build_raw_videos(categories, None, captions)
    assert videos.columns == list(loader.RAW_VIDEOS_SCHEMA)
    assert videos.schema == pl.Schema(loader.RAW_VIDEOS_SCHEMA)
    assert videos.height == N_VIDEOS
    assert videos["first_level_category_id"].null_count() == 40  # -124 -> null
    assert videos["author_id"].null_count() == N_VIDEOS  # no item_daily_features here
    assert videos["caption"].null_count() == 1355


def test_real_folder_lacks_the_matrices(real_data_dir: Path) -> None:
    with pytest.raises(KuaiRecSourceError, match="big_matrix.csv") as caught:
        loader.find_kuairec_files(real_data_dir)
    assert str(real_data_dir) in str(caught.value)
