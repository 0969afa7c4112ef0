"""The arrays every model trains and is evaluated on, built once from the prepared-data assets.

Two types keep what a model may learn from apart from what it is judged on (a type boundary, not a convention):

- :class:`TrainingData` is all that ``Recommender.fit`` receives: the ``train`` rows, the tuning ``val`` rows (early
  stopping, blend weights) and the side features. It holds no test and no selection row.
- :class:`PreparedData` composes it with the ``selection`` slice (model choice) and the ``test`` split (reported
  metrics); evaluation, the recommendations asset and the CLI use it.

Ids are used as row indices: KuaiRec's user ids 0..7175 and video ids 0..10727 are dense, so
``n_users = max user id + 1`` (from ``user_features``) and likewise for videos.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from kuairec_pipeline.target import SPLIT_SELECTION, SPLIT_TEST, SPLIT_TRAIN, SPLIT_VAL, TargetScaler


@dataclass
class Interactions:
    """One split, one row per interaction (test: one row per distinct (user, video) pair, mean watch ratio)."""

    user: np.ndarray  # int32
    video: np.ndarray  # int32
    target: np.ndarray  # float32, scaled watch ratio in [0, 1]
    watch_ratio: np.ndarray  # float32, raw
    timestamp: np.ndarray  # float64 epoch seconds, NaN where the file had none
    passes_filter: np.ndarray  # bool: the row survives the outlier filter (always True in train and val)

    def __len__(self) -> int:
        return int(self.user.shape[0])

    @classmethod
    def from_frame(cls, frame: pl.DataFrame) -> Interactions:
        """The interactions of a ``filtered_ratios``-shaped frame.

        Parameters
        ----------
        frame : polars frame with ``user_id``, ``video_id``, ``target``, ``watch_ratio``, ``timestamp`` (epoch seconds,
            null allowed) and ``passes_filter`` columns, n rows.

        Returns
        -------
        Interactions of n rows (int32 ids, float32 target and watch ratio, float64 timestamps with NaN for null, bool).

        Raises
        ------
        polars.exceptions.ColumnNotFoundError
            If a column is missing.
        """
        return cls(
            user=frame["user_id"].to_numpy().astype(np.int32, copy=False),
            video=frame["video_id"].to_numpy().astype(np.int32, copy=False),
            target=frame["target"].to_numpy().astype(np.float32, copy=False),
            watch_ratio=frame["watch_ratio"].to_numpy().astype(np.float32, copy=False),
            timestamp=frame["timestamp"].fill_null(float("nan")).to_numpy().astype(np.float64, copy=False),
            passes_filter=frame["passes_filter"].to_numpy().astype(bool, copy=False),
        )


@dataclass
class TrainingData:
    """What a model may learn from: training rows, the tuning validation slice and the side features."""

    train: Interactions
    val: Interactions  # the tuning slice: early stopping and blend fitting only
    n_users: int
    n_videos: int
    scaler: TargetScaler
    # Side features, indexed by id. Categorical ids use 0 for padding / unknown.
    user_categorical: np.ndarray  # int32 (n_users, n_user_cat)
    user_categorical_cardinality: list[int]  # per column: max id + 1
    user_numeric: np.ndarray  # float32 (n_users, n_user_num), each in [0, 1]
    video_categorical: np.ndarray  # int32 (n_videos, n_video_cat), e.g. author
    video_categorical_cardinality: list[int]
    video_numeric: np.ndarray  # float32 (n_videos, n_video_num), each in [0, 1]
    video_tags: np.ndarray  # int32 (n_videos, MAX_TAGS), tag id + 1, 0 = padding
    video_tag_multi_hot: np.ndarray  # float32 (n_videos, NUM_TAGS)
    user_categorical_names: list[str] = field(default_factory=list)
    user_numeric_names: list[str] = field(default_factory=list)
    video_categorical_names: list[str] = field(default_factory=list)
    video_numeric_names: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PreparedData:
    """The training data plus the two slices no model sees: ``selection`` (choose the served model) and ``test``.

    ``selection`` holds one row per validation-window interaction of the selection users (repeated views stay
    separate rows, as in ``val``); ``test`` one row per distinct small_matrix pair.
    """

    training: TrainingData
    selection: Interactions
    test: Interactions

    @property
    def n_users(self) -> int:
        """Number of users (ids are 0..n_users - 1), as in :attr:`training`."""
        return self.training.n_users

    @property
    def n_videos(self) -> int:
        """Number of videos (ids are 0..n_videos - 1), as in :attr:`training`."""
        return self.training.n_videos

    @property
    def scaler(self) -> TargetScaler:
        """The target scaler fitted on the training rows (raw watch ratio <-> target in [0, 1])."""
        return self.training.scaler

    @property
    def test_users(self) -> np.ndarray:
        """Sorted distinct test user ids."""
        return np.unique(self.test.user)

    @property
    def test_videos(self) -> np.ndarray:
        """Sorted distinct test video ids."""
        return np.unique(self.test.video)


def _prefixed(frame: pl.DataFrame, prefix: str) -> list[str]:
    return [c for c in frame.columns if c.startswith(prefix)]


def _dense_by_id(frame: pl.DataFrame, id_column: str, n: int, columns: list[str], dtype) -> np.ndarray:
    out = np.zeros((n, len(columns)), dtype=dtype)
    if columns:
        ids = frame[id_column].to_numpy()
        out[ids] = frame.select(columns).fill_null(0).to_numpy().astype(dtype, copy=False)
    return out


def _split_rows(filtered_ratios: pl.DataFrame, split: str) -> Interactions:
    return Interactions.from_frame(filtered_ratios.filter(pl.col("split") == split))


def build_training_data(
    filtered_ratios: pl.DataFrame, user_features: pl.DataFrame, video_features: pl.DataFrame
) -> TrainingData:
    """Turn the three prepared-data tables into what ``Recommender.fit`` receives (no selection or test row).

    Parameters
    ----------
    filtered_ratios : the ``filtered_ratios`` table (``split`` in train / val / selection / test); only the train
        and val rows are read, and the scaler from the train rows.
    user_features, video_features : the feature tables. Reads the conventions the feature assets write:
        ``cat_*`` columns are categorical ids (0 = padding), ``num_*`` floats in [0, 1], ``tag_ids`` a fixed-length
        padded list, ``tag_multi_hot`` a 0/1 list.

    Returns
    -------
    TrainingData, ids as row indices (``n_users = max user id + 1``, likewise videos).
    """
    n_users = int(user_features["user_id"].max()) + 1
    n_videos = int(video_features["video_id"].max()) + 1
    user_cat = _prefixed(user_features, "cat_")
    user_num = _prefixed(user_features, "num_")
    video_cat = _prefixed(video_features, "cat_")
    video_num = _prefixed(video_features, "num_")
    user_categorical = _dense_by_id(user_features, "user_id", n_users, user_cat, np.int32)
    video_categorical = _dense_by_id(video_features, "video_id", n_videos, video_cat, np.int32)
    tags = np.stack(video_features["tag_ids"].to_list()).astype(np.int32)
    multi_hot = np.stack(video_features["tag_multi_hot"].to_list()).astype(np.float32)
    video_ids = video_features["video_id"].to_numpy()
    video_tags = np.zeros((n_videos, tags.shape[1]), dtype=np.int32)
    video_tags[video_ids] = tags
    video_multi_hot = np.zeros((n_videos, multi_hot.shape[1]), dtype=np.float32)
    video_multi_hot[video_ids] = multi_hot
    return TrainingData(
        train=_split_rows(filtered_ratios, SPLIT_TRAIN),
        val=_split_rows(filtered_ratios, SPLIT_VAL),
        n_users=n_users,
        n_videos=n_videos,
        scaler=TargetScaler.from_filtered_ratios(filtered_ratios),
        user_categorical=user_categorical,
        user_categorical_cardinality=[int(user_categorical[:, i].max()) + 1 for i in range(len(user_cat))],
        user_numeric=_dense_by_id(user_features, "user_id", n_users, user_num, np.float32),
        video_categorical=video_categorical,
        video_categorical_cardinality=[int(video_categorical[:, i].max()) + 1 for i in range(len(video_cat))],
        video_numeric=_dense_by_id(video_features, "video_id", n_videos, video_num, np.float32),
        video_tags=video_tags,
        video_tag_multi_hot=video_multi_hot,
        user_categorical_names=user_cat,
        user_numeric_names=user_num,
        video_categorical_names=video_cat,
        video_numeric_names=video_num,
    )


def build_prepared_data(
    filtered_ratios: pl.DataFrame, user_features: pl.DataFrame, video_features: pl.DataFrame
) -> PreparedData:
    """:func:`build_training_data` plus the ``selection`` and ``test`` rows of ``filtered_ratios``.

    Returns
    -------
    PreparedData whose ``training`` is exactly ``build_training_data(...)`` of the same tables.
    """
    selection, test = build_evaluation_rows(filtered_ratios)
    return PreparedData(
        training=build_training_data(filtered_ratios, user_features, video_features), selection=selection, test=test
    )


def build_evaluation_rows(filtered_ratios: pl.DataFrame) -> tuple[Interactions, Interactions]:
    """The held-out rows of ``filtered_ratios``: ``(selection, test)``, as :class:`PreparedData` holds them.

    Returns
    -------
    tuple of Interactions: the ``selection`` rows (model choice) and the ``test`` rows (small_matrix).
    """
    return _split_rows(filtered_ratios, SPLIT_SELECTION), _split_rows(filtered_ratios, SPLIT_TEST)
