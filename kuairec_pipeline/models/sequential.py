"""SASRec-style sequential model (Kang & McAuley 2018, "Self-Attentive Sequential Recommendation", ICDM): a causal
transformer over each user's time-ordered history predicts the scaled watch ratio of the next video.

Each history position's input is the video's id embedding + the mean of its tag embeddings + its categorical
(author) embeddings + a linear projection of the scaled watch ratio the user gave it + a learned position embedding.
The state after position ``t`` (plus a per-user embedding, as in SSE-PT, Wu et al. 2020, when ``user_embedding``)
scores a candidate video ``v`` as ``sigmoid(<s_t, c_v> + b_v + b_global)``, where ``c_v`` is the video's output
vector (id, tags, author). Training: each position predicts the *next* row's target (MSE), early stopping on the
validation rows predicted from the whole training history.

Fixed start (``fixed_start``, the default): the score is ``clip(start(u, v) + <s_t, c_v> + b_v + b_global, 0, 1)``
with ``start`` the linear model's prediction fitted first and held fixed (residual learning on a fixed base, as the
two-tower's fixed biases; the candidate vectors start at zero, so the untrained network predicts the start, which
early stopping counts as a candidate). The state then only has to carry what the linear model leaves: the order
signal and the taste it missed. Without it the transformer spent itself on the biases and ranked below
user_video_bias (issue 7).

Scoring is NumPy only (no torch): ``score_all`` uses each user's state after its whole training history (its last
window, up to ``max_len`` rows), stored augmented as ``[s, 1]`` against ``[c_v, b_v + b_global]``.
``predict_rows`` gives the time-aware pointwise prediction: the state from the user's history rows strictly before
the row's timestamp (a NumPy re-implementation of the encoder, checked against torch in the tests); a row without a
timestamp reads the whole-history state. Which of those rows a state reads (all when at most ``max_len``, else a
window starting on a multiple of ``query_stride``) is :func:`.sequences.window_lengths`; windows of the ordered
model that share a start are read from one causal pass over the longest of them (the state at position ``j``
depends on rows ``0..j`` only).

Fallback: a user with no history row (before the time, or at all) gets a learned *empty state* (trained on every
user's first row) plus its user embedding, which stays exactly zero for a user absent from training (zero init,
no gradient). Short histories need no fallback: windows of 1..max_len rows are all trained.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from typing import ClassVar, Self

import numpy as np

from kuairec_pipeline.models import sequences
from kuairec_pipeline.models.base import Recommender, decode_json, encode_json, stored_config
from kuairec_pipeline.models.biases import pair_dot
from kuairec_pipeline.models.data import Interactions, TrainingData
from kuairec_pipeline.models.errors import not_fitted
from kuairec_pipeline.models.hooks import EpochTrainedHooks
from kuairec_pipeline.models.linear import LinearRecommender
from kuairec_pipeline.models.linear_start import LinearStartHooks
from kuairec_pipeline.models.sequential_config import (  # noqa: F401  (re-exported: the model's public names)
    PRECISIONS,
    SequentialArchitecture,
    SequentialConfig,
    config_from_dict,
)
from kuairec_pipeline.models.sequential_encoder import encode_last_states, encode_states  # noqa: F401 (re-exported)
from kuairec_pipeline.models.threads import limited_blas_threads, resolve_thread_count
from kuairec_pipeline.models.two_tower import _sigmoid_inplace

WEIGHTS_PREFIX = "weights."
ARCHITECTURE_KEY = "architecture"
# windows x max_len positions per NumPy encoder batch: bounds memory (~0.5 GB of float32 intermediates at the
# defaults, attention weights included)
ENCODE_BATCH_CELLS = 400_000
QUERY_CHUNK_ROWS = 262_144  # pointwise rows scored per step: ~35 MB per (rows, d + 1) float32 temporary at d = 32


class SequentialRecommender(EpochTrainedHooks, LinearStartHooks, Recommender):
    """SASRec-style transformer over each user's history (Lightning); NumPy scoring from stored states."""

    name: ClassVar[str] = "sequential"
    start_field: ClassVar[str] = "fixed_start"
    trains_with_lightning: ClassVar[bool] = True
    time_aware: ClassVar[bool] = True  # pointwise metrics come from predict_rows (the history before each row)

    def __init__(self, config: SequentialConfig | None = None) -> None:
        self.config = config or SequentialConfig()
        self.n_users = 0
        self.n_videos = 0
        self.architecture: SequentialArchitecture | None = None
        self.weights: dict[str, np.ndarray] = {}
        self.user_states: np.ndarray | None = None  # float32 (n_users, d + 1): [state after whole history, 1]
        self.video_vectors: np.ndarray | None = None  # float32 (n_videos, d + 1): [c_v, b_v + b_global]
        self.input_vectors: np.ndarray | None = None  # float32 (n_videos, d): each video's history-input vector
        # The fixed start (config.fixed_start): start(u, v) = start_user[u] @ start_video[v], the linear model's
        # unclipped prediction; None without one.
        self.start_user: np.ndarray | None = None  # float32 (n_users, k)
        self.start_video: np.ndarray | None = None  # float32 (n_videos, k)
        self.history = np.zeros((0, 4), dtype=np.float64)  # epoch, train_loss, val_mse, val_mae
        self.best_epoch = -1
        # (rows, history, predictions) of predict_rows inside remembering_rows(); None outside it
        self._remembered: list[tuple[Interactions, Interactions, np.ndarray]] | None = None

    # ---- training ------------------------------------------------------------------------------------------
    def _fit(
        self, data: TrainingData, start: LinearRecommender | None, progress: Callable[[str], None] | None = None
    ) -> Self:
        """Train on ``data.train`` (early stopping on ``data.val``) on top of ``start`` when given, store each
        user's final state; ``progress`` receives one line per epoch (None: silence)."""
        from kuairec_pipeline.models import sequential_training

        self.architecture = SequentialArchitecture.from_data(data)
        self.n_users, self.n_videos = data.n_users, data.n_videos
        history = sequences.build_history(data.train, self.n_users, self.config.seed, self.config.shuffle_positions)
        factors = None if start is None else start.augmented_factors()
        result = sequential_training.train_network(self.architecture, self.config, data, progress, history, factors)
        self.weights, self.best_epoch, self.history = result.weights, result.best_epoch, result.history
        self.input_vectors, self.video_vectors = result.input_vectors, result.video_vectors
        self.start_user, self.start_video = result.start_user, result.start_video
        self.store_final_states(data.train, history)
        return self

    def store_final_states(self, train: Interactions, history: sequences.History | None = None) -> None:
        """Recompute each user's state after its whole ``train`` history (what ``score_all`` reads) with the
        current config, e.g. after changing ``query_stride``.

        Parameters
        ----------
        train : the training rows the model was fitted on.
        history : ``train`` already grouped by :func:`.sequences.build_history`; None builds it here.
        """
        if history is None:
            history = sequences.build_history(train, self.n_users, self.config.seed, self.config.shuffle_positions)
        users, end, length = sequences.final_windows(history, self.config.max_len, self.config.effective_query_stride)
        states = self._states(history, end, length, users, np.arange(users.size))
        self.user_states = self._augmented_states(users, states)

    # ---- states (NumPy) ------------------------------------------------------------------------------------
    def _user_vectors(self, users: np.ndarray) -> np.ndarray:
        table = self.weights.get("user_embedding.weight")
        return table[users] if table is not None else np.zeros((users.size, self.config.hidden_dim), np.float32)

    def _states(
        self,
        history: sequences.History,
        window_end: np.ndarray,
        window_length: np.ndarray,
        query_user: np.ndarray,
        query_window: np.ndarray,
    ) -> np.ndarray:
        """float32 (n_queries, d): encoder state of each query's window (-1 = empty state) + the user vector."""
        return self._query_states(self._window_table(history, window_end, window_length), query_user, query_window)

    def _query_states(self, window_states: np.ndarray, query_user: np.ndarray, query_window: np.ndarray) -> np.ndarray:
        """float32 (n_queries, d): ``window_states[query_window]`` (the empty state for -1) + the user vector."""
        out = np.broadcast_to(self.weights["empty_state"], (query_window.size, window_states.shape[1])).copy()
        has_window = query_window >= 0
        out[has_window] = window_states[query_window[has_window]]
        out += self._user_vectors(query_user)
        return out

    def _window_table(
        self, history: sequences.History, window_end: np.ndarray, window_length: np.ndarray
    ) -> np.ndarray:
        """float32 (m, d): the encoder state of each window ``[end - length, end)`` at its last row.

        The encoder's matrix products run on ``config.num_threads`` BLAS threads: the pipeline loads OpenBLAS with
        one thread (for implicit), which left a core idle while the metrics step encoded every test row's history.
        """
        with limited_blas_threads(resolve_thread_count(self.config.num_threads)):
            return self._window_table_unthreaded(history, window_end, window_length)

    def _window_table_unthreaded(
        self, history: sequences.History, window_end: np.ndarray, window_length: np.ndarray
    ) -> np.ndarray:
        if self.config.shuffle_positions:  # a shuffled window is no prefix of a longer one: one pass per window
            states = self._window_states(history, window_end, window_length)
        else:  # one causal pass per block of windows sharing a start, read at each window's last row
            block_start, block_length, block = sequences.window_blocks(window_end, window_length)
            # A block read once is cheaper as a plain window (the last layer then runs for one position only).
            alone = np.bincount(block, minlength=block_start.size)[block] == 1
            states = np.empty((window_end.size, self.config.hidden_dim), dtype=np.float32)
            states[alone] = self._window_states(history, window_end[alone], window_length[alone])
            shared, read_block = np.unique(block[~alone], return_inverse=True)
            states[~alone] = self._window_states(
                history,
                block_start[shared] + block_length[shared],
                block_length[shared],
                read_block.reshape(-1),
                window_length[~alone] - 1,
            )
        return states

    def _window_states(
        self,
        history: sequences.History,
        end: np.ndarray,
        length: np.ndarray,
        read_window: np.ndarray | None = None,
        read_position: np.ndarray | None = None,
    ) -> np.ndarray:
        """float32: each window's state at its last row (m, d), or, given ``read_window`` / ``read_position`` (r,),
        the state of those windows at those positions (r, d). Windows are encoded in order of length, so a batch
        is as wide as its longest window only."""
        d, max_len = self.config.hidden_dim, self.config.max_len
        by_length = np.argsort(length, kind="stable")
        if read_window is None:
            out = np.empty((end.size, d), dtype=np.float32)
        else:  # each read's window by its rank in the encoding order, so a batch's reads are one slice
            rank = np.empty(end.size, dtype=np.int64)
            rank[by_length] = np.arange(end.size)
            read_rank = rank[read_window]
            reads = np.argsort(read_rank, kind="stable")
            sorted_rank = read_rank[reads]
            out = np.empty((read_window.size, d), dtype=np.float32)
        batch = max(1, ENCODE_BATCH_CELLS // max_len)
        for first in range(0, end.size, batch):
            part = by_length[first : first + batch]
            index, _ = sequences.window_matrix(history, end[part], length[part], max_len, self.config.shuffle_positions)
            width = int(length[part].max())  # trailing all-padding columns change nothing (causal)
            video, ratio = history.video[index[:, :width]], history.target[index[:, :width]]
            if read_window is None:
                out[part] = encode_states(self.weights, self.input_vectors, self.config, video, ratio, length[part])
                continue
            states = encode_states(self.weights, self.input_vectors, self.config, video, ratio)
            mine = reads[np.searchsorted(sorted_rank, first) : np.searchsorted(sorted_rank, first + batch)]
            out[mine] = states[read_rank[mine] - first, read_position[mine]]
        return out

    def _augmented_states(self, users: np.ndarray, states: np.ndarray) -> np.ndarray:
        """[state, 1] for every user: ``states`` for ``users`` (those with history), the empty state elsewhere."""
        every = (self.weights["empty_state"][None, :] + self._user_vectors(np.arange(self.n_users))).astype(np.float32)
        every[users] = states
        return np.hstack([every, np.ones((self.n_users, 1), np.float32)])

    # ---- scoring (NumPy only) ------------------------------------------------------------------------------
    def score_all(self, user_ids: np.ndarray, video_ids: np.ndarray | None = None) -> np.ndarray:
        if self.user_states is None or self.video_vectors is None:
            raise not_fitted(self)
        user_ids, video_ids = self._check_ids(user_ids, video_ids)
        users, videos = self.user_states, self.video_vectors
        if self.start_user is None or self.start_video is None:
            videos = videos if video_ids is None else videos[video_ids]
            return _sigmoid_inplace(users[user_ids] @ videos.T)
        # [s, 1, start_u] @ [c_v, b_v + b, start_v]: the state's part and the start in one product
        chosen = slice(None) if video_ids is None else video_ids
        videos = np.hstack([videos[chosen], self.start_video[chosen]])
        scores = np.hstack([users[user_ids], self.start_user[user_ids]]) @ videos.T
        return np.clip(scores, 0.0, 1.0, out=scores)

    @contextlib.contextmanager
    def remembering_rows(self) -> Iterator[Self]:
        """Within the block, :meth:`predict_rows` of the same ``rows`` and ``history`` objects (by identity, the
        way one evaluation passes its splits to every model) is computed once and returned as a copy after that:
        the metrics step evaluates this model and, through a shared instance
        (:func:`.components.sharing_components`), each hybrid that blends it. Forgotten at the end of the
        outermost block (a nested one keeps the outer memory); the objects must not change inside it."""
        if self._remembered is not None:  # already inside a block: that one owns the memory
            yield self
            return
        self._remembered = []
        try:
            yield self
        finally:
            self._remembered = None

    def predict_rows(self, rows: Interactions, history: Interactions | None = None) -> np.ndarray:
        """Time-aware pointwise prediction, float32 (len(rows),) in [0, 1].

        Each row is scored from the state of its user's ``history`` rows strictly before the row's timestamp (all
        of them up to ``max_len``, else the window :func:`.sequences.window_lengths` picks); a row without a
        timestamp reads the user's whole history; a user with none of its rows before that time reads the empty
        state. ``history`` is normally the training split; ``None``
        falls back to the stored whole-history states (``predict``). Inside :meth:`remembering_rows` a repeated
        call is answered from memory.
        """
        if history is None:
            return self.predict(rows.user, rows.video)
        if self._remembered is None:
            return self._predict_rows(rows, history)
        for seen_rows, seen_history, predictions in self._remembered:
            if seen_rows is rows and seen_history is history:
                return predictions.copy()  # a caller may write into its result
        predictions = self._predict_rows(rows, history)
        self._remembered.append((rows, history, predictions.copy()))
        return predictions

    def _predict_rows(self, rows: Interactions, history: Interactions) -> np.ndarray:
        if self.user_states is None:
            raise not_fitted(self)
        self._check_ids(rows.user, rows.video)
        video = rows.video.astype(np.int64)
        logits = np.empty(len(rows), dtype=np.float32)
        for part, states in self._state_chunks(rows, history, QUERY_CHUNK_ROWS):
            candidates = self.video_vectors[video[part]]
            logits[part] = np.einsum("nd,nd->n", states, candidates[:, :-1]) + candidates[:, -1]
        if self.start_user is None or self.start_video is None:
            return _sigmoid_inplace(logits)
        logits += pair_dot(self.start_user, self.start_video, rows.user.astype(np.int64), video)
        return np.clip(logits, 0.0, 1.0, out=logits)

    def _state_chunks(
        self, rows: Interactions, history: Interactions, chunk_rows: int
    ) -> Iterator[tuple[slice, np.ndarray]]:
        """(slice of ``rows``, float32 (chunk, d) state + user vector) per chunk of ``chunk_rows`` rows; the history
        is grouped (a sort of every history row) and each distinct window encoded once for all rows."""
        built, plan = self._plan(rows, history)
        window_states = self._window_table(built, plan.window_end, plan.window_length)
        user = rows.user.astype(np.int64)
        for first in range(0, len(rows), chunk_rows):
            part = slice(first, first + chunk_rows)
            yield part, self._query_states(window_states, user[part], plan.query_window[part])

    def _plan(self, rows: Interactions, history: Interactions) -> tuple[sequences.History, sequences.QueryPlan]:
        built = sequences.build_history(history, self.n_users, self.config.seed, self.config.shuffle_positions)
        plan = sequences.plan_queries(
            built, rows.user, rows.timestamp, self.config.max_len, self.config.effective_query_stride
        )
        return built, plan

    def row_states(self, rows: Interactions, history: Interactions) -> np.ndarray:
        """float32 (len(rows), hidden_dim + 1): every row's state at once, as :meth:`row_state_chunks` yields it."""
        out = np.empty((len(rows), self.config.hidden_dim + 1), dtype=np.float32)
        for part, states in self.row_state_chunks(rows, history, max(len(rows), 1)):
            out[part] = states
        return out

    def row_state_chunks(
        self, rows: Interactions, history: Interactions, chunk_rows: int
    ) -> Iterator[tuple[slice, np.ndarray]]:
        """Each row's user state from the user's ``history`` rows strictly before the row's timestamp (the last
        ``max_len`` of them; the whole history for a row without a timestamp; the empty state when none), in the
        augmented form of :attr:`user_states`, in chunks that bound a caller's (rows, d) temporaries: the history
        is grouped and each distinct window encoded once for all ``rows``.

        Parameters
        ----------
        rows : the interactions whose states are wanted (``user``, ``timestamp``).
        history : the interactions the states may read (normally the training split).
        chunk_rows : rows per chunk (>= 1).

        Yields
        ------
        (slice of ``rows``, float32 (rows in the slice, hidden_dim + 1): ``[state + user vector, 1]``), in row order.

        Raises
        ------
        NotFittedError
            Before ``fit`` / ``from_arrays``.
        UnknownIdError
            If a row's user id is outside the model's range.
        ValueError
            If ``chunk_rows`` < 1.
        """
        if chunk_rows < 1:  # checked at the call; the work runs as the chunks are taken
            raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
        if self.user_states is None:
            raise not_fitted(self)
        self._check_ids(rows.user)
        chunks = self._state_chunks(rows, history, chunk_rows)
        return ((part, np.hstack([states, np.ones((len(states), 1), np.float32)])) for part, states in chunks)

    # ---- persistence ---------------------------------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        if self.user_states is None:
            raise not_fitted(self)
        arrays = {
            "user_states": self.user_states,
            "video_vectors": self.video_vectors,
            "input_vectors": self.input_vectors,
            "training_history": self.history,
            "best_epoch": np.array(self.best_epoch, dtype=np.int64),
            ARCHITECTURE_KEY: encode_json(dataclasses.asdict(self.architecture)),
        }
        if self.start_user is not None and self.start_video is not None:
            arrays.update(start_user=self.start_user, start_video=self.start_video)
        arrays.update({WEIGHTS_PREFIX + name: value for name, value in self.weights.items()})
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Self:
        model = cls(config_from_dict(stored_config(arrays)))
        model.architecture = SequentialArchitecture(**decode_json(arrays[ARCHITECTURE_KEY]))
        model.n_users, model.n_videos = model.architecture.n_users, model.architecture.n_videos
        model.weights = {
            name[len(WEIGHTS_PREFIX) :]: np.asarray(value)
            for name, value in arrays.items()
            if name.startswith(WEIGHTS_PREFIX)
        }
        model.user_states = np.ascontiguousarray(arrays["user_states"], dtype=np.float32)
        model.video_vectors = np.ascontiguousarray(arrays["video_vectors"], dtype=np.float32)
        model.input_vectors = np.ascontiguousarray(arrays["input_vectors"], dtype=np.float32)
        model.history = np.asarray(arrays.get("training_history", model.history), dtype=np.float64)
        model.best_epoch = int(arrays["best_epoch"]) if "best_epoch" in arrays else -1
        if "start_user" in arrays and "start_video" in arrays:
            model.start_user = np.ascontiguousarray(arrays["start_user"], dtype=np.float32)
            model.start_video = np.ascontiguousarray(arrays["start_video"], dtype=np.float32)
        elif model.config.fixed_start:  # (a bundle from before fixed_start has no such config value: plain)
            raise ValueError("the sequential bundle's config has fixed_start but it holds no start_user / start_video")
        return model


class ShuffledSequentialRecommender(SequentialRecommender):
    """The order ablation: the same model with ``shuffle_positions`` on (rows of each window in a fixed
    pseudo-random order in training and scoring), under its own name."""

    name: ClassVar[str] = "sequential_shuffled"

    def __init__(self, config: SequentialConfig | None = None) -> None:
        super().__init__(dataclasses.replace(config or SequentialConfig(), shuffle_positions=True))
