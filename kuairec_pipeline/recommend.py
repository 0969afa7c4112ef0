"""Top-k recommendations for every user as one table, and the readable answer of ``kuairec recommend --user ID``.

The table (``user_id``, ``rank``, ``video_id``, ``score``, ``model``, and ``predicted_watch_ratio`` when built
with the scaler) is sorted by user and rank, so Parquet's row-group statistics let a filtered scan read only the
part holding one user: the CLI answers from the stored files without loading a model or the whole table. With
``predicted_watch_ratio`` stored it need not scan ``filtered_ratios`` for the scaler either (most of the time).
"""

from __future__ import annotations

import warnings as _warnings
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

from kuairec_pipeline import provenance
from kuairec_pipeline.evaluation.reranking import SPLIT_SERVING, SUFFIX
from kuairec_pipeline.models.base import Recommender
from kuairec_pipeline.target import SPLIT_SELECTION, SPLIT_TRAIN, SPLIT_VAL, TargetScaler

RECOMMENDATION_SCHEMA = {
    "user_id": pl.Int32,
    "rank": pl.Int32,
    "video_id": pl.Int32,
    "score": pl.Float32,
    "model": pl.String,
}
DEFAULT_BATCH_USERS = 2048  # users per recommend() call: bounds the (users x k) arrays and frames in flight
# Asset files as the IO managers name them (<key>.parquet / <key>.npz); spelled out here rather than imported from
# orchestration, which would load Dagster and cost the CLI seconds.
RECOMMENDATIONS_FILE = "recommendations.parquet"
VIDEO_FEATURES_FILE = "video_features.parquet"
FILTERED_RATIOS_FILE = "filtered_ratios.parquet"
METRICS_FILE = "metrics.parquet"
SEEN_SPLITS = (SPLIT_TRAIN, SPLIT_VAL, SPLIT_SELECTION)  # big_matrix rows: what the recommendations asset excludes


class UnknownUserError(LookupError):
    """The user id has no recommendations; the message gives the valid id range."""

    def __init__(self, user_id: int, low: int | None, high: int | None) -> None:
        self.user_id, self.low, self.high = user_id, low, high
        if low is None or high is None:
            message = f"unknown user {user_id}: the recommendations table is empty"
        else:
            message = f"unknown user {user_id}: valid user ids are {low}..{high}"
        super().__init__(message)


class UnknownModelError(LookupError):
    """No trained model of that name."""


def build_recommendations(
    model: Recommender,
    n_users: int | None = None,
    k: int = 50,
    exclude_seen: sp.csr_matrix | None = None,
    *,
    user_ids: np.ndarray | None = None,
    label: str | None = None,
    scaler: TargetScaler | None = None,
    batch_users: int = DEFAULT_BATCH_USERS,
) -> pl.DataFrame:
    """Top ``k`` videos for users 0..n_users-1 (or ``user_ids``) through ``model.recommend``, best first.

    ``exclude_seen`` (users x videos, nonzero = seen) removes seen videos; a user with fewer than ``k`` unseen
    videos gets fewer rows. ``label`` fills the ``model`` column (default ``model.name``). With ``scaler``, a
    ``predicted_watch_ratio`` column (float32, ``scaler.inverse(score)``) is added.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    users = (
        np.arange(model.n_users if n_users is None else n_users)
        if user_ids is None
        else np.asarray(user_ids, dtype=np.int64)
    )
    name = label or model.name
    frames = []
    for first in range(0, users.size, batch_users):
        batch = users[first : first + batch_users]
        ids, scores = model.recommend(batch, k=k, exclude=exclude_seen)
        width = ids.shape[1]
        kept = np.isfinite(scores).ravel()  # excluded videos come back at -inf when too few are left
        frames.append(
            pl.DataFrame(
                {
                    "user_id": np.repeat(batch, width)[kept].astype(np.int32),
                    "rank": np.tile(np.arange(1, width + 1, dtype=np.int32), batch.size)[kept],
                    "video_id": ids.ravel()[kept].astype(np.int32),
                    "score": scores.ravel()[kept].astype(np.float32),
                }
            )
        )
    table = (
        pl.concat(frames)
        if frames
        else pl.DataFrame(schema={c: RECOMMENDATION_SCHEMA[c] for c in ("user_id", "rank", "video_id", "score")})
    )
    # Excluded videos score -inf, below every real score, so dropping them only cuts a tail: ranks stay 1..n.
    table = table.with_columns(pl.lit(name, dtype=pl.String).alias("model"))
    if scaler is not None:
        table = table.with_columns(
            pl.Series("predicted_watch_ratio", scaler.inverse(table["score"].to_numpy()), dtype=pl.Float32)
        )
    return table.sort("user_id", "rank")


def _user_range(frame: pl.DataFrame | pl.LazyFrame) -> tuple[int | None, int | None]:
    bounds = frame.lazy().select(pl.col("user_id").min().alias("low"), pl.col("user_id").max().alias("high"))
    low, high = bounds.collect().row(0)
    return (None, None) if low is None else (int(low), int(high))


def read_user_recommendations(path: str | Path, user_id: int, k: int | None = None) -> pl.DataFrame:
    """One user's rows of a stored recommendations table, best first; :class:`UnknownUserError` if none."""
    table = pl.scan_parquet(path)
    rows = table.filter(pl.col("user_id") == user_id).sort("rank")
    recs = (rows.head(k) if k else rows).collect()
    if recs.is_empty():
        raise UnknownUserError(user_id, *_user_range(table))
    return recs


def read_scaler(filtered_ratios_path: str | Path) -> TargetScaler:
    """The training target scaler, recovered from the stored ``filtered_ratios`` table (two columns scanned)."""
    train = pl.scan_parquet(filtered_ratios_path).filter(pl.col("split") == SPLIT_TRAIN)
    low, high = train.select(low=pl.col("watch_ratio").min(), high=pl.col("watch_ratio").max()).collect().row(0)
    if low is None:
        raise ValueError(f"{filtered_ratios_path} has no training rows")
    return TargetScaler(float(low), float(high))


def _tag_text(tag_ids: list[int] | None) -> str:
    tags = [str(t - 1) for t in (tag_ids or []) if t]  # stored as tag id + 1, 0 = padding
    return ", ".join(tags) if tags else "-"


def format_recommendations(
    recs: pl.DataFrame,
    user_id: int,
    k: int = 10,
    video_features: pl.DataFrame | pl.LazyFrame | None = None,
    scaler: TargetScaler | None = None,
) -> str:
    """A plain-text table of ``user_id``'s top ``k``: rank, video, predicted watch ratio (``scaler.inverse`` of
    the score when a scaler is given, else the table's ``predicted_watch_ratio`` column if it has one), score and
    tags (when ``video_features`` with ``tag_ids`` is given)."""
    mine = recs.filter(pl.col("user_id") == user_id).sort("rank").head(k)
    if mine.is_empty():
        raise UnknownUserError(user_id, *_user_range(recs))
    video_ids = mine["video_id"].to_list()
    tags: dict[int, str] = {}
    if video_features is not None:
        wanted = video_features.lazy().filter(pl.col("video_id").is_in(video_ids)).select("video_id", "tag_ids")
        tags = {vid: _tag_text(ids) for vid, ids in wanted.collect().iter_rows()}

    if scaler is not None:
        predicted = scaler.inverse(mine["score"].to_numpy())
    elif "predicted_watch_ratio" in mine.columns:
        predicted = mine["predicted_watch_ratio"].to_numpy()
    else:
        predicted = None
    headers = ["rank", "video"]
    if predicted is not None:
        headers.append("predicted watch ratio")
    headers.append("score")
    if video_features is not None:
        headers.append("tags")
    rows = []
    for position, (rank, video, score) in enumerate(mine.select("rank", "video_id", "score").iter_rows()):
        row = [str(rank), str(video)]
        if predicted is not None:
            row.append(f"{predicted[position]:.3f}")
        row.append(f"{score:.4f}")
        if video_features is not None:
            row.append(tags.get(video, "?"))
        rows.append(row)

    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    text_columns = {"tags"}

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if h in text_columns else c.rjust(w) for c, w, h in zip(cells, widths, headers, strict=False)
        ).rstrip()

    model = mine["model"][0] if "model" in mine.columns else "?"
    title = f"Top {len(rows)} videos for user {user_id} (model: {model})"
    return "\n".join([title, line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)]) + "\n"


def recommend_for_user(
    recommendations_path: str | Path,
    user_id: int,
    k: int = 10,
    video_features_path: str | Path | None = None,
    filtered_ratios_path: str | Path | None = None,
) -> str:
    """The ``kuairec recommend --user ID`` answer, read from stored Parquet files only (filtered scans)."""
    recs = read_user_recommendations(recommendations_path, user_id, k)
    videos = pl.scan_parquet(video_features_path) if video_features_path is not None else None
    scaler = read_scaler(filtered_ratios_path) if filtered_ratios_path is not None else None
    return format_recommendations(recs, user_id, k, videos, scaler)


def _reranking_line(metrics_path: Path, model: str | None) -> str:
    """A closing line when the stored lists were ranked with a coverage penalty (read from the metrics table),
    since their scores (the model's predictions) then need not fall with the rank; empty otherwise."""
    if model is None or not metrics_path.exists():
        return ""
    rows = pl.read_parquet(metrics_path).filter(
        (pl.col("model") == model + SUFFIX) & (pl.col("split") == SPLIT_SERVING) & (pl.col("metric") == "penalty")
    )
    penalty = float(rows["value"][0]) if rows.height else 0.0  # no row: a table from before re-ranking existed
    if penalty <= 0:
        return ""
    return (
        f"Served lists: ranked with the coverage penalty {penalty:g} on each video's mean predicted appeal "
        "(docs/DESIGN.md, 'Served lists'); score is the model's own prediction, so it need not fall with the rank.\n"
    )


def load_bundle_arrays(path: Path) -> dict[str, np.ndarray]:
    """A stored model bundle's arrays (never unpickled)."""
    with np.load(path, allow_pickle=False) as stored:
        return {name: stored[name] for name in stored.files}


def _stored_model_name(recommendations_path: Path) -> str | None:
    first = pl.scan_parquet(recommendations_path).select("model").head(1).collect()
    return None if first.is_empty() else first.item()


def _recommend_on_the_fly(assets_dir: Path, user_id: int, k: int, model_name: str) -> tuple[pl.DataFrame, list[str]]:
    """Score one user with a stored model bundle, excluding what the user watched in big_matrix (every split but
    test)."""
    from kuairec_pipeline.models.base import NAME_KEY, decode_json
    from kuairec_pipeline.models.registry import SERVED_ALIASES, TRAINED_MODELS

    entry = TRAINED_MODELS.get(model_name)
    asset_key = entry.asset_key if entry is not None else SERVED_ALIASES.get(model_name)
    if asset_key is None:
        known = ", ".join([*TRAINED_MODELS, *SERVED_ALIASES])
        raise UnknownModelError(f"unknown model {model_name!r}: trained models are {known}")
    bundle = assets_dir / f"{asset_key}.npz"
    if not bundle.exists():
        raise FileNotFoundError(f"{bundle} does not exist")
    arrays = load_bundle_arrays(bundle)
    if entry is None:  # an alias (hybrid -> hybrid_model): the bundle names the model it holds
        entry = TRAINED_MODELS[decode_json(arrays[NAME_KEY])]
    # Refuses a model trained on another filtered_ratios than the one stored (other scaling, other seen videos).
    warnings = provenance.check_against_tables(bundle.name, provenance.trained_with_of(arrays), assets_dir)
    model = entry.model_class().from_bundle(arrays, where=str(bundle))
    if not 0 <= user_id < model.n_users:
        raise UnknownUserError(user_id, 0, model.n_users - 1)
    seen = sp.csr_matrix((model.n_users, model.n_videos), dtype=np.float32)
    ratios = assets_dir / FILTERED_RATIOS_FILE
    if ratios.exists():
        watched = (
            pl.scan_parquet(ratios)
            .filter((pl.col("user_id") == user_id) & pl.col("split").is_in(list(SEEN_SPLITS)))
            .select("video_id")
            .unique()
            .collect()["video_id"]
            .to_numpy()
            .astype(np.int64)
        )
        seen = sp.csr_matrix(
            (np.ones(watched.size, dtype=np.float32), (np.full(watched.size, user_id), watched)),
            shape=(model.n_users, model.n_videos),
        )
    record = provenance.trained_with_of(arrays)
    table = build_recommendations(
        model,
        k=k,
        exclude_seen=seen,
        user_ids=np.array([user_id]),
        scaler=record.scaler if record is not None else None,
    )
    return table, warnings


def recommend_from_artifacts(assets_dir: str | Path, user_id: int, k: int = 10, model_name: str | None = None) -> str:
    """The ``kuairec recommend`` answer from the asset folder.

    By default, and when ``model_name`` is the model the ``recommendations`` asset used, the user's rows are read
    from ``recommendations.parquet`` (a filtered scan). Another trained model is loaded from its ``.npz`` bundle and
    scores the user on the spot, excluding the videos watched in big_matrix (train, val, selection) as the asset
    does.
    """
    assets_dir = Path(assets_dir)
    recommendations = assets_dir / RECOMMENDATIONS_FILE
    stored_model = _stored_model_name(recommendations) if recommendations.exists() else None
    note = ""
    if model_name is None or model_name == stored_model:
        if not recommendations.exists():
            raise FileNotFoundError(f"{recommendations} does not exist")
        note = _reranking_line(assets_dir / METRICS_FILE, stored_model)
        warnings = provenance.check_against_tables(
            recommendations.name, provenance.file_trained_with(recommendations), assets_dir
        )
        recs = read_user_recommendations(recommendations, user_id, k)
    else:
        recs, warnings = _recommend_on_the_fly(assets_dir, user_id, k, model_name)
    for warning in warnings:
        _warnings.warn(warning, provenance.ProvenanceWarning, stacklevel=2)
    videos_path = assets_dir / VIDEO_FEATURES_FILE
    ratios_path = assets_dir / FILTERED_RATIOS_FILE
    videos = pl.scan_parquet(videos_path) if videos_path.exists() else None
    needs_scaler = "predicted_watch_ratio" not in recs.columns and ratios_path.exists()
    scaler = read_scaler(ratios_path) if needs_scaler else None
    return format_recommendations(recs, user_id, k, videos, scaler) + note
