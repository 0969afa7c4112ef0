"""What the reliability tests share: the session's full materialization of the tiny twin, and the tools to copy,
damage, run and compare it. Every run goes through the real Dagster CLI (the helpers of the orchestration tests).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from kuairec_pipeline.dataset.synthetic import DATA_SUBDIR
from kuairec_pipeline.settings import Settings
from kuairec_pipeline_tests.orchestration.conftest import pipeline_env

# CLI runs started at once by one test. Each run spends most of its ~9 CPU seconds importing dagster, torch and
# lightning, so on a 2-core machine two at a time halves the wall time and more buys little.
PARALLEL_RUNS = 2


@dataclass(frozen=True)
class Baseline:
    """The session's full materialization (``materialized_pipeline``): its environment and its twin's folder."""

    env: dict[str, str]

    @property
    def home(self) -> Path:
        return Path(self.env["KUAIREC_HOME"])

    @property
    def twin(self) -> Path:
        """The synthetic twin the baseline read (KUAIREC_SOURCE=synthetic): ``<home>/source/synthetic-...``."""
        return Settings.from_env(self.env).synthetic_dir


@pytest.fixture(scope="session")
def baseline(materialized_pipeline: dict[str, str]) -> Baseline:
    """Every asset materialized once on the tiny twin (shared with the orchestration tests; read-only: tests copy
    its home with ``copy_home``)."""
    return Baseline(materialized_pipeline)


def twin_data(twin: Path) -> Path:
    """The folder holding the CSV files of a twin (the archive's own ``KuaiRec 2.0/data``)."""
    return twin / DATA_SUBDIR


def copy_home(baseline: Baseline, root: Path, source: Path | None = None, **overrides: str) -> dict[str, str]:
    """A private copy of the baseline's KUAIREC_HOME below ``root``, with its own Dagster instance.

    With ``source`` (a copy of the twin), KUAIREC_SOURCE names that copy and the stored ``source_files`` manifest
    is pointed at it, as if the files had been listed there: re-running an ingest asset then re-reads the copy,
    whatever was done to it.
    """
    env = pipeline_env(root, **{**({"KUAIREC_SOURCE": str(source)} if source else {}), **overrides})
    home = Path(env["KUAIREC_HOME"])
    shutil.copytree(baseline.home, home, symlinks=True)
    if source is not None:
        manifest = home / "assets" / "source_files.parquet"
        table = pl.read_parquet(manifest).with_columns(
            pl.col("path").str.replace(str(baseline.twin) + os.sep, str(source) + os.sep, literal=True)
        )
        table.write_parquet(manifest, compression="zstd")
    return env


def digests(folder: Path, skip: Callable[[Path], bool] = lambda path: False) -> dict[str, str]:
    """sha256 of every file below ``folder`` (relative path -> digest), leaving out what ``skip`` says."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not skip(path):
            found[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def is_lock_file(path: Path) -> bool:
    """The empty advisory lock files that source preparation takes (``.<name>.lock``)."""
    return path.name.startswith(".") and path.name.endswith(".lock")


def temporaries(folder: Path) -> list[Path]:
    """Temporary files or folders (``atomic.temporary_sibling``, download ``.part``) anywhere below ``folder``."""
    return sorted(p for p in folder.rglob("*") if p.name.endswith((".tmp", ".part")))


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def run_all(
    jobs: Iterable[Callable[[], subprocess.CompletedProcess[str]]], workers: int = PARALLEL_RUNS
) -> list[subprocess.CompletedProcess[str]]:
    """Run CLI invocations ``workers`` at a time (each in its own folders), results in the order given."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda job: job(), list(jobs)))
