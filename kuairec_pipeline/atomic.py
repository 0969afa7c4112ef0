"""Write-to-temporary-then-rename, so a crash or a concurrent reader never sees a half-written file."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path


def temporary_sibling(path: Path) -> Path:
    # Same folder as the target, so os.replace is an atomic rename on one filesystem; the unique part keeps two
    # concurrent writers apart. The dot prefix keeps loaders that glob for files from picking it up.
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write to; on success rename it onto ``path``, on failure delete it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(target)
    try:
        yield tmp
        if tmp.is_dir():
            _replace_dir(tmp, target)
        else:
            with open(tmp, "rb+") as handle:  # flush to disk before the rename makes it visible
                os.fsync(handle.fileno())
            os.replace(tmp, target)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def _replace_dir(tmp: Path, target: Path) -> None:
    # Directories cannot be swapped atomically; move the old one aside first so it is never half-deleted.
    old = None
    if target.exists():
        old = temporary_sibling(target)
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
