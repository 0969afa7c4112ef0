"""The in-process memo of drawn charts (kuairec_pipeline/charts.py): reused only for arguments of equal content."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import pytest

from kuairec_pipeline.charts import MAX_CHARTS, chart_cache_info, clear_chart_cache, memoized_chart
from kuairec_pipeline.evaluation.report_plots import history_frame, training_curves_png

draws: list[str] = []


@dataclass(frozen=True)
class Counts:
    edges: np.ndarray
    total: int


@memoized_chart
def chart(frame: pl.DataFrame, title: object, counts: Counts | None = None, dpi: int = 80) -> bytes:
    draws.append(str(title))
    return f"{title}:{frame.height}:{dpi}".encode()


@pytest.fixture(autouse=True)
def empty_memo():
    clear_chart_cache()
    draws.clear()
    yield
    clear_chart_cache()


def frame(*values: float) -> pl.DataFrame:
    return pl.DataFrame({"epoch": list(range(len(values))), "val_mse": list(values)})


def test_equal_content_is_drawn_once_and_any_change_draws_again():
    first = chart(frame(0.1, 0.2), "a", Counts(np.arange(3.0), 5))
    again = chart(frame(0.1, 0.2), "a", Counts(np.arange(3.0), 5), dpi=80)  # new objects, default spelled out
    assert again == first and draws == ["a"]
    assert chart_cache_info()[:2] == (1, 1)
    chart(frame(0.1, 0.25), "a", Counts(np.arange(3.0), 5))  # one value of the frame
    chart(frame(0.1, 0.2), "a", Counts(np.arange(3.0), 6))  # a dataclass field
    chart(frame(0.1, 0.2), "a", Counts(np.arange(3.0, dtype=np.float32), 5))  # the same numbers in another dtype
    chart(frame(0.1, 0.2), "a", Counts(np.arange(3.0), 5), dpi=100)
    assert draws == ["a"] * 5


def test_values_of_other_types_are_other_keys():
    for title in (1, "1", 1.0, True, None, (1,), {"1": 1}, {"1": 1.0}):
        chart(frame(0.1), title)
    assert len(draws) == 8 and chart_cache_info().hits == 0
    chart(frame(0.1), [1])  # a list and a tuple of equal items draw the same chart
    assert chart_cache_info().hits == 1


def test_the_memo_keeps_only_the_latest_charts():
    for i in range(MAX_CHARTS + 1):
        chart(frame(float(i)), "t")
    assert chart_cache_info().currsize == MAX_CHARTS
    chart(frame(float(MAX_CHARTS)), "t")  # the latest: still kept
    chart(frame(0.0), "t")  # the oldest: dropped, drawn again
    assert len(draws) == MAX_CHARTS + 2


def test_an_argument_it_cannot_read_is_an_error_not_a_guess():
    with pytest.raises(TypeError, match="cannot key a chart on a object argument"):
        chart(frame(0.1), object())
    with pytest.raises(TypeError, match="cannot key a chart on an array of dtype object"):
        chart(frame(0.1), "t", Counts(np.array([1.0, "a"], dtype=object), 5))
    assert draws == []


def test_a_training_curve_built_by_the_asset_page_and_by_the_report_is_one_chart():
    history = np.array([[0.0, 0.5, 0.04], [1.0, 0.4, 0.035]])
    columns = ["epoch", "train_loss", "val_mse"]
    page = training_curves_png(history_frame(history, columns), "two_tower", 1)
    report = training_curves_png(history_frame(history.copy(), columns), "two_tower", 1)
    assert report == page and page.startswith(b"\x89PNG") and chart_cache_info()[:2] == (1, 1)
    with pytest.raises(ValueError, match=r"training_history has shape \(2, 3\), expected \(epochs, 2\)"):
        history_frame(history, ["epoch", "train_loss"])
