"""Unpack ``KuaiRec.zip`` safely: no entry may land outside the target folder, a damaged archive is refused with a
clear error, and the target appears whole or not at all (unpacked into a temporary folder, then renamed).
An archive is unpacked once: a marker file records which archive a folder came from. An archive that holds only
archives (a zip around ``KuaiRec.zip``) has those unpacked too, one level deep.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import stat
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from kuairec_pipeline.atomic import atomic_path
from kuairec_pipeline.errors import KuaiRecSourceError

ARCHIVE_NAME = "KuaiRec.zip"
# Written last into a finished folder; it names the archive (size and modification time) it was unpacked from.
COMPLETE_MARKER = ".kuairec-unpacked.json"
_COPY_CHUNK_BYTES = 1 << 20


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an advisory lock on ``path`` (created if needed), so that two processes preparing the same source
    (unpacking, downloading, generating) take turns instead of overwriting each other's work."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _archive_identity(archive: Path) -> dict[str, object]:
    info = archive.stat()
    return {"archive": archive.name, "size": info.st_size, "mtime_ns": info.st_mtime_ns}


def is_unpacked(archive: str | os.PathLike[str], target_dir: str | os.PathLike[str]) -> bool:
    """Whether ``target_dir`` holds a complete unpacking of exactly this ``archive``."""
    marker = Path(target_dir) / COMPLETE_MARKER
    try:
        return json.loads(marker.read_text()) == _archive_identity(Path(archive))
    except (OSError, ValueError):
        return False


def _member_path(info: zipfile.ZipInfo, archive: Path, target: Path) -> PurePosixPath:
    """The entry's path relative to ``target``; KuaiRecSourceError for any entry that could escape it."""
    name = info.filename.replace("\\", "/")  # some zip tools write Windows separators
    unsafe = None
    if stat.S_ISLNK(info.external_attr >> 16):
        unsafe = "is a symbolic link"
    elif not name or "\x00" in name:
        unsafe = "has an empty or invalid name"
    elif name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        unsafe = "has an absolute path"
    elif ".." in PurePosixPath(name).parts:
        unsafe = "climbs out of the folder with '..'"
    relative = PurePosixPath(name)
    if unsafe is None:
        resolved = (target / relative).resolve()
        if not resolved.is_relative_to(target.resolve()):
            unsafe = "would be written outside the target folder"
    if unsafe is not None:
        raise KuaiRecSourceError(
            f"refusing to unpack {archive}: entry {info.filename!r} {unsafe}. The official KuaiRec.zip has no "
            "such entry: the archive is damaged or not the official one."
        )
    return relative


def extract_archive(archive: str | os.PathLike[str], target_dir: str | os.PathLike[str]) -> Path:
    """Unpack ``archive`` into ``target_dir`` (created) and return ``target_dir``.

    Skips the work when ``target_dir`` already holds this archive, complete. Every entry is checked before
    anything is written: absolute paths, ``..``, symbolic links and names resolving outside ``target_dir`` are
    refused. A corrupt or truncated archive raises KuaiRecSourceError naming the file and leaves nothing behind.
    """
    archive_path = Path(archive).expanduser()
    target = Path(target_dir).expanduser().absolute()
    if not archive_path.is_file():
        raise KuaiRecSourceError(f"archive {archive_path} does not exist")
    with exclusive_lock(target.parent / f".{target.name}.lock"):
        if is_unpacked(archive_path, target):
            return target
        try:
            with zipfile.ZipFile(archive_path) as bundle:
                members = [(info, _member_path(info, archive_path, target)) for info in bundle.infolist()]
                _check_free_space(archive_path, target, sum(info.file_size for info, _ in members))
                with atomic_path(target) as staging:
                    staging.mkdir()
                    for info, relative in members:
                        _extract_member(bundle, info, staging / relative)
                    _unpack_nested(archive_path, staging)
                    (staging / COMPLETE_MARKER).write_text(json.dumps(_archive_identity(archive_path)))
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
            raise KuaiRecSourceError(
                f"{archive_path} is corrupt or truncated ({exc}); delete it and download it again "
                "(KUAIREC_SOURCE=download), or point KUAIREC_SOURCE at an unpacked copy"
            ) from exc
    return target


def _unpack_nested(archive: Path, staging: Path) -> None:
    """Unpack the archives an archive holds instead of data (a zip holding ``KuaiRec.zip``, as a re-packed download
    or a mail attachment often is), one level deep, each into a folder named after it; the inner file is removed.

    Only when the outer archive holds no CSV file: archives next to data files are left as they are. An inner
    archive that again holds only archives is refused, naming it (no unbounded nesting).
    """
    if any(staging.rglob("*.csv")):
        return
    for inner in sorted(p for p in staging.rglob("*") if p.is_file() and p.suffix.lower() == ".zip"):
        where = f"{archive} -> {inner.relative_to(staging)}"
        folder = inner.with_name(f"{inner.stem}-unpacked")
        try:
            with zipfile.ZipFile(inner) as bundle:
                members = [(info, _member_path(info, Path(where), folder)) for info in bundle.infolist()]
                if not any(info.filename.lower().endswith(".csv") for info, _ in members):
                    raise KuaiRecSourceError(
                        f"{where} holds no CSV file ({len(members)} entries): unpack the archives yourself and "
                        "point KUAIREC_SOURCE at the folder holding the KuaiRec CSV files"
                    )
                for info, relative in members:
                    _extract_member(bundle, info, folder / relative)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
            raise KuaiRecSourceError(f"the archive inside {where} is corrupt or truncated ({exc})") from exc
        inner.unlink()


def _extract_member(bundle: zipfile.ZipFile, info: zipfile.ZipInfo, destination: Path) -> None:
    if info.is_dir():
        destination.mkdir(parents=True, exist_ok=True)
        return
    destination.parent.mkdir(parents=True, exist_ok=True)
    # Reading a member to its end checks its CRC: a damaged entry raises BadZipFile here.
    with bundle.open(info) as source, open(destination, "wb") as sink:
        shutil.copyfileobj(source, sink, _COPY_CHUNK_BYTES)


def _check_free_space(archive: Path, target: Path, needed: int) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(target.parent).free
    if needed > free:
        raise KuaiRecSourceError(
            f"unpacking {archive} needs {needed / 2**30:.1f} GiB but only {free / 2**30:.1f} GiB is free below "
            f"{target.parent}"
        )
