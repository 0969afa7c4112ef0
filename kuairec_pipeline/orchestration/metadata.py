"""Asset metadata the Dagster UI shows well: inline images, rounded numbers, one-line summaries.

Numbers are rounded (``DIGITS`` decimals) because the UI prints floats with all 17 digits. Plain numeric entries
are also what the asset page's "Plots" tab draws across materializations, so headline metrics are emitted as
numbers (visible without opening a dialog), next to the markdown table and chart.
"""

from __future__ import annotations

import base64
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl
from dagster import DataVersion, MetadataValue, Output

DIGITS = 4
HEADLINE_METRICS = ("rmse", "ndcg@10")  # test metrics emitted per model as plottable numbers


def png_markdown(png: bytes, title: str) -> MetadataValue:
    """Markdown holding the PNG as a data URI: the one way to show an image inline in asset metadata."""
    return MetadataValue.md(f"![{title}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})")


def rounded(value: float, digits: int = DIGITS) -> MetadataValue:
    """A float metadata entry rounded to ``digits`` decimals (NaN stays NaN)."""
    return MetadataValue.float(round(float(value), digits))


def rounded_floats(values: Mapping[str, object], digits: int = DIGITS) -> dict[str, object]:
    """``values`` with every float rounded to ``digits`` decimals (other values unchanged)."""
    return {key: round(value, digits) if isinstance(value, float) else value for key, value in values.items()}


def array_summary(arrays: Mapping[str, np.ndarray]) -> dict[str, MetadataValue]:
    """One text entry for a NumPy bundle instead of one row per array.

    Top-level arrays are listed with their shapes; arrays under a dotted prefix (``weights.*``, ``als.*``) are
    counted per prefix. Returns ``{"arrays": text, "size_bytes": int}``.
    """
    listed, grouped = [], {}
    for name, array in arrays.items():
        if name.startswith("__"):
            continue  # the bundle's own name and config (JSON), not data
        prefix, dot, _ = name.partition(".")
        if dot:
            grouped[prefix] = grouped.get(prefix, 0) + 1
        else:
            listed.append(f"{name} {tuple(array.shape)}")
    listed += [f"{prefix}.*: {count} arrays" for prefix, count in grouped.items()]
    return {
        "arrays": MetadataValue.text("; ".join(listed)),
        "size_bytes": MetadataValue.int(int(sum(a.nbytes for a in arrays.values()))),
    }


def training_summary(
    model: str, history: np.ndarray, columns: Sequence[str], best_epoch: int
) -> dict[str, MetadataValue]:
    """Epochs, the kept epoch, the best and final losses (rounded) and the training curve of a fitted model.

    ``history`` is (epochs, len(columns)) with an ``epoch`` column; ``best_epoch`` is 0-based (-1: none, or the
    fixed start kept: then no ``best_val_mse``); ``kept_epoch`` is 1-based (0: the start).
    """
    from kuairec_pipeline.evaluation.report_plots import history_frame, training_curves_png

    frame = history_frame(history, list(columns))  # as the report builds it: the report reuses this chart
    metadata: dict[str, MetadataValue] = {
        "epochs_trained": MetadataValue.int(frame.height),
        "kept_epoch": MetadataValue.int(best_epoch + 1),
    }
    if frame.height:
        last = frame.row(frame.height - 1, named=True)
        for name in columns:
            if name != "epoch" and not np.isnan(last[name]):
                metadata[f"final_{name}"] = rounded(last[name])
        # With the start kept (best_epoch -1) no epoch's val MSE is the kept model's: naming the lowest would mislead.
        if "val_mse" in frame.columns and frame["val_mse"].is_not_nan().any() and best_epoch >= 0:
            metadata["best_val_mse"] = rounded(frame["val_mse"].fill_nan(None).min())
        metadata["training_curve"] = png_markdown(training_curves_png(frame, model, best_epoch), "training curve")
    return metadata


def headline_metrics(test: pl.DataFrame, metrics: Sequence[str] = HEADLINE_METRICS) -> dict[str, MetadataValue]:
    """``<metric> <model>`` -> rounded test value, for every model that has the metric (asset-page numbers)."""
    chosen = test.filter(pl.col("metric").is_in(list(metrics)))
    return {
        f"{metric} {model}": rounded(value)
        for model, metric, value in chosen.select("model", "metric", "value").iter_rows()
    }


def versioned_output(value: object, version: str, metadata: dict | None = None) -> Output:
    """``Output(value)`` with an explicit data version (a content fingerprint), so the UI marks what is downstream
    of changed data as stale. ``data_version`` is beta in Dagster 1.13; we use it knowingly, so its notice is
    silenced here and nowhere else."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Parameter `data_version`.*beta")
        return Output(value, data_version=DataVersion(version), metadata=metadata or {})
