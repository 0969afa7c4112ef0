"""Which trained model is served: the one that ranks best on the selection slice, which no model saw.

The validation window is split by user into a tuning slice (``val``: early stopping, blend fitting) and a
selection slice (``selection``); see docs/DESIGN.md, "Model choice". Choosing on the tuning slice would favour
the models that fitted it (the hybrid's blend weights are fitted there).
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from kuairec_pipeline.evaluation.metrics import selection_metrics
from kuairec_pipeline.models.base import Recommender
from kuairec_pipeline.models.data import PreparedData
from kuairec_pipeline.models.registry import SERVABLE_MODELS
from kuairec_pipeline.target import SPLIT_SELECTION

SELECTION_METRIC = "ndcg@10"  # a recommender is served for its lists, so the choice is made on a ranking metric
SELECTION_TIE_BREAK = "rmse"


def select_served_model(metrics_table: pl.DataFrame) -> str:
    """The servable trained model with the highest selection-slice ndcg@10 (lower selection rmse, then name, on a tie).

    Ablations (registry entries with ``servable=False``) are evaluated but never chosen.

    Parameters
    ----------
    metrics_table : polars.DataFrame
        The long ``metrics`` table (``model``, ``split``, ``metric``, ``value``, ``count``).

    Returns
    -------
    str
        A name from :data:`~kuairec_pipeline.models.registry.SERVABLE_MODELS`.

    Raises
    ------
    ValueError
        When no trained model has a selection ndcg@10 (e.g. the selection slice is empty).
    """
    selection = metrics_table.filter(
        (pl.col("split") == SPLIT_SELECTION) & pl.col("model").is_in(list(SERVABLE_MODELS))
    )
    candidates = (
        selection.filter(pl.col("metric") == SELECTION_METRIC)
        .select("model", ndcg="value")
        .join(
            selection.filter(pl.col("metric") == SELECTION_TIE_BREAK).select("model", rmse="value"),
            on="model",
            how="left",
        )
        .filter(pl.col("ndcg").is_not_nan())
    )
    if candidates.is_empty():
        raise ValueError(f"metrics has no {SPLIT_SELECTION} {SELECTION_METRIC} for any trained model")
    return candidates.sort(["ndcg", "rmse", "model"], descending=[True, False, False]).row(0, named=True)["model"]


def select_among(models: Sequence[Recommender], data: PreparedData) -> tuple[str, pl.DataFrame]:
    """The model of ``models`` that :func:`select_served_model` would serve, judged on ``data.selection`` alone.

    Used where a few candidates compete for one asset (``hybrid_model``: late fusion vs embedding concatenation)
    before the metrics table exists; the rule and the numbers are the metrics table's own (selection ndcg@10 from
    :func:`~kuairec_pipeline.evaluation.metrics.selection_metrics`, lower selection rmse then name on a tie).

    Parameters
    ----------
    models : fitted servable models with distinct names.
    data : the prepared data; only its ``selection`` rows are read.

    Returns
    -------
    (the winner's name, the long table of the candidates' selection metrics: ``model``, ``split``, ``metric``,
    ``value``, ``count``).

    Raises
    ------
    ValueError
        When no candidate has a selection ndcg@10 (e.g. the selection slice is empty).
    """
    rows = [
        (model.name, SPLIT_SELECTION, metric, float(value), int(count))
        for model in models
        for metric, (value, count) in selection_metrics(model, data).items()
    ]
    table = pl.DataFrame(rows, schema=["model", "split", "metric", "value", "count"], orient="row")
    return select_served_model(table), table
