"""Shared pytest fixtures."""

from __future__ import annotations

import gc
import itertools
import os
from pathlib import Path

import pytest
from filelock import FileLock

# builders (dagster, the package, polars) is imported inside the fixtures: the xdist controller loads this file too,
# runs no test, and would spend seconds importing them while the workers start.

REAL_DATA_ENV = "KUAIREC_REAL_DATA_DIR"
_REPO = Path(__file__).resolve().parent.parent


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker per core. Two per core overlap the slow tests' waits on the processes they start, but
    every worker also imports and collects every test module and four busy workers on two cores cost more CPU per
    test: since the session pipeline is shared, one per core was faster in both back-to-back comparisons
    (benchmarks/results/coverage_before_after.md: 159 vs 192 s and 170 vs 198 s)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _pin_xdist_worker() -> None:
    """Under pytest-xdist, give each worker its own share of the cores (the processes its tests start inherit it).

    The models default to every available core for torch and OpenMP; unpinned, each worker's pools would spread
    over every core, and oversubscribed spinning pools make training several times slower. With more workers than
    cores (e.g. ``-n 4`` on two) each worker gets one core, round robin."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if not worker.startswith("gw") or not hasattr(os, "sched_setaffinity"):
        return
    cores = sorted(os.sched_getaffinity(0))
    index = int(worker.removeprefix("gw"))
    if count > len(cores):  # workers take turns on the cores: one core each, round robin
        os.sched_setaffinity(0, [cores[index % len(cores)]])
        return
    share = len(cores) // count
    last = len(cores) if index == count - 1 else (index + 1) * share  # the last worker takes any remainder
    os.sched_setaffinity(0, cores[index * share : last])


_pin_xdist_worker()


# Test modules whose tests start processes or run asset graphs, with their tests' wall seconds summed over one suite
# run under `-n 2` on this 2-core machine (2026-12-01; re-measure per test with `pytest --durations=0`; only the
# proportions matter; the session pipeline's build counts in the first module that needs it). Under pytest-xdist
# they are spread over the workers before the rest (pytest_collection_modifyitems): in collection order the
# longest ones came last, and one worker idled while the other finished them.
HEAVY_MODULES = {
    "orchestration/test_web_ui.py": 36,
    "scale/test_executors.py": 25,
    "reliability/test_concurrent_runs.py": 15,
    "orchestration/test_incremental_ingest.py": 15,
    "scale/test_object_storage.py": 14,
    "scale/test_data_parallel.py": 13,
    "reliability/test_interrupted_runs.py": 12,
    "reliability/test_mixed_state.py": 9,
    "reliability/test_bad_input.py": 8,
    "orchestration/test_pipeline.py": 7,
    "evaluation/test_html_report.py": 3,
    "reliability/test_download_e2e.py": 3,
    "scale/test_run_full.py": 3,
}
PIPELINE_FIXTURE = "materialized_pipeline"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (``--dist worksteal``), lay the tests out so each worker's first share holds about the
    same heavy-module seconds, heavy modules first, then ordinary tests. The scheduler deals the collection out in
    contiguous shares (``len // workers``) and later steals from the *end* of a busy worker's share, so: the long
    tests start early, a steal takes ordinary tests, and a module's tests (and its module-scoped fixture: a dagster
    dev server, an S3 run) stay on one worker. The first share starts with tests that need the session pipeline
    (its worker builds it) and the others with tests that do not (so they do not wait for the build)."""
    missing = [module for module in HEAVY_MODULES if not (Path(__file__).parent / module).is_file()]
    if missing:  # a renamed module would silently lose its place
        raise pytest.UsageError(f"conftest.HEAVY_MODULES names test modules that do not exist: {missing}")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers < 2:
        return
    heavy: dict[str, list[pytest.Item]] = {}
    light: list[pytest.Item] = []
    for item in items:
        module = item.nodeid.split("::")[0].removeprefix("kuairec_pipeline_tests/")
        (heavy.setdefault(module, []) if module in HEAVY_MODULES else light).append(item)
    shares: list[list[str]] = [[] for _ in range(workers)]
    loads = [0.0] * workers
    for module in sorted(heavy, key=lambda name: -HEAVY_MODULES[name]):  # longest first, to the least loaded share
        least = loads.index(min(loads))
        shares[least].append(module)
        loads[least] += HEAVY_MODULES[module]
    left, ordered, rest = len(items), [], iter(light)
    uses_pipeline = {
        module for module, tests in heavy.items() if any(PIPELINE_FIXTURE in t.fixturenames for t in tests)
    }
    for index, modules in enumerate(shares):
        size = left // (workers - index)  # as the scheduler deals them: what is left over the workers left
        left -= size
        first = index == 0  # sorted puts False first: the first share's pipeline modules, the others' other ones
        modules = sorted(modules, key=lambda module: (module in uses_pipeline) != first)
        share = [item for module in modules for item in heavy[module]]
        share += itertools.islice(rest, max(size - len(share), 0))
        ordered += share
    items[:] = ordered + list(rest)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Move what collection imported (torch, Lightning, Dagster, sympy: hundreds of thousands of objects that live
    as long as the worker) to the permanent generation (``gc.freeze``, CPython's own tool for long-lived objects):
    each full collection during the tests then skips them instead of traversing them all again. The price: a
    reference cycle among them is never collected, which for import-time objects is no loss."""
    gc.freeze()


def pytest_unconfigure(config: pytest.Config) -> None:
    """Again at the end: the interpreter's shutdown collection then skips everything the tests left alive, and the
    xdist controller, which waits for each worker to exit, is let go sooner (the finalizers of objects in cycles
    then do not run at exit; nothing of the suite's relies on them)."""
    gc.freeze()


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
def materialized_pipeline(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> dict[str, str]:
    """The whole graph materialized once on the tiny twin (KUAIREC_SOURCE=synthetic, the default seed), in-process
    on a real instance (``builders.materialize``); its environment. Tests must not modify it: they copy its home
    (``builders.copy_home``) or its instance (``builders.copy_instance``) to change anything.

    Under pytest-xdist the workers share one: the first to ask builds it in the session's common temporary folder
    under a file lock (the pattern pytest-xdist documents for session fixtures), the others wait for it, then read
    it. One build instead of one per worker."""
    if worker_id == "master":  # one process: nothing to share
        return _build_pipeline(tmp_path_factory.mktemp("pipeline"))
    shared = tmp_path_factory.getbasetemp().parent
    root, done, failed = shared / "pipeline", shared / "pipeline.done", shared / "pipeline.failed"
    with FileLock(str(shared / "pipeline.lock")):
        if failed.is_file():  # another worker's build failed: its error, not a second build into the same folder
            pytest.fail(f"the session pipeline failed to build in another worker:\n{failed.read_text()}")
        if not done.is_file():
            try:
                _build_pipeline(root)
            except BaseException as error:
                failed.write_text(f"{type(error).__name__}: {error}")
                raise
            done.touch()
    # This worker's own environment (another worker's PYTEST_XDIST_* must not leak into subprocesses), pointed at
    # the same root: the same KUAIREC_* and DAGSTER_* values the builder used; its instance is left as written.
    from kuairec_pipeline_tests.builders import pipeline_env

    return pipeline_env(root, write_instance=False)


def _build_pipeline(root: Path) -> dict[str, str]:
    from kuairec_pipeline_tests.builders import materialize, pipeline_env

    env = pipeline_env(root)
    result = materialize(env)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-8000:]
    return env
