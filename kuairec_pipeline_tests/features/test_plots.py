"""Exact histogram counts of the watch ratio and their PNG (filtered_ratios metadata and the HTML report)."""

from __future__ import annotations

import numpy as np
import polars as pl

from kuairec_pipeline.features.plots import BINS, PLOT_RANGE, histogram_counts, watch_ratio_histogram_png


def test_counts_match_numpy_histogram_on_every_row_with_odd_values():
    values = np.random.default_rng(0).lognormal(-0.3, 0.9, 300_000)
    values[:10] = [np.nan, np.inf, 573.0, 0.0, 3.0, 3.0, 5.0, 5.1, 1.0, 2.0]
    frame = pl.DataFrame({"watch_ratio": values}).with_columns(
        pl.when(pl.int_range(pl.len()) == 11).then(None).otherwise(pl.col("watch_ratio")).alias("watch_ratio")
    )
    counts = histogram_counts(frame.lazy())
    kept = np.isfinite(values)
    kept[11] = False  # row 11 is null in the frame
    finite = values[kept]
    expected, _ = np.histogram(finite, bins=BINS, range=PLOT_RANGE)
    np.testing.assert_array_equal(counts.counts, expected)
    assert counts.total == 300_000  # every row, not a sample
    assert counts.missing == 3  # NaN, inf and the null
    assert counts.overflow == int(np.sum(finite > PLOT_RANGE[1]))
    assert counts.counts.sum() + counts.overflow + counts.missing == counts.total


def test_png_is_small_and_draws_empty_inputs():
    values = np.random.default_rng(1).lognormal(-0.3, 0.9, 50_000)
    png = watch_ratio_histogram_png(histogram_counts(values), histogram_counts(values[values <= 3.0]), 3.0)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) < 100_000
    empty = histogram_counts(np.array([]))
    assert empty.total == 0 and empty.counts.sum() == 0
    assert watch_ratio_histogram_png(empty, empty, None).startswith(b"\x89PNG")
