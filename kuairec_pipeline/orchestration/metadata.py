"""Small helpers that turn plain results into Dagster metadata (markdown, embedded PNG)."""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

from dagster import MetadataValue


def png_markdown(png: bytes, title: str) -> MetadataValue:
    # The UI renders markdown; a data URI is the one way to show an image inline in asset metadata.
    return MetadataValue.md(f"![{title}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})")


def flat_metadata(obj: Any, prefix: str = "") -> dict[str, Any]:
    """A dataclass or dict of numbers/strings as flat metadata entries (nested keys joined with '/')."""
    items = dataclasses.asdict(obj).items() if dataclasses.is_dataclass(obj) else dict(obj).items()
    out: dict[str, Any] = {}
    for key, value in items:
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_metadata(value, prefix=f"{name}/"))
        elif isinstance(value, (bool, int, float, str)) or value is None:
            out[name] = value if value is not None else "none"
        else:
            out[name] = str(value)
    return out
