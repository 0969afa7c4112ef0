"""Model training assets. Each fits one model from the plain ``models`` package and stores its NumPy bundle."""

import numpy as np
import polars as pl
from dagster import AssetExecutionContext, AssetIn, asset

from kuairec_pipeline.evaluation.metrics import validation_metrics
from kuairec_pipeline.models.als import ALSConfig, ALSRecommender
from kuairec_pipeline.models.data import TrainingData, build_training_data
from kuairec_pipeline.models.hybrid import HybridConfig, HybridRecommender
from kuairec_pipeline.models.linear import LinearConfig, LinearRecommender
from kuairec_pipeline.models.sequential import SequentialConfig, SequentialRecommender, ShuffledSequentialRecommender
from kuairec_pipeline.models.two_tower import HISTORY_COLUMNS, TwoTowerConfig, TwoTowerRecommender
from kuairec_pipeline.orchestration.config_gen import dagster_config, to_source
from kuairec_pipeline.orchestration.lineage import require_same_tables, stamped
from kuairec_pipeline.orchestration.metadata import rounded, training_summary
from kuairec_pipeline.orchestration.resources import KuaiRecResource
from kuairec_pipeline.orchestration.versions import code_version

GROUP = "models"
NUMPY = "numpy_io_manager"
PREPARED = ("filtered_ratios", "user_features", "video_features")


def _log_validation(context: AssetExecutionContext, model, data: TrainingData) -> None:
    scores = validation_metrics(model, data)
    context.add_output_metadata({f"val_{name}": rounded(value) for name, value in scores.items()})


LinearAssetConfig = dagster_config(LinearConfig)


@asset(group_name=GROUP, code_version=code_version("linear_baseline"), io_manager_key=NUMPY, kinds={"scipy", "numpy"})
def linear_baseline(
    context: AssetExecutionContext,
    config: LinearAssetConfig,
    filtered_ratios: pl.DataFrame,
    user_features: pl.DataFrame,
    video_features: pl.DataFrame,
) -> dict[str, np.ndarray]:
    """Ridge regression of the scaled watch ratio on user and video features only (no ids): the original
    study's linear baseline."""
    data = build_training_data(filtered_ratios, user_features, video_features)
    model = LinearRecommender(to_source(config, LinearConfig)).fit(data)
    _log_validation(context, model, data)
    return stamped(
        context,
        model.bundle(),
        data,
        filtered_ratios=filtered_ratios,
        user_features=user_features,
        video_features=video_features,
    )


ALSAssetConfig = dagster_config(ALSConfig)


@asset(group_name=GROUP, code_version=code_version("als_factors"), io_manager_key=NUMPY, kinds={"implicit", "numpy"})
def als_factors(
    context: AssetExecutionContext,
    config: ALSAssetConfig,
    filtered_ratios: pl.DataFrame,
    user_features: pl.DataFrame,
    video_features: pl.DataFrame,
) -> dict[str, np.ndarray]:
    """implicit's ALS on confidences from the scaled watch ratio, plus a calibration (biases and a linear map of
    the dot product, fitted on training rows) so that ALS predicts watch ratios too."""
    data = build_training_data(filtered_ratios, user_features, video_features)
    als_config = to_source(config, ALSConfig)
    model = ALSRecommender(als_config).fit(data)
    _log_validation(context, model, data)
    return stamped(
        context,
        model.bundle(),
        data,
        filtered_ratios=filtered_ratios,
        user_features=user_features,
        video_features=video_features,
    )


TwoTowerAssetConfig = dagster_config(TwoTowerConfig)


@asset(
    group_name=GROUP,
    code_version=code_version("two_tower_embeddings"),
    io_manager_key=NUMPY,
    kinds={"pytorch", "numpy"},
)
def two_tower_embeddings(
    context: AssetExecutionContext,
    config: TwoTowerAssetConfig,
    kuairec: KuaiRecResource,
    filtered_ratios: pl.DataFrame,
    user_features: pl.DataFrame,
    video_features: pl.DataFrame,
) -> dict[str, np.ndarray]:
    """A two-tower network (Lightning) trained on the scaled watch ratio with early stopping on validation.
    Stores user and video embeddings (scoring needs only NumPy) and, beside the asset, the weights as a state dict
    (``models/two_tower.pt``, loaded with ``weights_only=True``)."""
    data = build_training_data(filtered_ratios, user_features, video_features)
    # no Lightning progress bar in pipeline runs: EpochProgress logs each epoch to the run's log instead
    tt_config = to_source(config, TwoTowerConfig, show_progress=False)
    from kuairec_pipeline.models.progress import quiet_lightning_notices  # imports Lightning: only when training

    with quiet_lightning_notices():
        model = TwoTowerRecommender(tt_config).fit(data)
    weights = model.save_weights(kuairec.settings.models_dir / "two_tower.pt")
    context.add_output_metadata(
        {
            **training_summary("two_tower", model.history, HISTORY_COLUMNS, model.best_epoch),
            **two_tower_training_metadata(model),
            "weights_file": str(weights),
        }
    )
    _log_validation(context, model, data)
    return stamped(
        context,
        model.bundle(),
        data,
        filtered_ratios=filtered_ratios,
        user_features=user_features,
        video_features=video_features,
    )


def two_tower_training_metadata(model: TwoTowerRecommender) -> dict[str, object]:
    """How the fit ended: epochs run, the epoch kept (-1 = the fixed start, no epoch beat it on validation), and
    whether early stopping ended it or it used every allowed epoch."""
    return {
        "epochs_trained": int(model.epochs_trained),
        "best_epoch": int(model.best_epoch),
        "stopped_early": bool(model.stopped_early),
        "stop_reason": "early_stopping" if model.stopped_early else "max_epochs",
    }


SequentialAssetConfig = dagster_config(SequentialConfig)


def _fit_sequential(
    context: AssetExecutionContext,
    model: SequentialRecommender,
    filtered_ratios: pl.DataFrame,
    user_features: pl.DataFrame,
    video_features: pl.DataFrame,
) -> dict[str, np.ndarray]:
    data = build_training_data(filtered_ratios, user_features, video_features)
    from kuairec_pipeline.models.progress import quiet_lightning_notices  # imports Lightning: only when training

    with quiet_lightning_notices():
        model.fit(data, progress=context.log.info)
    epochs = int(model.history.shape[0])
    context.add_output_metadata(
        {
            **training_summary(model.name, model.history, HISTORY_COLUMNS, model.best_epoch),
            "epochs_trained": epochs,
            "best_epoch": int(model.best_epoch),
            # early stopping must also stop: say when every allowed epoch ran
            "stop_reason": "max_epochs" if epochs >= model.config.max_epochs else "early_stopping",
        }
    )
    _log_validation(context, model, data)
    return stamped(
        context,
        model.bundle(),
        data,
        filtered_ratios=filtered_ratios,
        user_features=user_features,
        video_features=video_features,
    )


@asset(
    group_name=GROUP, code_version=code_version("sequential_model"), io_manager_key=NUMPY, kinds={"pytorch", "numpy"}
)
def sequential_model(
    context: AssetExecutionContext,
    config: SequentialAssetConfig,
    filtered_ratios: pl.DataFrame,
    user_features: pl.DataFrame,
    video_features: pl.DataFrame,
) -> dict[str, np.ndarray]:
    """A SASRec-style causal transformer over each user's time-ordered history (Lightning), early stopping on
    validation. Stores each user's state after its whole training history, the video vectors and the weights
    (pointwise predictions re-encode the history before each row with NumPy)."""
    model = SequentialRecommender(to_source(config, SequentialConfig))
    return _fit_sequential(context, model, filtered_ratios, user_features, video_features)


@asset(
    group_name=GROUP, code_version=code_version("sequential_shuffled"), io_manager_key=NUMPY, kinds={"pytorch", "numpy"}
)
def sequential_shuffled(
    context: AssetExecutionContext,
    config: SequentialAssetConfig,
    filtered_ratios: pl.DataFrame,
    user_features: pl.DataFrame,
    video_features: pl.DataFrame,
) -> dict[str, np.ndarray]:
    """The order ablation of ``sequential_model``: the same model trained and scored with the rows of every
    history window in a fixed pseudo-random order."""
    model = ShuffledSequentialRecommender(to_source(config, SequentialConfig))
    return _fit_sequential(context, model, filtered_ratios, user_features, video_features)


HybridAssetConfig = dagster_config(HybridConfig)


@asset(
    group_name=GROUP,
    code_version=code_version("hybrid_model"),
    io_manager_key=NUMPY,
    kinds={"numpy"},
    ins={"als_factors": AssetIn(), "two_tower_embeddings": AssetIn()},
)
def hybrid_model(
    context: AssetExecutionContext,
    config: HybridAssetConfig,
    als_factors: dict[str, np.ndarray],
    two_tower_embeddings: dict[str, np.ndarray],
    filtered_ratios: pl.DataFrame,
    user_features: pl.DataFrame,
    video_features: pl.DataFrame,
) -> dict[str, np.ndarray]:
    """A blend of calibrated ALS and the two-tower network, with weights fitted on the validation split."""
    require_same_tables(
        {"als_factors": als_factors, "two_tower_embeddings": two_tower_embeddings}, filtered_ratios=filtered_ratios
    )
    data = build_training_data(filtered_ratios, user_features, video_features)
    model = HybridRecommender.from_components(
        ALSRecommender.from_bundle(als_factors, "als_factors"),
        TwoTowerRecommender.from_bundle(two_tower_embeddings, "two_tower_embeddings"),
        data,
        to_source(config, HybridConfig),
    )
    _log_validation(context, model, data)
    return stamped(
        context,
        model.bundle(),
        data,
        filtered_ratios=filtered_ratios,
        user_features=user_features,
        video_features=video_features,
    )
