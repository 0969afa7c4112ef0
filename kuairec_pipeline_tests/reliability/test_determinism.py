"""Same seed and data give the same metrics (to 1e-6): the two-tower on two CPU threads, fitted twice in one
process. The whole graph run twice (the session baseline in-process, and again in a process of its own, writing to
object storage) is compared in scale/test_object_storage.py, which already makes that second run."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kuairec_pipeline.dataset import loader, schema
from kuairec_pipeline.dataset.synthetic import generate_twin
from kuairec_pipeline.evaluation.metrics import evaluate_models
from kuairec_pipeline.features.ratios import prepare_filtered_ratios
from kuairec_pipeline.features.users import build_user_features
from kuairec_pipeline.features.videos import build_video_features
from kuairec_pipeline.models.data import build_prepared_data
from kuairec_pipeline.models.two_tower import TwoTowerConfig, TwoTowerRecommender

TOLERANCE = 1e-6


def _tiny_data(folder: Path):
    files = loader.find_kuairec_files(generate_twin(folder, "tiny", 20220705))
    big, _ = loader.scan_interactions(files[schema.BIG_MATRIX.file_name], schema.BIG_MATRIX)
    small, _ = loader.scan_interactions(files[schema.SMALL_MATRIX.file_name], schema.SMALL_MATRIX)
    ratios, _ = prepare_filtered_ratios(big, small)
    videos = loader.build_raw_videos(loader.read_item_categories(files[schema.ITEM_CATEGORIES.file_name]), None, None)
    users = loader.read_user_features(files[schema.USER_FEATURES.file_name])
    return build_prepared_data(ratios, build_user_features(users, ratios), build_video_features(videos, ratios, big))


def test_two_tower_on_two_threads_fits_the_same_model_twice(tmp_path: Path) -> None:
    data = _tiny_data(tmp_path / "twin")
    config = TwoTowerConfig(num_threads=2, max_epochs=4, seed=5)
    runs = []
    for _ in range(2):
        model = TwoTowerRecommender(config).fit(data.training)
        runs.append((model.score_all(np.arange(data.n_users)), evaluate_models([model], data).sort("split", "metric")))
    (scores_a, metrics_a), (scores_b, metrics_b) = runs
    assert np.array_equal(scores_a, scores_b)
    assert np.abs(metrics_a["value"].to_numpy() - metrics_b["value"].to_numpy()).max() <= TOLERANCE
