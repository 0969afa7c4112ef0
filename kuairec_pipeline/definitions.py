"""The one Definitions object: assets, checks, jobs, schedules, sensors, resources.

Load it with ``dagster dev`` (workspace.yaml) or ``dagster asset materialize -m kuairec_pipeline.definitions``.
Where data is read from and written to comes from the KUAIREC_* environment (kuairec_pipeline/settings.py).
"""

from __future__ import annotations

from dagster import Definitions, in_process_executor, load_assets_from_modules

from kuairec_pipeline.orchestration import jobs
from kuairec_pipeline.orchestration.assets import evaluate, ingest, prepare, train
from kuairec_pipeline.orchestration.io_managers import NumpyIOManagerFactory, ParquetIOManagerFactory
from kuairec_pipeline.orchestration.resources import KuaiRecResource
from kuairec_pipeline.settings import Settings


def build_definitions(settings: Settings | None = None) -> Definitions:
    settings = settings or Settings.from_env()
    assets_dir = str(settings.assets_dir)
    return Definitions(
        assets=load_assets_from_modules([ingest, prepare, train, evaluate]),
        jobs=[jobs.full_pipeline_job, jobs.retrain_job],
        schedules=[jobs.weekly_retraining_schedule],
        sensors=[jobs.new_source_data_sensor],
        resources={
            "kuairec": KuaiRecResource.from_settings(settings),
            "io_manager": ParquetIOManagerFactory(base_path=assets_dir),
            "numpy_io_manager": NumpyIOManagerFactory(base_path=assets_dir),
        },
        # One process for the whole run: a fresh process per step re-imports dagster, torch and polars (seconds
        # each), which costs more than the parallelism gains on a 2-core machine; models set their own threads.
        executor=in_process_executor,
    )


defs = build_definitions()
