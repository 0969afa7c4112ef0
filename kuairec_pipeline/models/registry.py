"""Which model class and which asset file belong to each model name (for the metrics asset and the CLI)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from kuairec_pipeline.models.base import Recommender


@dataclass(frozen=True)
class ModelEntry:
    name: str  # the model's name in metrics.parquet and recommendations.parquet
    asset_key: str  # the asset whose .npz bundle holds the fitted model
    class_path: str  # "module:Class", imported lazily so the CLI never loads torch it does not need
    # An ablation (e.g. the order-shuffled sequential model) is evaluated but never served: it exists to measure
    # an effect, and on a small selection slice it can win the choice by noise alone.
    servable: bool = True

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
        module_name, class_name = self.class_path.split(":")
        return getattr(importlib.import_module(module_name), class_name)


TRAINED_MODELS: dict[str, ModelEntry] = {
    entry.name: entry
    for entry in (
        ModelEntry("linear", "linear_baseline", "kuairec_pipeline.models.linear:LinearRecommender"),
        ModelEntry("als", "als_factors", "kuairec_pipeline.models.als:ALSRecommender"),
        ModelEntry("two_tower", "two_tower_embeddings", "kuairec_pipeline.models.two_tower:TwoTowerRecommender"),
        ModelEntry("hybrid_fusion", "hybrid_fusion", "kuairec_pipeline.models.hybrid_fusion:HybridFusionRecommender"),
        ModelEntry("hybrid_concat", "hybrid_concat", "kuairec_pipeline.models.hybrid_concat:HybridConcatRecommender"),
        ModelEntry("sequential", "sequential_model", "kuairec_pipeline.models.sequential:SequentialRecommender"),
        ModelEntry(
            "sequential_shuffled",
            "sequential_shuffled",
            "kuairec_pipeline.models.sequential:ShuffledSequentialRecommender",
            servable=False,
        ),
    )
}


SERVABLE_MODELS: tuple[str, ...] = tuple(name for name, entry in TRAINED_MODELS.items() if entry.servable)

# Names that serve another entry's model: the ``hybrid_model`` asset holds whichever of hybrid_fusion and
# hybrid_concat wins on the selection slice (its bundle names which). It is no metrics row of its own: that row would
# repeat the winner's. ``kuairec recommend --model hybrid`` reads it.
SERVED_ALIASES: dict[str, str] = {"hybrid": "hybrid_model"}  # name -> asset key
