"""What the HTML report shows beyond the metrics table, computed from plain objects (no Dagster).

Catalogue coverage follows Ge, Delgado-Battenfeld and Jannach, "Beyond accuracy: evaluating recommender systems
by coverage and serendipity", RecSys 2010: the share of the catalogue that appears in at least one user's top-k.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from kuairec_pipeline.evaluation.metrics import seen_matrix
from kuairec_pipeline.evaluation.report_plots import history_frame
from kuairec_pipeline.models.base import Recommender
from kuairec_pipeline.models.data import PreparedData
from kuairec_pipeline.models.two_tower import HISTORY_COLUMNS
from kuairec_pipeline.recommend import build_recommendations

HISTORY_KEY = "training_history"  # (epochs, columns) float array in a model bundle
HISTORY_COLUMNS_KEY = "training_history_columns"  # optional: its column names, a unicode array
LABEL_SCHEMA = {"video_id": pl.Int32, "caption": pl.String, "tags": pl.String}


@dataclass(frozen=True)
class TrainingCurve:
    """One trained model's per-epoch history (``epoch`` plus float columns) and the epoch whose weights it kept."""

    model: str
    history: pl.DataFrame
    best_epoch: int | None = None


@dataclass(frozen=True)
class UserExample:
    """One user's recent viewing (``video_id``, ``watch_ratio``, ``caption``, ``tags``; newest first) next to a
    model's top-k (``rank``, ``video_id``, ``predicted_watch_ratio``, ``caption``, ``tags``)."""

    user_id: int
    model: str
    history: pl.DataFrame
    top_k: pl.DataFrame


def training_curve(model: str, bundle: dict[str, np.ndarray]) -> TrainingCurve | None:
    """The curve stored in a model bundle, or ``None`` when the bundle holds no ``training_history``.

    Columns are read from ``training_history_columns`` when present, else the two-tower's ``HISTORY_COLUMNS``
    (``epoch``, ``train_loss``, ``val_mse``, ``val_mae``), the layout the two-tower bundle stores.
    """
    history = bundle.get(HISTORY_KEY)
    if history is None or np.asarray(history).size == 0:
        return None
    names = [str(n) for n in bundle[HISTORY_COLUMNS_KEY]] if HISTORY_COLUMNS_KEY in bundle else list(HISTORY_COLUMNS)
    try:
        frame = history_frame(history, names)
    except ValueError as error:
        raise ValueError(f"{model}: {error}") from error
    best = bundle.get("best_epoch")
    return TrainingCurve(model, frame, int(best) if best is not None else None)


def catalogue_coverage(models: Sequence[Recommender], data: PreparedData, k: int = 10) -> dict[str, float]:
    """Share of all ``data.n_videos`` videos in at least one test user's top ``k`` (seen videos excluded), per model.

    Returns a dict model name -> coverage in [0, 1], in the order of ``models``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    seen = seen_matrix(data)
    users = data.test_users
    coverage = {}
    for model in models:
        table = build_recommendations(model, k=k, exclude_seen=seen, user_ids=users)
        coverage[model.name] = table["video_id"].n_unique() / data.n_videos if data.n_videos else 0.0
    return coverage


def video_labels(raw_videos: pl.DataFrame, item_daily_features: str | Path | None = None) -> pl.DataFrame:
    """``video_id``, ``caption`` and ``tags`` (named tag from item_daily_features, else the numeric tag ids).

    ``raw_videos`` is the ``raw_videos`` asset (``video_id``, ``tags``, ``caption``); ``item_daily_features`` the
    side file whose ``video_tag_name`` names each video's tag (optional: the real archive has it, a bare folder may
    not).
    """
    frame = raw_videos.select(
        pl.col("video_id").cast(pl.Int32),
        pl.col("caption").cast(pl.String)
        if "caption" in raw_videos.columns
        else pl.lit(None, pl.String).alias("caption"),
        pl.col("tags").cast(pl.List(pl.String)).list.join(", ").alias("tag_ids"),
    )
    if item_daily_features is not None:
        from kuairec_pipeline.dataset.loader import scan_item_daily_features

        names = (
            scan_item_daily_features(item_daily_features)
            .select("video_id", "video_tag_name")
            .drop_nulls()
            .filter(pl.col("video_tag_name").str.strip_chars() != "")
            .group_by("video_id")
            .agg(pl.col("video_tag_name").first())
            .collect(engine="streaming")
            .with_columns(pl.col("video_id").cast(pl.Int32))
        )
        frame = frame.join(names, on="video_id", how="left")
    else:
        frame = frame.with_columns(pl.lit(None, pl.String).alias("video_tag_name"))
    tags = pl.coalesce(pl.col("video_tag_name"), pl.concat_str(pl.lit("tag ids "), pl.col("tag_ids")))
    return frame.select("video_id", pl.col("caption").fill_null(""), tags.fill_null("").alias("tags"))


def example_users(data: PreparedData, count: int = 3) -> list[int]:
    """``count`` test users spread evenly over the sorted test user ids (deterministic).

    Parameters
    ----------
    data : the prepared data.
    count : how many users.

    Returns
    -------
    list of at most ``count`` distinct user ids; empty without test users or for ``count`` < 1.
    """
    users = data.test_users
    if users.size == 0 or count < 1:
        return []
    picks = np.unique(np.linspace(0, users.size - 1, num=min(count, users.size)).round().astype(int))
    return [int(users[i]) for i in picks]


def user_examples(
    model: Recommender, data: PreparedData, labels: pl.DataFrame, users: Sequence[int], k: int = 10, history: int = 10
) -> list[UserExample]:
    """For each user: the ``history`` latest train/val views and ``model``'s top ``k`` of the unseen videos.

    Parameters
    ----------
    model : Recommender
        A fitted model; scores are mapped back to watch ratios with ``data.scaler``.
    data : PreparedData
        The split arrays (views are ordered by timestamp, newest first).
    labels : polars.DataFrame
        :func:`video_labels`' table (``video_id``, ``caption``, ``tags``).
    users : sequence of int
        User ids.
    """
    if k < 1 or history < 0:
        raise ValueError(f"k must be >= 1 and history >= 0, got k={k}, history={history}")
    seen = seen_matrix(data)
    recs = build_recommendations(
        model, k=k, exclude_seen=seen, user_ids=np.asarray(users, dtype=np.int64), scaler=data.scaler
    )
    wanted = np.asarray(users, dtype=np.int64)
    frames = []
    for part in (data.training.train, data.training.val, data.selection):
        mask = np.isin(part.user, wanted)  # only the chosen users' rows: the full splits hold millions
        frames.append(
            pl.DataFrame(
                {
                    "user_id": part.user[mask],
                    "video_id": part.video[mask],
                    "watch_ratio": part.watch_ratio[mask],
                    "timestamp": part.timestamp[mask],
                }
            )
        )
    views = pl.concat(frames).with_columns(pl.col("user_id").cast(pl.Int32), pl.col("video_id").cast(pl.Int32))
    examples = []
    for user in users:
        recent = (
            views.filter(pl.col("user_id") == user)
            .sort("timestamp", descending=True, nulls_last=True)
            .head(history)
            .join(labels, on="video_id", how="left", maintain_order="left")
            .select("video_id", "watch_ratio", "caption", "tags")
        )
        top = (
            recs.filter(pl.col("user_id") == user)
            .sort("rank")
            .join(labels, on="video_id", how="left", maintain_order="left")
            .select("rank", "video_id", "predicted_watch_ratio", "caption", "tags")
        )
        examples.append(UserExample(int(user), model.name, recent, top))
    return examples
