"""Turns a PNG into Dagster metadata the UI can show."""

from __future__ import annotations

import base64

from dagster import MetadataValue


def png_markdown(png: bytes, title: str) -> MetadataValue:
    # The UI renders markdown; a data URI is the one way to show an image inline in asset metadata.
    return MetadataValue.md(f"![{title}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})")
