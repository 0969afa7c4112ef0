"""The metrics table (markdown) and chart (PNG) shown with the ``metrics`` asset, from evaluate()'s long frame."""

from __future__ import annotations

import math
from collections.abc import Sequence

import polars as pl

from kuairec_pipeline.charts import agg_figure, memoized_chart, png_bytes
from kuairec_pipeline.evaluation.metrics import COUNT_METRICS, LOWER_IS_BETTER, higher_is_better
from kuairec_pipeline.target import SPLIT_TEST

REFERENCE_MODELS = ("oracle",)  # a ceiling, not a contender: never bolded as "best"
_FAMILY_ORDER = (
    "mae",
    "rmse",
    "mae_raw5",
    "rmse_raw5",
    "ndcg",
    "recall",
    "precision",
    "catalogue_coverage",
    "top_item_share",
    "novelty",
    "gini",
)


def _column_name(split: str, metric: str) -> str:
    return metric if split == SPLIT_TEST else f"{metric} ({split})"


def _column_order(split: str, metric: str) -> tuple:
    family, _, k = metric.partition("@")
    rank = _FAMILY_ORDER.index(family) if family in _FAMILY_ORDER else len(_FAMILY_ORDER)
    return (split != SPLIT_TEST, split, rank, int(k) if k.isdigit() else 0, metric)


def _format(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.4f}"


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def metrics_markdown(frame: pl.DataFrame, reference_models: Sequence[str] = REFERENCE_MODELS) -> str:
    """Markdown table: one row per model (first-seen order), one column per metric (``metric (split)`` for splits
    other than test); the best value per accuracy column in bold among the models not in ``reference_models``
    (beyond-accuracy columns are descriptive: none bolded). A line under the table says how many users were ranked."""
    scored = frame.filter(~pl.col("metric").is_in(list(COUNT_METRICS)))
    models = scored["model"].unique(maintain_order=True).to_list()
    keys = sorted({(s, m) for s, m in scored.select("split", "metric").iter_rows()}, key=lambda k: _column_order(*k))
    values = {
        (model, split, metric): value
        for model, split, metric, value in scored.select("model", "split", "metric", "value").iter_rows()
    }

    best: dict[tuple[str, str], float] = {}
    for split, metric in keys:
        if metric not in LOWER_IS_BETTER and not higher_is_better(metric):
            continue
        contenders = [values.get((model, split, metric)) for model in models if model not in reference_models]
        contenders = [v for v in contenders if v is not None and not math.isnan(v)]
        if contenders:
            best[(split, metric)] = min(contenders) if metric in LOWER_IS_BETTER else max(contenders)

    header = "| model | " + " | ".join(_escape(_column_name(s, m)) for s, m in keys) + " |"
    rule = "|---|" + "|".join("---:" for _ in keys) + "|"
    lines = [header, rule]
    for model in models:
        cells = []
        for split, metric in keys:
            value = values.get((model, split, metric))
            text = _format(value) if value is not None else ""
            if model not in reference_models and value is not None and best.get((split, metric)) == value:
                text = f"**{text}**"
            cells.append(text)
        label = _escape(model) + (" (reference)" if model in reference_models else "")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    counts = frame.filter(pl.col("metric").is_in(list(COUNT_METRICS)) & (pl.col("split") == SPLIT_TEST))
    if not counts.is_empty():
        first = counts.filter(pl.col("model") == counts["model"][0])
        by_name = dict(zip(first["metric"], first["value"], strict=False))
        lines.append("")
        lines.append(
            f"Ranking metrics average over {int(by_name.get('users_ranked', 0))} test users with a positive; "
            f"{int(by_name.get('users_without_positive', 0))} without one are skipped."
        )
    return "\n".join(lines) + "\n"


@memoized_chart
def metrics_bar_chart_png(frame: pl.DataFrame, metrics: Sequence[str] = ("rmse", "ndcg@10"), dpi: int = 100) -> bytes:
    """PNG bytes: one horizontal bar panel per test metric, one bar per model (first-seen order).

    Parameters
    ----------
    frame : the long metrics table (``model, split, metric, value, count``); test rows are plotted.
    metrics : the metric names to plot, one panel each.
    dpi : resolution of the PNG, dots per inch.

    Returns
    -------
    bytes of a PNG image.
    """
    test = frame.filter(pl.col("split") == SPLIT_TEST)
    models = test["model"].unique(maintain_order=True).to_list()
    figure = agg_figure(4.5 * len(metrics), 0.45 * len(models) + 1.6, dpi)
    axes = figure.subplots(1, len(metrics), squeeze=False)[0]
    for axis, metric in zip(axes, metrics, strict=False):
        chosen = dict(test.filter(pl.col("metric") == metric).select("model", "value").iter_rows())
        heights = [chosen.get(model, float("nan")) for model in models]
        positions = list(range(len(models)))
        axis.barh(positions, [0.0 if math.isnan(h) else h for h in heights], color="#4C72B0")
        axis.set_yticks(positions, labels=models)
        axis.invert_yaxis()  # first model on top, like the table
        direction = "lower is better" if metric in LOWER_IS_BETTER else "higher is better"
        axis.set_title(f"{metric} ({direction})")
        for position, height in zip(positions, heights, strict=False):
            axis.annotate(
                _format(height),
                (0 if math.isnan(height) else height, position),
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
            )
        axis.margins(x=0.2)
    return png_bytes(figure)
