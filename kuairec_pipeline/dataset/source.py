"""Resolve KUAIREC_SOURCE to the KuaiRec files on disk: the synthetic twin, an unpacked folder, a ``.zip``, or the
official archive downloaded."""

from __future__ import annotations

import hashlib
from pathlib import Path

from kuairec_pipeline.dataset.archive import exclusive_lock, extract_archive
from kuairec_pipeline.dataset.download import DownloadConfig, download_archive
from kuairec_pipeline.dataset.loader import KuaiRecFiles, find_kuairec_files
from kuairec_pipeline.dataset.schema import BIG_MATRIX
from kuairec_pipeline.errors import KuaiRecSourceError
from kuairec_pipeline.settings import Settings

SYNTHETIC = "synthetic"
DOWNLOAD = "download"
TRUTH_FOLDER = "_truth"
# Written last by the twin generator: its presence means the twin is complete.
TRUTH_COMPLETE_FILE = "params.json"
DOWNLOADED_UNPACK_FOLDER = "KuaiRec"  # below Settings.source_dir


def resolve_source(settings: Settings, download: DownloadConfig | None = None) -> KuaiRecFiles:
    """The KuaiRec files that ``settings.source`` names, prepared on first use.

    - ``synthetic``: the twin for ``settings.profile`` and ``settings.seed`` in ``settings.synthetic_dir``,
      generated unless ``_truth/params.json`` is already there;
    - a folder: the official files found by name anywhere below it;
    - a ``.zip``: unpacked safely below ``settings.source_dir`` (once), then searched;
    - ``download``: the official archive fetched into ``settings.downloads_dir`` (md5-checked) as ``download``
      says (default ``DownloadConfig()``: timeouts, tries, waits), then unpacked.
    """
    source = settings.source.strip()
    if source == SYNTHETIC:
        return _synthetic_twin(settings)
    if source == DOWNLOAD:
        archive = download_archive(settings.downloads_dir, config=download or DownloadConfig())
        return find_kuairec_files(extract_archive(archive, settings.source_dir / DOWNLOADED_UNPACK_FOLDER))
    path = Path(source).expanduser()
    if path.is_dir():
        return find_kuairec_files(path)
    if path.is_file() and path.suffix.lower() == ".zip":
        return find_kuairec_files(extract_archive(path, settings.source_dir / f"{path.stem}-unpacked"))
    if path.exists():
        raise KuaiRecSourceError(
            f"KUAIREC_SOURCE={source!r} is a file but not a .zip archive; expected 'synthetic', 'download', a "
            "folder holding the KuaiRec CSV files, or the path of KuaiRec.zip"
        )
    raise KuaiRecSourceError(
        f"KUAIREC_SOURCE={source!r}: no such file or folder; expected 'synthetic', 'download', a folder holding "
        "the KuaiRec CSV files, or the path of KuaiRec.zip"
    )


def _synthetic_twin(settings: Settings) -> KuaiRecFiles:
    out_dir = settings.synthetic_dir
    complete = out_dir / TRUTH_FOLDER / TRUTH_COMPLETE_FILE
    if not complete.exists():
        with exclusive_lock(out_dir.parent / f".{out_dir.name}.lock"):
            if not complete.exists():  # another process may have finished it while we waited
                # Imported here: generating is the only use, and real-data runs never need it.
                from kuairec_pipeline.dataset.synthetic import generate_twin

                generate_twin(out_dir, settings.profile, settings.seed)
    return find_kuairec_files(out_dir)


def truth_dir(files: KuaiRecFiles) -> Path | None:
    """The synthetic twin's ``_truth`` folder (its planted truth) next to these files, or None for real data.

    Looks beside the folders that hold the files, up to the folder that was searched, never above it.
    """
    anchor = files.get(BIG_MATRIX) or next(iter(files.values()), None)
    if anchor is None:
        return None
    root = files.root.absolute()
    folder = anchor.absolute().parent
    if not folder.is_relative_to(root):
        return None
    while True:
        candidate = folder / TRUTH_FOLDER
        if candidate.is_dir():
            return candidate
        if folder == root or folder == folder.parent:
            return None
        folder = folder.parent


def source_fingerprint(settings: Settings) -> str | None:
    """A short digest of the user-provided source (a folder's official files or a zip: names, sizes, modification
    times), so a sensor can tell when new data has arrived. ``None`` for ``synthetic`` and ``download``, which
    do not change under us."""
    source = settings.source.strip()
    if source in ("synthetic", "download"):
        return None
    path = Path(source).expanduser()
    if path.is_file():
        watched = [path]
    elif path.is_dir():
        watched = [found for _, found in sorted(find_kuairec_files(path).items())]
    else:
        raise KuaiRecSourceError(f"KUAIREC_SOURCE={source!r} is neither a folder nor a file")
    digest = hashlib.sha256()
    for file in watched:
        stat = file.stat()
        digest.update(f"{file.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]
