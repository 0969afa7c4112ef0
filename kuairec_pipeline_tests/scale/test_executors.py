"""The executor is chosen by KUAIREC_EXECUTOR or the run config; multiprocess and Celery runs through the CLI.

The runs materialize three ingest steps of the tiny twin, not the whole graph: what is proven (each
step in a process of its own, or on the Celery worker, and every selected asset written through the shared asset
storage) does not depend on which steps run, and each step process re-imports dagster, torch and polars for
seconds, so the whole graph cost minutes."""

from __future__ import annotations

import pytest
import yaml
from dagster import DagsterEventType, DagsterInstance, Definitions

from kuairec_pipeline.definitions import build_definitions
from kuairec_pipeline.orchestration.executors import (
    MULTIPROCESS_DEFAULT,
    available_executors,
    default_executor_config,
)
from kuairec_pipeline_tests.builders import assets_dir, celery_worker, materialize_cli, pipeline_env, redis_server


def test_environment_selects_the_executor():
    assert default_executor_config({}) == {"in_process": {}}
    assert default_executor_config({"KUAIREC_EXECUTOR": "multiprocess"}) == {"multiprocess": MULTIPROCESS_DEFAULT}
    celery = default_executor_config({"KUAIREC_EXECUTOR": "celery", "KUAIREC_CELERY_BROKER": "redis://h:1/0"})
    # URLs stay references to the environment, so a password in them never lands in the stored run config
    assert celery == {
        "celery": {"broker": {"env": "KUAIREC_CELERY_BROKER"}, "backend": {"env": "KUAIREC_CELERY_BROKER"}}
    }
    both = default_executor_config(
        {
            "KUAIREC_EXECUTOR": "celery",
            "KUAIREC_CELERY_BROKER": "redis://h:1/0",
            "KUAIREC_CELERY_BACKEND": "redis://h:1/1",
        }
    )
    assert both["celery"]["backend"] == {"env": "KUAIREC_CELERY_BACKEND"}


@pytest.mark.parametrize(
    "environ, message",
    [
        ({"KUAIREC_EXECUTOR": "dask"}, "KUAIREC_EXECUTOR='dask' is not one of in_process, multiprocess, celery"),
        ({"KUAIREC_EXECUTOR": "celery"}, "needs KUAIREC_CELERY_BROKER"),
    ],
)
def test_invalid_executor_environment_is_refused(environ, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_definitions(environ=environ)


def test_every_executor_loads_and_celery_is_installed():
    assert set(available_executors()) == {"in_process", "multiprocess", "celery"}
    for name in ("in_process", "multiprocess", "celery"):
        environ = {"KUAIREC_EXECUTOR": name, "KUAIREC_CELERY_BROKER": "redis://127.0.0.1:1/0"}
        defs = build_definitions(environ=environ)
        Definitions.validate_loadable(defs)
        field = defs.get_implicit_global_asset_job_def().executor_def.config_schema.as_field()
        assert set(field.default_value) == {name}


def _step_pids(dagster_home: str) -> tuple[int, dict[str, int]]:
    """The run process's pid and, per step, the pid that ran it (from the instance's event log)."""
    with DagsterInstance.from_config(dagster_home) as instance:
        (run,) = instance.get_runs()
        assert run.is_success
        records = instance.all_logs(run.run_id)
    run_pid = next(
        r.dagster_event.pid
        for r in records
        if r.dagster_event and r.dagster_event.event_type == DagsterEventType.RUN_START
    )
    steps = {
        r.step_key: r.dagster_event.pid
        for r in records
        if r.dagster_event and r.dagster_event.event_type == DagsterEventType.STEP_SUCCESS
    }
    return run_pid, steps


# source_files, then two assets that read it: a step that needs another step's output from the asset storage.
SELECTION = "source_files,raw_users,raw_videos"


def _selected_assets_written(env: dict[str, str]) -> None:
    keys = {
        key.to_user_string() for key in build_definitions(environ=env).resolve_asset_graph().materializable_asset_keys
    }
    assert set(SELECTION.split(",")) <= keys
    written = {path.stem for path in assets_dir(env).iterdir() if path.suffix in (".parquet", ".npz")}
    assert written == set(SELECTION.split(","))


@pytest.mark.slow
@pytest.mark.scale
def test_run_config_selects_multiprocess_over_the_environment(tmp_path):
    # The environment says in_process; the run config wins: every step in its own process.
    env = pipeline_env(tmp_path, KUAIREC_EXECUTOR="in_process")
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump({"execution": {"config": {"multiprocess": {"max_concurrent": 2, **MULTIPROCESS_DEFAULT}}}})
    )
    result = materialize_cli(env, select=SELECTION, extra=("-c", str(config)))
    assert result.returncode == 0, result.stderr[-6000:]
    run_pid, steps = _step_pids(env["DAGSTER_HOME"])
    assert set(steps) == set(SELECTION.split(",")) and run_pid not in steps.values()
    assert len(set(steps.values())) == len(steps)  # one process per step
    _selected_assets_written(env)


@pytest.mark.slow
@pytest.mark.scale
def test_celery_executor_runs_every_step_on_a_worker(tmp_path):
    with redis_server(tmp_path / "redis") as broker:
        env = pipeline_env(tmp_path, KUAIREC_EXECUTOR="celery", KUAIREC_CELERY_BROKER=broker)
        with celery_worker(env, tmp_path / "worker", name="kuairec-test") as worker_log:
            result = materialize_cli(env, select=SELECTION)
            assert result.returncode == 0, result.stderr[-6000:] + worker_log.read_text()[-4000:]
    run_pid, steps = _step_pids(env["DAGSTER_HOME"])
    assert set(steps) == set(SELECTION.split(",")) and run_pid not in steps.values()
    with DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        (run,) = instance.get_runs()
        delegated = {
            r.step_key
            for r in instance.all_logs(run.run_id)
            if r.dagster_event
            and r.dagster_event.event_type == DagsterEventType.ENGINE_EVENT
            and "in celery worker" in (r.dagster_event.message or "")
        }
    assert delegated == set(steps)  # every step went through the broker to the worker
    _selected_assets_written(env)
