"""Model training assets. Each fits one model from the plain ``models`` package and stores its NumPy bundle."""


import numpy as np
import polars as pl
from dagster import AssetExecutionContext, AssetIn, Config, asset
from pydantic import Field

from kuairec_pipeline.evaluation.metrics import validation_metrics
from kuairec_pipeline.models.als import ALSConfig, ALSRecommender
from kuairec_pipeline.models.data import TrainingData, build_training_data
from kuairec_pipeline.models.hybrid import HybridConfig, HybridRecommender
from kuairec_pipeline.models.linear import LinearConfig, LinearRecommender
from kuairec_pipeline.models.sequential import SequentialConfig, SequentialRecommender, ShuffledSequentialRecommender
from kuairec_pipeline.models.two_tower import TwoTowerConfig, TwoTowerRecommender
from kuairec_pipeline.orchestration.resources import KuaiRecResource

GROUP = "models"
NUMPY = "numpy_io_manager"
PREPARED = ("filtered_ratios", "user_features", "video_features")


def _log_validation(context: AssetExecutionContext, model, data: TrainingData) -> None:
    scores = validation_metrics(model, data)
    context.add_output_metadata({f"val_{name}": float(value) for name, value in scores.items()})


class LinearAssetConfig(Config):
    l2: float = Field(default=LinearConfig.l2, description="Ridge penalty on the feature weights.")


@asset(group_name=GROUP, io_manager_key=NUMPY, kinds={"scipy", "numpy"})
def linear_baseline(context: AssetExecutionContext, config: LinearAssetConfig, filtered_ratios: pl.DataFrame,
                    user_features: pl.DataFrame, video_features: pl.DataFrame) -> dict[str, np.ndarray]:
    """Ridge regression of the scaled watch ratio on user and video features only (no ids): the original
    study's linear baseline."""
    data = build_training_data(filtered_ratios, user_features, video_features)
    model = LinearRecommender(LinearConfig(l2=config.l2)).fit(data)
    _log_validation(context, model, data)
    return model.bundle()


class ALSAssetConfig(Config):
    factors: int = Field(default=ALSConfig.factors, description="Latent factors per user and video.")
    regularization: float = Field(default=ALSConfig.regularization, description="L2 penalty on the factors.")
    alpha: float = Field(default=ALSConfig.alpha, description="Confidence = 1 + alpha * scaled watch ratio.")
    iterations: int = Field(default=ALSConfig.iterations, description="ALS sweeps.")
    seed: int = Field(default=ALSConfig.seed, description="Random seed of the factor initialisation.")


@asset(group_name=GROUP, io_manager_key=NUMPY, kinds={"implicit", "numpy"})
def als_factors(context: AssetExecutionContext, config: ALSAssetConfig, filtered_ratios: pl.DataFrame,
                user_features: pl.DataFrame, video_features: pl.DataFrame) -> dict[str, np.ndarray]:
    """implicit's ALS on confidences from the scaled watch ratio, plus a calibration (biases and a linear map of
    the dot product, fitted on training rows) so that ALS predicts watch ratios too."""
    data = build_training_data(filtered_ratios, user_features, video_features)
    als_config = ALSConfig(factors=config.factors, regularization=config.regularization, alpha=config.alpha,
                           iterations=config.iterations, seed=config.seed)
    model = ALSRecommender(als_config).fit(data)
    _log_validation(context, model, data)
    return model.bundle()


class TwoTowerAssetConfig(Config):
    embedding_dim: int = Field(default=TwoTowerConfig.embedding_dim, description="Size of each tower's output.")
    learning_rate: float = Field(default=TwoTowerConfig.learning_rate, description="Adam learning rate.")
    batch_size: int = Field(default=TwoTowerConfig.batch_size, description="Training rows per step.")
    max_epochs: int = Field(default=TwoTowerConfig.max_epochs, description="Upper bound on epochs.")
    early_stopping_patience: int = Field(default=TwoTowerConfig.early_stopping_patience,
                                         description="Epochs without validation improvement before stopping.")
    seed: int = Field(default=TwoTowerConfig.seed, description="Seed of initialisation and shuffling.")
    accelerator: str = Field(default=TwoTowerConfig.accelerator,
                             description="Lightning accelerator: 'auto' takes a GPU when present, else the CPU.")


@asset(group_name=GROUP, io_manager_key=NUMPY, kinds={"pytorch", "numpy"})
def two_tower_embeddings(context: AssetExecutionContext, config: TwoTowerAssetConfig, kuairec: KuaiRecResource,
                         filtered_ratios: pl.DataFrame, user_features: pl.DataFrame,
                         video_features: pl.DataFrame) -> dict[str, np.ndarray]:
    """A two-tower network (Lightning) trained on the scaled watch ratio with early stopping on validation.
    Stores user and video embeddings (scoring needs only NumPy) and, beside the asset, the weights as a state dict
    (``models/two_tower.pt``, loaded with ``weights_only=True``)."""
    data = build_training_data(filtered_ratios, user_features, video_features)
    tt_config = TwoTowerConfig(**config.model_dump())
    model = TwoTowerRecommender(tt_config).fit(data)
    weights = model.save_weights(kuairec.settings.models_dir / "two_tower.pt")
    context.add_output_metadata({"weights_file": str(weights), "epochs_trained": int(model.epochs_trained)})
    _log_validation(context, model, data)
    return model.bundle()


class SequentialAssetConfig(Config):
    max_len: int = Field(default=SequentialConfig.max_len, description="History rows the transformer attends over.")
    hidden_dim: int = Field(default=SequentialConfig.hidden_dim, description="Width of positions and states.")
    num_layers: int = Field(default=SequentialConfig.num_layers, description="Transformer blocks.")
    learning_rate: float = Field(default=SequentialConfig.learning_rate, description="AdamW learning rate.")
    max_epochs: int = Field(default=SequentialConfig.max_epochs, description="Upper bound on epochs.")
    positions_per_epoch: int = Field(default=SequentialConfig.positions_per_epoch,
                                     description="History positions drawn per epoch (0 = all windows).")
    early_stopping_patience: int = Field(default=SequentialConfig.early_stopping_patience,
                                         description="Epochs without validation improvement before stopping.")
    seed: int = Field(default=SequentialConfig.seed, description="Seed of initialisation, order and shuffle keys.")
    accelerator: str = Field(default=SequentialConfig.accelerator,
                             description="Lightning accelerator: 'auto' takes a GPU when present, else the CPU.")


def _fit_sequential(context: AssetExecutionContext, model: SequentialRecommender, filtered_ratios: pl.DataFrame,
                    user_features: pl.DataFrame, video_features: pl.DataFrame) -> dict[str, np.ndarray]:
    data = build_training_data(filtered_ratios, user_features, video_features)
    model.fit(data, progress=context.log.info)
    context.add_output_metadata({"epochs_trained": int(model.history.shape[0]), "best_epoch": model.best_epoch})
    _log_validation(context, model, data)
    return model.bundle()


@asset(group_name=GROUP, io_manager_key=NUMPY, kinds={"pytorch", "numpy"})
def sequential_model(context: AssetExecutionContext, config: SequentialAssetConfig, filtered_ratios: pl.DataFrame,
                     user_features: pl.DataFrame, video_features: pl.DataFrame) -> dict[str, np.ndarray]:
    """A SASRec-style causal transformer over each user's time-ordered history (Lightning), early stopping on
    validation. Stores each user's state after its whole training history, the video vectors and the weights
    (pointwise predictions re-encode the history before each row with NumPy)."""
    model = SequentialRecommender(SequentialConfig(**config.model_dump()))
    return _fit_sequential(context, model, filtered_ratios, user_features, video_features)


@asset(group_name=GROUP, io_manager_key=NUMPY, kinds={"pytorch", "numpy"})
def sequential_shuffled(context: AssetExecutionContext, config: SequentialAssetConfig, filtered_ratios: pl.DataFrame,
                        user_features: pl.DataFrame, video_features: pl.DataFrame) -> dict[str, np.ndarray]:
    """The order ablation of ``sequential_model``: the same model trained and scored with the rows of every
    history window in a fixed pseudo-random order."""
    model = ShuffledSequentialRecommender(SequentialConfig(**config.model_dump()))
    return _fit_sequential(context, model, filtered_ratios, user_features, video_features)


class HybridAssetConfig(Config):
    l2: float = Field(default=HybridConfig.l2, description="Ridge penalty on the blend weights (fitted on val).")


@asset(group_name=GROUP, io_manager_key=NUMPY, kinds={"numpy"},
       ins={"als_factors": AssetIn(), "two_tower_embeddings": AssetIn()})
def hybrid_model(context: AssetExecutionContext, config: HybridAssetConfig, als_factors: dict[str, np.ndarray],
                 two_tower_embeddings: dict[str, np.ndarray], filtered_ratios: pl.DataFrame,
                 user_features: pl.DataFrame, video_features: pl.DataFrame) -> dict[str, np.ndarray]:
    """A blend of calibrated ALS and the two-tower network, with weights fitted on the validation split."""
    data = build_training_data(filtered_ratios, user_features, video_features)
    model = HybridRecommender.from_components(
        ALSRecommender.from_bundle(als_factors, "als_factors"),
        TwoTowerRecommender.from_bundle(two_tower_embeddings, "two_tower_embeddings"),
        data,
        HybridConfig(l2=config.l2),
    )
    _log_validation(context, model, data)
    return model.bundle()
