"""benchmarks/suite_time.py's measurement: the CPU seconds it prints for a run cover processes nobody waited for
(daemons and servers a test starts), and a process the run leaves behind is reported and killed. Needs a cgroup-v1
``cpuacct`` group it may create (root on these machines); elsewhere the script prints "waited" CPU and these tests
skip, saying so."""

from __future__ import annotations

import importlib.util
import os
import sys
import textwrap
import time

import pytest

from kuairec_pipeline_tests.builders import REPO

SCRIPT = REPO / "benchmarks" / "suite_time.py"


@pytest.fixture(scope="module")
def suite_time():
    spec = importlib.util.spec_from_file_location("script_suite_time", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with module.cpu_group() as group:
        if group is None:
            pytest.skip(f"no cgroup-v1 cpuacct group can be created under {module.CPUACCT} (needs root)")
    return module


def _parent(grandchild: str, parent_sleeps: float) -> list[str]:
    """A command whose process starts ``grandchild`` (Python source) in a new session and exits without waiting
    for it, after ``parent_sleeps`` seconds."""
    code = f"""
        import subprocess, sys, time
        subprocess.Popen([sys.executable, "-c", {grandchild!r}], start_new_session=True)
        time.sleep({parent_sleeps})
    """
    return [sys.executable, "-c", textwrap.dedent(code)]


BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass"


def test_cpu_of_a_process_nobody_waited_for_is_counted(suite_time, tmp_path):
    # the grandchild burns 0.4 CPU s and exits while its parent sleeps; the parent never waits for it, so
    # RUSAGE_CHILDREN would not see those 0.4 s
    wall, cpu, covers, code, output = suite_time.measure(_parent(BURN, 1.5), tmp_path, dict(os.environ))
    assert code == 0, output
    assert covers == "all"
    assert cpu >= 0.35, cpu
    assert wall >= 1.5


def test_a_process_left_running_is_reported_and_killed(suite_time, tmp_path):
    marker = tmp_path / "alive"
    lingering = f"import pathlib, time\npathlib.Path({str(marker)!r}).write_text('1')\ntime.sleep(60)"
    started = time.perf_counter()
    _, _, covers, code, output = suite_time.measure(_parent(lingering, 0.5), tmp_path, dict(os.environ))
    assert code == 0, output
    assert marker.is_file()  # it did start
    assert covers == "all; 1 left running, killed"
    assert time.perf_counter() - started < 30  # not waited out (it holds the output file open too): killed
