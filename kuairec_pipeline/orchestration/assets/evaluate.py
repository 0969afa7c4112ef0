"""Evaluation and serving: one metrics table for every model and baseline, and the top 50 per user."""

import numpy as np
import polars as pl
from dagster import AssetExecutionContext, AssetIn, AssetSelection, AutomationCondition, Config, MetadataValue, asset
from pydantic import Field

from kuairec_pipeline import provenance
from kuairec_pipeline.evaluation import baselines, report
from kuairec_pipeline.evaluation.metrics import evaluate_models, seen_matrix, shared_inputs
from kuairec_pipeline.evaluation.reranking import CoverageReranked, coverage_rows, served_penalty
from kuairec_pipeline.evaluation.selection import select_served_model
from kuairec_pipeline.models.components import sharing_components
from kuairec_pipeline.models.data_store import prepared_from_arrays
from kuairec_pipeline.models.registry import TRAINED_MODELS
from kuairec_pipeline.orchestration.lineage import require_current
from kuairec_pipeline.orchestration.metadata import headline_metrics, png_markdown
from kuairec_pipeline.orchestration.report_step import write_run_report
from kuairec_pipeline.orchestration.resources import KuaiRecResource
from kuairec_pipeline.orchestration.versions import code_version
from kuairec_pipeline.recommend import build_recommendations
from kuairec_pipeline.target import SPLIT_SELECTION

GROUP = "evaluate"
# Re-run by the automation sensor (when turned on) once a model was re-trained. Updates of the prepared tables alone
# are ignored: the models trained on the old tables would be refused as stale until they are re-trained too.
FOLLOWS_MODELS = AutomationCondition.eager().ignore(
    AssetSelection.assets("training_arrays", "evaluation_arrays", "planted_truth")
)
# The served model is the trained model with the best ndcg@10 on the selection slice (a slice no model fitted,
# stopped early or blended on): it serves ranked lists, so it is chosen on how it ranks each selection user's own
# videos; the selection rmse breaks a tie (evaluation/selection.py).


# Every trained model of the registry is an input: adding a model there adds it to the metrics and to the choice.
MODEL_INS = {entry.asset_key: AssetIn() for entry in TRAINED_MODELS.values()}


def _by_model(bundles_by_asset: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, np.ndarray]]:
    return {name: bundles_by_asset[entry.asset_key] for name, entry in TRAINED_MODELS.items()}


def _trained(bundles: dict[str, dict[str, np.ndarray]]):
    return [
        TRAINED_MODELS[name].model_class().from_bundle(bundle, TRAINED_MODELS[name].asset_key)
        for name, bundle in bundles.items()
    ]


class MetricsConfig(Config):
    target_coverage: float = Field(
        default=0.2,
        ge=0.0,
        le=1.0,
        description="Catalogue coverage the served top-10 lists should reach by coverage re-ranking (0 = off). "
        "Allowed: 0..1.",
    )
    max_selection_ndcg_loss: float = Field(
        default=0.1,
        ge=0.0,
        le=1.0,
        description="Largest relative drop of the served model's selection ndcg@10 the re-ranking may cost. "
        "Allowed: 0..1.",
    )
    max_top_item_share: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="Largest share of users whose served top-10 list may hold the most listed video (1 = no limit). "
        "Allowed: 0..1.",
    )


@asset(
    group_name=GROUP,
    code_version=code_version("metrics"),
    ins=MODEL_INS,
    automation_condition=FOLLOWS_MODELS,
    kinds={"polars", "parquet"},
)
def metrics(
    context: AssetExecutionContext,
    config: MetricsConfig,
    training_arrays: dict[str, np.ndarray],
    evaluation_arrays: dict[str, np.ndarray],
    planted_truth: pl.DataFrame,
    kuairec: KuaiRecResource,
    **model_bundles: dict[str, np.ndarray],
) -> pl.DataFrame:
    """Every model and baseline through one evaluation function, on the same test arrays, via the same scoring
    path recommendations use. Long form: model, metric, value, split (``test`` per docs/DESIGN.md, with the
    beyond-accuracy metrics of the top-10 lists; ``selection`` rows choose the served model; ``val`` pointwise
    rows are the tuning slice the models stopped early on). Also writes the HTML report
    ``$KUAIREC_HOME/reports/report.html``."""
    arrays = {"training_arrays": training_arrays, "evaluation_arrays": evaluation_arrays}
    require_current(context, arrays, model_bundles)
    bundles = _by_model(model_bundles)
    data = prepared_from_arrays(training_arrays, evaluation_arrays)
    models = [*baselines.fit_baselines(data.training, planted_truth), *_trained(bundles)]
    # a hybrid blends the very sequential model evaluated beside it: its rows are predicted once
    with sharing_components(models) as shared:
        time_aware_predictions: dict[str, np.ndarray] = {}  # the served model's are its re-ranking's too
        inputs = shared_inputs(data)  # the test grid and novelty table, for every model and the re-ranking
        table = evaluate_models(models, data, time_aware_predictions=time_aware_predictions, **inputs)
        has_selection = not table.filter(pl.col("split") == SPLIT_SELECTION).is_empty()
        served = select_served_model(table) if has_selection else None
        coverage_note = "none: no served model"
        served_lists = None  # the model whose ranking the recommendations asset serves
        if served is not None:  # the served lists' coverage re-ranking, chosen without the test grid
            (served_model,) = (model for model in models if model.name == served)
            rows, choice = coverage_rows(
                served_model,
                data,
                seen_matrix(data),
                config.target_coverage,
                config.max_selection_ndcg_loss,
                config.max_top_item_share,
                test_predictions=time_aware_predictions.get(served),
                evaluate_inputs=inputs,
            )
            table = pl.concat([table, rows], how="vertical")
            served_lists = (
                CoverageReranked(served_model, choice.penalty, choice.video_means)
                if choice.penalty > 0
                else served_model
            )
            coverage_note = (
                f"penalty {choice.penalty:g}: served top-10 coverage {choice.coverage[0]:.3f} -> "
                f"{choice.coverage[int(choice.penalties.searchsorted(choice.penalty))]:.3f} "
                f"(target {config.target_coverage:g}, top-item share <= {config.max_top_item_share:g}: "
                f"{'reached' if choice.reached_target else 'not reached'})"
            )
        report_path = write_run_report(context, kuairec.settings, table, data, models, bundles, served_lists)
    test = table.filter(pl.col("split") == "test")
    shown = table.filter(pl.col("split").is_in(["test", SPLIT_SELECTION]))
    context.add_output_metadata(
        {
            "metrics_table": MetadataValue.md(report.metrics_markdown(shown)),
            "served_model": MetadataValue.text(served or "none: filtered_ratios has no selection slice"),
            "coverage_reranking": MetadataValue.text(coverage_note),
            "metrics_chart": png_markdown(report.metrics_bar_chart_png(test), "metrics per model"),
            "models": MetadataValue.text(", ".join(m.name for m in models)),
            "shared_components": MetadataValue.int(shared),
            "report": MetadataValue.path(str(report_path)),
            **headline_metrics(test),  # plain numbers: on the asset page and its Plots tab without a dialog
        }
    )
    return table


class RecommendationsConfig(Config):
    k: int = Field(default=50, ge=1, le=10_000, description="Videos recommended per user. Allowed: 1..10000.")
    exclude_seen: bool = Field(
        default=True, description="Leave out videos the user watched in big_matrix (train, val or selection rows)."
    )


@asset(
    group_name=GROUP,
    code_version=code_version("recommendations"),
    ins=MODEL_INS,
    automation_condition=FOLLOWS_MODELS,
    kinds={"polars", "parquet"},
)
def recommendations(
    context: AssetExecutionContext,
    config: RecommendationsConfig,
    metrics: pl.DataFrame,
    training_arrays: dict[str, np.ndarray],
    evaluation_arrays: dict[str, np.ndarray],
    **model_bundles: dict[str, np.ndarray],
) -> pl.DataFrame:
    """The top ``k`` videos for every user from the trained model with the best selection-slice ndcg@10, ranked with
    the coverage penalty the metrics step chose (evaluation/reranking.py); ``score`` is the model's prediction."""
    bundles = _by_model(model_bundles)
    chosen = select_served_model(metrics)
    arrays = {"training_arrays": training_arrays, "evaluation_arrays": evaluation_arrays}
    asset_key = TRAINED_MODELS[chosen].asset_key
    record = require_current(context, arrays, {asset_key: bundles[chosen]})[asset_key]
    (model,) = _trained({chosen: bundles[chosen]})
    penalty = served_penalty(metrics, chosen)
    model = CoverageReranked(model, penalty) if penalty > 0 else model
    data = prepared_from_arrays(training_arrays, evaluation_arrays)
    seen = seen_matrix(data) if config.exclude_seen else None
    table = build_recommendations(model, data.n_users, k=config.k, exclude_seen=seen, scaler=data.scaler, label=chosen)
    context.add_output_metadata(
        {
            "model": chosen,
            "coverage_penalty": penalty,
            "users": int(table["user_id"].n_unique()),
            **({provenance.TRAINED_WITH: record.to_json()} if record is not None else {}),
        }
    )
    return table
