"""The twin's statistics restate the pipeline's target scaling (dataset may not import features): both must agree."""

from __future__ import annotations

import numpy as np
import pytest

from kuairec_pipeline.dataset.synthetic import statistics
from kuairec_pipeline.features.scaling import TargetScaler


def test_min_max_scale_equals_the_pipelines_target_scaler() -> None:
    rng = np.random.default_rng(7)
    train = rng.gamma(0.8, 1.2, size=5_000).clip(0.0, 3.0)
    scaler = TargetScaler.fit(train)
    values = np.concatenate([rng.gamma(0.8, 1.5, size=5_000), [-1.0, 0.0, 3.0, 50.0]])  # beyond both ends too
    ours = statistics._min_max_scale(values, float(train.min()), float(train.max()))
    np.testing.assert_array_equal(ours, scaler.transform(values))  # bit for bit: the same formula


@pytest.mark.parametrize(("minimum", "maximum"), [(1.0, 1.0), (2.0, 1.0), (0.0, float("inf")), (float("nan"), 1.0)])
def test_min_max_scale_refuses_a_degenerate_range(minimum: float, maximum: float) -> None:
    with pytest.raises(ValueError, match="degenerate scaling range"):
        statistics._min_max_scale(np.array([0.5]), minimum, maximum)
