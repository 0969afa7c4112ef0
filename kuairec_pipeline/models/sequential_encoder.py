"""The sequential model's encoder in NumPy: scoring and pointwise states need no torch (the bundle holds the
weights of ``sequential_network.SequentialNetwork``; a test checks both give the same states)."""

from __future__ import annotations

import math

import numpy as np

from kuairec_pipeline.models.sequential_config import SequentialConfig

LAYER_NORM_EPS = 1e-5  # torch.nn.LayerNorm's default


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + LAYER_NORM_EPS) * weight + bias


def _linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """x @ weight.T + bias over the last axis, as one 2-D BLAS call (a stacked matmul loops per matrix)."""
    return (x.reshape(-1, x.shape[-1]) @ weight.T + bias).reshape(*x.shape[:-1], weight.shape[0])


def _attention(query: np.ndarray, key: np.ndarray, value: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Scaled dot-product attention (Vaswani et al. 2017); query (B,H,Q,dh), key/value (B,H,K,dh), allowed
    broadcastable to (B,H,Q,K). In place on the one (B,H,Q,K) array: the mask is added as 0 / -inf."""
    logits = query @ key.swapaxes(-1, -2)
    logits *= np.float32(1.0 / math.sqrt(query.shape[-1]))
    logits += np.where(allowed, np.float32(0.0), np.float32(-np.inf))
    logits -= logits.max(axis=-1, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=-1, keepdims=True)
    return logits @ value


def encode_states(
    weights: dict[str, np.ndarray],
    input_vectors: np.ndarray,
    config: SequentialConfig,
    video: np.ndarray,
    ratio: np.ndarray,
    length: np.ndarray | None = None,
) -> np.ndarray:
    """NumPy forward of the pre-norm causal transformer (torch ``TransformerEncoderLayer(norm_first=True)``, ReLU,
    eval mode): the final-norm state at each window's last valid position, or, with ``length`` None, at every
    position (position ``j`` depends on positions ``0..j`` only, so trailing padding changes nothing before it).

    Parameters
    ----------
    weights : dict of str to ndarray
        The network's state dict as arrays (``encoder.layers.*``, ``ratio_input.*``, ``position.weight``,
        ``final_norm.*``).
    input_vectors : ndarray, float32 (n_videos, hidden_dim)
        Each video's input vector (id + tag bag + categorical embeddings).
    video, ratio : ndarray (m, width), width <= max_len
        Video ids and scaled watch ratios of each window, right-padded.
    length : ndarray, int64 (m,), or None
        Valid positions per window (>= 1); None: every position's state.

    Returns
    -------
    ndarray, float32 (m, hidden_dim), or (m, width, hidden_dim) when ``length`` is None.
    """
    m, width = video.shape
    d, heads = config.hidden_dim, config.num_heads
    dh = d // heads
    x = input_vectors[video]
    x += ratio[..., None].astype(np.float32) * weights["ratio_input.weight"][:, 0]
    x += weights["ratio_input.bias"] + weights["position.weight"][:width]
    causal = np.tril(np.ones((width, width), dtype=bool))
    rows = np.arange(m)
    for layer in range(config.num_layers):
        p = f"encoder.layers.{layer}."
        in_weight, in_bias = weights[p + "self_attn.in_proj_weight"], weights[p + "self_attn.in_proj_bias"]
        y = _layer_norm(x, weights[p + "norm1.weight"], weights[p + "norm1.bias"])
        if length is not None and layer == config.num_layers - 1:
            # Only the last valid position's state is read: one query row per window, keys and values for all.
            last = length - 1
            x = x[rows, last][:, None, :]
            q = _linear(y[rows, last][:, None, :], in_weight[:d], in_bias[:d])
            kv = _linear(y, in_weight[d:], in_bias[d:])
            k, v = kv[..., :d], kv[..., d:]
            allowed = (np.arange(width)[None, :] <= last[:, None])[:, None, None, :]
        else:
            qkv = _linear(y, in_weight, in_bias)
            q, k, v = qkv[..., :d], qkv[..., d : 2 * d], qkv[..., 2 * d :]
            allowed = causal
        q, k, v = (t.reshape(m, -1, heads, dh).transpose(0, 2, 1, 3) for t in (q, k, v))
        attended = _attention(q, k, v, allowed).transpose(0, 2, 1, 3).reshape(m, -1, d)
        x = x + _linear(attended, weights[p + "self_attn.out_proj.weight"], weights[p + "self_attn.out_proj.bias"])
        y = _layer_norm(x, weights[p + "norm2.weight"], weights[p + "norm2.bias"])
        hidden = np.maximum(_linear(y, weights[p + "linear1.weight"], weights[p + "linear1.bias"]), 0.0)
        x = x + _linear(hidden, weights[p + "linear2.weight"], weights[p + "linear2.bias"])
    states = _layer_norm(x, weights["final_norm.weight"], weights["final_norm.bias"]).astype(np.float32)
    return states if length is None else states[:, 0]


def encode_last_states(
    weights: dict[str, np.ndarray],
    input_vectors: np.ndarray,
    config: SequentialConfig,
    video: np.ndarray,
    ratio: np.ndarray,
    length: np.ndarray,
) -> np.ndarray:
    """:func:`encode_states` at each window's last valid position: float32 (m, hidden_dim)."""
    return encode_states(weights, input_vectors, config, video, ratio, np.asarray(length, dtype=np.int64))
