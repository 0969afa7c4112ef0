"""The hybrid assets: late fusion (``hybrid_fusion``), embedding concatenation (``hybrid_concat``) and
``hybrid_model``, which holds whichever of the two ranks better on the selection slice.

The models live in :mod:`kuairec_pipeline.models.hybrid_fusion` and :mod:`kuairec_pipeline.models.hybrid_concat`;
the choice in :func:`kuairec_pipeline.evaluation.selection.select_among`. These assets only read the fitted
components' bundles, call those, and store the result.
"""

import numpy as np
import polars as pl
from dagster import AssetExecutionContext, AssetIn, Config, MetadataValue, asset
from pydantic import Field

from kuairec_pipeline.evaluation.metrics import validation_metrics
from kuairec_pipeline.evaluation.selection import select_among
from kuairec_pipeline.models.base import Recommender
from kuairec_pipeline.models.data import build_prepared_data, build_training_data
from kuairec_pipeline.models.hybrid_concat import HybridConcatConfig, HybridConcatRecommender
from kuairec_pipeline.models.hybrid_fusion import DEFAULT_COMPONENTS, HybridFusionConfig, HybridFusionRecommender
from kuairec_pipeline.models.registry import TRAINED_MODELS
from kuairec_pipeline.models.two_tower import HISTORY_COLUMNS
from kuairec_pipeline.orchestration.lineage import require_same_tables, stamped
from kuairec_pipeline.orchestration.metadata import rounded, training_summary
from kuairec_pipeline.orchestration.versions import code_version

GROUP = "models"
NUMPY = "numpy_io_manager"
# asset key -> registry name of each component a hybrid may read
COMPONENT_ASSETS = {TRAINED_MODELS[name].asset_key: name for name in ("linear", "als", "two_tower", "sequential")}


def _components(context: AssetExecutionContext, bundles: dict[str, dict[str, np.ndarray]], filtered_ratios):
    require_same_tables(bundles, filtered_ratios=filtered_ratios)
    return {
        COMPONENT_ASSETS[key]: TRAINED_MODELS[COMPONENT_ASSETS[key]].model_class().from_bundle(bundle, key)
        for key, bundle in bundles.items()
    }


def _finish(context: AssetExecutionContext, model: Recommender, data, tables: dict[str, pl.DataFrame]):
    scores = validation_metrics(model, data)
    context.add_output_metadata({f"val_{name}": rounded(value) for name, value in scores.items()})
    return stamped(context, model.bundle(), data, **tables)


class HybridFusionAssetConfig(Config):
    l2: float = Field(
        default=HybridFusionConfig.l2,
        ge=0.0,
        description="Ridge penalty on the blend weights (fitted on val), per row. Allowed: >= 0.",
    )
    non_negative: bool = Field(
        default=HybridFusionConfig.non_negative,
        description="Keep every blend weight >= 0 (a component never counts against its own score).",
    )


@asset(
    group_name=GROUP,
    code_version=code_version("hybrid_fusion"),
    io_manager_key=NUMPY,
    kinds={"numpy"},
    ins={key: AssetIn() for key in COMPONENT_ASSETS},
)
def hybrid_fusion(
    context: AssetExecutionContext,
    config: HybridFusionAssetConfig,
    filtered_ratios: pl.DataFrame,
    user_features: pl.DataFrame,
    video_features: pl.DataFrame,
    **component_bundles: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Late fusion: linear, calibrated ALS, two-tower and sequential predictions blended with weights fitted on
    the tuning val slice (the sequential one's from the history before each val row)."""
    components = _components(context, component_bundles, filtered_ratios)
    data = build_training_data(filtered_ratios, user_features, video_features)
    fusion_config = HybridFusionConfig(components=DEFAULT_COMPONENTS, l2=config.l2, non_negative=config.non_negative)
    model = HybridFusionRecommender.fit_from_components(components, data, fusion_config)
    context.add_output_metadata(
        {
            "blend_intercept": rounded(model.intercept),
            **{f"weight_{name}": rounded(w) for name, w in zip(model.config.components, model.weights, strict=True)},
        }
    )
    tables = {"filtered_ratios": filtered_ratios, "user_features": user_features, "video_features": video_features}
    return _finish(context, model, data, tables)


class HybridConcatAssetConfig(Config):
    hidden_dim: int = Field(
        default=HybridConcatConfig.hidden_dim, ge=1, le=1024, description="Deep part's hidden units. Allowed: 1..1024."
    )
    category_dim: int = Field(
        default=HybridConcatConfig.category_dim,
        ge=1,
        le=256,
        description="Embedding width of each categorical feature column. Allowed: 1..256.",
    )
    dropout: float = Field(
        default=HybridConcatConfig.dropout, ge=0.0, lt=1.0, description="Dropout on the hidden units. Allowed: [0, 1)."
    )
    learning_rate: float = Field(
        default=HybridConcatConfig.learning_rate, gt=0.0, le=1.0, description="AdamW learning rate. Allowed: (0, 1]."
    )
    batch_size: int = Field(
        default=HybridConcatConfig.batch_size, ge=1, le=1_048_576, description="Rows per step. Allowed: 1..1048576."
    )
    max_epochs: int = Field(
        default=HybridConcatConfig.max_epochs, ge=1, le=1000, description="Upper bound on epochs. Allowed: 1..1000."
    )
    early_stopping_patience: int = Field(
        default=HybridConcatConfig.early_stopping_patience,
        ge=1,
        le=1000,
        description="Epochs without validation improvement before stopping. Allowed: 1..1000.",
    )
    max_train_rows: int = Field(
        default=HybridConcatConfig.max_train_rows,
        ge=0,
        description="Training rows sampled for the network (0 = all). Allowed: >= 0.",
    )
    seed: int = Field(
        default=HybridConcatConfig.seed,
        ge=0,
        le=2**32 - 1,
        description="Seed of the row sample, initialisation and batch order. Allowed: 0..2**32-1.",
    )
    accelerator: str = Field(
        default=HybridConcatConfig.accelerator,
        pattern=r"^(auto|cpu|gpu|cuda|mps)$",
        description="Lightning accelerator: 'auto' takes a GPU when present, else the CPU. "
        "Allowed: auto, cpu, gpu, cuda, mps.",
    )


@asset(
    group_name=GROUP,
    code_version=code_version("hybrid_concat"),
    io_manager_key=NUMPY,
    kinds={"pytorch", "numpy"},
    ins={key: AssetIn() for key in ("als_factors", "two_tower_embeddings", "sequential_model")},
)
def hybrid_concat(
    context: AssetExecutionContext,
    config: HybridConcatAssetConfig,
    filtered_ratios: pl.DataFrame,
    user_features: pl.DataFrame,
    video_features: pl.DataFrame,
    **component_bundles: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Embedding concatenation: a Wide & Deep network (Lightning) over the ALS vectors, the two-tower embeddings,
    the sequential state and video vectors and the side features; early stopping on the tuning val slice."""
    components = _components(context, component_bundles, filtered_ratios)
    data = build_training_data(filtered_ratios, user_features, video_features)
    from kuairec_pipeline.models.progress import quiet_lightning_notices  # imports Lightning: only when training

    with quiet_lightning_notices():
        model = HybridConcatRecommender.fit_from_components(
            components, data, HybridConcatConfig(**config.model_dump()), progress=context.log.info
        )
    epochs = int(model.history.shape[0])
    context.add_output_metadata(
        {
            **training_summary(model.name, model.history, HISTORY_COLUMNS, model.best_epoch),
            "best_epoch": int(model.best_epoch),
            # early stopping must also stop: say when every allowed epoch ran
            "stop_reason": "max_epochs" if epochs >= model.config.max_epochs else "early_stopping",
        }
    )
    tables = {"filtered_ratios": filtered_ratios, "user_features": user_features, "video_features": video_features}
    return _finish(context, model, data, tables)


@asset(
    group_name=GROUP,
    code_version=code_version("hybrid_model"),
    io_manager_key=NUMPY,
    kinds={"numpy"},
    ins={"hybrid_fusion": AssetIn(), "hybrid_concat": AssetIn()},
)
def hybrid_model(
    context: AssetExecutionContext,
    hybrid_fusion: dict[str, np.ndarray],
    hybrid_concat: dict[str, np.ndarray],
    filtered_ratios: pl.DataFrame,
    user_features: pl.DataFrame,
    video_features: pl.DataFrame,
) -> dict[str, np.ndarray]:
    """The served hybrid: the bundle of whichever of ``hybrid_fusion`` and ``hybrid_concat`` has the better
    selection-slice ndcg@10 (the metrics table's rule). Not a metrics row of its own (it would repeat the winner's);
    ``kuairec recommend --model hybrid`` reads it."""
    bundles = {"hybrid_fusion": hybrid_fusion, "hybrid_concat": hybrid_concat}
    require_same_tables(bundles, filtered_ratios=filtered_ratios)
    candidates = [TRAINED_MODELS[key].model_class().from_bundle(bundle, key) for key, bundle in bundles.items()]
    winner, table = select_among(candidates, build_prepared_data(filtered_ratios, user_features, video_features))
    scores = {
        f"selection_{row['metric']}_{row['model']}": rounded(row["value"])
        for row in table.filter(pl.col("metric").is_in(["ndcg@10", "rmse"])).iter_rows(named=True)
    }
    context.add_output_metadata(
        {"served_hybrid": MetadataValue.text(winner), "chosen_on": "selection ndcg@10 (tie: rmse)", **scores}
    )
    return bundles[winner]
