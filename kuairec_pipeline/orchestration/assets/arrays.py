"""The prepared arrays, built once per run from the three prepared tables and read by every model and evaluation
step: ``training_arrays`` (what ``Recommender.fit`` receives: train and val rows, side features, scaler) and
``evaluation_arrays`` (the ``selection`` and ``test`` rows, which no fit ever receives). Two assets, so the type
boundary of ``models/data.py`` holds in the graph too: a model asset cannot even load a test row.

Each records the fingerprints of the tables it was built from (``models/data_store.py``); its data version is a
digest of them, so the UI marks the models stale when a table changes, and the readers refuse arrays or models of
another run (``orchestration/lineage.py``).
"""

import hashlib
import json

import numpy as np
import polars as pl
from dagster import AssetExecutionContext, asset

from kuairec_pipeline import provenance
from kuairec_pipeline.models.data import build_evaluation_rows, build_training_data
from kuairec_pipeline.models.data_store import evaluation_to_arrays, training_to_arrays
from kuairec_pipeline.orchestration.metadata import versioned_output
from kuairec_pipeline.orchestration.versions import code_version

GROUP = "prepare"
NUMPY = "numpy_io_manager"


def _fingerprints(**tables: pl.DataFrame) -> dict[str, str]:
    return {name: provenance.frame_fingerprint(frame) for name, frame in sorted(tables.items())}


def _version(fingerprints: dict[str, str]) -> str:
    return hashlib.blake2b(json.dumps(fingerprints, sort_keys=True).encode(), digest_size=8).hexdigest()


@asset(group_name=GROUP, code_version=code_version("training_arrays"), io_manager_key=NUMPY, kinds={"numpy"})
def training_arrays(
    context: AssetExecutionContext,
    filtered_ratios: pl.DataFrame,
    user_features: pl.DataFrame,
    video_features: pl.DataFrame,
):
    """The training part of the prepared data as ``.npz`` (``train.*`` / ``val.*`` rows, the user and video feature
    matrices, the target scaler), built once per run and read by every model asset; no selection or test row."""
    fingerprints = _fingerprints(
        filtered_ratios=filtered_ratios, user_features=user_features, video_features=video_features
    )
    data = build_training_data(filtered_ratios, user_features, video_features)
    context.log.info(f"training arrays: {len(data.train):,} train rows, {len(data.val):,} val rows")
    return versioned_output(
        training_to_arrays(data, fingerprints),
        _version(fingerprints),
        {"train_rows": len(data.train), "val_rows": len(data.val), "built_from": json.dumps(fingerprints)},
    )


@asset(group_name=GROUP, code_version=code_version("evaluation_arrays"), io_manager_key=NUMPY, kinds={"numpy"})
def evaluation_arrays(context: AssetExecutionContext, filtered_ratios: pl.DataFrame):
    """The held-out rows as ``.npz`` (``selection.*``: the model-choice slice; ``test.*``: small_matrix), read by the
    metrics, the served-hybrid choice and the recommendations; never by a model asset."""
    fingerprints = _fingerprints(filtered_ratios=filtered_ratios)
    selection, test = build_evaluation_rows(filtered_ratios)
    arrays: dict[str, np.ndarray] = evaluation_to_arrays(selection, test, fingerprints)
    return versioned_output(
        arrays,
        _version(fingerprints),
        {"selection_rows": len(selection), "test_rows": len(test), "built_from": json.dumps(fingerprints)},
    )
