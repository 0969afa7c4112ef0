"""End to end on a real instance: the whole graph (the session's in-process materialization), a partial re-run, and
the one smoke test of the ``dagster asset materialize`` command itself."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from dagster import AssetKey, DagsterEventType, DagsterInstance, Definitions

from kuairec_pipeline import provenance
from kuairec_pipeline.definitions import defs
from kuairec_pipeline.evaluation.metrics import seen_matrix
from kuairec_pipeline.evaluation.reranking import SPLIT_SERVING, CoverageReranked, served_penalty
from kuairec_pipeline.evaluation.selection import select_served_model
from kuairec_pipeline.models.data import build_prepared_data
from kuairec_pipeline.models.data_store import prepared_from_arrays, tables_of
from kuairec_pipeline.models.registry import TRAINED_MODELS
from kuairec_pipeline.recommend import build_recommendations
from kuairec_pipeline_tests.builders import Baseline, assets_dir, copy_home, materialize, materialize_cli, pipeline_env

pytestmark = pytest.mark.slow

BOLD_KEYS = [
    "raw_interactions",
    "filtered_ratios",
    "user_features",
    "video_features",
    "als_factors",
    "two_tower_embeddings",
    "hybrid_model",
    "metrics",
]


def test_definitions_load():
    Definitions.validate_loadable(defs)
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert set(BOLD_KEYS) <= keys


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_whole_graph_writes_one_file_per_asset(materialized_pipeline):
    folder = assets_dir(materialized_pipeline)
    for key in [
        "source_files",
        "raw_interactions",
        "raw_eval_interactions",
        "raw_users",
        "raw_videos",
        "planted_truth",
        "filtered_ratios",
        "user_features",
        "video_features",
        "metrics",
        "recommendations",
    ]:
        assert (folder / f"{key}.parquet").is_file(), key
    for key in [
        "training_arrays",
        "evaluation_arrays",
        "linear_baseline",
        "als_factors",
        "two_tower_embeddings",
        "hybrid_fusion",
        "hybrid_concat",
        "hybrid_model",
    ]:
        with np.load(folder / f"{key}.npz", allow_pickle=False) as bundle:
            assert len(bundle.files) > 0, key
    metrics = pl.read_parquet(folder / "metrics.parquet")
    assert {"model", "metric", "value", "split"} <= set(metrics.columns)
    for model in [
        "global_mean",
        "user_mean",
        "video_mean",
        "user_video_bias",
        "user_tag_profile",
        "popularity",
        "random",
        "oracle",
        "linear",
        "als",
        "two_tower",
        "hybrid_fusion",
        "hybrid_concat",
    ]:
        assert model in metrics["model"].to_list(), model
    recs = pl.read_parquet(folder / "recommendations.parquet")
    assert {"user_id", "rank", "video_id", "score", "model"} <= set(recs.columns)
    assert recs.group_by("user_id").len()["len"].max() == 50
    assert {"test", "selection", "val"} <= set(metrics["split"])
    served = select_served_model(metrics)
    assert recs["model"][0] == served  # chosen on the selection slice
    serving = metrics.filter(pl.col("split") == SPLIT_SERVING)
    assert set(serving["model"]) == {served, served + "+coverage"}


def test_served_lists_are_ranked_with_the_coverage_penalty_the_metrics_step_chose(materialized_pipeline, tmp_path):
    """A coverage target the tiny twin's plain lists miss, with any selection loss allowed: metrics chooses a
    penalty above 0 and recommendations serves exactly the re-ranked lists of the served model."""
    env = copy_home(Baseline(materialized_pipeline), tmp_path)
    config = {"ops": {"metrics": {"config": {"target_coverage": 0.5, "max_selection_ndcg_loss": 1.0}}}}
    result = materialize(env, select="metrics,recommendations", extra=("--config-json", json.dumps(config)))
    assert result.returncode == 0, result.stderr[-6000:]
    folder = assets_dir(env)
    metrics = pl.read_parquet(folder / "metrics.parquet")
    served = select_served_model(metrics)
    penalty = served_penalty(metrics, served)
    assert penalty > 0
    entry = TRAINED_MODELS[served]
    with np.load(folder / f"{entry.asset_key}.npz", allow_pickle=False) as bundle:
        model = entry.model_class().from_bundle(dict(bundle), entry.asset_key)
    arrays = [dict(np.load(folder / f"{key}.npz")) for key in ("training_arrays", "evaluation_arrays")]
    data = prepared_from_arrays(*arrays)
    expected = build_recommendations(
        CoverageReranked(model, penalty), data.n_users, k=50, exclude_seen=seen_matrix(data), label=served
    )
    recs = pl.read_parquet(folder / "recommendations.parquet")
    assert recs.select(expected.columns).equals(expected)
    plain = build_recommendations(model, data.n_users, k=50, exclude_seen=seen_matrix(data), label=served)
    assert recs["video_id"].n_unique() > plain["video_id"].n_unique()


def test_cli_materializes_a_selection_into_the_instance(tmp_path):
    """The one run through ``dagster asset materialize`` (every other pipeline test runs the same job in-process):
    the module loads from the command line, the selection is honoured, the run is recorded in the instance."""
    env = pipeline_env(tmp_path)
    result = materialize_cli(env, select="source_files,raw_users")
    assert result.returncode == 0, result.stderr[-6000:]
    assert sorted(path.name for path in assets_dir(env).iterdir()) == ["raw_users.parquet", "source_files.parquet"]
    assert pl.read_parquet(assets_dir(env) / "raw_users.parquet").height > 0
    with DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        (run,) = instance.get_runs()
        assert run.is_success
        assert run.asset_selection == {AssetKey("source_files"), AssetKey("raw_users")}
        succeeded = {
            record.step_key
            for record in instance.all_logs(run.run_id)
            if record.dagster_event and record.dagster_event.event_type == DagsterEventType.STEP_SUCCESS
        }
    assert succeeded == {"source_files", "raw_users"}


def test_run_history_persists_in_the_instance(materialized_pipeline):
    with DagsterInstance.from_config(materialized_pipeline["DAGSTER_HOME"]) as instance:
        runs = instance.get_runs()
        assert runs and any(run.is_success for run in runs)


def test_factory_built_hybrids_record_their_training_and_hybrid_model_names_the_winner(materialized_pipeline):
    with DagsterInstance.from_config(materialized_pipeline["DAGSTER_HOME"]) as instance:

        def metadata(key: str) -> dict:
            event = instance.get_latest_materialization_event(AssetKey(key))
            assert event is not None, key
            return {name: value.value for name, value in event.asset_materialization.metadata.items()}

        fusion, concat, served = metadata("hybrid_fusion"), metadata("hybrid_concat"), metadata("hybrid_model")
        # the fusion was fitted from the stored models: the metrics step finds each of its four components equal
        # to the standalone model and predicts their rows once (models/components.sharing_components)
        assert metadata("metrics")["shared_components"] == 4
    weights = [fusion[f"weight_{name}"] for name in ("linear", "als", "two_tower", "sequential")]
    assert all(weight >= 0 for weight in weights) and "blend_intercept" in fusion  # non_negative by default
    assert concat["stop_reason"] in {"early_stopping", "max_epochs"} and concat["epochs_trained"] >= 1
    for name in ("val_rmse", "val_mae"):
        assert np.isfinite(fusion[name]) and np.isfinite(concat[name]), name
    assert served["served_hybrid"] in {"hybrid_fusion", "hybrid_concat"}


def test_partial_rerun_reuses_stored_raw_data(materialized_pipeline, tmp_path):
    env = copy_home(Baseline(materialized_pipeline), tmp_path)  # the session's materialization stays as it was
    folder = assets_dir(env)
    raw = {key: _digest(folder / f"{key}.parquet") for key in ["source_files", "raw_interactions", "raw_users"]}
    raw_mtime = (folder / "raw_interactions.parquet").stat().st_mtime_ns
    twin = next((Path(env["KUAIREC_HOME"]) / "source").iterdir())
    twin_mtime = twin.stat().st_mtime_ns
    ratios_mtime = (folder / "filtered_ratios.parquet").stat().st_mtime_ns
    features_mtime = (folder / "user_features.parquet").stat().st_mtime_ns
    # filtered_ratios and the two feature tables it feeds: a re-run from the middle of the graph (the models
    # downstream would only add minutes of training to what this proves).
    result = materialize(env, select="filtered_ratios,user_features,video_features")
    assert result.returncode == 0, result.stderr[-6000:]
    assert (folder / "filtered_ratios.parquet").stat().st_mtime_ns > ratios_mtime
    assert (folder / "user_features.parquet").stat().st_mtime_ns > features_mtime
    assert (folder / "raw_interactions.parquet").stat().st_mtime_ns == raw_mtime
    assert {key: _digest(folder / f"{key}.parquet") for key in raw} == raw
    assert twin.stat().st_mtime_ns == twin_mtime


PREPARED_TABLES = {AssetKey(name) for name in provenance.PREPARED_TABLES}
ARRAY_READERS = {entry.asset_key for entry in TRAINED_MODELS.values()} | {"metrics", "recommendations", "hybrid_model"}


def test_the_prepared_arrays_are_the_only_way_models_and_evaluation_read_the_tables():
    """Built once per run: every model and evaluation step reads ``training_arrays`` (and only the evaluation steps
    ``evaluation_arrays``), none of them the prepared tables, so nothing rebuilds the arrays per step."""
    graph = defs.resolve_asset_graph()
    readers = set()
    for key in graph.get_all_asset_keys():
        parents = graph.get(key).parent_keys
        if parents & PREPARED_TABLES:
            readers.add(key.to_user_string())
        if key.to_user_string() in ARRAY_READERS:
            assert AssetKey("training_arrays") in parents, key
    assert readers & ARRAY_READERS == set()
    assert readers >= {"training_arrays", "evaluation_arrays"}
    model_keys = {AssetKey(entry.asset_key) for entry in TRAINED_MODELS.values()}
    assert not any(AssetKey("evaluation_arrays") in graph.get(key).parent_keys for key in model_keys)


def test_stored_arrays_equal_the_tables_and_stamp_every_model(materialized_pipeline):
    folder = assets_dir(materialized_pipeline)

    def load(key: str) -> dict[str, np.ndarray]:
        with np.load(folder / f"{key}.npz", allow_pickle=False) as stored:
            return {name: stored[name] for name in stored.files}

    training, evaluation = load("training_arrays"), load("evaluation_arrays")
    assert not any(name.startswith(("selection.", "test.")) for name in training)
    tables = {name: pl.read_parquet(folder / f"{name}.parquet") for name in provenance.PREPARED_TABLES}
    built = build_prepared_data(*tables.values())
    loaded = prepared_from_arrays(training, evaluation)
    for split in ("train", "val"):
        np.testing.assert_array_equal(getattr(loaded.training, split).target, getattr(built.training, split).target)
    np.testing.assert_array_equal(loaded.test.video, built.test.video)
    np.testing.assert_array_equal(loaded.training.video_tags, built.training.video_tags)
    fingerprints = {name: provenance.file_fingerprint(folder / f"{name}.parquet") for name in tables}
    assert tables_of(training) == fingerprints
    assert tables_of(evaluation) == {"filtered_ratios": fingerprints["filtered_ratios"]}
    for entry in TRAINED_MODELS.values():
        record = provenance.trained_with_of(load(entry.asset_key))
        assert record is not None and record.inputs == fingerprints, entry.asset_key
        assert record.ratio_config.get("max_watch_ratio") is not None, entry.asset_key
