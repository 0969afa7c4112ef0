"""The watch-ratio distribution before and after the outlier filter: exact bin counts and their PNG.

The counts are computed over every row (a streaming group-by on the bin index, so the 12.5 M rows of the real
big_matrix are never held as a NumPy array), so the titles and bars show true counts, not a sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from kuairec_pipeline.charts import agg_figure, memoized_chart, png_bytes

PLOT_RANGE = (0.0, 5.0)  # watch ratios above this are counted in a note, not drawn: the tail reaches ~570
BINS = 100


@dataclass(frozen=True)
class HistogramCounts:
    """Exact counts of a column over ``BINS`` equal bins on ``PLOT_RANGE``.

    ``counts[i]`` is the number of finite values in ``[edges[i], edges[i+1])`` (the last bin closed);
    ``total`` counts every row, ``overflow`` the finite values above the range, ``missing`` nulls and NaNs.
    """

    edges: np.ndarray  # float64, shape (BINS + 1,)
    counts: np.ndarray  # int64, shape (BINS,)
    total: int
    overflow: int
    missing: int

    def __post_init__(self) -> None:
        if self.counts.shape != (self.edges.size - 1,):
            raise ValueError(f"counts has shape {self.counts.shape}, expected ({self.edges.size - 1},)")
        if self.total < int(self.counts.sum()) + self.overflow + self.missing:
            raise ValueError("total is smaller than the counted values")


def histogram_counts(
    frame: pl.LazyFrame | pl.DataFrame | pl.Series | np.ndarray, column: str = "watch_ratio"
) -> HistogramCounts:
    """Exact histogram of ``column`` over ``PLOT_RANGE`` in ``BINS`` bins.

    Parameters
    ----------
    frame : LazyFrame, DataFrame, Series or ndarray
        The values (a frame holding ``column``, or the values themselves). Lazy frames run on the streaming engine.
    column : str
        Column to count when ``frame`` is a frame.

    Returns
    -------
    HistogramCounts
        Counts per bin, rows in total, values above the range, and null or NaN values. Negative values
        (none in KuaiRec) are counted in ``total`` only.
    """
    if isinstance(frame, np.ndarray | pl.Series):
        frame = pl.DataFrame({column: np.asarray(frame, dtype=np.float64).ravel()})
    low, high = PLOT_RANGE
    width = (high - low) / BINS
    value = pl.col(column).cast(pl.Float64)
    finite = value.is_not_null() & value.is_finite()
    in_range = finite & (value >= low) & (value <= high)
    # bin index; the right edge belongs to the last bin, as in numpy.histogram
    index = ((value - low) / width).floor().cast(pl.Int64).clip(0, BINS - 1)
    lazy = frame.lazy()
    total, overflow, missing = (
        lazy.select(
            pl.len().alias("total"),
            (finite & (value > high)).sum().alias("overflow"),
            (~finite.fill_null(False)).sum().alias("missing"),
        )
        .collect(engine="streaming")
        .row(0)
    )
    binned = lazy.filter(in_range).group_by(index.alias("bin")).agg(pl.len().alias("n")).collect(engine="streaming")
    counts = np.zeros(BINS, dtype=np.int64)
    counts[binned["bin"].to_numpy()] = binned["n"].to_numpy()
    return HistogramCounts(np.linspace(low, high, BINS + 1), counts, int(total), int(overflow or 0), int(missing or 0))


@memoized_chart
def watch_ratio_histogram_png(
    before: HistogramCounts,
    after: HistogramCounts,
    max_watch_ratio: float | None,
    labels: tuple[str, str] = ("before filtering", "after filtering (train)"),
) -> bytes:
    """Two stacked histograms (before / after filtering) on a shared 0..5 axis, the filter threshold marked.

    Parameters
    ----------
    before, after : HistogramCounts
        Exact counts (see :func:`histogram_counts`); titles give their true row totals.
    max_watch_ratio : float or None
        The outlier threshold, drawn as a dashed line (none when ``None``).
    labels : tuple of str
        Panel titles.

    Returns
    -------
    bytes
        A PNG, a few tens of KB.
    """
    figure = agg_figure(6.4, 4.8, 80)
    axes = figure.subplots(2, 1, sharex=True)
    for axis, title, counts in zip(axes, labels, (before, after), strict=False):
        axis.stairs(counts.counts, counts.edges, fill=True, color="tab:blue", alpha=0.8)
        if max_watch_ratio is not None:
            axis.axvline(
                max_watch_ratio, color="tab:red", linestyle="--", linewidth=1, label=f"filter: max {max_watch_ratio:g}"
            )
            axis.legend(loc="center right", fontsize=8)
        axis.set_title(f"{title}: {counts.total:,} rows (all rows counted)", fontsize=10)
        axis.set_ylabel("rows")
        share = counts.overflow / counts.total if counts.total else 0.0
        axis.text(
            0.98,
            0.85,
            f"> {PLOT_RANGE[1]:g}: {counts.overflow:,} rows ({share:.2%}, not drawn)",
            transform=axis.transAxes,
            ha="right",
            fontsize=8,
        )
    axes[-1].set_xlabel("watch ratio")
    axes[-1].set_xlim(*PLOT_RANGE)
    return png_bytes(figure)
