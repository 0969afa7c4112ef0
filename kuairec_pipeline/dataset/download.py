"""Download the official KuaiRec archive: resumable, md5-checked, with a progress bar. Standard library only.

Environment (for mirrors, and for tests that serve a file locally):

KUAIREC_DOWNLOAD_URL  where to fetch ``KuaiRec.zip`` from (default: the official Zenodo record)
KUAIREC_DOWNLOAD_MD5  its expected md5 (default: the official archive's)
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from kuairec_pipeline.dataset.archive import ARCHIVE_NAME, exclusive_lock
from kuairec_pipeline.errors import KuaiRecSourceError
from kuairec_pipeline.params import check, param

OFFICIAL_URL = "https://zenodo.org/records/18164998/files/KuaiRec.zip"
OFFICIAL_MD5 = "261550d472c48eff4990fb13c0e5bcf7"
URL_ENV = "KUAIREC_DOWNLOAD_URL"
MD5_ENV = "KUAIREC_DOWNLOAD_MD5"
PART_SUFFIX = ".part"  # the file being downloaded; a later call resumes it
BAD_MD5_SUFFIX = ".bad-md5"  # where a completed download whose md5 does not match is moved aside

_OFFLINE_HINT = (
    "If this machine cannot reach it, fetch KuaiRec.zip elsewhere and set "
    "KUAIREC_SOURCE=<path to KuaiRec.zip or its unpacked folder>."
)
_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)")


@dataclass(frozen=True)
class DownloadConfig:
    """How ``KUAIREC_SOURCE=download`` fetches the archive (the ``source_files`` asset's run config); ranges are
    enforced on construction (``params.check``)."""

    timeout_s: float = param(
        60.0, "Seconds a connection or a single read may stall before the attempt counts as failed.", gt=0.0, le=3600.0
    )
    attempts: int = param(4, "Tries in all; each resumes where the previous one stopped.", ge=1, le=100)
    retry_wait_s: float = param(
        1.0, "Seconds to wait before the first retry; the wait doubles after each failed try.", ge=0.0, le=600.0
    )
    chunk_bytes: int = param(1 << 20, "Bytes read and written per step.", ge=1024, le=1 << 30)
    user_agent: str = param("kuairec-pipeline", "Sent as User-Agent (some servers refuse requests without one).")

    def __post_init__(self) -> None:
        check(self)


class _Interrupted(Exception):
    """A transfer stopped early in a way worth retrying (dropped connection, timeout, server error)."""


def download_archive(
    dest_dir: str | os.PathLike[str],
    url: str | None = None,
    md5: str | None = None,
    progress: bool = True,
    config: DownloadConfig = DownloadConfig(),
) -> Path:
    """Download ``KuaiRec.zip`` into ``dest_dir`` and return its path.

    ``url`` / ``md5`` default to $KUAIREC_DOWNLOAD_URL / $KUAIREC_DOWNLOAD_MD5, else the official ones
    (``OFFICIAL_URL``, ``OFFICIAL_MD5``). A file already there with the right md5 is reused. The transfer goes to
    ``KuaiRec.zip.part`` and resumes with an HTTP Range request after an interruption (in this call, up to
    ``config.attempts`` tries, or in a later call); a server that ignores Range makes it start over cleanly.
    On an md5 mismatch the file is moved aside to ``KuaiRec.zip.bad-md5`` and KuaiRecSourceError is raised; no
    network also raises KuaiRecSourceError, with a hint to set KUAIREC_SOURCE instead.
    """
    source_url = url or os.environ.get(URL_ENV) or OFFICIAL_URL
    expected_md5 = (md5 or os.environ.get(MD5_ENV) or OFFICIAL_MD5).strip().lower()
    if not source_url.startswith(("https://", "http://")):
        raise KuaiRecSourceError(f"download URL {source_url!r} is not an http(s) URL (set {URL_ENV} to fix it)")
    folder = Path(dest_dir).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / ARCHIVE_NAME
    part = target.with_name(target.name + PART_SUFFIX)
    with exclusive_lock(folder / f".{ARCHIVE_NAME}.lock"):
        if target.exists():
            if file_md5(target) == expected_md5:
                return target
            os.replace(target, target.with_name(target.name + BAD_MD5_SUFFIX))  # then download a good copy
        _fetch_with_retries(source_url, part, progress, config)
        actual_md5 = file_md5(part)
        if actual_md5 != expected_md5:
            bad = target.with_name(target.name + BAD_MD5_SUFFIX)
            os.replace(part, bad)
            raise KuaiRecSourceError(
                f"the download from {source_url} has md5 {actual_md5}, expected {expected_md5}; it was moved "
                f"aside to {bad}. Run again to download it afresh (set {MD5_ENV} if the archive changed upstream). "
                + _OFFLINE_HINT
            )
        os.replace(part, target)
    return target


def file_md5(path: str | os.PathLike[str], chunk_bytes: int = 1 << 22) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch_with_retries(url: str, part: Path, progress: bool, config: DownloadConfig) -> None:
    wait = config.retry_wait_s
    for attempt in range(1, config.attempts + 1):
        try:
            _fetch_once(url, part, progress, config)
            return
        except _Interrupted as exc:
            if attempt == config.attempts:
                kept = part.stat().st_size if part.exists() else 0
                resume = (
                    f"{kept:,} bytes are kept in {part} and the next try resumes from there. "
                    if kept
                    else "Nothing was received. "
                )
                raise KuaiRecSourceError(
                    f"could not download {url} after {config.attempts} tries ({exc}); " + resume + _OFFLINE_HINT
                ) from exc
            time.sleep(wait)
            wait *= 2


def _fetch_once(url: str, part: Path, progress: bool, config: DownloadConfig) -> None:
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": config.user_agent, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=config.timeout_s)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # nothing left after offset: complete already, or a stale .part
            total = _total_from_content_range(exc.headers.get("Content-Range"))
            if total != offset:
                part.unlink()
                raise _Interrupted("the partial file did not match the server's; starting over") from exc
            return
        if exc.code >= 500 or exc.code == 429:
            raise _Interrupted(f"HTTP {exc.code} {exc.reason}") from exc
        raise KuaiRecSourceError(f"could not download {url}: HTTP {exc.code} {exc.reason}. " + _OFFLINE_HINT) from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise _Interrupted(f"cannot connect: {reason}") from exc
    with response:
        status = response.status
        if status == 206:
            start = _start_from_content_range(response.headers.get("Content-Range"))
            if start != offset:  # not the part we asked for: start over rather than splice wrong bytes
                part.unlink(missing_ok=True)
                raise _Interrupted(f"the server resumed at byte {start}, not {offset}; starting over")
            total = _total_from_content_range(response.headers.get("Content-Range"))
            mode = "ab"
        elif status == 200:
            offset = 0  # the server ignored Range (or there was nothing to resume): start clean
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            mode = "wb"
        else:
            raise _Interrupted(f"unexpected HTTP status {status}")
        received = offset
        with (
            open(part, mode) as sink,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=ARCHIVE_NAME,
                disable=not progress,
                leave=False,
            ) as bar,
        ):
            try:
                while chunk := response.read(config.chunk_bytes):
                    sink.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            except (TimeoutError, OSError, http.client.HTTPException) as exc:
                raise _Interrupted(f"the transfer stopped at byte {received:,}: {exc!r}") from exc
    if total is not None and received != total:
        raise _Interrupted(f"the transfer stopped at byte {received:,} of {total:,}")


def _start_from_content_range(header: str | None) -> int | None:
    match = _CONTENT_RANGE.match(header or "")
    return int(match.group(1)) if match and match.group(1) else None


def _total_from_content_range(header: str | None) -> int | None:
    match = _CONTENT_RANGE.match(header or "")
    return int(match.group(3)) if match and match.group(3) != "*" else None
