"""Metrics and baselines: one evaluation (``metrics.evaluate``) for every model, baselines behind the same
Recommender contract (``baselines``), and the metrics table and chart (``report``). No Dagster here."""

from kuairec_pipeline.evaluation.metrics import evaluate, evaluate_models

__all__ = ["evaluate", "evaluate_models"]
