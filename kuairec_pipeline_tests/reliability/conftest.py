"""The reliability tests' fixture: the session's full materialization of the tiny twin as a ``Baseline`` (the
tools to copy, damage, run and compare it are in ``kuairec_pipeline_tests/builders.py``)."""

from __future__ import annotations

import pytest

from kuairec_pipeline_tests.builders import Baseline


@pytest.fixture(scope="session")
def baseline(materialized_pipeline: dict[str, str]) -> Baseline:
    """Every asset materialized once on the tiny twin (shared with the orchestration tests; read-only: tests copy
    its home with ``copy_home``)."""
    return Baseline(materialized_pipeline)
