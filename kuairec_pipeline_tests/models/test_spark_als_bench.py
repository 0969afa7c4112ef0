"""benchmarks/spark_als.py's matrix helper: both ALS engines get the same confidences, and the quality measures it
prints are the formulas they claim. One test runs Spark MLlib itself; it skips (with the reason) without Java or
pyspark, which CI does not install."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from kuairec_pipeline.models.data import Interactions

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # the benchmark modules import each other by these names
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def matrix():
    return _load("_als_matrix")


def _rows(user, video, target, watch_ratio=None, timestamp=None) -> Interactions:
    n = len(user)
    return Interactions(
        user=np.asarray(user, dtype=np.int32),
        video=np.asarray(video, dtype=np.int32),
        target=np.asarray(target, dtype=np.float32),
        watch_ratio=np.asarray(watch_ratio if watch_ratio is not None else np.asarray(target) * 3, dtype=np.float32),
        timestamp=np.asarray(timestamp if timestamp is not None else np.arange(n), dtype=np.float64),
        passes_filter=np.ones(n, dtype=bool),
    )


def _problem(matrix, train: Interactions, val: Interactions | None = None, n_users: int = 4, n_videos: int = 5):
    return matrix.Problem(train=train, val=val if val is not None else train, n_users=n_users, n_videos=n_videos)


def test_spark_ratings_give_implicits_confidence_matrix_cell_by_cell(matrix) -> None:
    # A repeated pair (mean of 0.2 and 0.6), a pair whose every view has target 0, an out-of-order row.
    train = _rows([0, 0, 1, 3, 2, 0, 3], [1, 1, 4, 0, 2, 3, 2], [0.2, 0.6, 0.0, 1.0, 0.5, 0.1, 0.0])
    problem = _problem(matrix, train)
    pairs = matrix.training_pairs(problem)
    alpha = 10.0
    ours = matrix.implicit_confidences(pairs, alpha, problem.n_videos)
    ratings = matrix.spark_ratings(pairs)
    spark = matrix.spark_confidences(ratings, alpha, ours.shape)

    assert ours.nnz == spark.nnz == 6  # 7 rows, one pair twice
    assert np.array_equal(ours.indptr, spark.indptr) and np.array_equal(ours.indices, spark.indices)
    np.testing.assert_allclose(spark.data, ours.data, rtol=0, atol=1e-5 * (1 + alpha))
    assert ours[0, 1] == pytest.approx(1 + alpha * 0.4)
    # The all-zero pairs stay positives of confidence 1 for Spark, as in implicit, thanks to the floor.
    assert ours[1, 4] == 1.0 and spark[1, 4] == pytest.approx(1.0 + alpha * matrix.ZERO_RATING_FLOOR, rel=1e-6)
    # Without the floor Spark would have made them negatives (left out of its positives).
    unfloored = matrix.SparkRatings(ratings.user, ratings.item, pairs.mean_target.astype(np.float32))
    assert matrix.spark_confidences(unfloored, alpha, ours.shape).nnz == 4


def test_spark_ratings_round_trip_through_parquet(matrix, tmp_path) -> None:
    import polars as pl

    pairs = matrix.training_pairs(_problem(matrix, _rows([0, 1, 1], [2, 0, 4], [0.3, 0.0, 0.9])))
    ratings = matrix.spark_ratings(pairs)
    ratings.write_parquet(tmp_path / "r.parquet")
    back = pl.read_parquet(tmp_path / "r.parquet")
    assert back.schema == pl.Schema({"user": pl.Int32, "item": pl.Int32, "rating": pl.Float32})
    assert back["user"].to_list() == [0, 1, 1] and back["item"].to_list() == [2, 0, 4]
    assert back["rating"].to_numpy() == pytest.approx([0.3, matrix.ZERO_RATING_FLOOR, 0.9])


def test_reg_param_matches_implicits_total_penalty(matrix) -> None:
    train = _rows([0, 0, 1, 2, 3, 3, 3], [0, 1, 1, 2, 0, 3, 4], np.full(7, 0.5))
    problem = _problem(matrix, train)
    confidences = matrix.implicit_confidences(matrix.training_pairs(problem), 10.0, problem.n_videos)
    reg_param = matrix.spark_reg_param(100.0, confidences)
    positives_per_row = np.diff(confidences.indptr)
    positives_per_column = np.bincount(confidences.indices, minlength=problem.n_videos)
    spark_total = reg_param * (positives_per_row.sum() + positives_per_column.sum())
    assert spark_total == pytest.approx(100.0 * (problem.n_users + problem.n_videos))


def test_implicit_loss_is_the_weighted_squared_error_over_every_cell(matrix) -> None:
    rng = np.random.default_rng(3)
    train = _rows([0, 0, 1, 2, 3, 3], [0, 4, 1, 2, 0, 3], rng.random(6))
    problem = _problem(matrix, train)
    confidences = matrix.implicit_confidences(matrix.training_pairs(problem), 7.0, problem.n_videos)
    users, videos = rng.normal(size=(4, 3)), rng.normal(size=(5, 3))
    dense = confidences.toarray()
    weight = np.where(dense > 0, dense, 1.0)
    preference = (dense > 0).astype(float)
    expected = np.mean(weight * (preference - users @ videos.T) ** 2)
    assert matrix.implicit_loss(users, videos, confidences) == pytest.approx(expected, rel=1e-10)
    assert matrix.implicit_loss(np.zeros((4, 3)), videos, confidences) == pytest.approx(
        (weight * preference).sum() / dense.size
    )


def test_val_ndcg_is_one_for_scores_in_watch_ratio_order_and_lower_reversed(matrix) -> None:
    # Two users, each with val rows on five videos; positives are watch ratio > 2.
    watch = np.array([2.5, 0.5, 3.0, 1.0, 2.2])
    val = _rows([0] * 5 + [1] * 5, list(range(5)) * 2, np.zeros(10), watch_ratio=np.tile(watch, 2))
    problem = _problem(matrix, val, val, n_users=2, n_videos=5)
    users = np.ones((2, 1))
    ndcg, ranked = matrix.val_ndcg(users, watch[:, None], problem)
    assert ranked == 2 and ndcg == pytest.approx(1.0)
    worse, _ = matrix.val_ndcg(users, -watch[:, None], problem)  # the three positives ranked 3rd to 5th
    discount = 1 / np.log2(np.arange(2, 7))
    assert worse == pytest.approx(discount[2:5].sum() / discount[:3].sum())


def _java_and_pyspark() -> str | None:
    if shutil.which("java") is None:
        return "java is not installed (Debian: apt-get install default-jre-headless)"
    if importlib.util.find_spec("pyspark") is None:
        return "pyspark is not installed (pip install -e '.[bench]')"
    return None


@pytest.mark.slow
@pytest.mark.scale
@pytest.mark.skipif(_java_and_pyspark() is not None, reason=str(_java_and_pyspark()))
def test_spark_als_on_the_shared_matrix_is_comparable_to_ours(matrix, tmp_path) -> None:
    from implicit.cpu.als import AlternatingLeastSquares

    spark_module = _load("_spark")
    rng = np.random.default_rng(0)
    n_users, n_videos = 60, 80
    taste_users, taste_videos = rng.normal(size=(n_users, 2)), rng.normal(size=(n_videos, 2))
    user, video = np.nonzero(taste_users @ taste_videos.T + rng.normal(0, 0.5, (n_users, n_videos)) > 0.8)
    train = _rows(user, video, rng.random(user.size))
    problem = _problem(matrix, train, n_users=n_users, n_videos=n_videos)
    pairs = matrix.training_pairs(problem)
    confidences = matrix.implicit_confidences(pairs, 10.0, n_videos)
    ours = AlternatingLeastSquares(factors=4, regularization=5.0, alpha=1.0, iterations=10, random_state=0)
    ours.fit(confidences, show_progress=False)
    ours_loss = matrix.implicit_loss(ours.user_factors, ours.item_factors, confidences)

    matrix.spark_ratings(pairs).write_parquet(tmp_path / "ratings.parquet")
    session = spark_module.start_session(threads=1, driver_memory="1g", shuffle_partitions=2)
    try:
        frame = session.read.parquet(str(tmp_path / "ratings.parquet"))
        assert frame.count() == confidences.nnz
        settings = spark_module.SparkALSSettings(4, 10, matrix.spark_reg_param(5.0, confidences), 10.0, 0, 2)
        model = spark_module.fit_als(frame, settings)
        users, videos = spark_module.factors_as_arrays(model, n_users, n_videos)
    finally:
        session.stop()
    spark_loss = matrix.implicit_loss(users, videos, confidences)
    random_loss = matrix.implicit_loss(
        rng.normal(0, users.std(), users.shape), rng.normal(0, videos.std(), videos.shape), confidences
    )
    assert users.shape == (n_users, 4) and np.abs(users).sum() > 0
    assert spark_loss < 0.5 * random_loss and spark_loss < 1.5 * ours_loss
