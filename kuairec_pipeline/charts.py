"""The charts' shared plumbing: an Agg figure, its PNG bytes, and an in-process memo of rendered charts.

The memo exists because one run draws some charts twice: the asset pages' charts (training curves, the
watch-ratio histogram, the metrics bar chart) are drawn again, from the same numbers, by the HTML report at the end
of the metrics step. With the default in-process executor both happen in one process, and matplotlib's text
layout makes each chart cost a few tenths of a second (on the tiny profile the report was a quarter of the whole
graph's time). The memo is keyed on the chart function and the *content* of its arguments, so a chart is reused
only when it would be drawn from equal numbers; it never outlives the process and holds at most
:data:`MAX_CHARTS` PNGs (tens of KB each).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import io
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, ParamSpec

import numpy as np
import polars as pl

MAX_CHARTS = 32  # PNGs kept; a whole tiny-profile run draws 7 distinct charts

P = ParamSpec("P")


def agg_figure(width: float, height: float, dpi: int, margins: dict[str, float] | None = None):
    """A matplotlib ``Figure`` of ``width`` x ``height`` inches on its own Agg canvas.

    The object API with an explicit canvas keeps no pyplot global state, so it is safe in a worker thread. With
    ``margins`` (figure fractions, as ``Figure.subplots_adjust`` takes them) the layout is fixed; without, the
    constrained layout engine places the labels, which draws the figure several times (about half of a chart's
    rendering time), so callers whose label extent is known pass margins.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=dpi, layout=None if margins else "constrained")
    if margins:
        figure.subplots_adjust(**margins)
    FigureCanvasAgg(figure)
    return figure


def png_bytes(figure) -> bytes:
    """The figure rendered as PNG bytes (at the figure's own dpi)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


class ChartCacheInfo(NamedTuple):
    """Counters of the memo, shaped like ``functools.lru_cache``'s ``cache_info()``."""

    hits: int
    misses: int
    maxsize: int
    currsize: int


_cache: OrderedDict[bytes, bytes] = OrderedDict()
_lock = threading.Lock()
_counts = {"hits": 0, "misses": 0}


def _feed(digest: Any, value: object) -> None:
    """Add ``value``'s type and content to ``digest``; every supported type is tagged, so ``1`` and ``"1"`` differ.

    Raises
    ------
    TypeError
        For a type whose content this function cannot read (a silent fallback to ``id`` could reuse a chart drawn
        from other numbers).
    """
    if value is None or isinstance(value, bool | int | float | str):
        digest.update(f"{type(value).__name__}:{value!r};".encode())
    elif isinstance(value, bytes):
        digest.update(b"bytes:%d;" % len(value) + value)
    elif isinstance(value, np.ndarray | np.generic):
        array = np.ascontiguousarray(value)
        if array.dtype.hasobject:  # its bytes are pointers, not the values
            raise TypeError(f"cannot key a chart on an array of dtype {array.dtype}")
        digest.update(f"ndarray:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())
    elif isinstance(value, pl.Series):
        _feed(digest, value.to_frame())
    elif isinstance(value, pl.DataFrame):
        # Arrow IPC holds the schema and every value; equal frames laid out in other chunks only miss the memo.
        buffer = io.BytesIO()
        value.write_ipc(buffer, compression="uncompressed")
        digest.update(b"frame:%d;" % buffer.getbuffer().nbytes)
        digest.update(buffer.getbuffer())
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        digest.update(f"dataclass:{type(value).__qualname__};".encode())
        for field in dataclasses.fields(value):
            _feed(digest, field.name)
            _feed(digest, getattr(value, field.name))
    elif isinstance(value, Mapping):
        digest.update(b"mapping:%d;" % len(value))  # in order: a chart draws its bars in the mapping's order
        for key, item in value.items():
            _feed(digest, key)
            _feed(digest, item)
    elif isinstance(value, list | tuple):
        digest.update(b"sequence:%d;" % len(value))
        for item in value:
            _feed(digest, item)
    else:
        raise TypeError(f"cannot key a chart on a {type(value).__qualname__} argument")


def memoized_chart(render: Callable[P, bytes]) -> Callable[P, bytes]:
    """Decorate a function that returns a chart's PNG bytes: a call whose arguments (defaults filled in) have the
    same content as an earlier call's in this process returns that call's bytes without drawing again.

    Raises
    ------
    TypeError
        At call time, for an argument of a type :func:`_feed` cannot key.
    """
    signature = inspect.signature(render)
    name = f"{render.__module__}.{render.__qualname__}"

    @functools.wraps(render)
    def memoized(*args: P.args, **kwargs: P.kwargs) -> bytes:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        digest = hashlib.blake2b(name.encode(), digest_size=20)
        _feed(digest, dict(bound.arguments))
        key = digest.digest()
        with _lock:
            if key in _cache:
                _cache.move_to_end(key)
                _counts["hits"] += 1
                return _cache[key]
        png = render(*args, **kwargs)  # outside the lock: another thread may draw meanwhile, never wait for it
        with _lock:
            _counts["misses"] += 1
            _cache[key] = png
            while len(_cache) > MAX_CHARTS:
                _cache.popitem(last=False)
        return png

    return memoized


def chart_cache_info() -> ChartCacheInfo:
    """Hits, misses and size of the memo since the process started (or :func:`clear_chart_cache`)."""
    with _lock:
        return ChartCacheInfo(_counts["hits"], _counts["misses"], MAX_CHARTS, len(_cache))


def clear_chart_cache() -> None:
    """Forget every memoized chart and zero the counters."""
    with _lock:
        _cache.clear()
        _counts.update(hits=0, misses=0)
