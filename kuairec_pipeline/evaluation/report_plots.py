"""PNG charts of the HTML report and of asset metadata: training curves and catalogue coverage."""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from kuairec_pipeline.charts import agg_figure, memoized_chart, png_bytes

LOSS_COLUMNS = ("train_loss",)  # plotted on the left panel; every other non-epoch column is a validation metric


def history_frame(history: np.ndarray, columns: list[str]) -> pl.DataFrame:
    """A training history as the curves take it: one float64 column per name, ``epoch`` (when present) as Int32.

    Parameters
    ----------
    history : numpy.ndarray, shape (epochs, len(columns))
        One row per epoch, as a model's ``training_history()`` returns it and its bundle stores it.
    columns : list of str
        The column names, in order.

    Returns
    -------
    polars.DataFrame
        The same frame for the asset page's chart and the report's, so the report reuses the drawn chart
        (:func:`kuairec_pipeline.charts.memoized_chart`).

    Raises
    ------
    ValueError
        When ``history`` is not (epochs, len(columns)).
    """
    history = np.asarray(history, dtype=np.float64)
    if history.ndim != 2 or history.shape[1] != len(columns):
        raise ValueError(f"training_history has shape {history.shape}, expected (epochs, {len(columns)}) for {columns}")
    frame = pl.DataFrame({name: history[:, i] for i, name in enumerate(columns)})
    return frame.with_columns(pl.col("epoch").cast(pl.Int32)) if "epoch" in frame.columns else frame


@memoized_chart
def training_curves_png(history: pl.DataFrame, title: str, best_epoch: int | None = None, dpi: int = 80) -> bytes:
    """Per-epoch training loss (left) and validation metrics (right) of one trained model.

    Parameters
    ----------
    history : polars.DataFrame
        One row per epoch: an ``epoch`` column (0-based) and any float columns (``train_loss``, ``val_mse``,
        ``val_mae`` for the two-tower; other models may add theirs). NaN values are not drawn.
    title : str
        Figure title (the model name).
    best_epoch : int, optional
        Marked with a dotted line: the epoch whose weights were kept.

    Returns
    -------
    bytes
        A PNG.
    """
    # Short tick labels (losses and metrics below 10, epoch numbers): fixed margins fit them.
    margins = {"left": 0.08, "right": 0.98, "bottom": 0.16, "top": 0.9, "wspace": 0.22}
    figure = agg_figure(8.0, 3.0, dpi, margins=margins)
    loss_axis, val_axis = figure.subplots(1, 2)
    epochs = (history["epoch"] + 1).to_list() if "epoch" in history.columns else list(range(1, history.height + 1))
    metrics = [c for c in history.columns if c != "epoch"]
    for axis, names, label in (
        (loss_axis, [c for c in metrics if c in LOSS_COLUMNS], "training"),
        (val_axis, [c for c in metrics if c not in LOSS_COLUMNS], "validation"),
    ):
        for name in names:
            values = [math.nan if v is None else float(v) for v in history[name].to_list()]
            axis.plot(epochs, values, marker="o", markersize=3, label=name)
        if best_epoch is not None and best_epoch >= 0:
            axis.axvline(best_epoch + 1, color="grey", linestyle=":", linewidth=1, label="kept epoch")
        axis.set_xlabel("epoch")
        axis.set_title(f"{title}: {label}", fontsize=10)
        if names:
            axis.legend(fontsize=8)
    return png_bytes(figure)


@memoized_chart
def coverage_bar_png(coverage: dict[str, float], k: int, dpi: int = 80) -> bytes:
    """Horizontal bars: share of the catalogue appearing in at least one top-``k`` list, per model.

    Parameters
    ----------
    coverage : model name -> catalogue coverage in [0, 1].
    k : the list length the coverage was measured at (axis label).
    dpi : resolution, dots per inch.

    Returns
    -------
    bytes of a PNG image.
    """
    models = list(coverage)
    figure = agg_figure(6.0, 0.4 * len(models) + 1.2, dpi)
    axis = figure.subplots()
    positions = list(range(len(models)))
    axis.barh(positions, [coverage[m] for m in models], color="#55A868")
    axis.set_yticks(positions, labels=models)
    axis.invert_yaxis()
    axis.set_xlim(0, 1)
    axis.set_title(f"catalogue coverage@{k} (higher is more diverse)", fontsize=10)
    for position, model in zip(positions, models, strict=False):
        axis.annotate(
            f"{coverage[model]:.1%}",
            (coverage[model], position),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
        )
    return png_bytes(figure)
