"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kuairec_pipeline_tests.builders import materialize, pipeline_env

REAL_DATA_ENV = "KUAIREC_REAL_DATA_DIR"
_REPO = Path(__file__).resolve().parent.parent


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
