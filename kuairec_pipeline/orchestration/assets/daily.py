"""Incremental ingestion: each new day of logs is a partition of ``interaction_days``, ingested alone.

``interaction_days`` is partitioned by day (Dagster's ``DailyPartitionsDefinition``, Beijing time like KuaiRec's
``date``); partition ``2020-09-06`` converts ``$KUAIREC_NEW_LOGS/big_matrix_2020-09-06.csv`` (big_matrix.csv's
format, ``dataset/loader/daily_logs.py``) into ``interaction_days/day=2020-09-06/part-0.parquet`` and touches
nothing else. ``filtered_ratios`` and ``video_features`` read every stored partition after ``raw_interactions``
(the initial archive, unchanged) as one table.

The partitioned asset is defined in its own code location (``kuairec_pipeline.daily_definitions``); the main one
(``kuairec_pipeline.definitions``) holds only its spec (``INTERACTION_DAYS_SPEC``), so that
``dagster asset materialize --select '*'`` there stays one command without partition arguments (the Dagster CLI
refuses a selection holding a partitioned asset without ``--partition``). Both locations share one storage.
"""

from pathlib import Path

from dagster import (
    AssetExecutionContext,
    AssetSpec,
    DailyPartitionsDefinition,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    asset,
    define_asset_job,
    sensor,
)

from kuairec_pipeline.dataset import loader
from kuairec_pipeline.orchestration.assets.ingest import GROUP, IngestConfig
from kuairec_pipeline.orchestration.io_managers import ParquetFileWriter
from kuairec_pipeline.orchestration.resources import KuaiRecResource
from kuairec_pipeline.orchestration.versions import code_version

INTERACTION_DAYS = "interaction_days"
# KuaiRec's log starts on 2020-07-05 (docs/KUAIREC.md) and dates its rows in Beijing time.
LOG_DAYS = DailyPartitionsDefinition(start_date="2020-07-05", timezone="Asia/Shanghai")
DESCRIPTION = (
    "New days of big_matrix logs, one partition per day: $KUAIREC_NEW_LOGS/big_matrix_YYYY-MM-DD.csv as typed "
    "Parquet (interaction_days/day=YYYY-MM-DD/part-0.parquet), with big_matrix.csv's checks and every row dated "
    "its day. filtered_ratios and video_features read all stored days after raw_interactions."
)

# What the main code location declares: the asset exists, is partitioned by day and is materialized elsewhere.
INTERACTION_DAYS_SPEC = AssetSpec(
    INTERACTION_DAYS,
    partitions_def=LOG_DAYS,
    group_name=GROUP,
    description=DESCRIPTION,
    code_version=code_version(INTERACTION_DAYS),
    kinds={"polars", "parquet"},
)


@asset(
    name=INTERACTION_DAYS,
    partitions_def=LOG_DAYS,
    group_name=GROUP,
    description=DESCRIPTION,
    code_version=code_version(INTERACTION_DAYS),
    kinds={"polars", "parquet"},
)
def interaction_days(
    context: AssetExecutionContext, config: IngestConfig, kuairec: KuaiRecResource
) -> ParquetFileWriter:
    day = context.partition_key
    path = loader.require_daily_log(kuairec.settings.new_logs_dir, day)

    def write(target: Path) -> dict[str, object]:
        report = loader.convert_daily_log(path, target, day, on_invalid=config.on_invalid, already_temporary=True)
        return {"source_file": str(path), "day": day, **report.as_metadata()}

    return ParquetFileWriter(write)


ingest_days_job = define_asset_job(
    "ingest_new_days",
    selection=[INTERACTION_DAYS],
    description="Ingest one day of new logs (a partition of interaction_days).",
)


@sensor(
    job=ingest_days_job,
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.STOPPED,  # a user turns it on in the UI (needs `dagster-daemon`)
    description="Ingest each new or changed big_matrix_YYYY-MM-DD.csv of the drop folder (KUAIREC_NEW_LOGS).",
)
def new_log_days_sensor(context: SensorEvaluationContext, kuairec: KuaiRecResource) -> SensorResult | SkipReason:
    logs = loader.find_daily_logs(kuairec.settings.new_logs_dir)
    if not logs:
        return SkipReason(f"no big_matrix_YYYY-MM-DD.csv in {kuairec.settings.new_logs_dir}")
    known = set(LOG_DAYS.get_partition_keys())
    requests = []
    for day, path in logs.items():
        if day not in known:
            context.log.warning(f"{path.name}: day {day} is outside {LOG_DAYS.start:%Y-%m-%d}..today; not ingested")
            continue
        stat = path.stat()
        # The run key holds the file's size and time: the same file is ingested once, a replaced one again.
        requests.append(RunRequest(partition_key=day, run_key=f"{day}:{stat.st_size}:{stat.st_mtime_ns}"))
    return SensorResult(run_requests=requests)
