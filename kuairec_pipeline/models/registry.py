"""Every model of the pipeline, one line each: its name, asset, class, config and (for a model fitted from other
fitted models) its inputs. The asset factory (``orchestration/assets/train.py``), the metrics asset and the CLI
read this table; adding a model is one module, one line here and its tests (docs/ADDING_A_MODEL.md).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kuairec_pipeline.models.base import Recommender


def _import(path: str) -> Any:
    module_name, name = path.split(":")
    return getattr(importlib.import_module(module_name), name)


@dataclass(frozen=True)
class ModelEntry:
    name: str  # the model's name in metrics.parquet and recommendations.parquet
    asset_key: str  # the asset whose .npz bundle holds the fitted model
    class_path: str  # "module:Class", imported lazily so the CLI never loads torch it does not need
    config_path: str  # "module:Class" of its config dataclass (fields declared with params.param)
    # An ablation (e.g. the order-shuffled sequential model) is evaluated but never served: it exists to measure
    # an effect, and on a small selection slice it can win the choice by noise alone.
    servable: bool = True
    # Names of the entries whose fitted models this one uses (Recommender.fit_from_components): a hybrid's
    # components, or the linear model a network starts from; empty: fitted from the training data alone.
    inputs: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ("numpy",)  # the Dagster asset's kinds (tools shown in the UI)
    # Config values the pipeline sets itself, not offered in the run config (e.g. no progress bar in a run's log).
    pipeline_settings: Mapping[str, Any] = field(default_factory=dict)

    def model_class(self) -> type[Recommender]:
        """The model class named by ``class_path`` (``"module:Class"``), imported on first use.

        Returns
        -------
        a :class:`~kuairec_pipeline.models.base.Recommender` subclass.

        Raises
        ------
        ImportError, AttributeError
            If the module or the class does not exist.
        """
        return _import(self.class_path)

    def config_class(self) -> type:
        """The config dataclass named by ``config_path``, imported on first use (same errors as model_class)."""
        return _import(self.config_path)


TRAINED_MODELS: dict[str, ModelEntry] = {
    entry.name: entry
    for entry in (
        ModelEntry(
            "linear",
            "linear_baseline",
            "kuairec_pipeline.models.linear:LinearRecommender",
            "kuairec_pipeline.models.linear:LinearConfig",
            kinds=("scipy", "numpy"),
        ),
        ModelEntry(
            "als",
            "als_factors",
            "kuairec_pipeline.models.als:ALSRecommender",
            "kuairec_pipeline.models.als_config:ALSConfig",
            inputs=("linear",),  # its linear start (ALSConfig.linear_start)
            kinds=("implicit", "numpy"),
        ),
        ModelEntry(
            "two_tower",
            "two_tower_embeddings",
            "kuairec_pipeline.models.two_tower:TwoTowerRecommender",
            "kuairec_pipeline.models.two_tower_config:TwoTowerConfig",
            inputs=("linear",),  # its linear start (TwoTowerConfig.linear_start)
            kinds=("pytorch", "numpy"),
            pipeline_settings={"show_progress": False},  # EpochProgress logs each epoch to the run's log instead
        ),
        ModelEntry(
            "hybrid_fusion",
            "hybrid_fusion",
            "kuairec_pipeline.models.hybrid_fusion:HybridFusionRecommender",
            "kuairec_pipeline.models.hybrid_fusion:HybridFusionConfig",
            inputs=("linear", "als", "two_tower", "sequential"),
        ),
        ModelEntry(
            "hybrid_concat",
            "hybrid_concat",
            "kuairec_pipeline.models.hybrid_concat:HybridConcatRecommender",
            "kuairec_pipeline.models.hybrid_concat:HybridConcatConfig",
            inputs=("als", "two_tower", "sequential"),
            kinds=("pytorch", "numpy"),
        ),
        ModelEntry(
            "sequential",
            "sequential_model",
            "kuairec_pipeline.models.sequential:SequentialRecommender",
            "kuairec_pipeline.models.sequential_config:SequentialConfig",
            inputs=("linear",),  # its fixed start (SequentialConfig.fixed_start)
            kinds=("pytorch", "numpy"),
        ),
        ModelEntry(
            "sequential_shuffled",
            "sequential_shuffled",
            "kuairec_pipeline.models.sequential:ShuffledSequentialRecommender",
            "kuairec_pipeline.models.sequential_config:SequentialConfig",
            servable=False,
            inputs=("linear",),
            kinds=("pytorch", "numpy"),
        ),
    )
}


SERVABLE_MODELS: tuple[str, ...] = tuple(name for name, entry in TRAINED_MODELS.items() if entry.servable)

# Names that serve another entry's model: the ``hybrid_model`` asset holds whichever of hybrid_fusion and
# hybrid_concat wins on the selection slice (its bundle names which). It is no metrics row of its own: that row would
# repeat the winner's. ``kuairec recommend --model hybrid`` reads it.
SERVED_ALIASES: dict[str, str] = {"hybrid": "hybrid_model"}  # name -> asset key
