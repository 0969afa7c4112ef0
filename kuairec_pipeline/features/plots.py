"""A small PNG of the watch-ratio distribution before and after the outlier filter (asset metadata)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # never open a display, also inside Dagster workers

import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402

PLOT_RANGE = (0.0, 5.0)  # watch ratios above this are counted in a note, not drawn: the tail reaches ~570
MAX_PLOTTED_SAMPLES = 200_000  # a histogram of a uniform subsample looks the same and draws in milliseconds
BINS = 100


def _sample(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size > MAX_PLOTTED_SAMPLES:
        values = rng.choice(values, size=MAX_PLOTTED_SAMPLES, replace=False)
    return values


def watch_ratio_histogram_png(before: np.ndarray, after: np.ndarray, max_watch_ratio: float) -> bytes:
    """Two stacked histograms (before / after filtering) on a shared 0..5 axis, the filter threshold marked.

    Large inputs are subsampled (fixed seed, so the image is reproducible); the share of values beyond the drawn
    range is written on each panel. Returns PNG bytes, a few tens of KB.
    """
    rng = np.random.default_rng(0)
    panels = (("before filtering", np.asarray(before)), ("after filtering", np.asarray(after)))
    figure, axes = plt.subplots(2, 1, figsize=(6.4, 4.8), dpi=80, sharex=True)
    edges = np.linspace(*PLOT_RANGE, BINS + 1)
    try:
        for axis, (title, values) in zip(axes, panels):
            total = int(np.asarray(values).size)
            sample = _sample(values, rng)
            overflow = float(np.mean(sample > PLOT_RANGE[1])) if sample.size else 0.0
            axis.hist(sample, bins=edges, color="tab:blue", alpha=0.8)
            axis.axvline(
                max_watch_ratio, color="tab:red", linestyle="--", linewidth=1, label=f"max {max_watch_ratio:g}"
            )
            axis.set_title(f"{title}: {total:,} rows", fontsize=10)
            axis.set_ylabel("rows (sample)" if total > MAX_PLOTTED_SAMPLES else "rows")
            axis.text(
                0.98, 0.85, f"> {PLOT_RANGE[1]:g}: {overflow:.2%} (not drawn)",
                transform=axis.transAxes, ha="right", fontsize=8,
            )
            axis.legend(loc="center right", fontsize=8)
        axes[-1].set_xlabel("watch ratio")
        axes[-1].set_xlim(*PLOT_RANGE)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
    finally:
        plt.close(figure)
    return buffer.getvalue()
