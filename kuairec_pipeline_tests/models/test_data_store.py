"""The prepared arrays stored once and read back: equal to building them from the tables, the training part free of
selection and test rows, and parts of two different runs refused together."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from kuairec_pipeline.models.data import Interactions, PreparedData, build_prepared_data
from kuairec_pipeline.models.data_store import (
    evaluation_to_arrays,
    prepared_from_arrays,
    tables_of,
    training_from_arrays,
    training_to_arrays,
)
from kuairec_pipeline.provenance import frame_fingerprint
from kuairec_pipeline_tests.models.contract import make_planted, planted_tables, scramble_held_out_targets

NAMES = ("filtered_ratios", "user_features", "video_features")


def _stored(tables) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    fingerprints = {name: frame_fingerprint(frame) for name, frame in zip(NAMES, tables, strict=True)}
    prepared = build_prepared_data(*tables)
    return training_to_arrays(prepared.training, fingerprints), evaluation_to_arrays(
        prepared.selection, prepared.test, fingerprints
    )


def _through_npz(arrays: dict[str, np.ndarray], path) -> dict[str, np.ndarray]:
    np.savez(path, **arrays)
    with np.load(path, allow_pickle=False) as stored:
        return {key: stored[key] for key in stored.files}


def _assert_same(left, right) -> None:
    if isinstance(left, np.ndarray):
        assert left.dtype == right.dtype and left.shape == right.shape
        np.testing.assert_array_equal(left, right)
    elif dataclasses.is_dataclass(left):
        for field in dataclasses.fields(left):
            _assert_same(getattr(left, field.name), getattr(right, field.name))
    else:
        assert left == right


@pytest.fixture(scope="module")
def tables():
    return planted_tables(make_planted())


def test_stored_arrays_read_back_equal_to_building_them(tables, tmp_path) -> None:
    training, evaluation = _stored(tables)
    training = _through_npz(training, tmp_path / "training.npz")
    evaluation = _through_npz(evaluation, tmp_path / "evaluation.npz")
    built = build_prepared_data(*tables)
    loaded = prepared_from_arrays(training, evaluation)
    assert isinstance(loaded, PreparedData) and len(loaded.test) > 0 and len(loaded.selection) > 0
    _assert_same(loaded.training, built.training)
    _assert_same(loaded.selection, built.selection)
    _assert_same(loaded.test, built.test)
    assert np.isnan(loaded.training.train.timestamp).sum() == np.isnan(built.training.train.timestamp).sum()
    assert tables_of(training) == {name: frame_fingerprint(frame) for name, frame in zip(NAMES, tables, strict=True)}


def test_the_training_part_holds_no_held_out_row_and_ignores_held_out_targets(tables) -> None:
    training, evaluation = _stored(tables)
    assert not any(key.startswith(("selection.", "test.")) for key in training)
    scrambled_training, scrambled_evaluation = _stored((scramble_held_out_targets(tables[0]), *tables[1:]))
    # scrambling selection / test changes the table (so its fingerprint) and the evaluation rows only
    for key, value in training.items():
        if key != "__tables__":
            np.testing.assert_array_equal(value, scrambled_training[key], err_msg=key)
    assert not np.array_equal(evaluation["test.target"], scrambled_evaluation["test.target"])
    with pytest.raises(ValueError, match="different tables"):
        prepared_from_arrays(training, scrambled_evaluation)
    with pytest.raises(KeyError, match="not a training part"):
        training_from_arrays(evaluation)
    with pytest.raises(KeyError, match="val.target"):
        training_from_arrays({k: v for k, v in training.items() if k != "val.target"})
    assert set(Interactions.__dataclass_fields__) == {key.split(".", 1)[1] for key in evaluation if "." in key}
