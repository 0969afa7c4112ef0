"""Jobs, the retraining schedule, and a sensor that retrains when the source files change."""

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    ScheduleDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    sensor,
)

from kuairec_pipeline.dataset.source import source_fingerprint
from kuairec_pipeline.orchestration.resources import KuaiRecResource

# Everything, from the source files to the recommendations.
full_pipeline_job = define_asset_job(
    "full_pipeline",
    selection=AssetSelection.all(),
    description="Materialize the whole graph: ingest, prepare, train every model, evaluate, recommend.",
)

# New interaction logs arrive as new files: re-ingest and retrain everything downstream of them.
retrain_job = define_asset_job(
    "retrain_models",
    selection=AssetSelection.all(),
    description="Scheduled retraining: re-read the source and retrain every model on it.",
)

weekly_retraining_schedule = ScheduleDefinition(
    name="weekly_retraining",
    job=retrain_job,
    cron_schedule="0 3 * * 1",  # Mondays 03:00, when nobody is looking at the UI
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.STOPPED,  # a user turns it on in the UI (needs `dagster-daemon`)
    description="Weekly retraining on whatever KUAIREC_SOURCE points to.",
)


@sensor(
    job=retrain_job,
    minimum_interval_seconds=600,
    default_status=DefaultSensorStatus.STOPPED,  # a user turns it on in the UI (needs `dagster-daemon`)
    description="Retrain when the files KUAIREC_SOURCE points to (a folder or KuaiRec.zip) change.",
)
def new_source_data_sensor(context: SensorEvaluationContext, kuairec: KuaiRecResource) -> SensorResult | SkipReason:
    fingerprint = source_fingerprint(kuairec.settings)
    if fingerprint is None:
        return SkipReason(f"source {kuairec.source!r} is generated or downloaded: no files to watch")
    if fingerprint == context.cursor:
        return SkipReason("the source files have not changed since the last retraining request")
    # The fingerprint is the run key too: the same files never trigger two runs.
    return SensorResult(run_requests=[RunRequest(run_key=fingerprint)], cursor=fingerprint)
