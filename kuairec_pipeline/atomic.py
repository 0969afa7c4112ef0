"""Write-to-temporary-then-rename, so a crash or a concurrent reader never sees a half-written file."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path


def temporary_sibling(path: Path) -> Path:
    # Same folder as the target, so os.replace is an atomic rename on one filesystem; the unique part keeps two
    # concurrent writers apart. The dot prefix keeps loaders that glob for files from picking it up.
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary siblings of ``path`` whose writer no longer runs (killed with -9, a power cut: a
    ``finally`` never ran). A live writer's temporary file is left alone, so concurrent runs stay safe. The check
    is by process id on this machine: writers on other machines sharing the folder are not seen."""
    target = Path(path)
    removed = []
    try:
        entries = list(target.parent.iterdir())
    except FileNotFoundError:
        return removed
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if match is None or match["name"] != target.name or _process_alive(int(match["pid"])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write to; on success rename it onto ``path``, on failure delete it.

    The folders of ``path`` that do not exist yet are created, and removed again when the write fails (those that
    are still empty), so a failed write leaves no trace: e.g. no empty ``interaction_days/day=YYYY-MM-DD/`` of a
    day whose ingest failed. A folder that existed before is never removed. Temporary siblings that a killed writer
    left behind are removed first (see ``remove_stale_temporaries``)."""
    target = Path(path)
    created = _missing_folders(target.parent)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    tmp = temporary_sibling(target)
    written = False
    try:
        yield tmp
        if tmp.is_dir():
            _replace_dir(tmp, target)
        else:
            with open(tmp, "rb+") as handle:  # flush to disk before the rename makes it visible
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        written = True
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
        if not written:
            _remove_empty_folders(created)


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and those of its parents that do not exist, innermost first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _remove_empty_folders(folders: list[Path]) -> None:
    # Innermost first; stop at the first folder that is not empty: another writer's file is in it (two runs of
    # one partition), so it and its parents stay. A folder already gone is what we wanted.
    for folder in folders:
        try:
            folder.rmdir()
        except OSError as error:
            if error.errno in (errno.ENOTEMPTY, errno.EEXIST):
                return
            if error.errno != errno.ENOENT:
                raise


def _replace_dir(tmp: Path, target: Path) -> None:
    # Directories cannot be swapped atomically; move the old one aside first so it is never half-deleted.
    old = None
    if target.exists():
        old = temporary_sibling(target)
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
