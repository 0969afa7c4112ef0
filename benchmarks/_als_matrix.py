"""The one training matrix both ALS engines of ``benchmarks/spark_als.py`` factorize, and how their results compare.

Both engines minimise Hu, Koren & Volinsky's implicit-feedback objective (ICDM 2008)::

    sum over all cells c_uv (p_uv - x_u . y_v)^2 + regularization

with preference ``p_uv = 1`` on an observed pair and 0 elsewhere, and confidence ``c_uv = 1 + alpha * r_uv`` on an
observed pair (1 elsewhere). They take that confidence differently:

- implicit (our ALS, ``kuairec_pipeline.models.als``) takes the confidence matrix itself: ``confidence_matrix``
  stores ``1 + alpha * mean scaled target`` per distinct training pair, and implicit is called with ``alpha=1``.
- Spark MLlib takes ratings ``r`` and ``alpha`` and forms ``c = 1 + alpha * |r|`` itself, with ``p = 1`` only when
  ``r > 0``. So Spark gets ``r = mean scaled target`` and the same ``alpha``. A pair whose mean target is exactly 0
  (every view at the training minimum watch ratio) would be a *negative* for Spark but a positive of confidence 1
  for implicit; its rating is raised to :data:`ZERO_RATING_FLOOR`, so Spark's confidence is ``1 + alpha * 1e-6``
  (float32 rounding of 1) and its preference 1, as in implicit.

The regularization differs in kind: implicit adds ``regularization * |x_u|^2`` per user (absolute), Spark scales
``regParam`` by each user's (video's) number of positive ratings (ALS-WR; Spark's collaborative-filtering guide,
"Scaling of the regularization parameter"). No single ``regParam`` equals implicit's on every row;
:func:`spark_reg_param` matches the two totals (see there). The speed comparison does not depend on it (the work per
iteration is the same), the quality sanity check does, which is why it is printed beside the speed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

from kuairec_pipeline.evaluation.metrics import distinct_pairs, sparse_ndcg_at_k
from kuairec_pipeline.evaluation.ranking_metrics import POSITIVE_WATCH_RATIO
from kuairec_pipeline.models.als import confidence_matrix, observed_pair_dot, pair_dot
from kuairec_pipeline.models.biases import Pairs, aggregate_pairs
from kuairec_pipeline.models.data import Interactions
from kuairec_pipeline.target import SPLIT_TRAIN, SPLIT_VAL

ZERO_RATING_FLOOR = 1e-6  # Spark rating given to a pair of mean target 0, so that Spark counts it as a positive
NDCG_AT = 10


@dataclass(frozen=True)
class Problem:
    """The training rows of one profile and seed, and the validation rows to judge the factors on."""

    train: Interactions
    val: Interactions  # the tuning slice of the validation window (no selection or test row)
    n_users: int
    n_videos: int


@dataclass(frozen=True)
class SparkRatings:
    """Spark's input: one row per distinct training pair, in the same (user, video) order as implicit's CSR."""

    user: np.ndarray  # int32 (n_pairs,)
    item: np.ndarray  # int32 (n_pairs,)
    rating: np.ndarray  # float32 (n_pairs,): mean scaled target, zeros raised to ZERO_RATING_FLOOR

    def write_parquet(self, path: Path) -> None:
        """Write the ratings as Parquet with columns ``user`` (i32), ``item`` (i32), ``rating`` (f32)."""
        pl.DataFrame({"user": self.user, "item": self.item, "rating": self.rating}).write_parquet(path)


def problem_from_filtered_ratios(filtered_ratios: pl.DataFrame) -> Problem:
    """The train and val rows of a ``filtered_ratios`` table (``features.ratios.prepare_filtered_ratios``).

    Ids are row indices as in ``models.data.build_training_data``: ``n = max id + 1`` over the table.

    Parameters
    ----------
    filtered_ratios : polars frame with the ``filtered_ratios`` asset's columns.

    Returns
    -------
    Problem.
    """
    n_users = int(filtered_ratios["user_id"].max()) + 1
    n_videos = int(filtered_ratios["video_id"].max()) + 1
    split = pl.col("split")
    return Problem(
        train=Interactions.from_frame(filtered_ratios.filter(split == SPLIT_TRAIN)),
        val=Interactions.from_frame(filtered_ratios.filter(split == SPLIT_VAL)),
        n_users=n_users,
        n_videos=n_videos,
    )


def build_problem(twin_dir: Path, profile: str, seed: int, work: Path) -> Problem:
    """Generate (or reuse) the synthetic twin, ingest it with the pipeline's loader and prepare ``filtered_ratios``
    exactly as the ``raw_interactions`` / ``raw_eval_interactions`` / ``filtered_ratios`` assets do.

    Parameters
    ----------
    twin_dir : the twin's folder (generated on first use, then reused).
    profile : ``tiny``, ``demo`` or ``full``.
    seed : twin seed.
    work : folder for the two intermediate Parquet files (overwritten).

    Returns
    -------
    Problem.
    """
    from kuairec_pipeline.dataset.loader import convert_interactions, find_kuairec_files
    from kuairec_pipeline.dataset.schema import BIG_MATRIX, SMALL_MATRIX
    from kuairec_pipeline.dataset.synthetic import generate_twin
    from kuairec_pipeline.features.ratios import prepare_filtered_ratios

    started = time.perf_counter()
    generate_twin(twin_dir, profile, seed)
    files = find_kuairec_files(twin_dir)
    work.mkdir(parents=True, exist_ok=True)
    paths = {}
    for file_schema in (BIG_MATRIX, SMALL_MATRIX):
        paths[file_schema.file_name] = work / f"{Path(file_schema.file_name).stem}.parquet"
        convert_interactions(files.require(file_schema.file_name), paths[file_schema.file_name], file_schema)
    table, _ = prepare_filtered_ratios(
        pl.scan_parquet(paths[BIG_MATRIX.file_name]), pl.scan_parquet(paths[SMALL_MATRIX.file_name])
    )
    problem = problem_from_filtered_ratios(table)
    print(
        f"training matrix: {profile} twin seed {seed}: {problem.n_users:,} users x {problem.n_videos:,} videos, "
        f"{len(problem.train):,} train rows, {len(problem.val):,} val rows ({time.perf_counter() - started:.1f} s)"
    )
    return problem


def training_pairs(problem: Problem) -> Pairs:
    """The distinct training pairs with their mean target, as ``ALSRecommender.fit`` aggregates them."""
    return aggregate_pairs(problem.train, problem.n_users, problem.n_videos)


def implicit_confidences(pairs: Pairs, alpha: float, n_videos: int) -> sp.csr_matrix:
    """implicit's input: float32 CSR (n_users, n_videos) of ``1 + alpha * mean target`` (``ALSRecommender.fit``)."""
    return confidence_matrix(pairs, alpha, n_videos)


def spark_ratings(pairs: Pairs) -> SparkRatings:
    """Spark's input for the same pairs: ratings = mean scaled target (see the module docstring for the floor)."""
    rating = np.maximum(pairs.mean_target, ZERO_RATING_FLOOR).astype(np.float32)
    return SparkRatings(user=pairs.user.astype(np.int32), item=pairs.video.astype(np.int32), rating=rating)


def spark_confidences(ratings: SparkRatings, alpha: float, shape: tuple[int, int]) -> sp.csr_matrix:
    """The confidence matrix Spark forms from ``ratings``: ``1 + alpha * |r|`` where ``r > 0`` (its positives).

    Parameters
    ----------
    ratings : Spark's input.
    alpha : Spark's ``alpha``.
    shape : (n_users, n_videos).

    Returns
    -------
    float32 CSR of ``shape``; a pair Spark would treat as a negative (``r <= 0``) is left out.
    """
    positive = ratings.rating > 0
    values = (1.0 + alpha * np.abs(ratings.rating[positive].astype(np.float64))).astype(np.float32)
    matrix = sp.csr_matrix((values, (ratings.user[positive], ratings.item[positive])), shape=shape)
    matrix.sum_duplicates()
    return matrix


def spark_reg_param(regularization: float, confidences: sp.csr_matrix) -> float:
    """Spark ``regParam`` whose total penalty weight equals implicit's ``regularization``.

    implicit penalises each user and each video with ``regularization``; Spark with ``regParam * n`` where ``n`` is
    the row's (column's) number of positive pairs, i.e. ``regParam * 2 * nnz`` in all against
    ``regularization * (n_users + n_videos)``.

    Parameters
    ----------
    regularization : implicit's absolute L2 penalty (>= 0).
    confidences : the training confidence matrix (its nonzeros are the positives).

    Returns
    -------
    float >= 0.
    """
    n_users, n_videos = confidences.shape
    return regularization * (n_users + n_videos) / (2.0 * max(1, confidences.nnz))


def implicit_loss(user_factors: np.ndarray, video_factors: np.ndarray, confidences: sp.csr_matrix) -> float:
    """The data term of the implicit-feedback objective per cell, without regularization (which the engines define
    differently): ``sum_all c (p - s)^2 / (n_users * n_videos)`` with ``s = x_u . y_v``.

    Over every cell, ``sum_all (p - s)^2 = sum_all s^2 + sum_obs ((1 - s)^2 - s^2)``, and ``sum_all s^2`` is
    ``<X'X, Y'Y>``; so only the observed cells are visited.

    Parameters
    ----------
    user_factors : float (n_users, d).
    video_factors : float (n_videos, d).
    confidences : CSR (n_users, n_videos) of the observed pairs' confidences.

    Returns
    -------
    float: mean weighted squared error per cell.
    """
    users = np.asarray(user_factors, dtype=np.float64)
    videos = np.asarray(video_factors, dtype=np.float64)
    all_cells = float(np.sum((users.T @ users) * (videos.T @ videos)))
    indptr = confidences.indptr.astype(np.int64)
    pairs = Pairs(
        indptr=indptr,
        user=np.repeat(np.arange(confidences.shape[0], dtype=np.int32), np.diff(indptr)),
        video=confidences.indices.astype(np.int32),
        mean_target=np.zeros(confidences.nnz),
        count=np.ones(confidences.nnz),
    )
    score = observed_pair_dot(users, videos, pairs)
    confidence = confidences.data.astype(np.float64)
    observed = float(np.sum(confidence * (1.0 - score) ** 2 - score**2))
    return (all_cells + observed) / (confidences.shape[0] * confidences.shape[1])


def val_ndcg(user_factors: np.ndarray, video_factors: np.ndarray, problem: Problem) -> tuple[float, int]:
    """Binary-gain ndcg@10 of the raw factor scores on the val rows: each val user ranks their own val videos
    (every distinct pair once, mean watch ratio, positive above 2), as the pipeline's selection ndcg@10
    (``evaluation.metrics.sparse_ndcg_at_k``).

    Returns
    -------
    (mean ndcg over users with a positive, NaN if none; number of those users).
    """
    pairs = distinct_pairs(problem.val, problem.n_videos)
    scores = pair_dot(
        np.asarray(user_factors, dtype=np.float64),
        np.asarray(video_factors, dtype=np.float64),
        pairs.user.astype(np.int64),
        pairs.video.astype(np.int64),
    )
    return sparse_ndcg_at_k(pairs, scores, NDCG_AT, POSITIVE_WATCH_RATIO, problem.n_videos)
