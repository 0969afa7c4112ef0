"""The code location that ingests new days of logs: the partitioned ``interaction_days`` asset, its job and the
sensor on the drop folder (see ``orchestration/assets/daily.py``).

Kept apart from ``kuairec_pipeline.definitions`` (which declares ``interaction_days`` as a spec and reads its
stored days), so that the main graph has no partitioned asset and ``dagster asset materialize --select '*'`` there
needs no ``--partition``. Both locations write to the same asset storage and share the Dagster instance.

    dagster asset materialize -m kuairec_pipeline.daily_definitions --select interaction_days --partition 2020-09-06
"""

from __future__ import annotations

from dagster import Definitions

from kuairec_pipeline.orchestration.assets import daily
from kuairec_pipeline.orchestration.executors import build_executor
from kuairec_pipeline.orchestration.io_managers import ParquetIOManagerFactory
from kuairec_pipeline.orchestration.resources import KuaiRecResource
from kuairec_pipeline.settings import Settings


def build_daily_definitions(settings: Settings | None = None, environ: dict[str, str] | None = None) -> Definitions:
    """The daily-ingestion code location's Definitions.

    Parameters
    ----------
    settings : Settings, optional
        Data locations (default: ``Settings.from_env(environ)``): the drop folder and the asset storage.
    environ : dict, optional
        Environment for the defaults (default ``os.environ``).

    Raises
    ------
    ValueError
        When the environment holds an invalid setting or executor name.
    """
    settings = settings or Settings.from_env(environ)
    return Definitions(
        assets=[daily.interaction_days],
        jobs=[daily.ingest_days_job],
        sensors=[daily.new_log_days_sensor],
        resources={
            "kuairec": KuaiRecResource.from_settings(settings),
            "io_manager": ParquetIOManagerFactory(base_path=settings.asset_location),
        },
        executor=build_executor(environ),
    )


defs = build_daily_definitions()
