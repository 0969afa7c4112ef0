"""The small files (a few MB), read eagerly: split into records with the ``csv`` module, which sees exactly how many
fields each record has (polars reads a truncated line as trailing nulls, indistinguishable from blanks), then cast
column by column, so a bad value is reported with its row directly."""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

import polars as pl

from kuairec_pipeline.dataset.loader.checks import _check_header, _describe, _fields
from kuairec_pipeline.dataset.schema import (
    CAPTION_CATEGORY,
    ITEM_CATEGORIES,
    MAX_TAGS_PER_VIDEO,
    NUM_TAGS,
    SOCIAL_NETWORK,
    USER_FEATURES,
    FileSchema,
)
from kuairec_pipeline.errors import KuaiRecDataError

# Stand-in for a bare carriage return while the csv module splits records (it would end the record there:
# kuairec_caption_category.csv has 4 captions with a bare \r, outside quotes). Restored afterwards.
_CR_STAND_IN = "\x1e"


def _exact_integer(text: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """Text -> integer, accepting ``12`` and ``12.0`` (pandas writes int columns with blanks as floats) but
    nothing that is not a whole number; null where it is not one."""
    return pl.coalesce(
        text.cast(dtype, strict=False),
        text.str.replace(r"\.0*$", "").cast(dtype, strict=False),
    )


def _typed_column(text: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if dtype.is_integer():
        return _exact_integer(text, dtype)
    if dtype == pl.String():
        return text
    return text.cast(dtype, strict=False)


def _read_small_csv(path: str | os.PathLike[str], file_schema: FileSchema) -> pl.DataFrame:
    """A small file (a few MB) -> a DataFrame typed per ``file_schema``; blanks are null, allowed only in the
    schema's nullable columns."""
    csv_path = Path(path)
    _check_header(csv_path, file_schema)
    raw = csv_path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise KuaiRecDataError(
            f"holds bytes that are not UTF-8 text ({exc.reason} at byte {exc.start}; the file must be UTF-8)",
            file=csv_path,
            column=_column_at(raw, exc.start, file_schema),
            row=raw.count(b"\n", 0, exc.start),
            value=raw[max(0, exc.start - 20) : exc.end + 20].decode("utf-8", errors="replace"),
        ) from None
    if _CR_STAND_IN in text:
        raise KuaiRecDataError("holds the control character U+001E, which no KuaiRec file has", file=csv_path)
    text = re.sub("\r(?!\n)", _CR_STAND_IN, text.removeprefix("\ufeff"))
    names = file_schema.column_names
    records = csv.reader(io.StringIO(text, newline=""), strict=True)
    next(records)  # the header, already checked
    values: list[list[str]] = []
    try:
        for record in records:
            row = len(values) + 1
            if not record:
                raise KuaiRecDataError(
                    "the line is blank (a data row was lost, or an empty line slipped in)", file=csv_path, row=row
                )
            if len(record) != len(names):
                raise KuaiRecDataError(
                    f"the line has {_fields(len(record))}, expected {len(names)}"
                    + (" (truncated or damaged line)" if len(record) < len(names) else ""),
                    file=csv_path,
                    row=row,
                    value=",".join(record)[:200].replace(_CR_STAND_IN, "\r"),
                )
            values.append(record)
    except csv.Error as exc:
        raise KuaiRecDataError(f"is not valid CSV ({exc})", file=csv_path, row=len(values) + 1) from None
    if not values:
        raise KuaiRecDataError("has a header but no data rows", file=csv_path)
    text_frame = pl.DataFrame(
        {name: [record[i] for record in values] for i, name in enumerate(names)},
        schema={name: pl.String() for name in names},
    ).with_columns(
        pl.when(pl.col(name) == "")
        .then(None)
        .otherwise(pl.col(name).str.replace_all(_CR_STAND_IN, "\r", literal=True))
        .alias(name)
        for name in names
    )
    typed = text_frame.select(
        _typed_column(pl.col(name), dtype).alias(name) for name, dtype in file_schema.columns.items()
    )
    for name, dtype in file_schema.columns.items():
        unparsed = text_frame[name].is_not_null() & typed[name].is_null()
        if unparsed.any():
            index = int(unparsed.arg_true()[0])
            raise KuaiRecDataError(
                f"is not {_describe(dtype)}", file=csv_path, column=name, row=index + 1, value=text_frame[name][index]
            )
        if name not in file_schema.nullable and typed[name].null_count():
            index = int(typed[name].is_null().arg_true()[0])
            raise KuaiRecDataError("is blank, which this column never is", file=csv_path, column=name, row=index + 1)
    return typed


def _column_at(raw: bytes, offset: int, file_schema: FileSchema) -> str | None:
    """The column whose field holds byte ``offset`` of ``raw`` (a CSV file), judged from that one line."""
    start = raw.rfind(b"\n", 0, offset) + 1
    before = raw[start:offset].decode("utf-8", errors="replace")
    fields = next(csv.reader([before + "x"]), [])  # "x" stands for the bad byte: the last field is its field
    names = file_schema.column_names
    return names[len(fields) - 1] if 0 < len(fields) <= len(names) else None


def _require_unique(frame: pl.DataFrame, column: str, path: str | os.PathLike[str]) -> None:
    repeated = ~frame[column].is_first_distinct()
    if repeated.any():
        index = int(repeated.arg_true()[0])
        raise KuaiRecDataError(
            "appears twice (one row per id expected)",
            file=path,
            column=column,
            row=index + 1,
            value=frame[column][index],
        )


def _require_non_negative(frame: pl.DataFrame, column: str, path: str | os.PathLike[str]) -> None:
    negative = frame[column] < 0
    if negative.any():
        index = int(negative.arg_true()[0])
        raise KuaiRecDataError("is a negative id", file=path, column=column, row=index + 1, value=frame[column][index])


_INT_LIST = re.compile(r"^\s*\[\s*(?:\d+\s*(?:,\s*\d+\s*)*)?\]\s*$").pattern


def _parse_int_list(frame: pl.DataFrame, column: str, path: str | os.PathLike[str]) -> pl.Series:
    """A list literal such as ``[8]`` or ``[27, 9]`` -> list[int64], as data (a regex, never eval)."""
    text = frame[column]
    malformed = text.is_null() | ~text.str.contains(_INT_LIST)
    if malformed.any():
        index = int(malformed.arg_true()[0])
        raise KuaiRecDataError(
            "is not a list of whole numbers such as [27, 9]", file=path, column=column, row=index + 1, value=text[index]
        )
    # 18 digits always fit an int64; longer numbers are out of every id range anyway.
    too_long = text.str.contains(r"\d{19}")
    if too_long.any():
        index = int(too_long.arg_true()[0])
        raise KuaiRecDataError(
            "holds a number out of range", file=path, column=column, row=index + 1, value=text[index]
        )
    return text.str.extract_all(r"\d+").cast(pl.List(pl.Int64()))


def _read_keyed_csv(path: str | os.PathLike[str], file_schema: FileSchema, key: str) -> pl.DataFrame:
    """A per-entity side file: typed, with ``key`` (user_id / video_id) non-negative and unique."""
    frame = _read_small_csv(path, file_schema)
    _require_non_negative(frame, key, path)
    _require_unique(frame, key, path)
    return frame


def read_user_features(path: str | os.PathLike[str]) -> pl.DataFrame:
    """user_features.csv typed per ``schema.USER_FEATURES``; blanks allowed only in the nullable one-hot
    columns, kept as null."""
    frame = _read_keyed_csv(path, USER_FEATURES, "user_id")
    return frame


def read_item_categories(path: str | os.PathLike[str]) -> pl.DataFrame:
    """item_categories.csv -> ``video_id`` int32, ``tags`` list[int8]: 1 to 4 tag ids, each 0..30."""
    frame = _read_keyed_csv(path, ITEM_CATEGORIES, "video_id")
    tags = _parse_int_list(frame, "feat", path)
    counts = tags.list.len()
    bad_count = (counts < 1) | (counts > MAX_TAGS_PER_VIDEO)
    if bad_count.any():
        index = int(bad_count.arg_true()[0])
        raise KuaiRecDataError(
            f"holds {counts[index]} tags; every video has 1 to {MAX_TAGS_PER_VIDEO}",
            file=path,
            column="feat",
            row=index + 1,
            value=frame["feat"][index],
        )
    out_of_range = tags.list.eval((pl.element() < 0) | (pl.element() >= NUM_TAGS)).list.any()
    if out_of_range.any():
        index = int(out_of_range.arg_true()[0])
        raise KuaiRecDataError(
            f"holds a tag id outside 0..{NUM_TAGS - 1}",
            file=path,
            column="feat",
            row=index + 1,
            value=frame["feat"][index],
        )
    return pl.DataFrame({"video_id": frame["video_id"], "tags": tags.cast(pl.List(pl.Int8()))})


def read_captions(path: str | os.PathLike[str]) -> pl.DataFrame:
    """kuairec_caption_category.csv typed per ``schema.CAPTION_CATEGORY``. Bare carriage returns inside captions
    stay in the text (they do not split rows); ``-124`` / ``UNKNOWN`` are kept as given."""
    frame = _read_keyed_csv(path, CAPTION_CATEGORY, "video_id")
    return frame


def read_social_network(path: str | os.PathLike[str]) -> pl.DataFrame:
    """social_network.csv -> ``user_id`` int32, ``friend_list`` list[int32]."""
    frame = _read_keyed_csv(path, SOCIAL_NETWORK, "user_id")
    friends = _parse_int_list(frame, "friend_list", path)
    too_large = friends.list.max() > 2**31 - 1
    if too_large.any():
        index = int(too_large.arg_true()[0])
        raise KuaiRecDataError(
            "holds a user id out of range",
            file=path,
            column="friend_list",
            row=index + 1,
            value=frame["friend_list"][index],
        )
    return pl.DataFrame({"user_id": frame["user_id"], "friend_list": friends.cast(pl.List(pl.Int32()))})
