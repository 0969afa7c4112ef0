"""Facts about the real KuaiRec 2.0 that the twin copies: marginals read off the three real files in
``shared/data/kuairec_real/`` (user_features, item_categories) and the statistics table of docs/KUAIREC.md.

Only frequencies and summary numbers live here, never rows: the twin's rows are all synthetic.
"""

from __future__ import annotations

# --- item_categories.csv: how often each of the 31 tags occurs (over all tag slots), and tags per video.
TAG_OCCURRENCES = (
    24,
    463,
    216,
    104,
    164,
    964,
    912,
    503,
    1112,
    696,
    170,
    2027,
    534,
    245,
    63,
    374,
    214,
    350,
    131,
    686,
    265,
    29,
    20,
    39,
    12,
    468,
    490,
    31,
    1360,
    5,
    22,
)
TAGS_PER_VIDEO_COUNTS = {1: 8970, 2: 1562, 3: 185, 4: 11}

# --- user_features.csv
ACTIVE_DEGREE_COUNTS = {"full_active": 6092, "high_active": 938, "UNKNOWN": 118, "middle_active": 28}
BINARY_FLAG_ONE_COUNTS = {"is_lowactive_period": 3, "is_live_streamer": 49, "is_video_author": 1217}
REAL_USER_COUNT = 7176
# Value -> count for the one-hot columns with a manageable number of values (real file).
ONEHOT_VALUE_COUNTS: dict[str, dict[int, int]] = {
    "onehot_feat0": {0: 4361, 1: 2815},
    "onehot_feat1": {0: 3, 1: 3082, 2: 736, 3: 949, 4: 1096, 5: 483, 6: 825, 7: 2},
    "onehot_feat2": {
        0: 52,
        1: 513,
        2: 2,
        3: 7,
        4: 18,
        5: 2,
        6: 65,
        7: 15,
        8: 1971,
        9: 1,
        10: 119,
        11: 42,
        12: 8,
        13: 234,
        14: 3,
        15: 11,
        16: 16,
        17: 1032,
        18: 27,
        19: 9,
        20: 3,
        21: 201,
        22: 20,
        23: 187,
        24: 1095,
        25: 1498,
        26: 22,
        27: 1,
        28: 1,
        29: 1,
    },
    "onehot_feat4": {0: 2055, 1: 3257, 2: 1195, 3: 314, 4: 78, 5: 44, 6: 20, 7: 8, 8: 1, 9: 1, 10: 1, 11: 1},
    "onehot_feat5": {0: 7160, 1: 1, 2: 1, 3: 2, 4: 1, 5: 2, 6: 5, 7: 1, 8: 2, 9: 1},
    "onehot_feat6": {0: 3120, 1: 4040, 2: 16},
    "onehot_feat7": {
        0: 198,
        1: 1,
        2: 166,
        3: 196,
        4: 346,
        5: 59,
        6: 861,
        7: 271,
        8: 85,
        9: 1,
        10: 49,
        11: 359,
        12: 388,
        13: 271,
        14: 7,
        15: 244,
        16: 269,
        17: 1,
        18: 142,
        19: 447,
        20: 167,
        21: 312,
        22: 1,
        23: 1,
        24: 1,
        25: 414,
        26: 1,
        27: 1,
        28: 1,
        29: 17,
        30: 4,
        31: 1,
        32: 3,
        33: 104,
        34: 431,
        35: 152,
        36: 230,
        37: 440,
        38: 1,
        39: 2,
        40: 137,
        41: 2,
        42: 1,
        43: 2,
        44: 86,
        45: 94,
        46: 209,
    },
    "onehot_feat9": {0: 18, 1: 1108, 2: 582, 3: 1352, 4: 1138, 5: 1250, 6: 1728},
    "onehot_feat10": {0: 812, 1: 1, 2: 3761, 3: 1682, 4: 920},
    "onehot_feat11": {0: 6665, 1: 38, 2: 473},
    "onehot_feat12": {0: 4978, 1: 2121},
    "onehot_feat13": {0: 6358, 1: 743},
    "onehot_feat14": {0: 6428, 1: 673},
    "onehot_feat15": {0: 6970, 1: 132},
    "onehot_feat16": {0: 6975, 1: 127},
    "onehot_feat17": {0: 6999, 1: 103},
}
# Many-valued one-hots: (number of distinct values, Zipf exponent) fitted to the real top counts
# (feat3: 137 users share its commonest value; feat8: 196).
ONEHOT_CARDINALITY_ZIPF = {"onehot_feat3": (1076, 0.6), "onehot_feat8": (340, 0.5)}
ONEHOT_FEAT4_BLANK_SHARE = 201 / 7176
ONEHOT_12_TO_17_BLANK_SHARE = 74 / 7176  # the same users are blank in all six
ONEHOT_12_ONLY_BLANK_SHARE = 3 / 7176  # a few more are blank in onehot_feat12 alone

FOLLOW_RANGES = (
    (0, "0"),
    (10, "(0,10]"),
    (50, "(10,50]"),
    (100, "(50,100]"),
    (150, "(100,150]"),
    (250, "(150,250]"),
    (500, "(250,500]"),
)  # (inclusive upper bound, label); above: "500+"
FOLLOW_TOP_LABEL = "500+"
FANS_RANGES = ((0, "0"), (9, "[1,10)"), (99, "[10,100)"), (999, "[100,1k)"), (4999, "[1k,5k)"), (9999, "[5k,1w)"))
FANS_TOP_LABEL = "[1w,10w)"
FRIEND_RANGES = ((0, "0"), (4, "[1,5)"), (29, "[5,30)"), (59, "[30,60)"), (119, "[60,120)"), (249, "[120,250)"))
FRIEND_TOP_LABEL = "250+"
REGISTER_RANGES = ((30, "15-30"), (60, "31-60"), (90, "61-90"), (180, "91-180"), (365, "181-365"), (730, "366-730"))
REGISTER_TOP_LABEL = "730+"

# --- social_network.csv: 472 of 7,176 users have a friend list.
SOCIAL_USER_SHARE = 472 / 7176

# --- kuairec_caption_category.csv (real file): shares of sentinel values.
CAPTION_BLANK_SHARE = 1355 / 10728
COVER_TEXT_UNKNOWN_SHARE = 6694 / 10728
TOPIC_TAG_EMPTY_SHARE = 4611 / 10728
SECOND_LEVEL_UNKNOWN_SHARE = 3583 / 10728
THIRD_LEVEL_UNKNOWN_SHARE = 6832 / 10728
FIRST_LEVEL_DISTINCT = 39  # including -124
CARRIAGE_RETURN_CAPTIONS_FULL = 4  # video_id 1378, 1613, 5910, 6331 in the real file

# --- item_daily_features.csv
DAILY_ROWS_FULL = 343_341
DAILY_DURATION_BLANK_SHARE = 10_598 / 343_341
DAILY_TAG_NAME_BLANK_SHARE = 32_434 / 343_341
DAILY_SHOW_CNT_MEDIAN = 1_328

# --- docs/KUAIREC.md's statistics table (second-hand, from runs on the real interaction files).
REFERENCE_STATISTICS: dict[str, dict[str, float]] = {
    "big_matrix": {
        "rows": 12_530_806,
        "watch_ratio_mean": 0.944,
        "watch_ratio_median": 0.723,
        "watch_ratio_q25": 0.315,
        "watch_ratio_q75": 1.178,
        "share_ge_1": 0.338,
        "share_gt_3": 0.028,
        "share_gt_5": 0.009,
        "share_zero": 0.02,
        "watch_ratio_max": 573.0,
        "video_duration_median_ms": 9_636.0,
        "video_duration_mean_ms": 14_622.0,
        "duplicate_share": 0.0771,
        "pair_density": 0.134,
        "rows_per_user_median": 1_846.0,
        "rows_per_user_min": 100.0,
        "rows_per_user_max": 16_015.0,
        "rows_per_video_median": 228.0,
        "rows_per_video_max": 24_173.0,
        "user_mean_ratio_mean": 0.96,
        "user_mean_ratio_std": 0.21,
    },
    "small_matrix": {
        "rows": 4_676_570,
        "watch_ratio_mean": 0.907,
        "watch_ratio_median": 0.769,
        "watch_ratio_q25": 0.468,
        "watch_ratio_q75": 1.121,
        "share_ge_1": 0.324,
        "share_gt_3": 0.015,
        "share_gt_5": 0.005,
        "share_zero": 0.02,
        "watch_ratio_max": 572.0,
        "video_duration_median_ms": 9_600.0,
        "video_duration_mean_ms": 14_486.0,
        "pair_density": 0.996,
        "empty_time_share": 0.0389,
    },
}
REFERENCE_TAGS_PER_VIDEO_SHARE = {k: v / 10728 for k, v in TAGS_PER_VIDEO_COUNTS.items()}
