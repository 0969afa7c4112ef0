"""Reading the asset files wherever the IO managers wrote them: a local folder, or an object store (``s3://...``).

The command line (``kuairec recommend``, ``kuairec metrics``) reads local files. When ``KUAIREC_ASSET_STORAGE`` is
an fsspec URL, :func:`readable_asset_folder` keeps a local mirror of the asset files below
``$KUAIREC_HOME/cache/assets/`` and downloads only the objects whose ETag (or size and modification time) changed
since the last call: after the first call, one listing request. Credentials are the store's own environment (for S3:
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL`` for a non-AWS server); nothing is written
to files here but the assets and their ETags.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from kuairec_pipeline.atomic import atomic_path
from kuairec_pipeline.settings import Settings

ASSET_SUFFIXES = (".parquet", ".npz")  # what the Parquet and NumPy IO managers write
STAMP_SUFFIX = ".etag"


def is_remote(location: str) -> bool:
    """Whether an asset location is an fsspec URL of a non-local filesystem (``s3://``, ``gs://``, ...)."""
    return "://" in location and not location.startswith(("file://", "local://"))


def _stamp(info: dict) -> str:
    # The ETag changes with the content on S3-compatible stores; elsewhere size and modification time stand in.
    for key in ("ETag", "etag", "md5Hash"):
        if info.get(key):
            return str(info[key])
    return f"{info.get('size')}:{info.get('LastModified') or info.get('mtime') or info.get('updated')}"


def mirror_assets(url: str, folder: Path) -> dict[str, int]:
    """Make ``folder`` hold the same asset files as the object-store prefix ``url``.

    Parameters
    ----------
    url : str
        fsspec URL of the asset prefix, e.g. ``s3://bucket/prefix``.
    folder : Path
        Local mirror; created if missing. Each file is written to a temporary sibling and renamed into place.

    Returns
    -------
    dict
        ``{"downloaded": n, "unchanged": n, "removed": n}`` counts of asset files.

    Raises
    ------
    FileNotFoundError
        If the prefix holds no asset file (nothing materialized there yet).
    """
    import fsspec

    fs, root = fsspec.core.url_to_fs(url)
    folder.mkdir(parents=True, exist_ok=True)
    fs.invalidate_cache(root)  # fsspec reuses filesystem instances with their listing cache: list afresh
    try:
        listing = fs.ls(root, detail=True)
    except FileNotFoundError:
        listing = []
    remote = {
        Path(info["name"]).name: info
        for info in listing
        if info.get("type") == "file" and Path(info["name"]).name.endswith(ASSET_SUFFIXES)
    }
    if not remote:
        raise FileNotFoundError(f"{url} holds no asset file")
    counts = {"downloaded": 0, "unchanged": 0, "removed": 0}
    for name, info in remote.items():
        local, stamp_file = folder / name, folder / f"{name}{STAMP_SUFFIX}"
        stamp = _stamp(info)
        if local.is_file() and stamp_file.is_file() and stamp_file.read_text() == stamp:
            counts["unchanged"] += 1
            continue
        with atomic_path(local) as tmp:
            fs.get_file(info["name"], str(tmp))
        stamp_file.write_text(stamp)
        counts["downloaded"] += 1
    for stale in folder.iterdir():  # an asset gone from the store must not be answered from the mirror
        if stale.name.endswith(ASSET_SUFFIXES) and stale.name not in remote:
            stale.unlink()
            (folder / f"{stale.name}{STAMP_SUFFIX}").unlink(missing_ok=True)
            counts["removed"] += 1
    return counts


def readable_asset_folder(settings: Settings) -> Path:
    """A local folder holding the current asset files: ``settings.assets_dir`` itself for local storage, else the
    mirror of ``settings.asset_location`` (refreshed by :func:`mirror_assets`).

    Raises
    ------
    FileNotFoundError
        If the remote location holds no asset file.
    """
    location = settings.asset_location
    if not is_remote(location):
        return Path(location)
    folder = settings.home / "cache" / "assets" / hashlib.sha256(location.encode()).hexdigest()[:16]
    mirror_assets(location, folder)
    return folder
