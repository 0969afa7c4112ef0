"""Asset metadata helpers: one-line bundle summaries, rounded numbers, the training summary and headline metrics."""

from __future__ import annotations

import base64
import math

import numpy as np
import polars as pl

from kuairec_pipeline.orchestration.metadata import (
    array_summary,
    headline_metrics,
    rounded_floats,
    training_summary,
)


def test_array_summary_is_one_text_with_prefixed_arrays_counted():
    arrays = {
        "user_embeddings": np.zeros((200, 44), np.float32),
        "best_epoch": np.array(3),
        "weights.a": np.zeros((2, 2)),
        "weights.b": np.zeros(3),
        "__config_json__": np.zeros(10, np.uint8),
    }
    summary = array_summary(arrays)
    assert set(summary) == {"arrays", "size_bytes"}
    assert summary["arrays"].value == "user_embeddings (200, 44); best_epoch (); weights.*: 2 arrays"
    assert summary["size_bytes"].value == 200 * 44 * 4 + 8 + 32 + 24 + 10


def test_numbers_are_rounded():
    assert rounded_floats({"a": 0.123456789, "b": 7, "c": "x"}) == {"a": 0.1235, "b": 7, "c": "x"}
    test = pl.DataFrame(
        {"model": ["als", "als", "als"], "metric": ["rmse", "ndcg@10", "mae"], "value": [0.16789012345, 0.2, 0.1]}
    )
    assert {k: v.value for k, v in headline_metrics(test).items()} == {"rmse als": 0.1679, "ndcg@10 als": 0.2}


def test_training_summary_reports_epochs_best_and_a_curve():
    history = np.array([[0, 0.05, 0.06, 0.2], [1, 0.04, 0.041234567, 0.19], [2, 0.035, 0.05, 0.18]])
    summary = training_summary("two_tower", history, ("epoch", "train_loss", "val_mse", "val_mae"), best_epoch=1)
    assert summary["epochs_trained"].value == 3 and summary["kept_epoch"].value == 2
    assert summary["best_val_mse"].value == 0.0412 and summary["final_val_mse"].value == 0.05
    markdown = summary["training_curve"].value
    assert base64.b64decode(markdown.split("base64,")[1].rstrip(")")).startswith(b"\x89PNG")
    empty = training_summary("two_tower", np.zeros((0, 4)), ("epoch", "train_loss", "val_mse", "val_mae"), -1)
    assert empty["epochs_trained"].value == 0 and "training_curve" not in empty
    without_val = training_summary(
        "m", np.array([[0, 0.1, math.nan, math.nan]]), ("epoch", "train_loss", "val_mse", "val_mae"), 0
    )
    assert "best_val_mse" not in without_val and "final_val_mse" not in without_val
    # The start kept (best_epoch -1): no epoch's val MSE is the kept model's, so none is reported as the best.
    start_kept = training_summary("sequential", history, ("epoch", "train_loss", "val_mse", "val_mae"), best_epoch=-1)
    assert start_kept["kept_epoch"].value == 0 and "best_val_mse" not in start_kept
