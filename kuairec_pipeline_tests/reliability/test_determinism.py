"""Same seed and data give the same metrics (to 1e-6): the two-tower on two CPU threads, fitted twice in one
process, and the whole graph materialized twice through the Dagster CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from kuairec_pipeline.dataset import loader, schema
from kuairec_pipeline.dataset.synthetic import generate_twin
from kuairec_pipeline.evaluation.metrics import evaluate_models
from kuairec_pipeline.features.ratios import prepare_filtered_ratios
from kuairec_pipeline.features.users import build_user_features
from kuairec_pipeline.features.videos import build_video_features
from kuairec_pipeline.models.data import build_prepared_data
from kuairec_pipeline.models.two_tower import TwoTowerConfig, TwoTowerRecommender
from kuairec_pipeline_tests.builders import Baseline, assets_dir, materialize, output, pipeline_env

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


def test_the_whole_graph_gives_the_same_metrics_twice(baseline: Baseline, tmp_path: Path) -> None:
    env = pipeline_env(tmp_path)
    result = materialize(env)
    assert result.returncode == 0, output(result)[-6000:]
    key = ["model", "split", "metric"]
    first = pl.read_parquet(assets_dir(baseline.env) / "metrics.parquet").sort(key)
    second = pl.read_parquet(assets_dir(env) / "metrics.parquet").sort(key)
    assert first.select(key).equals(second.select(key))
    difference = np.abs(first["value"].to_numpy() - second["value"].to_numpy())
    worst = first.with_columns(difference=difference).sort("difference", descending=True).head(3)
    assert np.nanmax(difference) <= TOLERANCE, worst
    assert np.array_equal(np.isnan(first["value"].to_numpy()), np.isnan(second["value"].to_numpy()))
