"""Jobs and the retraining schedule."""

from __future__ import annotations

from dagster import AssetSelection, DefaultScheduleStatus, ScheduleDefinition, define_asset_job

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
