"""The twin's side files: user_features.csv, item_categories.csv, item_daily_features.csv, social_network.csv
and kuairec_caption_category.csv, in the official formats (studied on the real files in data/kuairec_real/).

Text is synthetic Chinese built from a small word list; no real caption is copied.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl

from kuairec_pipeline.dataset.schema import (
    CAPTION_CATEGORY,
    ITEM_CATEGORIES,
    ITEM_DAILY_FEATURES,
    MISSING_CATEGORY_ID,
    NUM_TAGS,
    SOCIAL_NETWORK,
    USER_FEATURES,
)
from kuairec_pipeline.dataset.synthetic import reference
from kuairec_pipeline.dataset.synthetic.config import PERIOD_DAYS
from kuairec_pipeline.dataset.synthetic.entities import (
    STREAM_CAPTIONS,
    STREAM_DAILY,
    STREAM_SOCIAL,
    Users,
    Videos,
    random_stream,
)

UNKNOWN = "UNKNOWN"
PERIOD_FIRST_DATE = dt.date(2020, 7, 5)

# Words the synthetic captions, cover texts and category names are made of.
WORDS = (
    "今天",
    "生活",
    "快乐",
    "美食",
    "分享",
    "搞笑",
    "日常",
    "宝宝",
    "旅行",
    "风景",
    "音乐",
    "舞蹈",
    "可爱",
    "朋友",
    "家乡",
    "记录",
    "美好",
    "时光",
    "喜欢",
    "一起",
    "努力",
    "加油",
    "健身",
    "运动",
    "游戏",
    "农村",
    "城市",
    "夜景",
    "小狗",
    "猫咪",
    "做饭",
    "教程",
    "技巧",
    "穿搭",
    "化妆",
    "手工",
    "钓鱼",
    "汽车",
    "篮球",
    "足球",
    "唱歌",
    "吉他",
    "读书",
    "学习",
    "工作",
    "下班",
    "周末",
    "夏天",
    "雨天",
    "晚安",
    "早安",
    "开心",
    "感动",
    "温暖",
    "回忆",
    "青春",
    "梦想",
    "妈妈",
    "爸爸",
    "老师",
    "同学",
    "小伙",
    "姑娘",
    "味道",
    "家常菜",
    "海边",
    "山里",
    "老家",
    "果园",
    "大棚",
)
HASHTAGS = (
    "感谢快手我要上热门",
    "作品推广",
    "高清视频",
    "日常",
    "搞笑",
    "美食",
    "小小喵",
    "用快影上热门",
    "正能量",
    "记录生活",
    "萌宠",
    "农村生活",
    "健身打卡",
    "穿搭",
    "旅行",
    "音乐",
    "舞蹈",
    "手工",
    "家常菜",
    "钓鱼",
)
ENDINGS = ("", "！", "。", "...", "~", "！！", "？")
CATEGORY_NAMES = (
    "影视",
    "动漫",
    "游戏",
    "汽车",
    "美妆",
    "时尚",
    "明星娱乐",
    "运动",
    "颜值",
    "喜剧",
    "体育",
    "亲子",
    "美食",
    "宠物",
    "音乐",
    "舞蹈",
    "三农",
    "旅游",
    "情感",
    "教育",
    "科技",
    "财经",
    "军事",
    "历史",
    "读书",
    "摄影",
    "生活",
    "高新数码",
    "民生资讯",
    "健康",
    "家居",
    "健身",
    "才艺",
    "其他",
    "校园",
    "职场",
    "手工",
    "园艺",
)
UPLOAD_TYPES = {
    "ShortImport": 46,
    "LongImport": 17,
    "ShortCamera": 12,
    "LongCamera": 6,
    "Web": 5,
    "PictureSet": 5,
    "FollowShoot": 3,
    "Kmovie": 3,
    "LongPicture": 2,
    UNKNOWN: 1,
}
RESOLUTIONS = ((720, 1280, 62), (1080, 1920, 14), (540, 960, 10), (368, 640, 6), (1280, 720, 5), (720, 720, 3))
# collect_* counters did not exist before this day of the log (docs/KUAIREC.md: blank on early dates).
COLLECT_FIRST_DAY = 10


def _list_literal(values: pl.Expr) -> pl.Expr:
    """Python-style list text: [8], [27, 9] (polars quotes it where it holds a comma, like the real files)."""
    return pl.lit("[") + values.list.eval(pl.element().cast(pl.String)).list.join(", ") + pl.lit("]")


def write_user_features(users: Users, path: Path) -> None:
    users.features.select(USER_FEATURES.column_names).write_csv(path)


def write_item_categories(videos: Videos, path: Path) -> None:
    tag_lists = [row[row >= 0].tolist() for row in videos.tags]  # one short list per video: 10k rows at most
    frame = pl.DataFrame(
        {"video_id": np.arange(videos.count, dtype=np.int32), "tags": pl.Series(tag_lists, dtype=pl.List(pl.Int64))}
    )
    frame.select("video_id", _list_literal(pl.col("tags")).alias("feat")).select(
        ITEM_CATEGORIES.column_names
    ).write_csv(path)


def write_social_network(users: Users, n_social_users: int, seed: int, path: Path) -> None:
    rng = random_stream(seed, STREAM_SOCIAL)
    n_users = users.count
    members = np.sort(rng.choice(n_users, size=min(n_social_users, n_users), replace=False))
    sizes = np.minimum(rng.geometric(0.55, members.shape[0]), 12)
    # Friends are mostly other members (friendship is mutual), sometimes anyone.
    friend_lists = []
    for member, size in zip(members, sizes, strict=False):
        pool = members if rng.random() < 0.8 else np.arange(n_users)
        candidates = pool[pool != member]
        friend_lists.append(sorted(rng.choice(candidates, size=min(size, candidates.shape[0]), replace=False).tolist()))
    frame = pl.DataFrame(
        {"user_id": members.astype(np.int32), "friends": pl.Series(friend_lists, dtype=pl.List(pl.Int64))}
    )
    frame.select("user_id", _list_literal(pl.col("friends")).alias("friend_list")).select(
        SOCIAL_NETWORK.column_names
    ).write_csv(path)


def _phrase(rng: np.random.Generator, low: int, high: int) -> str:
    words = rng.choice(len(WORDS), size=int(rng.integers(low, high + 1)))
    return "".join(WORDS[i] for i in words)


def _quote_field(value: str | None) -> str:
    # The real file's quoting: quote a field holding a comma, a quote or a newline; a bare carriage return
    # does NOT force quoting (that is the trap: a parser that ends lines at \r splits those rows).
    if value is None:
        return ""
    if any(mark in value for mark in (",", '"', "\n")):
        return '"' + value.replace('"', '""') + '"'
    return value


def write_caption_category(videos: Videos, seed: int, path: Path) -> None:
    """kuairec_caption_category.csv: 10 columns; -124/UNKNOWN mark missing categories; topic_tag is [a,b]
    with unquoted items; a few captions hold a bare \\r (most unquoted, as in the real file; one inside a
    quoted field)."""
    rng = random_stream(seed, STREAM_CAPTIONS)
    n = videos.count
    main_tag = videos.tags[:, 0].astype(np.int64)

    # Category tree: level 1 follows the video's main tag (as in the real file), with a few extra ids and
    # some unknowns; each level-1 id owns a handful of level-2 ids, each of those a handful of level-3 ids.
    first_id = np.where(rng.random(n) < 0.04, rng.integers(NUM_TAGS, len(CATEGORY_NAMES), n), main_tag)
    first_id = np.where(rng.random(n) < 0.02, MISSING_CATEGORY_ID, first_id)
    second_offset = rng.integers(0, 4, n)
    second_id = np.where(first_id >= 0, 100 + first_id * 20 + second_offset, MISSING_CATEGORY_ID)
    second_id = np.where(rng.random(n) < reference.SECOND_LEVEL_UNKNOWN_SHARE, MISSING_CATEGORY_ID, second_id)
    third_id = np.where(second_id >= 0, 1000 + (second_id - 100) * 5 + rng.integers(0, 3, n), MISSING_CATEGORY_ID)
    third_known_share = (1 - reference.THIRD_LEVEL_UNKNOWN_SHARE) / (1 - reference.SECOND_LEVEL_UNKNOWN_SHARE)
    third_id = np.where(rng.random(n) < third_known_share, third_id, MISSING_CATEGORY_ID)

    def category_name(level: int, ids: np.ndarray) -> list[str]:
        names = []
        for category in ids.tolist():
            if category == MISSING_CATEGORY_ID:
                names.append(UNKNOWN)
            elif level == 1:
                names.append(CATEGORY_NAMES[category])
            else:
                names.append(WORDS[category % len(WORDS)] + WORDS[(category // 7) % len(WORDS)])
        return names

    has_cover = rng.random(n) >= reference.COVER_TEXT_UNKNOWN_SHARE
    has_caption = rng.random(n) >= reference.CAPTION_BLANK_SHARE
    has_topics = rng.random(n) >= reference.TOPIC_TAG_EMPTY_SHARE
    with_comma = rng.random(n) < 0.03
    carriage_returns = max(2, round(reference.CARRIAGE_RETURN_CAPTIONS_FULL * n / 10_728))
    cr_videos = rng.choice(np.flatnonzero(has_caption), size=carriage_returns, replace=False).tolist()
    quoted_cr_video = cr_videos[0]
    cr_videos = set(cr_videos)

    covers, captions, topics = [], [], []
    for video in range(n):  # one small text per video: 10,728 iterations at most
        covers.append(_phrase(rng, 2, 5) if has_cover[video] else UNKNOWN)
        hashtags = sorted(set(HASHTAGS[i] for i in rng.choice(len(HASHTAGS), size=int(rng.integers(1, 4)))))
        if not has_caption[video]:
            captions.append(None)
            topics.append("[" + ",".join(hashtags) + "]" if has_topics[video] else "[]")
            continue
        text = _phrase(rng, 2, 9)
        if with_comma[video] or video == quoted_cr_video:
            text += "，" + _phrase(rng, 1, 3) + "," + _phrase(rng, 1, 3)
        if video in cr_videos:
            text += "\r" + ENDINGS[int(rng.integers(1, len(ENDINGS)))]
        else:
            text += ENDINGS[int(rng.integers(0, len(ENDINGS)))]
        if has_topics[video]:
            text = " ".join("#" + tag for tag in hashtags) + " " + text
            topics.append("[" + ",".join(hashtags) + "]")
        else:
            topics.append("[]")
        captions.append(text)

    columns = [
        [str(video) for video in range(n)],
        covers,
        captions,
        topics,
        [str(v) for v in first_id.tolist()],
        category_name(1, first_id),
        [str(v) for v in second_id.tolist()],
        category_name(2, second_id),
        [str(v) for v in third_id.tolist()],
        category_name(3, third_id),
    ]
    lines = [",".join(CAPTION_CATEGORY.column_names)]
    lines.extend(",".join(_quote_field(column[row]) for column in columns) for row in range(n))
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))


def _scaled(rng: np.random.Generator, base: np.ndarray, low: float, high: float) -> np.ndarray:
    """A count that is a random share of ``base`` (keeps cnt >= user_num and play <= show per row)."""
    return np.round(base * rng.uniform(low, high, base.shape[0])).astype(np.int64)


def write_item_daily_features(videos: Videos, seed: int, path: Path) -> None:
    """One row per (video, date it was shown): identity columns fixed per video, heavy-tailed daily counts."""
    rng = random_stream(seed, STREAM_DAILY)
    n = videos.count

    # Per video: upload day (some long before the log), type, resolution, music, platform tag.
    uploaded_before = rng.random(n) < 0.4
    upload_day = np.where(uploaded_before, -rng.integers(1, 400, n), rng.integers(0, PERIOD_DAYS, n))
    video_type = np.where(rng.random(n) < 0.03, "AD", "NORMAL")
    upload_type_names = list(UPLOAD_TYPES)
    upload_weights = np.array(list(UPLOAD_TYPES.values()), dtype=np.float64)
    upload_type = np.asarray(upload_type_names)[
        rng.choice(len(upload_type_names), n, p=upload_weights / upload_weights.sum())
    ]
    resolution = rng.choice(len(RESOLUTIONS), n, p=np.array([r[2] for r in RESOLUTIONS]) / 100.0)
    width = np.array([r[0] for r in RESOLUTIONS])[resolution]
    height = np.array([r[1] for r in RESOLUTIONS])[resolution]
    music_id = rng.integers(1_000_000_000, 9_999_999_999, n)
    platform_tag = 100 + videos.tags[:, 0].astype(np.int64) * 10 + rng.integers(0, 10, n)

    # Rows: every day from max(upload, log start) to the log's end, ~72% of them (days it was not shown drop).
    first_day = np.maximum(upload_day, 0)
    span = PERIOD_DAYS - first_day
    video_of_day = np.repeat(np.arange(n), span)
    day = first_day[video_of_day] + (np.arange(video_of_day.shape[0]) - np.repeat(np.cumsum(span) - span, span))
    first_row = np.zeros(video_of_day.shape[0], dtype=bool)
    first_row[np.cumsum(span) - span] = True  # every video has at least one row
    kept = (rng.random(video_of_day.shape[0]) < 0.72) | first_row
    video_of_day, day = video_of_day[kept], day[kept]
    rows = video_of_day.shape[0]
    age = day - upload_day[video_of_day]

    log_show = (
        np.log(reference.DAILY_SHOW_CNT_MEDIAN)
        + 1.3 * videos.log_popularity[video_of_day]
        - 0.6 * np.log1p(age / 7.0)
        + 1.3 * rng.standard_normal(rows)
    )
    show_cnt = np.maximum(np.round(np.exp(log_show)), 1).astype(np.int64)
    play_cnt = _scaled(rng, show_cnt, 0.35, 0.95)
    play_user_num = _scaled(rng, play_cnt, 0.85, 1.0)
    duration = videos.duration_ms[video_of_day].astype(np.float64)
    play_progress = np.clip(rng.normal(0.62, 0.15, rows) - 0.08 * videos.log_duration_z[video_of_day], 0.02, 1.5)
    complete_play_cnt = _scaled(rng, play_cnt, 0.15, 0.55)
    valid_play_cnt = _scaled(rng, play_cnt, 0.45, 0.8)
    long_time_play_cnt = _scaled(rng, play_cnt, 0.15, 0.4)
    short_time_play_cnt = _scaled(rng, play_cnt, 0.2, 0.5)
    like_cnt = _scaled(rng, play_cnt, 0.005, 0.06)
    comment_cnt = _scaled(rng, play_cnt, 0.0005, 0.006)
    follow_cnt = _scaled(rng, play_cnt, 0.0002, 0.004)
    share_cnt = _scaled(rng, play_cnt, 0.0002, 0.004)
    collect_cnt = _scaled(rng, play_cnt, 0.0005, 0.004).astype(np.float64)
    cancel_collect = _scaled(rng, collect_cnt, 0.0, 0.1).astype(np.float64)
    no_collect_yet = day < COLLECT_FIRST_DAY
    collect_cnt[no_collect_yet] = np.nan
    cancel_collect[no_collect_yet] = np.nan
    duration_column = duration.copy()
    duration_column[rng.random(rows) < reference.DAILY_DURATION_BLANK_SHARE] = np.nan
    tag_id = platform_tag[video_of_day]
    tag_name = np.array([WORDS[t % len(WORDS)] for t in range(100 + NUM_TAGS * 10)], dtype=object)[tag_id]
    tag_name[rng.random(rows) < reference.DAILY_TAG_NAME_BLANK_SHARE] = None

    dates = np.array(
        [int((PERIOD_FIRST_DATE + dt.timedelta(days=d)).strftime("%Y%m%d")) for d in range(PERIOD_DAYS)], dtype=np.int32
    )
    upload_dates = {d: (PERIOD_FIRST_DATE + dt.timedelta(days=int(d))).isoformat() for d in np.unique(upload_day)}
    columns = {
        "video_id": video_of_day.astype(np.int32),
        "date": dates[day],
        "author_id": videos.author_id[video_of_day],
        "video_type": video_type[video_of_day],
        "upload_dt": np.array([upload_dates[d] for d in upload_day])[video_of_day],
        "upload_type": upload_type[video_of_day],
        "visible_status": np.where(rng.random(n) < 0.985, "public", "friend")[video_of_day],
        "video_duration": pl.Series(duration_column, nan_to_null=True),
        "video_width": width[video_of_day].astype(np.int32),
        "video_height": height[video_of_day].astype(np.int32),
        "music_id": music_id[video_of_day],
        "video_tag_id": tag_id.astype(np.int32),
        "video_tag_name": pl.Series(tag_name.tolist(), dtype=pl.String),  # a list: None must stay a null
        "show_cnt": show_cnt,
        "show_user_num": _scaled(rng, show_cnt, 0.85, 1.0),
        "play_cnt": play_cnt,
        "play_user_num": play_user_num,
        "play_duration": np.round(play_cnt * duration * play_progress).astype(np.int64),
        "complete_play_cnt": complete_play_cnt,
        "complete_play_user_num": _scaled(rng, complete_play_cnt, 0.85, 1.0),
        "valid_play_cnt": valid_play_cnt,
        "valid_play_user_num": _scaled(rng, valid_play_cnt, 0.85, 1.0),
        "long_time_play_cnt": long_time_play_cnt,
        "long_time_play_user_num": _scaled(rng, long_time_play_cnt, 0.85, 1.0),
        "short_time_play_cnt": short_time_play_cnt,
        "short_time_play_user_num": _scaled(rng, short_time_play_cnt, 0.85, 1.0),
        "play_progress": np.round(play_progress, 6),
        "comment_stay_duration": _scaled(rng, comment_cnt, 5_000, 40_000),
        "like_cnt": like_cnt,
        "like_user_num": _scaled(rng, like_cnt, 0.9, 1.0),
        "click_like_cnt": _scaled(rng, like_cnt, 0.5, 0.8),
        "double_click_cnt": _scaled(rng, like_cnt, 0.2, 0.5),
        "cancel_like_cnt": _scaled(rng, like_cnt, 0.0, 0.05),
        "cancel_like_user_num": _scaled(rng, like_cnt, 0.0, 0.04),
        "comment_cnt": comment_cnt,
        "comment_user_num": _scaled(rng, comment_cnt, 0.7, 1.0),
        "direct_comment_cnt": _scaled(rng, comment_cnt, 0.5, 0.8),
        "reply_comment_cnt": _scaled(rng, comment_cnt, 0.2, 0.5),
        "delete_comment_cnt": _scaled(rng, comment_cnt, 0.0, 0.05),
        "delete_comment_user_num": _scaled(rng, comment_cnt, 0.0, 0.04),
        "comment_like_cnt": _scaled(rng, comment_cnt, 0.5, 3.0),
        "comment_like_user_num": _scaled(rng, comment_cnt, 0.4, 2.0),
        "follow_cnt": follow_cnt,
        "follow_user_num": _scaled(rng, follow_cnt, 0.9, 1.0),
        "cancel_follow_cnt": _scaled(rng, follow_cnt, 0.0, 0.1),
        "cancel_follow_user_num": _scaled(rng, follow_cnt, 0.0, 0.08),
        "share_cnt": share_cnt,
        "share_user_num": _scaled(rng, share_cnt, 0.8, 1.0),
        "download_cnt": _scaled(rng, share_cnt, 0.05, 0.3),
        "download_user_num": _scaled(rng, share_cnt, 0.04, 0.25),
        "report_cnt": _scaled(rng, play_cnt, 0.0, 0.0003),
        "report_user_num": _scaled(rng, play_cnt, 0.0, 0.00025),
        "reduce_similar_cnt": _scaled(rng, play_cnt, 0.0, 0.002),
        "reduce_similar_user_num": _scaled(rng, play_cnt, 0.0, 0.0018),
        "collect_cnt": pl.Series(collect_cnt, nan_to_null=True).cast(pl.Int64),
        "collect_user_num": pl.Series(np.round(collect_cnt * 0.95), nan_to_null=True).cast(pl.Int64),
        "cancel_collect_cnt": pl.Series(cancel_collect, nan_to_null=True).cast(pl.Int64),
        "cancel_collect_user_num": pl.Series(np.round(cancel_collect * 0.9), nan_to_null=True).cast(pl.Int64),
    }
    frame = pl.DataFrame(columns)
    frame = frame.sort("video_id", "date").select(ITEM_DAILY_FEATURES.column_names)
    frame.write_csv(path)
