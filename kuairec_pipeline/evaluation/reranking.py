"""Coverage re-ranking of the served lists: trade a bounded share of ranking quality for aggregate diversity.

Every model here ranks mostly by the video's own appeal (its bias), which is the same for everyone, so the top-10
lists of most users share their videos (the served lists used 4-7% of the videos on the demo and full twins). The served
lists therefore rank by a penalized score

    r(u, v) = s(u, v) - penalty * m(v),    m(v) = mean over all users of s(u, v)

where ``s`` is the model's predicted scaled watch ratio and ``m(v)`` the video's average predicted appeal:
``penalty`` 0 is the model's own ranking, 1 ranks by how much more the user is predicted to like the video than
the average user does. This is a continuous form of the "item average rating" re-ranking of Adomavicius & Kwon,
"Improving aggregate recommendation diversity using ranking-based techniques", IEEE TKDE 24(5), 2012 (rank the
user's well-predicted candidates by ascending average rating), whose paper also defines the catalogue coverage
("aggregate diversity") it raises. Pointwise predictions (mae, the ``predicted_watch_ratio`` of the lists) stay
the model's own.

The penalty is chosen without the test grid: the smallest one on a fixed grid whose top-10 lists over every
video (seen videos excluded, as served) reach ``target_coverage`` with no video in more than
``max_top_item_share`` of them, among those that keep the selection slice's ndcg@10 (which no model fitted on)
within ``max_selection_ndcg_loss`` of the unpenalized model's; then the same rule on a few penalties between that
one and the grid point before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Self

import numpy as np
import polars as pl
import scipy.sparse as sp

from kuairec_pipeline.evaluation.metrics import (
    METRICS_SCHEMA,
    POSITIVE_WATCH_RATIO,
    SELECTION_NDCG_AT,
    distinct_pairs,
    evaluate,
    sparse_ndcg_at_k,
)
from kuairec_pipeline.models.base import SCORE_BATCH_CELLS, Recommender
from kuairec_pipeline.models.data import PreparedData, TrainingData

PENALTY_GRID = tuple(round(0.05 * step, 2) for step in range(21))  # 0, 0.05, ..., 1
# Penalties tried between the grid's first reaching one and the one before it (0.01 apart on the default grid): the
# ndcg a penalty costs grows fastest near the target, so stopping at the grid point overpays (one more pass).
REFINE_STEPS = 4
COVERAGE_AT = 10  # the served lists' length the coverage target is about (the metrics table's @10)
SUFFIX = "+coverage"  # the re-ranked served model's name in the metrics table: "<model>+coverage"
SPLIT_SERVING = "serving"  # metrics-table rows about the served lists over every video (not the test grid)


def video_mean_scores(model: Recommender) -> np.ndarray:
    """float64 (n_videos,): each video's mean ``score_all`` over every user, ``m(v)`` of the module docstring.

    Scored in user batches of at most ``SCORE_BATCH_CELLS`` cells, so memory stays bounded at the full scale.
    """
    total = np.zeros(model.n_videos, dtype=np.float64)
    batch = max(1, SCORE_BATCH_CELLS // max(1, model.n_videos))
    for first in range(0, model.n_users, batch):
        users = np.arange(first, min(first + batch, model.n_users))
        total += model.score_all(users).sum(axis=0, dtype=np.float64)
    return total / max(1, model.n_users)


class CoverageReranked(Recommender):
    """A fitted model whose ranking is penalized by each video's mean predicted appeal (module docstring).

    ``score_all`` returns the penalized ranking score ``s(u, v) - penalty * m(v)`` (not a watch ratio, so it may
    leave [0, 1]); ``predict``, ``predict_rows`` and the scores ``recommend`` returns are the base model's
    predictions. Built from a fitted model, never fitted or stored itself: the served model's bundle and the
    penalty in the metrics table rebuild it.

    Parameters
    ----------
    base : the fitted model.
    penalty : float >= 0, the weight of ``m(v)``.
    video_means : float (n_videos,) ``m(v)``; default :func:`video_mean_scores` of ``base``.
    """

    name: ClassVar[str] = "coverage_reranked"
    scores_are_predictions: ClassVar[bool] = False

    def __init__(self, base: Recommender, penalty: float, video_means: np.ndarray | None = None) -> None:
        if not np.isfinite(penalty) or penalty < 0:
            raise ValueError(f"penalty must be a finite number >= 0, got {penalty}")
        self.base = base
        self.penalty = float(penalty)
        self.n_users, self.n_videos = base.n_users, base.n_videos
        self.time_aware = base.time_aware
        self.name = base.name + SUFFIX  # its rows in tables and reports: "<model>+coverage"
        means = video_mean_scores(base) if video_means is None else np.asarray(video_means, dtype=np.float64)
        if means.shape != (base.n_videos,):
            raise ValueError(f"video_means has shape {means.shape}, expected ({base.n_videos},)")
        self.offset = (self.penalty * means).astype(np.float32)

    def fit(self, data: TrainingData) -> Self:
        raise TypeError("a coverage re-ranking is built from a fitted model; fit the base model instead")

    def to_arrays(self) -> dict[str, np.ndarray]:
        raise TypeError("a coverage re-ranking is not stored: the served model's bundle and its penalty rebuild it")

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Self:
        raise TypeError("a coverage re-ranking is not stored: the served model's bundle and its penalty rebuild it")

    def score_all(self, user_ids: np.ndarray, video_ids: np.ndarray | None = None) -> np.ndarray:
        """float32 (n, m): the penalized ranking score (see the class docstring); ids as the base model's."""
        scores = self.base.score_all(user_ids, video_ids)
        offset = self.offset if video_ids is None else self.offset[np.asarray(video_ids, dtype=np.int64)]
        return (scores - offset[None, :]).astype(np.float32)

    def predict(self, user_ids: np.ndarray, video_ids: np.ndarray) -> np.ndarray:
        return self.base.predict(user_ids, video_ids)

    def predict_rows(self, rows, history=None) -> np.ndarray:
        return self.base.predict_rows(rows, history)

    def ranking_scores(self, user_ids: np.ndarray, video_ids: np.ndarray, predicted: np.ndarray) -> np.ndarray:
        return predicted - self.offset[np.asarray(video_ids, dtype=np.int64)]

    def recommend(
        self,
        user_ids: np.ndarray,
        k: int = 50,
        exclude: sp.csr_matrix | None = None,
        video_ids: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """As :meth:`Recommender.recommend`, ranked by the penalized score; the scores returned are the base
        model's predicted scaled watch ratios (``-inf`` padding kept), so they need not be sorted."""
        ids, ranking = super().recommend(user_ids, k, exclude, video_ids)
        # The prediction is the ranking score plus the offset it lost: no second scoring pass of the base model.
        return ids, (ranking + self.offset[ids]).astype(np.float32)  # -inf padding stays -inf


@dataclass(frozen=True)
class PenaltyChoice:
    """What :func:`choose_penalty` measured and chose.

    ``penalties``, ``coverage``, ``top_item_share``, ``selection_ndcg``: float64 (len(grid),), per penalty of the
    grid: the served top-k lists' catalogue coverage over every video and the share of users whose list holds the
    most listed video, and the selection slice's ndcg@10 (NaN without a selection slice). ``video_means``: float64
    (n_videos,), the ``m(v)`` used (to rebuild the chosen :class:`CoverageReranked` without another scoring pass).
    """

    penalty: float
    reached_target: bool
    penalties: np.ndarray
    coverage: np.ndarray
    top_item_share: np.ndarray
    selection_ndcg: np.ndarray
    video_means: np.ndarray


def list_statistics(
    model: Recommender, penalties: np.ndarray, video_means: np.ndarray, exclude: sp.csr_matrix | None, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Catalogue coverage and top-item share of every user's top ``k`` over every video, for each penalty.

    One ``score_all`` per user batch serves every penalty. Seen videos (``exclude`` nonzero) are left out, as in
    the served lists; a user with fewer than ``k`` unseen videos lists only those.

    Returns
    -------
    (coverage, top_item_share): float64 (len(penalties),) each; coverage = distinct listed videos / n_videos.
    """
    counts = np.zeros((len(penalties), model.n_videos), dtype=np.int64)
    batch = max(1, SCORE_BATCH_CELLS // max(1, model.n_videos))
    k = min(k, model.n_videos)
    for first in range(0, model.n_users, batch):
        users = np.arange(first, min(first + batch, model.n_users))
        scores = model.score_all(users).astype(np.float32)
        seen = np.zeros(scores.shape, dtype=bool)
        if exclude is not None:
            block = exclude[users].tocoo()
            seen[block.row[block.data != 0], block.col[block.data != 0]] = True
        for index, penalty in enumerate(penalties):
            ranked = scores - np.float32(penalty) * video_means.astype(np.float32)[None, :]
            ranked[seen] = -np.inf
            top = np.argpartition(-ranked, k - 1, axis=1)[:, :k]
            listed = np.isfinite(np.take_along_axis(ranked, top, axis=1))
            counts[index] += np.bincount(top[listed], minlength=model.n_videos)
    n_users = max(1, model.n_users)
    return (counts > 0).sum(axis=1) / model.n_videos, counts.max(axis=1) / n_users


def selection_ndcg(
    model: Recommender, data: PreparedData, penalties: np.ndarray, video_means: np.ndarray
) -> np.ndarray:
    """float64 (len(penalties),): selection-slice ndcg@10 of each penalized ranking, the ndcg of
    :func:`~kuairec_pipeline.evaluation.metrics.selection_metrics` (each selection user ranks their own videos) from
    one ``predict`` of the distinct pairs; NaN without a selection slice."""
    if len(data.selection) == 0:
        return np.full(len(penalties), np.nan)
    pairs = distinct_pairs(data.selection, data.n_videos)
    predicted = model.predict(pairs.user, pairs.video)
    return np.array(
        [
            sparse_ndcg_at_k(
                pairs,
                CoverageReranked(model, penalty, video_means).ranking_scores(pairs.user, pairs.video, predicted),
                SELECTION_NDCG_AT,
                POSITIVE_WATCH_RATIO,
                data.n_videos,
            )[0]
            for penalty in penalties
        ],
        dtype=np.float64,
    )


def choose_penalty(
    model: Recommender,
    data: PreparedData,
    exclude: sp.csr_matrix | None,
    target_coverage: float,
    max_selection_ndcg_loss: float,
    video_means: np.ndarray | None = None,
    max_top_item_share: float = 1.0,
    penalties: tuple[float, ...] = PENALTY_GRID,
    k: int = COVERAGE_AT,
    refine_steps: int = REFINE_STEPS,
) -> PenaltyChoice:
    """The smallest penalty of ``penalties`` whose served top-10 lists reach ``target_coverage`` with the most listed
    video in at most ``max_top_item_share`` of them (the target), among those whose
    selection ndcg@10 is at least ``(1 - max_selection_ndcg_loss)`` times the unpenalized one; when none within
    that budget reaches the target, the within-budget penalty with the highest coverage (``reached_target``
    False). Penalty 0 is always within budget. Without a selection slice only penalty 0 is allowed.

    When a penalty ``p_i > 0`` of the grid reaches the target, ``refine_steps`` evenly spaced penalties strictly
    between ``p_{i-1}`` and ``p_i`` are tried by the same rule (one more scoring pass) and the smallest reaching one
    is chosen; the choice's arrays then hold every penalty tried, ascending.

    Parameters
    ----------
    model : the fitted served model.
    data : the prepared data (its selection slice; the test grid is never read).
    exclude : csr (n_users, n_videos), nonzero = seen: left out of the lists, as served.
    target_coverage : in [0, 1], share of all videos the lists should use (0: penalty 0).
    max_selection_ndcg_loss : in [0, 1], the largest relative selection ndcg@10 drop allowed.
    video_means : ``m(v)``; default :func:`video_mean_scores`.
    max_top_item_share : in [0, 1], the largest share of users whose list may hold the most listed video.
    penalties : the grid, ascending, starting at 0.
    k : the length of the lists whose coverage counts.
    refine_steps : penalties tried between the grid's first reaching one and the one before it (>= 0).

    Returns
    -------
    PenaltyChoice.

    Raises
    ------
    ValueError
        If the grid does not start at 0 or is not ascending, a bound is outside [0, 1] or ``refine_steps`` < 0.
    """
    grid = np.asarray(penalties, dtype=np.float64)
    if grid.size == 0 or grid[0] != 0 or np.any(np.diff(grid) <= 0):
        raise ValueError(f"penalties must ascend from 0, got {penalties}")
    bounds = {
        "target_coverage": target_coverage,
        "max_selection_ndcg_loss": max_selection_ndcg_loss,
        "max_top_item_share": max_top_item_share,
    }
    for label, value in bounds.items():
        if not 0 <= value <= 1:
            raise ValueError(f"{label} must be in [0, 1], got {value}")
    if refine_steps < 0:
        raise ValueError(f"refine_steps must be >= 0, got {refine_steps}")
    means = video_mean_scores(model) if video_means is None else video_means

    def measured(penalties: np.ndarray) -> tuple[np.ndarray, ...]:
        return (*list_statistics(model, penalties, means, exclude, k), selection_ndcg(model, data, penalties, means))

    def reaching(coverage: np.ndarray, share: np.ndarray, allowed: np.ndarray) -> np.ndarray:
        return allowed & (coverage >= target_coverage) & (share <= max_top_item_share)

    coverage, share, ndcg = measured(grid)
    allowed = _within_budget(grid, ndcg, max_selection_ndcg_loss)
    first = np.flatnonzero(reaching(coverage, share, allowed))
    if first.size and first[0] > 0 and refine_steps:
        between = np.linspace(grid[first[0] - 1], grid[first[0]], refine_steps + 2)[1:-1].round(6)
        order = np.argsort(np.concatenate([grid, between]), kind="stable")
        grid, coverage, share, ndcg = (
            np.concatenate([old, new])[order]
            for old, new in zip((grid, coverage, share, ndcg), (between, *measured(between)), strict=True)
        )
        allowed = _within_budget(grid, ndcg, max_selection_ndcg_loss)
    hits = np.flatnonzero(reaching(coverage, share, allowed))
    if hits.size:
        index, reached = int(hits[0]), True
    else:
        index, reached = int(np.flatnonzero(allowed)[np.argmax(coverage[allowed])]), False
    return PenaltyChoice(float(grid[index]), reached, grid, coverage, share, ndcg, np.asarray(means, np.float64))


def _within_budget(grid: np.ndarray, ndcg: np.ndarray, max_loss: float) -> np.ndarray:
    """bool (len(grid),): penalty 0 (always) and every penalty whose selection ndcg@10 is at least ``1 - max_loss``
    times penalty 0's; only penalty 0 without a selection slice (NaN ndcg)."""
    plain = float(ndcg[grid == 0][0])
    if np.isnan(plain):
        return grid == 0
    allowed = np.nan_to_num(ndcg, nan=-np.inf) >= (1 - max_loss) * plain - 1e-12
    allowed[grid == 0] = True
    return allowed


def coverage_rows(
    served: Recommender,
    data: PreparedData,
    exclude: sp.csr_matrix | None,
    target_coverage: float,
    max_selection_ndcg_loss: float,
    max_top_item_share: float = 1.0,
    k: int = COVERAGE_AT,
    test_predictions: np.ndarray | None = None,
    evaluate_inputs: dict[str, Any] | None = None,
) -> tuple[pl.DataFrame, PenaltyChoice]:
    """The metrics-table rows of the served model's coverage re-ranking: the re-ranked model, named
    ``<served>+coverage``, through the same :func:`~kuairec_pipeline.evaluation.metrics.evaluate` as every model
    (test grid and selection rows), and ``serving`` rows: the served lists' ``catalogue_coverage@10`` and
    ``top_item_share@10`` over every video for ``<served>`` (penalty 0) and ``<served>+coverage``, and for the
    latter its ``penalty`` and ``reached_target`` (1 or 0); ``@10`` is ``@k``. Arguments as :func:`choose_penalty`;
    ``test_predictions``: the served model's time-aware test predictions when already computed (see
    :func:`~kuairec_pipeline.evaluation.metrics.evaluate`), which are also the re-ranking's. With penalty 0 (the
    target off, or no penalty within the budget raises coverage) the re-ranked model's test and selection rows are
    left out: they would repeat the served model's. ``evaluate_inputs``: the evaluation's
    :func:`~kuairec_pipeline.evaluation.metrics.shared_inputs`, when already built (else built here).

    Returns
    -------
    (long frame with :data:`~kuairec_pipeline.evaluation.metrics.METRICS_SCHEMA`, the PenaltyChoice).
    """
    means = video_mean_scores(served)
    choice = choose_penalty(
        served, data, exclude, target_coverage, max_selection_ndcg_loss, means, max_top_item_share, k=k
    )
    reranked = CoverageReranked(served, choice.penalty, means)
    label = reranked.name
    evaluated = (
        evaluate(reranked, data, include_selection=True, test_predictions=test_predictions, **(evaluate_inputs or {}))
        if choice.penalty > 0
        else pl.DataFrame(schema=METRICS_SCHEMA)
    )
    chosen = int(np.searchsorted(choice.penalties, choice.penalty))
    at = f"@{k}"
    records = [
        (served.name, SPLIT_SERVING, "catalogue_coverage" + at, float(choice.coverage[0]), served.n_users),
        (served.name, SPLIT_SERVING, "top_item_share" + at, float(choice.top_item_share[0]), served.n_users),
        (label, SPLIT_SERVING, "catalogue_coverage" + at, float(choice.coverage[chosen]), served.n_users),
        (label, SPLIT_SERVING, "top_item_share" + at, float(choice.top_item_share[chosen]), served.n_users),
        (label, SPLIT_SERVING, "penalty", choice.penalty, served.n_users),
        (label, SPLIT_SERVING, "reached_target", float(choice.reached_target), served.n_users),
    ]
    serving = pl.DataFrame(records, schema=METRICS_SCHEMA, orient="row")
    return pl.concat([evaluated, serving], how="vertical"), choice


def served_penalty(metrics_table: pl.DataFrame, served: str) -> float:
    """The coverage penalty :func:`coverage_rows` chose for ``served``, read back from the metrics table.

    Raises
    ------
    ValueError
        If the table holds no ``serving`` penalty row for ``<served>+coverage`` (a table written before
        re-ranking existed: re-materialize ``metrics``).
    """
    row = metrics_table.filter(
        (pl.col("model") == served + SUFFIX) & (pl.col("split") == SPLIT_SERVING) & (pl.col("metric") == "penalty")
    )
    if row.height != 1:
        raise ValueError(
            f"metrics holds no coverage penalty for {served!r} (model {served + SUFFIX!r}, split {SPLIT_SERVING!r}): "
            "it was written before coverage re-ranking; re-materialize metrics"
        )
    return float(row["value"][0])
