"""``hybrid_model``: the bundle of whichever hybrid (``hybrid_fusion``, late fusion; ``hybrid_concat``, embedding
concatenation) ranks better on the selection slice.

The two hybrids are ordinary registry models, built by the asset factory of ``orchestration/assets/train.py``; this
asset is no model of its own (no fit, no config, no metrics row): it only reads their bundles, calls
:func:`kuairec_pipeline.evaluation.selection.select_among` and stores the winner's bundle as it is.
"""

import numpy as np
import polars as pl
from dagster import AssetExecutionContext, AssetIn, MetadataValue, asset

from kuairec_pipeline.evaluation.selection import select_among
from kuairec_pipeline.models.data_store import prepared_from_arrays
from kuairec_pipeline.models.registry import TRAINED_MODELS
from kuairec_pipeline.orchestration.lineage import require_current
from kuairec_pipeline.orchestration.metadata import rounded
from kuairec_pipeline.orchestration.versions import code_version

GROUP = "models"
NUMPY = "numpy_io_manager"
HYBRIDS = ("hybrid_fusion", "hybrid_concat")  # registry names (also their asset keys)


@asset(
    group_name=GROUP,
    code_version=code_version("hybrid_model"),
    io_manager_key=NUMPY,
    kinds={"numpy"},
    ins={TRAINED_MODELS[name].asset_key: AssetIn() for name in HYBRIDS},
)
def hybrid_model(
    context: AssetExecutionContext,
    hybrid_fusion: dict[str, np.ndarray],
    hybrid_concat: dict[str, np.ndarray],
    training_arrays: dict[str, np.ndarray],
    evaluation_arrays: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """The served hybrid: the bundle of whichever of ``hybrid_fusion`` and ``hybrid_concat`` has the better
    selection-slice ndcg@10 (the metrics table's rule). Not a metrics row of its own (it would repeat the winner's);
    ``kuairec recommend --model hybrid`` reads it."""
    bundles = {"hybrid_fusion": hybrid_fusion, "hybrid_concat": hybrid_concat}
    require_current(context, {"training_arrays": training_arrays, "evaluation_arrays": evaluation_arrays}, bundles)
    candidates = [TRAINED_MODELS[key].model_class().from_bundle(bundle, key) for key, bundle in bundles.items()]
    winner, table = select_among(candidates, prepared_from_arrays(training_arrays, evaluation_arrays))
    scores = {
        f"selection_{row['metric']}_{row['model']}": rounded(row["value"])
        for row in table.filter(pl.col("metric").is_in(["ndcg@10", "rmse"])).iter_rows(named=True)
    }
    context.add_output_metadata(
        {"served_hybrid": MetadataValue.text(winner), "chosen_on": "selection ndcg@10 (tie: rmse)", **scores}
    )
    return bundles[winner]
