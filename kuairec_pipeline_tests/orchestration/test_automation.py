"""Scheduled retraining and the new-data sensor, evaluated the way the daemon evaluates them."""

from __future__ import annotations

import os
from pathlib import Path

from dagster import DagsterInstance, RunRequest, SkipReason, build_schedule_context, build_sensor_context

from kuairec_pipeline.dataset.synthetic import generate_twin
from kuairec_pipeline.definitions import build_definitions
from kuairec_pipeline.orchestration.jobs import new_source_data_sensor, weekly_retraining_schedule
from kuairec_pipeline.orchestration.resources import KuaiRecResource
from kuairec_pipeline.settings import Settings


def test_weekly_schedule_requests_the_retraining_job():
    with DagsterInstance.ephemeral() as instance:
        result = weekly_retraining_schedule.evaluate_tick(build_schedule_context(instance=instance))
    assert result.run_requests and len(result.run_requests) == 1
    assert weekly_retraining_schedule.job_name == "retrain_models"
    defs = build_definitions(Settings(home=Path("data").absolute()))
    assert defs.resolve_job_def("retrain_models") is not None


def _evaluate(resource: KuaiRecResource, cursor: str | None):
    context = build_sensor_context(cursor=cursor, resources={"kuairec": resource})
    return new_source_data_sensor(context)


def test_sensor_fires_once_per_change_of_the_source_files(tmp_path):
    twin = generate_twin(tmp_path / "twin", profile="tiny", seed=3)
    resource = KuaiRecResource(home=str(tmp_path / "home"), source=str(twin), profile="tiny")
    first = _evaluate(resource, cursor=None)
    assert isinstance(first.run_requests[0], RunRequest)
    cursor = first.cursor
    assert isinstance(_evaluate(resource, cursor), SkipReason)  # nothing changed
    big = next(twin.rglob("big_matrix.csv"))
    with big.open("a") as handle:  # new interactions arrive
        handle.write(big.read_text().splitlines()[-1] + "\n")
    os.utime(big)
    changed = _evaluate(resource, cursor)
    assert changed.run_requests[0].run_key != first.run_requests[0].run_key
    assert changed.cursor != cursor


def test_sensor_skips_generated_sources(tmp_path):
    resource = KuaiRecResource(home=str(tmp_path), source="synthetic", profile="tiny")
    assert isinstance(_evaluate(resource, cursor=None), SkipReason)
