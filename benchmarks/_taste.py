"""What ``taste_ceiling.py`` and ``taste_levers.py`` share: the prepared demo/full twin in-process, the test grid
with the bias model and the oracle on it, fixed score grids as a Recommender, and explicit matrix factorization of
training residuals (fixed or weighted-lambda ridge).

Synthetic twin only where the planted truth is read (the oracle); nothing of the pipeline is re-implemented.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from kuairec_pipeline.models.base import Recommender  # noqa: E402
from kuairec_pipeline.models.data import PreparedData  # noqa: E402

MF_SWEEPS = 10  # residual_factors' default number of alternating sweeps


class GridScores(Recommender):
    """Scores given as a sparse (user x video) matrix; 0 outside it. Only for evaluating fixed score grids."""

    name = "grid_scores"

    def __init__(self, scores: sp.csr_matrix) -> None:
        self.scores = scores.tocsr()
        self.n_users, self.n_videos = scores.shape

    def fit(self, data):  # noqa: D102 - fixed scores, nothing to learn
        return self

    def score_all(self, user_ids, video_ids=None):  # noqa: D102
        block = self.scores[np.asarray(user_ids)]
        if video_ids is not None:
            block = block[:, np.asarray(video_ids)]
        return np.clip(block.toarray(), 0.0, 1.0).astype(np.float32)

    def to_arrays(self):  # noqa: D102
        raise NotImplementedError("a benchmark helper, never stored")

    @classmethod
    def from_arrays(cls, arrays):  # noqa: D102
        raise NotImplementedError("a benchmark helper, never stored")


def prepared_tables(home: Path, profile: str, seed: int) -> Path:
    """Materialize the prepared tables and the planted truth in-process; returns the assets folder."""
    from dagster import AssetSelection, DagsterInstance, Definitions, define_asset_job

    from kuairec_pipeline.definitions import build_definitions
    from kuairec_pipeline.settings import Settings

    settings = Settings(home=home.absolute(), source="synthetic", profile=profile, seed=seed)
    selection = AssetSelection.assets("filtered_ratios", "user_features", "video_features", "planted_truth")
    job = define_asset_job("taste_ceiling_inputs", selection=selection.upstream())
    merged = Definitions.merge(build_definitions(settings), Definitions(jobs=[job]))
    with DagsterInstance.ephemeral() as instance:
        result = merged.resolve_job_def("taste_ceiling_inputs").execute_in_process(instance=instance)
    if not result.success:
        raise RuntimeError("materializing the prepared tables failed")
    return settings.assets_dir


@dataclass
class GridSetup:
    """The prepared data, the bias baseline and the oracle, and the oracle's cells of the test grid."""

    data: PreparedData
    bias: Recommender  # user_video_bias fitted on data.training
    oracle: Recommender  # the planted E[target] on the test grid
    cell_users: np.ndarray  # int32 (n_cells,): the test grid's cells, in the oracle's COO order
    cell_videos: np.ndarray  # int32 (n_cells,)
    truth: np.ndarray  # float64 (n_cells,): the oracle's E[target] per cell
    bias_cells: np.ndarray  # float64 (n_cells,): the bias model's prediction per cell

    @property
    def shape(self) -> tuple[int, int]:
        """(n_users, n_videos)."""
        return self.data.n_users, self.data.n_videos

    def on_grid(self, values: np.ndarray) -> GridScores:
        """A fixed-score model holding ``values`` (n_cells,) at the grid cells (clipped to [0, 1] when scored)."""
        matrix = sp.csr_matrix((values.astype(np.float32), (self.cell_users, self.cell_videos)), shape=self.shape)
        return GridScores(matrix)

    def truth_additive(self) -> np.ndarray:
        """float64 (n_cells,): :meth:`additive_fit` of the oracle's own scores; ``truth`` minus it is the personal
        taste no bias model can express."""
        return self.additive_fit(self.truth)

    def additive_fit(self, values: np.ndarray, sweeps: int = 50) -> np.ndarray:
        """float64 (n_cells,): the best additive fit ``g + a_u + b_v`` to ``values`` (n_cells,) on the grid (least
        squares, by ``sweeps`` rounds of alternating means, which converge on a complete-ish grid)."""
        user_index = np.unique(self.cell_users, return_inverse=True)[1]
        video_index = np.unique(self.cell_videos, return_inverse=True)[1]
        mean = values.mean()
        user_part, video_part = np.zeros(user_index.max() + 1), np.zeros(video_index.max() + 1)
        for _ in range(sweeps):
            user_part = np.bincount(user_index, values - mean - video_part[video_index]) / np.bincount(user_index)
            video_part = np.bincount(video_index, values - mean - user_part[user_index]) / np.bincount(video_index)
        return mean + user_part[user_index] + video_part[video_index]

    def test_metrics(self, model: Recommender) -> tuple[float, float]:
        """(test ndcg@10, test mae) of ``model``, by the metrics asset's ``evaluate``."""
        from kuairec_pipeline.evaluation.metrics import evaluate

        table = evaluate(model, self.data).filter(pl.col("split") == "test")
        values = dict(table.select("metric", "value").iter_rows())
        return values["ndcg@10"], values["mae"]


def load_test_grid(home: Path, profile: str, seed: int) -> GridSetup:
    """Materialize the twin's prepared tables under ``home/<profile>-seed<seed>``, fit ``user_video_bias`` on the
    training rows and read the oracle's test grid."""
    from kuairec_pipeline.evaluation.baselines import OracleRecommender, UserVideoBiasRecommender
    from kuairec_pipeline.models.data import build_prepared_data

    assets = prepared_tables(home / f"{profile}-seed{seed}", profile, seed)
    tables = ("filtered_ratios", "user_features", "video_features")
    data = build_prepared_data(*(pl.read_parquet(assets / f"{name}.parquet") for name in tables))
    bias = UserVideoBiasRecommender().fit(data.training)
    oracle = OracleRecommender.from_truth(
        pl.read_parquet(assets / "planted_truth.parquet"), data.scaler, data.n_users, data.n_videos
    )
    grid = oracle.expected_target.tocoo()
    users, videos = grid.row.astype(np.int32), grid.col.astype(np.int32)
    return GridSetup(
        data=data,
        bias=bias,
        oracle=oracle,
        cell_users=users,
        cell_videos=videos,
        truth=grid.data.astype(np.float64),
        bias_cells=bias.predict(users, videos).astype(np.float64),
    )


def planted_parts(profile: str, seed: int, users: np.ndarray, videos: np.ndarray) -> dict[str, np.ndarray]:
    """The twin's planted taste (the interaction part of a view's log engagement eta) per (user, video) pair, by part.

    Parameters
    ----------
    profile, seed : the twin's profile and seed (its entities are rebuilt from them, as the generator builds them).
    users, videos : int (n,), the pairs.

    Returns
    -------
    ``{"latent factors", "user x tag affinity", "user x duration"}`` -> float64 (n,), each on the eta scale.
    """
    from kuairec_pipeline.dataset.synthetic.config import DEFAULT_BEHAVIOUR, PROFILES
    from kuairec_pipeline.dataset.synthetic.entities import build_users, build_videos

    planted_videos = build_videos(PROFILES[profile], DEFAULT_BEHAVIOUR, seed)
    planted_users = build_users(PROFILES[profile], DEFAULT_BEHAVIOUR, planted_videos, seed)
    pairs = {
        "latent factors": (planted_users.factors, planted_videos.factors),
        "user x tag affinity": (planted_users.tag_affinity, planted_videos.tag_weights),
    }
    # float32 products, as the entities store them, then float64
    parts = {
        label: np.einsum("ij,ij->i", left[users], right[videos]).astype(np.float64)
        for label, (left, right) in pairs.items()
    }
    parts["user x duration"] = planted_users.duration_preference[users] * -planted_videos.log_duration_z[videos]
    return parts


def residual_factors(
    users: np.ndarray,
    videos: np.ndarray,
    residual: np.ndarray,
    shape: tuple[int, int],
    rank: int,
    l2: float,
    seed: int,
    weighted: bool = False,
    sweeps: int = MF_SWEEPS,
) -> tuple[np.ndarray, np.ndarray]:
    """Explicit matrix factorization of per-row residuals by alternating ridge solves.

    Minimizes ``sum_rows (r - p_u . q_v)^2 + sum_u l2_u |p_u|^2 + sum_v l2_v |q_v|^2`` (Koren, Bell & Volinsky,
    "Matrix factorization techniques for recommender systems", IEEE Computer 2009), with

    - ``weighted=False``: ``l2_u = l2_v = l2`` (a fixed penalty, in residual^2 units);
    - ``weighted=True``: ``l2_u = l2 * n_u``, ``l2_v = l2 * n_v``, each row's number of training rows: the
      weighted-lambda regularization of ALS-WR (Zhou, Wilkinson, Schreiber & Pan, "Large-scale parallel
      collaborative filtering for the Netflix prize", AAIM 2008, eq. 3), which Spark MLlib's ALS uses.

    Parameters
    ----------
    users, videos : int (n_rows,), ids as row / column indices.
    residual : float (n_rows,), the value to factorize (repeated pairs: each row counts once).
    shape : (n_users, n_videos).
    rank : factors per user and video (>= 1).
    l2 : ridge penalty (>= 0), per row (fixed) or per training row (weighted).
    seed : video factors start as 0.1 x standard normal from this seed; user factors are solved first.
    weighted : weighted-lambda (ALS-WR) instead of the fixed penalty.
    sweeps : alternating sweeps (each: every user, then every video).

    Returns
    -------
    (user factors float64 (n_users, rank), video factors float64 (n_videos, rank)); rows without data are 0.
    """
    counts = sp.csr_matrix((np.ones_like(residual), (users, videos)), shape=shape)
    sums = sp.csr_matrix((residual, (users, videos)), shape=shape)
    counts.sum_duplicates()
    sums.sum_duplicates()
    rng = np.random.default_rng(seed)
    user_factors = np.zeros((shape[0], rank))
    video_factors = 0.1 * rng.standard_normal((shape[1], rank))

    def solve(c: sp.csr_matrix, s: sp.csr_matrix, fixed: np.ndarray) -> np.ndarray:
        out = np.zeros((c.shape[0], rank))
        for i in range(c.shape[0]):
            lo, hi = c.indptr[i], c.indptr[i + 1]
            if lo == hi:
                continue
            f = fixed[c.indices[lo:hi]]
            penalty = l2 * c.data[lo:hi].sum() if weighted else l2
            gram = (f * c.data[lo:hi, None]).T @ f + penalty * np.eye(rank)
            out[i] = np.linalg.solve(gram, f.T @ s.data[lo:hi])
        return out

    counts_t, sums_t = counts.T.tocsr(), sums.T.tocsr()
    for _ in range(sweeps):
        user_factors = solve(counts, sums, video_factors)
        video_factors = solve(counts_t, sums_t, user_factors)
    return user_factors, video_factors
