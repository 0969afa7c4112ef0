"""Recommendation table, its Parquet round trip and the readable answer of `kuairec recommend --user ID`."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from kuairec_pipeline.models.linear import LinearConfig, LinearRecommender
from kuairec_pipeline.recommend import (
    RECOMMENDATION_SCHEMA,
    UnknownModelError,
    UnknownUserError,
    build_recommendations,
    format_recommendations,
    read_scaler,
    read_user_recommendations,
    recommend_for_user,
    recommend_from_artifacts,
)
from kuairec_pipeline.target import TargetScaler
from kuairec_pipeline_tests.models.contract import PlantedData, make_planted


@pytest.fixture(scope="module")
def planted() -> PlantedData:
    return make_planted()


@pytest.fixture(scope="module")
def model(planted: PlantedData) -> LinearRecommender:
    return LinearRecommender(LinearConfig(l2=1.0)).fit(planted.data)


def video_features(planted: PlantedData) -> pl.DataFrame:
    data = planted.data
    return pl.DataFrame({"video_id": np.arange(data.n_videos, dtype=np.int32), "tag_ids": data.video_tags.tolist()})


def test_table_matches_recommend_and_excludes_seen(planted: PlantedData, model: LinearRecommender) -> None:
    seen = planted.train_seen
    recs = build_recommendations(model, planted.data.n_users, k=5, exclude_seen=seen, batch_users=7)
    assert dict(recs.schema) == RECOMMENDATION_SCHEMA
    assert recs.height == planted.data.n_users * 5
    assert recs["rank"].to_list() == list(range(1, 6)) * planted.data.n_users
    assert set(recs["model"]) == {"linear"}
    ids, scores = model.recommend(np.arange(planted.data.n_users), k=5, exclude=seen)
    np.testing.assert_array_equal(recs["video_id"].to_numpy().reshape(-1, 5), ids)
    # float32 BLAS products depend on the batch shape in the last bit (the per-user taste is a matrix product)
    np.testing.assert_allclose(recs["score"].to_numpy().reshape(-1, 5), scores, rtol=1e-6)
    assert not seen[recs["user_id"].to_numpy(), recs["video_id"].to_numpy()].any()


def test_users_with_too_few_unseen_videos_get_shorter_lists(planted: PlantedData, model: LinearRecommender) -> None:
    n_videos = planted.data.n_videos
    recs = build_recommendations(model, 4, k=n_videos, exclude_seen=planted.train_seen, label="lin")
    per_user = recs.group_by("user_id").agg(pl.len(), pl.col("rank").max()).sort("user_id")
    unseen = n_videos - np.asarray(planted.train_seen[:4].sum(axis=1)).ravel()
    assert per_user["len"].to_list() == unseen.tolist() == per_user["rank"].to_list()
    assert np.isfinite(recs["score"].to_numpy()).all() and set(recs["model"]) == {"lin"}


def test_build_rejects_k_below_one(model: LinearRecommender) -> None:
    with pytest.raises(ValueError, match="k must be"):
        build_recommendations(model, 3, k=0)


def test_readable_table(planted: PlantedData, model: LinearRecommender) -> None:
    recs = build_recommendations(model, planted.data.n_users, k=10)
    scaler = planted.data.scaler
    text = format_recommendations(recs, 3, k=4, video_features=video_features(planted), scaler=scaler)
    lines = text.splitlines()
    assert lines[0] == "Top 4 videos for user 3 (model: linear)"
    assert lines[1].split() == ["rank", "video", "predicted", "watch", "ratio", "score", "tags"]
    assert len(lines) == 2 + 1 + 4
    top = recs.filter(pl.col("user_id") == 3).row(0, named=True)
    first = lines[3].split()
    assert first[:2] == ["1", str(top["video_id"])]
    assert float(first[2]) == pytest.approx(scaler.inverse(top["score"]), abs=1e-3)
    expected_tags = [str(t - 1) for t in planted.data.video_tags[top["video_id"]] if t]
    assert " ".join(first[4:]).split(", ") == expected_tags


def test_stored_predicted_watch_ratio_is_shown(planted: PlantedData, model: LinearRecommender) -> None:
    scaler = TargetScaler(0.0, 3.0)
    recs = build_recommendations(model, 5, k=3, scaler=scaler)
    assert recs.schema["predicted_watch_ratio"] == pl.Float32
    np.testing.assert_allclose(recs["predicted_watch_ratio"].to_numpy(), recs["score"].to_numpy() * 3, rtol=1e-6)
    lines = format_recommendations(recs, 0).splitlines()
    assert "predicted watch ratio" in lines[1]
    assert float(lines[3].split()[2]) == pytest.approx(recs["predicted_watch_ratio"][0], abs=1e-3)


def test_readable_table_without_features_or_scaler(planted: PlantedData, model: LinearRecommender) -> None:
    recs = build_recommendations(model, 5, k=3)
    lines = format_recommendations(recs, 0, k=10).splitlines()
    assert lines[1].split() == ["rank", "video", "score"] and len(lines) == 3 + 3


def test_unknown_user_names_the_valid_range(planted: PlantedData, model: LinearRecommender) -> None:
    recs = build_recommendations(model, planted.data.n_users, k=3)
    with pytest.raises(UnknownUserError, match=r"unknown user 999: valid user ids are 0\.\.59"):
        format_recommendations(recs, 999)
    with pytest.raises(UnknownUserError, match="empty"):
        format_recommendations(recs.head(0), 1)


def test_answer_from_stored_files(tmp_path: Path, planted: PlantedData, model: LinearRecommender) -> None:
    data = planted.data
    recs_path = tmp_path / "recommendations.parquet"
    build_recommendations(model, data.n_users, k=10).write_parquet(recs_path)
    videos_path = tmp_path / "video_features.parquet"
    video_features(planted).write_parquet(videos_path)
    ratios_path = tmp_path / "filtered_ratios.parquet"
    pl.DataFrame({"split": ["train", "train", "val"], "watch_ratio": [0.5, 2.5, 9.0]}).write_parquet(ratios_path)

    assert read_scaler(ratios_path) == TargetScaler(0.5, 2.5)
    assert read_user_recommendations(recs_path, 7, k=3)["rank"].to_list() == [1, 2, 3]
    text = recommend_for_user(recs_path, 7, k=3, video_features_path=videos_path, filtered_ratios_path=ratios_path)
    assert text.startswith("Top 3 videos for user 7") and "predicted watch ratio" in text and "tags" in text
    with pytest.raises(UnknownUserError, match=r"valid user ids are 0\.\.59"):
        read_user_recommendations(recs_path, 60)


def test_one_user_is_answered_fast_from_a_full_size_table(tmp_path: Path) -> None:
    # KuaiRec scale: 7,176 users x 50 recommendations, 10,728 videos.
    n_users, k, n_videos = 7_176, 50, 10_728
    rng = np.random.default_rng(0)
    recs = pl.DataFrame(
        {
            "user_id": np.repeat(np.arange(n_users, dtype=np.int32), k),
            "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), n_users),
            "video_id": rng.integers(0, n_videos, n_users * k).astype(np.int32),
            "score": np.sort(rng.random((n_users, k)).astype(np.float32), axis=1)[:, ::-1].ravel(),
            "model": ["hybrid_model"] * (n_users * k),
        }
    )
    recs.write_parquet(tmp_path / "recs.parquet", row_group_size=50_000)
    videos = pl.DataFrame(
        {"video_id": np.arange(n_videos, dtype=np.int32), "tag_ids": rng.integers(0, 32, (n_videos, 4)).tolist()}
    )
    videos.write_parquet(tmp_path / "videos.parquet")
    started = time.perf_counter()
    text = recommend_for_user(tmp_path / "recs.parquet", 4_321, k=10, video_features_path=tmp_path / "videos.parquet")
    assert time.perf_counter() - started < 2.0
    assert text.count("\n") == 3 + 10


def test_answer_from_the_asset_folder(tmp_path: Path, planted: PlantedData, model: LinearRecommender) -> None:
    data = planted.data
    stored = build_recommendations(model, data.n_users, k=10, label="hybrid")
    stored.write_parquet(tmp_path / "recommendations.parquet")
    video_features(planted).write_parquet(tmp_path / "video_features.parquet")
    watched = pl.DataFrame(
        {
            "user_id": data.train.user,
            "video_id": data.train.video,
            "watch_ratio": data.train.watch_ratio,
            "split": ["train"] * len(data.train),
        }
    )
    watched.write_parquet(tmp_path / "filtered_ratios.parquet")
    model.save(tmp_path / "linear_baseline.npz")

    from_table = recommend_from_artifacts(tmp_path, 5, k=4)
    assert from_table.startswith("Top 4 videos for user 5 (model: hybrid)") and "predicted watch ratio" in from_table
    assert recommend_from_artifacts(tmp_path, 5, k=4, model_name="hybrid") == from_table

    on_the_fly = recommend_from_artifacts(tmp_path, 5, k=4, model_name="linear")
    assert on_the_fly.startswith("Top 4 videos for user 5 (model: linear)")
    ids, _ = model.recommend(np.array([5]), k=4, exclude=planted.train_seen)
    assert [int(line.split()[1]) for line in on_the_fly.splitlines()[3:]] == ids[0].tolist()

    with pytest.raises(UnknownUserError, match=r"0\.\.59"):
        recommend_from_artifacts(tmp_path, 60, model_name="linear")
    with pytest.raises(UnknownModelError, match="trained models are"):
        recommend_from_artifacts(tmp_path, 5, model_name="nope")
    with pytest.raises(FileNotFoundError, match="als_factors.npz"):
        recommend_from_artifacts(tmp_path, 5, model_name="als")
