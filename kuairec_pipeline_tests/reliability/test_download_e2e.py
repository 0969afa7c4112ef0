"""KUAIREC_SOURCE=download end to end, through ``dagster asset materialize``, against HTTP servers on 127.0.0.1
started here (never any other address): a download interrupted twice resumes and the ingest assets materialize
from it; a wrong md5 is refused and the file set aside; no network says how to point KUAIREC_SOURCE at a file.
(download.py's own behaviour is unit-tested in kuairec_pipeline_tests/dataset/test_download.py.)"""

from __future__ import annotations

import hashlib
import io
import json
import socket
import subprocess
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from kuairec_pipeline.dataset import download
from kuairec_pipeline_tests.builders import (
    Baseline,
    FileServer,
    copy_home,
    digests,
    materialize,
    output,
    pipeline_env,
    serving,
    temporaries,
    twin_data,
)

pytestmark = pytest.mark.slow

INGEST = "source_files,raw_interactions,raw_eval_interactions,raw_users,raw_videos,planted_truth"
PROXY_VARIABLES = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")
ALREADY_DOWNLOADED = 100_000  # bytes of a previous, interrupted run's KuaiRec.zip.part
DROPPED_AFTER = 300_000  # bytes this run receives before the server hangs up (it resumes again from there)
# The run config a user on a flaky line would give source_files; the default first wait (1 s, doubling) would make the
# offline run sleep 7 s of its 4 tries here.
QUICK_RETRIES = ("--config-json", json.dumps({"ops": {"source_files": {"config": {"retry_wait_s": 0.05}}}}))


@dataclass
class Runs:
    archive: bytes
    servers: dict[str, FileServer]
    envs: dict[str, dict[str, str]]
    results: dict[str, subprocess.CompletedProcess[str]]
    assets_before: dict[str, dict[str, str]]  # digests of each home's asset and model files before its run

    def home(self, name: str) -> Path:
        return Path(self.envs[name]["KUAIREC_HOME"])


def _zipped_twin(twin: Path) -> bytes:
    """The twin's CSV files as the official archive's bytes, built in memory (the twin's folder is the session
    pipeline's, shared by every worker: nothing is written there)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as bundle:
        bundle.writestr("KuaiRec 2.0/", "")
        for csv in sorted(twin_data(twin).iterdir()):  # the official layout; no planted truth in a real archive
            bundle.write(csv, f"KuaiRec 2.0/data/{csv.name}")
    return buffer.getvalue()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again on leaving: connecting is refused, as when offline


def _env(root: Path, url: str, md5: str, baseline: Baseline | None = None) -> dict[str, str]:
    """A fresh KUAIREC_HOME, or with ``baseline`` a copy of its materialization (which a failure must not touch)."""
    variables = {"KUAIREC_SOURCE": "download", download.URL_ENV: url, download.MD5_ENV: md5}
    env = copy_home(baseline, root, **variables) if baseline else pipeline_env(root, **variables)
    for name in PROXY_VARIABLES:
        env.pop(name, None)
    env["no_proxy"] = env["NO_PROXY"] = "*"
    return env


@pytest.fixture(scope="module")
def runs(baseline: Baseline, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    archive = _zipped_twin(baseline.twin)
    md5 = hashlib.md5(archive).hexdigest()
    servers = {
        "resumed": FileServer(payload=archive, drop_after=[DROPPED_AFTER]),
        "bad_md5": FileServer(payload=archive),
    }
    with serving(servers["resumed"]), serving(servers["bad_md5"]):
        envs = {
            "resumed": _env(tmp_path_factory.mktemp("download-resumed"), servers["resumed"].url, md5),
            "bad_md5": _env(tmp_path_factory.mktemp("download-bad-md5"), servers["bad_md5"].url, "0" * 32, baseline),
            "offline": _env(
                tmp_path_factory.mktemp("download-offline"),
                f"http://127.0.0.1:{_closed_port()}/KuaiRec.zip",
                md5,
                baseline,
            ),
        }
        before = {name: _asset_files(Path(env["KUAIREC_HOME"])) for name, env in envs.items()}
        downloads = Path(envs["resumed"]["KUAIREC_HOME"]) / "downloads"
        downloads.mkdir(parents=True)
        (downloads / f"KuaiRec.zip{download.PART_SUFFIX}").write_bytes(archive[:ALREADY_DOWNLOADED])  # a killed run's
        # One after the other: in-process runs in threads share the process's stdout and stderr, which Dagster's
        # compute-log capture redirects per run (a `tail -F` each); run side by side they hung a worker for minutes.
        results = {name: materialize(env, select=INGEST, extra=QUICK_RETRIES) for name, env in envs.items()}
        yield Runs(archive, servers, envs, results, before)


def test_interrupted_download_resumes_and_the_pipeline_materializes(runs: Runs, baseline: Baseline) -> None:
    result = runs.results["resumed"]
    assert result.returncode == 0, output(result)[-6000:]
    # The previous run's part file was resumed, then the dropped transfer was resumed where it stopped.
    assert runs.servers["resumed"].requests == [
        f"bytes={ALREADY_DOWNLOADED}-",
        f"bytes={ALREADY_DOWNLOADED + DROPPED_AFTER}-",
    ]
    home = runs.home("resumed")
    assert (home / "downloads" / "KuaiRec.zip").read_bytes() == runs.archive
    assert (home / "source" / "KuaiRec" / ".kuairec-unpacked.json").is_file()
    assert temporaries(home) == []
    for key in ("raw_interactions", "raw_eval_interactions", "raw_users", "raw_videos"):
        assert pl.read_parquet(home / "assets" / f"{key}.parquet").equals(
            pl.read_parquet(baseline.home / "assets" / f"{key}.parquet")
        ), key
    assert pl.read_parquet(home / "assets" / "planted_truth.parquet").is_empty()  # a real archive has no oracle


def test_md5_mismatch_is_refused_and_set_aside(runs: Runs) -> None:
    result = runs.results["bad_md5"]
    text = output(result)
    home = runs.home("bad_md5")
    bad = home / "downloads" / f"KuaiRec.zip{download.BAD_MD5_SUFFIX}"
    assert result.returncode != 0
    assert f"has md5 {hashlib.md5(runs.archive).hexdigest()}, expected {'0' * 32}" in text, text[-6000:]
    assert f"it was moved aside to {bad}" in text
    assert bad.read_bytes() == runs.archive
    assert not (home / "downloads" / "KuaiRec.zip").exists()
    assert not (home / "source" / "KuaiRec").exists()  # nothing unpacked
    assert _asset_files(home) == runs.assets_before["bad_md5"]  # the earlier materialization, byte for byte
    assert temporaries(home) == []


def test_no_network_suggests_a_local_source(runs: Runs) -> None:
    result = runs.results["offline"]
    text = output(result)
    assert result.returncode != 0
    assert f"could not download {runs.envs['offline'][download.URL_ENV]}" in text, text[-6000:]
    assert "set KUAIREC_SOURCE=<path to KuaiRec.zip or its unpacked folder>" in text
    home = runs.home("offline")
    assert _asset_files(home) == runs.assets_before["offline"]
    assert temporaries(home) == []


def _asset_files(home: Path) -> dict[str, str]:
    return {
        **{f"assets/{k}": v for k, v in digests(home / "assets").items()},
        **{f"models/{k}": v for k, v in digests(home / "models").items()},
    }
