"""benchmarks/run_full.py on the tiny twin: every selected asset step timed, memory peaks consistent, figures written.
The script's ``main`` runs in the test's process (``builders.run_script``): its run is in-process anyway, so a new
interpreter would only add seconds of imports; its resident-memory figures are then this process's.

The run selects the graph up to the linear and ALS models (what they need and nothing else): the script's timing,
sampling and reporting are the same for every step, and a whole graph here would add torch's import and training
to the suite for no new line of the script. ``--select '*'`` (the default) is what measurements use."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from dagster import AssetSelection

from kuairec_pipeline.definitions import build_definitions
from kuairec_pipeline_tests.builders import REPO, pipeline_env, run_script

SELECTION = "*linear_baseline,*als_factors"
SCRIPT = REPO / "benchmarks" / "run_full.py"


@pytest.mark.slow
@pytest.mark.scale
def test_run_full_times_every_selected_step_on_tiny(tmp_path):
    out = tmp_path / "figures.json"
    quick = tmp_path / "quick.json"  # a short ALS fit; also proves --config reaches the run
    quick.write_text(json.dumps({"ops": {"als_factors": {"config": {"iterations": 2}}}}))
    env = pipeline_env(tmp_path)  # only for a clean environment: the script sets its own KUAIREC_HOME
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    result = run_script(
        SCRIPT,
        env,
        *("--profile", "tiny", "--workdir", str(tmp_path / "run"), "--json", str(out)),
        *("--config", str(quick), "--select", SELECTION),
    )
    assert result.returncode == 0, result.stderr[-6000:]
    figures = json.loads(out.read_text())
    # the run's start: within a second of the call, well before its end (a stamp taken at the end fails this)
    began = dt.datetime.fromisoformat(figures["date"])
    assert before <= began <= before + dt.timedelta(seconds=1) + (dt.datetime.now(dt.UTC) - before) / 2
    steps = {step["step"]: step for step in figures["steps"]}
    graph = build_definitions(environ={}).resolve_asset_graph()
    selected = {key.to_user_string() for key in AssetSelection.from_coercible(SELECTION.split(",")).resolve(graph)}
    assets = {key.to_user_string() for key in graph.materializable_asset_keys}
    assert selected <= set(steps)  # plus the selected assets' check steps
    assert not (assets - selected) & set(steps)  # nothing outside the selection ran
    for step in steps.values():
        assert step["seconds"] >= 0 and 0 < step["rss_start_mib"] <= step["peak_rss_mib"] <= figures["peak_rss_mib"]
    assert sum(step["seconds"] for step in steps.values()) <= figures["run_s"] <= figures["total_s"]
    assert (tmp_path / "run" / "home" / "assets" / "als_factors.npz").is_file()  # a real run, kept in --workdir
    assert "total" in result.stdout and "als_factors" in result.stdout and f"selection: {SELECTION}" in result.stdout
    assert figures["ops_config"]["als_factors"] == {"config": {"iterations": 2}} and figures["select"] == SELECTION
    assert "iterations" in result.stdout  # the run config is printed with the figures
    rerun = run_script(SCRIPT, env, "--workdir", str(tmp_path / "run"))
    assert rerun.returncode == 2 and "is not empty" in rerun.stderr  # never measures on leftovers
