"""Every check path of the interaction loader against a plain per-field reference, on generated rows."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kuairec_pipeline.dataset import loader, schema
from kuairec_pipeline.dataset.schema import BIG_MATRIX, SMALL_MATRIX
from kuairec_pipeline.errors import KuaiRecDataError
from kuairec_pipeline_tests.builders import lines, scan, write

# Each field's possible texts, and the reason a row fails with it (None: valid; "blank": invalid only where the
# schema allows no blank). The order is the order of the loader's checks: a row counts under its first failure.
_FIELD_CASES: dict[str, dict[str, str | None]] = {
    "user_id": {"14": None, "": "blank", "-3": "negative"},
    "video_id": {"148": None, "": "blank", "-1": "negative"},
    "play_duration": {"4381": None, "0": None, "": "blank", "-5": "negative"},
    "video_duration": {"6067": None, "": "blank", "-5": "negative"},
    "time": {"2020-07-05 05:27:48.378": None, "": "blank"},
    "date": {
        "20200705": None,
        "20200705.0": None,
        "": "blank",
        "20200705.5": "not_integral",
        "nan": "not_integral",
        "-1": "not_integral",
    },
    "timestamp": {"1593898068.378": None, "": "blank", "nan": "not_finite", "inf": "not_finite"},
    "watch_ratio": {"0.72": None, "0": None, "": "blank", "nan": "nan", "inf": "infinite", "-0.1": "negative"},
}
_REASON_ORDER = {
    "user_id": ["blank", "negative"],
    "video_id": ["blank", "negative"],
    "play_duration": ["blank", "negative"],
    "video_duration": ["blank", "negative"],
    "time": ["blank"],
    "date": ["blank", "not_integral"],
    "timestamp": ["blank", "not_finite"],
    "watch_ratio": ["blank", "nan", "infinite", "negative"],
}


def _expected_reason(fields: dict[str, str], file_schema: schema.FileSchema) -> str | None:
    for column, order in _REASON_ORDER.items():
        found = _FIELD_CASES[column][fields[column]]
        if found == "blank" and column in file_schema.nullable:
            found = None
        if found is not None and found in order:
            return f"{column}_{found}"
    return None


_VALID_ROW = {
    column: next(text for text, reason in cases.items() if reason is None) for column, cases in _FIELD_CASES.items()
}


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
