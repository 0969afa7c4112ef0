"""The local instance `dagster dev` builds from dagster.yaml keeps run history and run logs below data/dagster."""

from __future__ import annotations

import tempfile
from pathlib import Path

from dagster._core.instance import DagsterInstance
from dagster._core.instance.ref import InstanceRef

from kuairec_pipeline_tests.builders import REPO


def test_dagster_dev_instance_keeps_run_logs_below_the_data_folder(monkeypatch):
    monkeypatch.chdir(REPO)
    # What `dagster dev` does without DAGSTER_HOME: a temporary home in the cwd, config read from the cwd.
    with tempfile.TemporaryDirectory(prefix=".tmp_dagster_home_", dir=REPO) as temporary:
        with DagsterInstance.from_ref(InstanceRef.from_dir(temporary, config_dir=str(REPO))) as instance:
            folders = {
                "run logs": Path(instance.compute_log_manager._base_dir),
                "artifacts": Path(instance._local_artifact_storage.base_dir),
            }
            for what, folder in folders.items():
                resolved = folder.resolve()
                assert not resolved.is_relative_to(Path(temporary).resolve()), f"{what} would be deleted on exit"
                assert resolved.is_relative_to((REPO / "data" / "dagster").resolve()), (what, resolved)
