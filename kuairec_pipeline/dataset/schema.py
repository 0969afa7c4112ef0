"""Schema of every official KuaiRec 2.0 file: names, column order, and the dtypes we read them as.

Dtypes follow docs/KUAIREC.md: ``date`` is int32 (YYYYMMDD; written as a float ``20200705.0`` in small_matrix),
``timestamp`` float64 (never float32: precision loss creates fake duplicates), ids int32, durations int64 (ms).
``nullable`` lists the columns that may be blank in the real files; a blank anywhere else is an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl


@dataclass(frozen=True)
class FileSchema:
    file_name: str
    columns: dict[str, pl.DataType]  # in file order
    nullable: frozenset[str] = field(default_factory=frozenset)

    @property
    def column_names(self) -> list[str]:
        return list(self.columns)


INTERACTION_COLUMNS: dict[str, pl.DataType] = {
    "user_id": pl.Int32(),
    "video_id": pl.Int32(),
    "play_duration": pl.Int64(),
    "video_duration": pl.Int64(),
    "time": pl.String(),  # Beijing local time with ms, e.g. "2020-07-05 00:08:23.438"
    "date": pl.Int32(),
    "timestamp": pl.Float64(),
    "watch_ratio": pl.Float64(),
}

BIG_MATRIX = FileSchema("big_matrix.csv", INTERACTION_COLUMNS)
# The forced-exposure stage of small_matrix has empty time, date and timestamp (3.89% of rows).
SMALL_MATRIX = FileSchema("small_matrix.csv", INTERACTION_COLUMNS, frozenset({"time", "date", "timestamp"}))

ONEHOT_COLUMNS = [f"onehot_feat{i}" for i in range(18)]
ONEHOT_WITH_BLANKS = frozenset({"onehot_feat4", *(f"onehot_feat{i}" for i in range(12, 18))})

USER_FEATURES = FileSchema(
    "user_features.csv",
    {
        "user_id": pl.Int32(),
        "user_active_degree": pl.String(),
        "is_lowactive_period": pl.Int8(),
        "is_live_streamer": pl.Int8(),
        "is_video_author": pl.Int8(),
        "follow_user_num": pl.Int32(),
        "follow_user_num_range": pl.String(),
        "fans_user_num": pl.Int32(),
        "fans_user_num_range": pl.String(),
        "friend_user_num": pl.Int32(),
        "friend_user_num_range": pl.String(),
        "register_days": pl.Int32(),
        "register_days_range": pl.String(),
        **{name: pl.Int32() for name in ONEHOT_COLUMNS},
    },
    ONEHOT_WITH_BLANKS,
)

ITEM_CATEGORIES = FileSchema("item_categories.csv", {"video_id": pl.Int32(), "feat": pl.String()})
NUM_TAGS = 31  # tag ids 0..30
MAX_TAGS_PER_VIDEO = 4

CAPTION_CATEGORY = FileSchema(
    "kuairec_caption_category.csv",
    {
        "video_id": pl.Int32(),
        "manual_cover_text": pl.String(),
        "caption": pl.String(),
        "topic_tag": pl.String(),
        "first_level_category_id": pl.Int32(),
        "first_level_category_name": pl.String(),
        "second_level_category_id": pl.Int32(),
        "second_level_category_name": pl.String(),
        "third_level_category_id": pl.Int32(),
        "third_level_category_name": pl.String(),
    },
    frozenset(
        {
            "manual_cover_text",
            "caption",
            "topic_tag",
            "first_level_category_name",
            "second_level_category_name",
            "third_level_category_name",
        }
    ),
)
MISSING_CATEGORY_ID = -124  # with name "UNKNOWN"

_DAILY_COUNT_COLUMNS = [
    "show_cnt",
    "show_user_num",
    "play_cnt",
    "play_user_num",
    "play_duration",
    "complete_play_cnt",
    "complete_play_user_num",
    "valid_play_cnt",
    "valid_play_user_num",
    "long_time_play_cnt",
    "long_time_play_user_num",
    "short_time_play_cnt",
    "short_time_play_user_num",
]
_DAILY_ENGAGEMENT_COLUMNS = [
    "comment_stay_duration",
    "like_cnt",
    "like_user_num",
    "click_like_cnt",
    "double_click_cnt",
    "cancel_like_cnt",
    "cancel_like_user_num",
    "comment_cnt",
    "comment_user_num",
    "direct_comment_cnt",
    "reply_comment_cnt",
    "delete_comment_cnt",
    "delete_comment_user_num",
    "comment_like_cnt",
    "comment_like_user_num",
    "follow_cnt",
    "follow_user_num",
    "cancel_follow_cnt",
    "cancel_follow_user_num",
    "share_cnt",
    "share_user_num",
    "download_cnt",
    "download_user_num",
    "report_cnt",
    "report_user_num",
    "reduce_similar_cnt",
    "reduce_similar_user_num",
    "collect_cnt",
    "collect_user_num",
    "cancel_collect_cnt",
    "cancel_collect_user_num",
]
ITEM_DAILY_FEATURES = FileSchema(
    "item_daily_features.csv",
    {
        "video_id": pl.Int32(),
        "date": pl.Int32(),
        "author_id": pl.Int32(),
        "video_type": pl.String(),
        "upload_dt": pl.String(),
        "upload_type": pl.String(),
        "visible_status": pl.String(),
        "video_duration": pl.Float64(),  # ms; blank in 10,598 real rows, so read as float
        "video_width": pl.Int32(),
        "video_height": pl.Int32(),
        "music_id": pl.Int64(),
        "video_tag_id": pl.Int32(),
        "video_tag_name": pl.String(),
        **{name: pl.Int64() for name in _DAILY_COUNT_COLUMNS},
        "play_progress": pl.Float64(),
        **{name: pl.Int64() for name in _DAILY_ENGAGEMENT_COLUMNS},
    },
    frozenset(
        {
            "video_duration",
            "video_tag_name",
            "collect_cnt",
            "collect_user_num",
            "cancel_collect_cnt",
            "cancel_collect_user_num",
            "video_tag_id",
            "upload_type",
            "visible_status",
            "video_type",
            "upload_dt",
            "music_id",
            "video_width",
            "video_height",
        }
    ),
)
assert len(ITEM_DAILY_FEATURES.columns) == 58

SOCIAL_NETWORK = FileSchema("social_network.csv", {"user_id": pl.Int32(), "friend_list": pl.String()})

ALL_FILES: tuple[FileSchema, ...] = (
    BIG_MATRIX,
    SMALL_MATRIX,
    USER_FEATURES,
    ITEM_CATEGORIES,
    ITEM_DAILY_FEATURES,
    SOCIAL_NETWORK,
    CAPTION_CATEGORY,
)
# Files the pipeline cannot run without; the others are read when present.
REQUIRED_FILES: tuple[FileSchema, ...] = (BIG_MATRIX, SMALL_MATRIX, USER_FEATURES, ITEM_CATEGORIES)

# KuaiRec's Beijing-time convention, for anyone turning `time` back into instants.
SOURCE_TIMEZONE = "Asia/Shanghai"
