"""Two ``dagster asset materialize`` runs started at once on one KUAIREC_HOME and one Dagster instance, from nothing
(so both also race to generate the synthetic twin). Every write is atomic (a temporary sibling renamed into place)
and source preparation takes a file lock, so whichever run writes last, every file is whole. ``dagster.yaml``'s run
queue limit does not apply here: the CLI executes in its own process, not through the queue.

The runs race on the graph up to the two solver-fitted models (ingest, features, training arrays, linear and ALS
bundles), not the whole graph: every asset writes through the same atomic writers (Parquet tables and NumPy bundles,
``orchestration/io_managers.py``), so the torch models add no new kind of write, only two imports of torch and
Lightning and their training on one pinned core."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from dagster import DagsterInstance

from kuairec_pipeline.settings import Settings
from kuairec_pipeline_tests.builders import Baseline, materialize_cli, output, pipeline_env, run_all, temporaries

pytestmark = pytest.mark.slow

TABLES = [
    "source_files",
    "raw_interactions",
    "raw_eval_interactions",
    "raw_users",
    "raw_videos",
    "filtered_ratios",
    "user_features",
    "video_features",
]
BUNDLES = ["training_arrays", "linear_baseline", "als_factors"]
SELECTION = "*linear_baseline,*als_factors"
# Pure functions of the twin's seed: equal to the baseline's unless two runs mixed their writes.
DETERMINISTIC = [
    "raw_interactions",
    "raw_eval_interactions",
    "raw_users",
    "raw_videos",
    "filtered_ratios",
    "user_features",
    "video_features",
]


def test_two_runs_at_once_leave_every_file_whole(baseline: Baseline, tmp_path: Path) -> None:
    # KUAIREC_SOURCE=synthetic, the baseline's profile and seed, an empty home; an instance that exists already (a
    # copy of an empty one, builders.instance_dir), as any installation's does after its first run: two *first-ever*
    # runs on a brand-new DAGSTER_HOME can collide in Dagster's own sqlite schema creation.
    env = pipeline_env(tmp_path)
    results: list[subprocess.CompletedProcess[str]] = run_all([lambda: materialize_cli(env, select=SELECTION)] * 2)

    # Both finish, or one fails cleanly (an error exit, not a crash by signal); never both.
    codes = [result.returncode for result in results]
    assert all(code >= 0 for code in codes), codes
    assert 0 in codes, "\n".join(output(result)[-4000:] for result in results)

    home = Path(env["KUAIREC_HOME"])
    assets = home / "assets"
    for key in TABLES:
        frame = pl.read_parquet(assets / f"{key}.parquet")
        assert frame.height > 0, key
    for key in DETERMINISTIC:
        assert pl.read_parquet(assets / f"{key}.parquet").equals(
            pl.read_parquet(baseline.home / "assets" / f"{key}.parquet")
        ), key
    for key in BUNDLES:
        with np.load(assets / f"{key}.npz", allow_pickle=False) as bundle:
            arrays = [bundle[name] for name in bundle.files]  # reading every array checks its zip entry's CRC
        assert arrays and any(array.size > 0 for array in arrays), key

    # One twin, complete; no temporary file or folder anywhere.
    twin = Settings.from_env(env).synthetic_dir
    assert [p.name for p in (home / "source").iterdir() if not p.name.startswith(".")] == [twin.name]
    assert (twin / "_truth" / "params.json").is_file()
    assert temporaries(home) == []

    with DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        runs = instance.get_runs()
    assert len(runs) == 2
    assert sum(run.is_success for run in runs) == codes.count(0)
