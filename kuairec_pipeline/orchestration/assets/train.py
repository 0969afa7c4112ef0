"""Model training assets. Each fits one model from the plain ``models`` package and stores its NumPy bundle."""

import numpy as np
import polars as pl
from dagster import AssetExecutionContext, Config, asset
from pydantic import Field

from kuairec_pipeline.evaluation.metrics import validation_metrics
from kuairec_pipeline.models.als import ALSConfig, ALSRecommender
from kuairec_pipeline.models.data import TrainingData, build_training_data
from kuairec_pipeline.models.linear import LinearConfig, LinearRecommender
from kuairec_pipeline.models.sequential import SequentialConfig, SequentialRecommender, ShuffledSequentialRecommender
from kuairec_pipeline.models.two_tower import HISTORY_COLUMNS, TwoTowerConfig, TwoTowerRecommender
from kuairec_pipeline.orchestration.lineage import stamped
from kuairec_pipeline.orchestration.metadata import rounded, training_summary
from kuairec_pipeline.orchestration.resources import KuaiRecResource
from kuairec_pipeline.orchestration.versions import code_version

GROUP = "models"
NUMPY = "numpy_io_manager"
PREPARED = ("filtered_ratios", "user_features", "video_features")


def _log_validation(context: AssetExecutionContext, model, data: TrainingData) -> None:
    scores = validation_metrics(model, data)
    context.add_output_metadata({f"val_{name}": rounded(value) for name, value in scores.items()})


class LinearAssetConfig(Config):
    l2: float = Field(
        default=LinearConfig.l2, ge=0.0, description="Ridge penalty on the feature weights. Allowed: >= 0."
    )
    taste_l2: float | None = Field(
        default=LinearConfig.taste_l2,
        gt=0.0,
        description="Ridge penalty (rows) of each user's fit of the residual on the video's "
        "tags and numeric features; None: off. Allowed: > 0 or None.",
    )


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
    model = LinearRecommender(LinearConfig(l2=config.l2, taste_l2=config.taste_l2)).fit(data)
    _log_validation(context, model, data)
    return stamped(
        context,
        model.bundle(),
        data,
        filtered_ratios=filtered_ratios,
        user_features=user_features,
        video_features=video_features,
    )


class ALSAssetConfig(Config):
    factors: int = Field(
        default=ALSConfig.factors, ge=1, le=1024, description="Latent factors per user and video. Allowed: 1..1024."
    )
    regularization: float = Field(
        default=ALSConfig.regularization, ge=0.0, description="L2 penalty on the factors. Allowed: >= 0."
    )
    alpha: float = Field(
        default=ALSConfig.alpha, ge=0.0, description="Confidence = 1 + alpha * scaled watch ratio. Allowed: >= 0."
    )
    iterations: int = Field(default=ALSConfig.iterations, ge=1, le=1000, description="ALS sweeps. Allowed: 1..1000.")
    seed: int = Field(
        default=ALSConfig.seed,
        ge=0,
        le=2**32 - 1,
        description="Random seed of the factor initialisation. Allowed: 0..2**32-1.",
    )
    taste_l2: float = Field(
        default=ALSConfig.taste_l2,
        gt=0.0,
        description="Per-user ridge (rows) on the video taste features in the explicit calibration. Allowed: > 0.",
    )
    factor_l2: float = Field(
        default=ALSConfig.factor_l2,
        gt=0.0,
        description="Per-user ridge (rows) on the video factors in the explicit calibration. Allowed: > 0.",
    )


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
    als_config = ALSConfig(
        factors=config.factors,
        regularization=config.regularization,
        alpha=config.alpha,
        iterations=config.iterations,
        seed=config.seed,
        taste_l2=config.taste_l2,
        factor_l2=config.factor_l2,
    )
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


class TwoTowerAssetConfig(Config):
    embedding_dim: int = Field(
        default=TwoTowerConfig.embedding_dim,
        ge=1,
        le=1024,
        description="Size of each tower's output. Allowed: 1..1024.",
    )
    learning_rate: float = Field(
        default=TwoTowerConfig.learning_rate, gt=0.0, le=1.0, description="Adam learning rate. Allowed: (0, 1]."
    )
    batch_size: int = Field(
        default=TwoTowerConfig.batch_size,
        ge=1,
        le=1_048_576,
        description="Training rows per step. Allowed: 1..1048576.",
    )
    max_epochs: int = Field(
        default=TwoTowerConfig.max_epochs, ge=1, le=1000, description="Upper bound on epochs. Allowed: 1..1000."
    )
    early_stopping_patience: int = Field(
        default=TwoTowerConfig.early_stopping_patience,
        ge=1,
        le=1000,
        description="Epochs without validation improvement before stopping. Allowed: 1..1000.",
    )
    seed: int = Field(
        default=TwoTowerConfig.seed,
        ge=0,
        le=2**32 - 1,
        description="Seed of initialisation and shuffling. Allowed: 0..2**32-1.",
    )
    accelerator: str = Field(
        default=TwoTowerConfig.accelerator,
        pattern=r"^(auto|cpu|gpu|cuda|mps)$",
        description="Lightning accelerator: 'auto' takes a GPU when present, else the CPU. "
        "Allowed: auto, cpu, gpu, cuda, mps.",
    )
    taste_l2: float | None = Field(
        default=TwoTowerConfig.taste_l2,
        gt=0.0,
        description="Per-user ridge (rows) of the "
        "fixed taste the towers start from; None: start from the biases alone. "
        "Allowed: > 0 or None.",
    )


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
    tt_config = TwoTowerConfig(**config.model_dump(), show_progress=False)
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


class SequentialAssetConfig(Config):
    max_len: int = Field(
        default=SequentialConfig.max_len,
        ge=1,
        le=1024,
        description="History rows the transformer attends over. Allowed: 1..1024.",
    )
    hidden_dim: int = Field(
        default=SequentialConfig.hidden_dim,
        ge=1,
        le=1024,
        description="Width of positions and states. Allowed: 1..1024.",
    )
    num_layers: int = Field(
        default=SequentialConfig.num_layers, ge=1, le=16, description="Transformer blocks. Allowed: 1..16."
    )
    learning_rate: float = Field(
        default=SequentialConfig.learning_rate, gt=0.0, le=1.0, description="AdamW learning rate. Allowed: (0, 1]."
    )
    max_epochs: int = Field(
        default=SequentialConfig.max_epochs, ge=1, le=1000, description="Upper bound on epochs. Allowed: 1..1000."
    )
    positions_per_epoch: int = Field(
        default=SequentialConfig.positions_per_epoch,
        ge=0,
        description="History positions drawn per epoch (0 = all windows). Allowed: >= 0.",
    )
    early_stopping_patience: int = Field(
        default=SequentialConfig.early_stopping_patience,
        ge=1,
        le=1000,
        description="Epochs without validation improvement before stopping. Allowed: 1..1000.",
    )
    seed: int = Field(
        default=SequentialConfig.seed,
        ge=0,
        le=2**32 - 1,
        description="Seed of initialisation, order and shuffle keys. Allowed: 0..2**32-1.",
    )
    accelerator: str = Field(
        default=SequentialConfig.accelerator,
        pattern=r"^(auto|cpu|gpu|cuda|mps)$",
        description="Lightning accelerator: 'auto' takes a GPU when present, else the CPU. "
        "Allowed: auto, cpu, gpu, cuda, mps.",
    )


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
    model = SequentialRecommender(SequentialConfig(**config.model_dump()))
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
    model = ShuffledSequentialRecommender(SequentialConfig(**config.model_dump()))
    return _fit_sequential(context, model, filtered_ratios, user_features, video_features)
