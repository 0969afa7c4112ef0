"""download_archive against a local HTTP server on 127.0.0.1 (never any other address): resume, md5, errors."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from kuairec_pipeline.dataset import download
from kuairec_pipeline.dataset.download import DownloadConfig, download_archive
from kuairec_pipeline.errors import KuaiRecSourceError
from kuairec_pipeline_tests.builders import PAYLOAD, PAYLOAD_MD5, FileServer, serving

FAST = DownloadConfig(timeout_s=10, attempts=3, retry_wait_s=0, chunk_bytes=64 * 1024)


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # A proxy from the environment must never see these requests: everything stays on loopback.
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")
    monkeypatch.delenv(download.URL_ENV, raising=False)
    monkeypatch.delenv(download.MD5_ENV, raising=False)


@pytest.fixture
def server() -> Iterator[FileServer]:
    with serving(FileServer()) as state:
        yield state


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def test_downloads_and_checks_md5(tmp_path: Path, server: FileServer) -> None:
    path = download_archive(tmp_path, url=server.url, md5=PAYLOAD_MD5, progress=True, config=FAST)
    assert path == tmp_path / "KuaiRec.zip"
    assert path.read_bytes() == PAYLOAD
    assert files_in(tmp_path) == ["KuaiRec.zip"]
    assert server.requests == [None]


def test_reuses_a_good_file_without_a_request(tmp_path: Path, server: FileServer) -> None:
    (tmp_path / "KuaiRec.zip").write_bytes(PAYLOAD)
    download_archive(tmp_path, url=server.url, md5=PAYLOAD_MD5, progress=False, config=FAST)
    assert server.requests == []


def test_resumes_after_a_dropped_connection(tmp_path: Path, server: FileServer) -> None:
    server.drop_after = [300_000]
    path = download_archive(tmp_path, url=server.url, md5=PAYLOAD_MD5, progress=False, config=FAST)
    assert path.read_bytes() == PAYLOAD
    assert server.requests == [None, "bytes=300000-"]


def test_a_later_call_resumes_the_part_file(tmp_path: Path, server: FileServer) -> None:
    server.drop_after = [200_000]
    once = DownloadConfig(timeout_s=10, attempts=1, retry_wait_s=0)
    with pytest.raises(KuaiRecSourceError, match="200,000 bytes are kept") as caught:
        download_archive(tmp_path, url=server.url, md5=PAYLOAD_MD5, progress=False, config=once)
    assert "KUAIREC_SOURCE=" in str(caught.value)
    assert (tmp_path / "KuaiRec.zip.part").stat().st_size == 200_000
    path = download_archive(tmp_path, url=server.url, md5=PAYLOAD_MD5, progress=False, config=once)
    assert path.read_bytes() == PAYLOAD
    assert server.requests == [None, "bytes=200000-"]
    assert files_in(tmp_path) == ["KuaiRec.zip"]


def test_server_ignoring_range_restarts_cleanly(tmp_path: Path, server: FileServer) -> None:
    server.honour_range = False
    (tmp_path / "KuaiRec.zip.part").write_bytes(b"stale bytes from another file")
    path = download_archive(tmp_path, url=server.url, md5=PAYLOAD_MD5, progress=False, config=FAST)
    assert path.read_bytes() == PAYLOAD
    assert server.requests == ["bytes=29-"]


def test_complete_part_file_is_finished_without_downloading_again(tmp_path: Path, server: FileServer) -> None:
    (tmp_path / "KuaiRec.zip.part").write_bytes(PAYLOAD)
    path = download_archive(tmp_path, url=server.url, md5=PAYLOAD_MD5, progress=False, config=FAST)
    assert path.read_bytes() == PAYLOAD
    assert server.requests == [f"bytes={len(PAYLOAD)}-"]


def test_md5_mismatch_sets_the_file_aside(tmp_path: Path, server: FileServer) -> None:
    with pytest.raises(KuaiRecSourceError, match="md5") as caught:
        download_archive(tmp_path, url=server.url, md5="0" * 32, progress=False, config=FAST)
    assert "bad-md5" in str(caught.value)
    assert files_in(tmp_path) == ["KuaiRec.zip.bad-md5"]
    assert (tmp_path / "KuaiRec.zip.bad-md5").read_bytes() == PAYLOAD


def test_url_and_md5_from_the_environment(tmp_path: Path, server: FileServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(download.URL_ENV, server.url)
    monkeypatch.setenv(download.MD5_ENV, PAYLOAD_MD5.upper())
    assert download_archive(tmp_path, progress=False, config=FAST).read_bytes() == PAYLOAD


def test_unreachable_host_says_how_to_go_offline(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = DownloadConfig(timeout_s=5, attempts=2, retry_wait_s=0)
    with pytest.raises(KuaiRecSourceError, match=r"KUAIREC_SOURCE=<path to KuaiRec.zip or its unpacked folder>"):
        download_archive(
            tmp_path, url=f"http://127.0.0.1:{port}/KuaiRec.zip", md5=PAYLOAD_MD5, progress=False, config=config
        )
    assert not (tmp_path / "KuaiRec.zip").exists()


def test_http_error_is_not_retried(tmp_path: Path, server: FileServer) -> None:
    server.status = 404
    with pytest.raises(KuaiRecSourceError, match="HTTP 404") as caught:
        download_archive(tmp_path, url=server.url, md5=PAYLOAD_MD5, progress=False, config=FAST)
    assert "KUAIREC_SOURCE=" in str(caught.value)
    assert server.requests == [None]


def test_server_errors_are_retried(tmp_path: Path, server: FileServer) -> None:
    server.status = 503
    with pytest.raises(KuaiRecSourceError, match="after 3 tries"):
        download_archive(tmp_path, url=server.url, md5=PAYLOAD_MD5, progress=False, config=FAST)
    assert len(server.requests) == 3


def test_only_http_urls(tmp_path: Path) -> None:
    with pytest.raises(KuaiRecSourceError, match="not an http"):
        download_archive(tmp_path, url="file:///etc/passwd", progress=False)
