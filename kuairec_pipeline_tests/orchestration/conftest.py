"""Helpers that run the real Dagster CLI against a real local instance on the tiny synthetic twin.

The ``materialized_pipeline`` fixture built with them lives in ``kuairec_pipeline_tests/conftest.py``, so that the
orchestration and the reliability tests share one materialization per session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DAGSTER = str(Path(sys.executable).with_name("dagster"))


def instance_dir(root: Path) -> Path:
    """A DAGSTER_HOME with the project's dagster.yaml, its storage redirected below ``root``."""
    home = root / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    text = (REPO / "dagster.yaml").read_text().replace("data/dagster", str(root / "dagster_storage"))
    (home / "dagster.yaml").write_text(text)
    return home


def pipeline_env(root: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUAIREC_", "DAGSTER_"))}
    env.update({
        "KUAIREC_HOME": str(root / "home"),
        "KUAIREC_PROFILE": "tiny",
        "DAGSTER_HOME": str(instance_dir(root)),
        "OPENBLAS_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(overrides)
    return env


def materialize(env: dict[str, str], select: str = "*", timeout: float = 600,
                extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DAGSTER, "asset", "materialize", "-m", "kuairec_pipeline.definitions", "--select", select, *extra],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
    )


def assets_dir(env: dict[str, str]) -> Path:
    return Path(env["KUAIREC_HOME"]) / "assets"
