"""The one Definitions object: assets, checks, jobs, schedules, sensors, resources.

Load it with ``dagster dev`` (workspace.yaml) or ``dagster asset materialize -m kuairec_pipeline.definitions``.
Where data is read from and written to comes from the KUAIREC_* environment (kuairec_pipeline/settings.py); the
executor (in-process by default, multiprocess or Celery) from KUAIREC_EXECUTOR or the run config
(kuairec_pipeline/orchestration/executors.py).
"""

from __future__ import annotations

from dagster import Definitions, load_assets_from_modules

from kuairec_pipeline.orchestration import jobs
from kuairec_pipeline.orchestration.assets import arrays, daily, evaluate, hybrid, ingest, prepare, train
from kuairec_pipeline.orchestration.executors import build_executor
from kuairec_pipeline.orchestration.io_managers import NumpyIOManagerFactory, ParquetIOManagerFactory
from kuairec_pipeline.orchestration.resources import KuaiRecResource
from kuairec_pipeline.settings import Settings


def build_definitions(settings: Settings | None = None, environ: dict[str, str] | None = None) -> Definitions:
    """The project's Definitions.

    Parameters
    ----------
    settings : Settings, optional
        Data locations (default: ``Settings.from_env(environ)``); ``settings.asset_location`` may be an fsspec URL.
    environ : dict, optional
        Environment for the defaults (default ``os.environ``): KUAIREC_* settings and KUAIREC_EXECUTOR.

    Raises
    ------
    ValueError
        When the environment holds an invalid setting or executor name.
    """
    settings = settings or Settings.from_env(environ)
    assets_dir = settings.asset_location
    return Definitions(
        # interaction_days (new days of logs) is partitioned and materialized by kuairec_pipeline.daily_definitions;
        # here it is a spec only, so that --select '*' needs no partition and reads whatever days are stored.
        assets=[
            *load_assets_from_modules([ingest, prepare, arrays, train, hybrid, evaluate]),
            daily.INTERACTION_DAYS_SPEC,
        ],
        jobs=[jobs.full_pipeline_job, jobs.retrain_job],
        schedules=[jobs.weekly_retraining_schedule],
        sensors=[jobs.new_source_data_sensor],
        resources={
            "kuairec": KuaiRecResource.from_settings(settings),
            "io_manager": ParquetIOManagerFactory(base_path=assets_dir),
            "numpy_io_manager": NumpyIOManagerFactory(base_path=assets_dir),
        },
        # In-process by default: a fresh process per step re-imports dagster, torch and polars (seconds each),
        # which costs more than the parallelism gains on a 2-core machine; models set their own threads.
        executor=build_executor(environ),
    )


defs = build_definitions()
