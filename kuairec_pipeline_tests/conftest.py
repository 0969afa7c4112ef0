"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kuairec_pipeline_tests.builders import materialize, pipeline_env

REAL_DATA_ENV = "KUAIREC_REAL_DATA_DIR"
_REPO = Path(__file__).resolve().parent.parent


def _pin_xdist_worker() -> None:
    """Under pytest-xdist, give each worker its own share of the cores (the processes its tests start inherit it).

    The models default to every available core for torch and OpenMP; with one worker per core each worker's pools
    would otherwise spread over every core, and oversubscribed spinning pools make training several times slower.
    With more workers than cores the scheduler is left alone."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if not worker.startswith("gw") or not hasattr(os, "sched_setaffinity"):
        return
    cores = sorted(os.sched_getaffinity(0))
    if count > len(cores):
        return
    share = len(cores) // count
    index = int(worker.removeprefix("gw"))
    last = len(cores) if index == count - 1 else (index + 1) * share  # the last worker takes any remainder
    os.sched_setaffinity(0, cores[index * share : last])


_pin_xdist_worker()


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The folder of the real KuaiRec files (user_features.csv, item_categories.csv, kuairec_caption_category.csv):
    $KUAIREC_REAL_DATA_DIR when set (only there), else ``<repo>/../shared/data/kuairec_real``. Skips the test when
    the files are missing, except under CI (env CI set), where the real files must be there: the test fails."""
    if os.environ.get(REAL_DATA_ENV):
        candidates = [Path(os.environ[REAL_DATA_ENV]).expanduser()]  # an explicit choice wins, never mixed
    else:
        candidates = [_REPO.parent / "shared" / "data" / "kuairec_real"]
    for folder in candidates:
        if (folder / "user_features.csv").is_file():
            return folder
    reason = f"real KuaiRec files not found in {' or '.join(str(c) for c in candidates)} (set {REAL_DATA_ENV})"
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def materialized_pipeline(tmp_path_factory) -> dict[str, str]:
    """The whole graph materialized once on the tiny twin (KUAIREC_SOURCE=synthetic, the default seed), in-process
    on a real instance (``builders.materialize``); its environment. Tests must not modify it: they copy its home
    (``builders.copy_home``) to change anything."""
    root = tmp_path_factory.mktemp("pipeline")
    env = pipeline_env(root)
    result = materialize(env)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-8000:]
    return env
