"""The builders every test module shares: environments and runs of the pipeline, the session baseline's copies,
services on loopback ports, and small hand-made tables and configs.

Test modules import shared helpers from here (or, for the model contract and its planted data, from
``kuairec_pipeline_tests.models.contract``), never from one another: ``test_architecture.py`` enforces it.
Pipeline runs are in-process (``materialize``) unless the process itself is under test (``materialize_cli``: the
CLI smoke test, other executors, kills, racing runs).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import http.server
import importlib.util
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np
import polars as pl
import pytest
import yaml
from dagster import AssetKey, AssetSelection, DagsterError, DagsterInstance
from dagster.version import __version__ as dagster_version

from kuairec_pipeline.dataset import loader, schema
from kuairec_pipeline.dataset.schema import BIG_MATRIX, INTERACTION_COLUMNS, ONEHOT_COLUMNS, USER_FEATURES
from kuairec_pipeline.dataset.synthetic import DATA_SUBDIR
from kuairec_pipeline.definitions import build_definitions
from kuairec_pipeline.features.ratios import SECONDS_PER_DAY
from kuairec_pipeline.models.als import ALSConfig
from kuairec_pipeline.models.base import Recommender
from kuairec_pipeline.models.data import Interactions, TrainingData
from kuairec_pipeline.models.two_tower import TwoTowerConfig
from kuairec_pipeline.settings import Settings

# ---- environments and CLI runs -----------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]
DAGSTER = str(Path(sys.executable).with_name("dagster"))


INSTANCE_HOME, INSTANCE_STORAGE = "dagster_home", "dagster_storage"  # below a test's root: instance_dir's layout


def _write_instance_yaml(root: Path) -> Path:
    home = root / INSTANCE_HOME
    home.mkdir(parents=True, exist_ok=True)
    text = (REPO / "dagster.yaml").read_text().replace("data/dagster", str(root / INSTANCE_STORAGE))
    (home / "dagster.yaml").write_text(text)
    return home


@functools.cache
def _empty_instance_storage() -> Path:
    """The storage of an instance Dagster has just created (its sqlite run, event-log and schedule databases, no
    run): each test's instance starts as a copy, instead of creating the schema (sqlite tables and their commits)
    once per test.

    Kept in the system's temporary folder under a key of what decides its content (the Dagster version, the
    project's dagster.yaml, the user), so it is made once and reused by every worker and run (a per-run copy was
    left behind by any worker killed before its exit handlers; one killed while building this leaves its sibling
    folder). Built in a sibling folder and renamed into place, so a reader never sees half of one; of two processes
    building at once, the second rename loses and its copy is dropped. Only the folder's existence is checked:
    delete it if something outside removed files from it."""
    config = (REPO / "dagster.yaml").read_text()
    key = hashlib.sha256(f"{dagster_version}\n{config}".encode()).hexdigest()[:16]
    final = Path(tempfile.gettempdir()) / f"kuairec-empty-instance-{os.getuid()}-{key}"
    if not final.is_dir():
        building = Path(tempfile.mkdtemp(prefix=f"{final.name}.", dir=final.parent))
        try:
            DagsterInstance.from_config(str(_write_instance_yaml(building))).dispose()
            building.rename(final)
        except OSError:
            if not final.is_dir():  # not a lost race: a real failure
                raise
        finally:
            shutil.rmtree(building, ignore_errors=True)  # what is left after a lost race or a failure
    return final / INSTANCE_STORAGE


def instance_dir(root: Path, storage: Path | None = None) -> Path:
    """A DAGSTER_HOME with the project's dagster.yaml, its storage redirected below ``root``: a copy of ``storage``
    (another instance's), else of a new, empty instance's (unless ``root`` holds a storage already)."""
    home = _write_instance_yaml(root)
    if storage is not None or not (root / INSTANCE_STORAGE).exists():
        shutil.copytree(storage or _empty_instance_storage(), root / INSTANCE_STORAGE, symlinks=True)
    return home


def pipeline_env(root: Path, write_instance: bool = True, **overrides: str) -> dict[str, str]:
    """This process's environment without its KUAIREC_* and DAGSTER_* variables, pointed at ``root``: the tiny
    twin, KUAIREC_HOME ``root/home``, an instance in ``root/dagster_home`` (written unless ``write_instance`` is
    False: it exists and others may be reading it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUAIREC_", "DAGSTER_"))}
    env.update(
        {
            "KUAIREC_HOME": str(root / "home"),
            "KUAIREC_PROFILE": "tiny",
            "DAGSTER_HOME": str(instance_dir(root) if write_instance else root / INSTANCE_HOME),
            "OPENBLAS_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    return env


# Pipeline tests check the wiring (what is read, written, refused, recorded), not how well the networks train: the
# models' own tests and the contract suite do that. So pipeline runs stop the three slowest trainings after two
# epochs (a whole tiny graph: ~57 s -> ~35 s); every code path still runs. A test's own -c/--config-json wins.
QUICK_TRAINING: dict[str, dict[str, Any]] = {
    name: {"max_epochs": 2} for name in ("sequential_model", "sequential_shuffled", "hybrid_concat")
}


def quick_training(keys: Iterable[AssetKey]) -> dict[str, Any]:
    """The run config of :data:`QUICK_TRAINING` for the assets ``keys`` (Dagster refuses config of an op outside
    the run)."""
    names = {key.to_user_string() for key in keys}
    return {"ops": {op: {"config": config} for op, config in QUICK_TRAINING.items() if op in names}}


def _selected(env: Mapping[str, str], select: str) -> set[AssetKey]:
    graph = build_definitions(environ=dict(env)).resolve_asset_graph()
    return AssetSelection.from_coercible(select.split(",")).resolve(graph)


def materialize_cli(
    env: dict[str, str], select: str = "*", timeout: float = 600, extra: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """``dagster asset materialize`` in a subprocess (the CLI smoke test and the runs that must be their own
    process: another executor, a kill, two runs racing), with :data:`QUICK_TRAINING` under ``extra``."""
    quick = Path(env["DAGSTER_HOME"]) / f"quick_training_{hashlib.sha1(select.encode()).hexdigest()[:8]}.json"
    with _environment(env):
        quick.write_text(json.dumps(quick_training(_selected(env, select))))
    return subprocess.run(
        [
            DAGSTER,
            *("asset", "materialize", "-m", "kuairec_pipeline.definitions", "--select", select),
            *("-c", str(quick), *extra),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assets_dir(env: dict[str, str]) -> Path:
    return Path(env["KUAIREC_HOME"]) / "assets"


LOOPBACK_HEX = "0100007F"  # 127.0.0.1 as /proc/net/tcp writes it (little-endian hex)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening_addresses(port: int) -> set[str]:
    """Local addresses in LISTEN state on ``port``, read from /proc (IPv4 and IPv6), in /proc's hex form."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].split(":")
            if fields[3] == "0A" and int(port_hex, 16) == port:
                found.add(address)
    return found


@contextlib.contextmanager
def dagster_dev(args: list[str], env: dict[str, str], cwd: Path, port: int, timeout: float = 120) -> Iterator[str]:
    """Run ``dagster dev <args> -p port`` until it answers; yield its URL; stop its whole process group after."""
    process = subprocess.Popen(
        [DAGSTER, "dev", *args, "-p", str(port)],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # own group: killable
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{url}/server_info", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dagster dev did not answer on {url}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# ---- in-process runs: the same code path as the CLI (the implicit asset job, the project's instance) ------------

# os.environ is process-wide: in-process runs that read it (download.py's URL and md5 variables) take turns.
_ENVIRON_LOCK = threading.Lock()


@dataclass(frozen=True)
class RunResult:
    """What a ``materialize`` run left, shaped like ``subprocess.CompletedProcess``: ``returncode`` 0 on success
    and 1 on failure; ``stderr`` holds the run's log messages and every error with its causes (where the CLI
    prints them); ``stdout`` is empty, as the CLI's is."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


@contextlib.contextmanager
def _environment(env: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` is ``env`` for the block, as a subprocess given ``env`` would see it (download.py reads its URL
    there, s3fs its credentials); restored after."""
    with _ENVIRON_LOCK:
        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(env)
        _forget_filesystems()
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)
            _forget_filesystems()


def _forget_filesystems() -> None:
    """Drop fsspec's cached filesystem objects. fsspec keeps one per class and constructor arguments; one built from
    the environment (s3fs reads AWS_ENDPOINT_URL and the keys there) would keep talking to an earlier block's server,
    long stopped, as a process with a fixed environment never needs to notice."""
    import fsspec

    for implementation in set(fsspec.registry.values()):
        implementation.clear_instance_cache()


def _merged(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``update`` merged into a copy of ``base``, nested mappings key by key (as the CLI merges config files)."""
    merged = dict(base)
    for key, value in update.items():
        both = isinstance(value, Mapping) and isinstance(merged.get(key), Mapping)
        merged[key] = _merged(merged[key], value) if both else value
    return merged


def _run_config(extra: tuple[str, ...]) -> dict[str, Any]:
    """The run config that ``-c FILE`` / ``--config-json TEXT`` options give (later ones merged over earlier)."""
    config: dict[str, Any] = {}
    options = list(extra)
    while options:
        option = options.pop(0)
        if option in ("-c", "--config") and options:
            part = yaml.safe_load(Path(options.pop(0)).read_text())
        elif option == "--config-json" and options:
            part = json.loads(options.pop(0))
        else:
            raise ValueError(f"materialize: unsupported option {option!r} (only -c FILE and --config-json TEXT)")
        config = _merged(config, part)
    return config


def _log_text(instance: DagsterInstance, run_id: str) -> str:
    """Every message of the run's event log, each error followed by its traceback and causes."""
    parts = []
    for record in instance.all_logs(run_id):
        if record.user_message:
            parts.append(record.user_message)
        error = getattr(record.dagster_event.event_specific_data, "error", None) if record.dagster_event else None
        if error is not None:
            parts.append(error.to_string())
    return "\n".join(parts)


def materialize(
    env: Mapping[str, str], select: str = "*", timeout: float = 600, extra: tuple[str, ...] = ()
) -> RunResult:
    """``dagster asset materialize --select SELECT [extra]`` in this process: the same Definitions (built from
    ``env``), the same implicit asset job and selection syntax, the same instance (``env['DAGSTER_HOME']``), but no
    new interpreter (which costs seconds of imports per run); :data:`QUICK_TRAINING` under the run config of
    ``extra``. Always in-process execution; ``timeout`` is accepted
    for the CLI runner's signature and not enforced (pytest-timeout bounds the test)."""
    args = ("materialize", "--select", select, *extra)
    run_config = _run_config(extra)
    with _environment(env), DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        try:
            definitions = build_definitions(environ=dict(env))
            graph = definitions.resolve_asset_graph()
            keys = AssetSelection.from_coercible(select.split(",")).resolve(graph)
            job = definitions.resolve_implicit_global_asset_job_def()
            result = job.execute_in_process(
                run_config=_merged(quick_training(keys), run_config),
                instance=instance,
                asset_selection=sorted(keys),
                raise_on_error=False,
            )
        except (DagsterError, ValueError) as error:  # refused before a run starts: the CLI exits 1 with the message
            return RunResult(args, 1, "", "".join(traceback.format_exception(error)))
        return RunResult(args, 0 if result.success else 1, "", _log_text(instance, result.run_id))


def kuairec_cli(env: Mapping[str, str], *args: str) -> RunResult:
    """``kuairec ARGS`` (``kuairec_pipeline.cli.main``) in this process with ``env`` as its environment: its exit
    code and what it printed to stdout and stderr."""
    from kuairec_pipeline.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    with _environment(env), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(list(args))
    return RunResult(("kuairec", *args), code, stdout.getvalue(), stderr.getvalue())


def run_script(script: Path, env: Mapping[str, str], *args: str) -> RunResult:
    """``python SCRIPT ARGS`` run in this process: the script's ``main(argv)`` with ``env`` as its environment;
    its exit code (``SystemExit`` included, as argparse exits) and what it printed to stdout and stderr."""
    name = f"script_{script.stem}"
    module = sys.modules.get(name)
    if module is None:  # registered before it runs: dataclasses look their module up while the body executes
        spec = importlib.util.spec_from_file_location(name, script)
        module = sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    stdout, stderr = io.StringIO(), io.StringIO()
    with _environment(env), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = module.main(list(args))
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
    return RunResult(("python", str(script), *args), code, stdout.getvalue(), stderr.getvalue())


# ---- the session baseline and its copies ---------------------------------------------------------------------

# Runs started at once by ``run_all``. A CLI run spends most of its ~9 CPU seconds importing dagster, torch and
# lightning, so on a 2-core machine two at a time halves the wall time and more buys little; in-process runs
# (``materialize``) take turns on the environment lock whatever this is.
PARALLEL_RUNS = 2


@dataclass(frozen=True)
class Baseline:
    """The session's full materialization (``materialized_pipeline``): its environment and its twin's folder."""

    env: dict[str, str]

    @property
    def home(self) -> Path:
        return Path(self.env["KUAIREC_HOME"])

    @property
    def twin(self) -> Path:
        """The synthetic twin the baseline read (KUAIREC_SOURCE=synthetic): ``<home>/source/synthetic-...``."""
        return Settings.from_env(self.env).synthetic_dir


def copy_instance(env: Mapping[str, str], root: Path) -> dict[str, str]:
    """``env`` with a private copy of its Dagster instance (run history, event logs, run logs) below ``root``, for a
    process that writes to the instance (``dagster dev``'s daemon does) beside readers of the original."""
    source = Path(env["DAGSTER_HOME"]).parent / INSTANCE_STORAGE  # where instance_dir put the storage
    return {**env, "DAGSTER_HOME": str(instance_dir(root, storage=source))}


def twin_data(twin: Path) -> Path:
    """The folder holding the CSV files of a twin (the archive's own ``KuaiRec 2.0/data``)."""
    return twin / DATA_SUBDIR


def copy_home(baseline: Baseline, root: Path, source: Path | None = None, **overrides: str) -> dict[str, str]:
    """A private copy of the baseline's KUAIREC_HOME below ``root``, with its own Dagster instance.

    With ``source`` (a copy of the twin), KUAIREC_SOURCE names that copy and the stored ``source_files`` manifest
    is pointed at it, as if the files had been listed there: re-running an ingest asset then re-reads the copy,
    whatever was done to it.
    """
    env = pipeline_env(root, **{**({"KUAIREC_SOURCE": str(source)} if source else {}), **overrides})
    home = Path(env["KUAIREC_HOME"])
    shutil.copytree(baseline.home, home, symlinks=True)
    if source is not None:
        manifest = home / "assets" / "source_files.parquet"
        table = pl.read_parquet(manifest).with_columns(
            pl.col("path").str.replace(str(baseline.twin) + os.sep, str(source) + os.sep, literal=True)
        )
        table.write_parquet(manifest, compression="zstd")
    return env


def digests(folder: Path, skip: Callable[[Path], bool] = lambda path: False) -> dict[str, str]:
    """sha256 of every file below ``folder`` (relative path -> digest), leaving out what ``skip`` says."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not skip(path):
            found[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def is_lock_file(path: Path) -> bool:
    """The empty advisory lock files that source preparation takes (``.<name>.lock``)."""
    return path.name.startswith(".") and path.name.endswith(".lock")


def temporaries(folder: Path) -> list[Path]:
    """Temporary files or folders (``atomic.temporary_sibling``, download ``.part``) anywhere below ``folder``."""
    return sorted(p for p in folder.rglob("*") if p.name.endswith((".tmp", ".part")))


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def run_all(
    jobs: Iterable[Callable[[], subprocess.CompletedProcess[str]]], workers: int = PARALLEL_RUNS
) -> list[subprocess.CompletedProcess[str]]:
    """Run CLI invocations ``workers`` at a time (each in its own folders), results in the order given."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda job: job(), list(jobs)))


# ---- services on loopback ports -------------------------------------------------------------------------------

BIN = Path(sys.executable).parent


def require_binary(name: str) -> str:
    """Path of a system binary the test needs; under CI a missing one fails the test (setup.sh --dev installs
    it), elsewhere it skips."""
    found = shutil.which(name)
    if found:
        return found
    reason = f"{name} not found: run `bash scripts/setup.sh --dev` as root (installs Debian's {name})"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


# Debian's chromium, driven by Playwright (the UI and HTML-report tests): flags for a headless run in a container.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT_DIR = REPO / "data" / "screenshots"  # git-ignored; kept after the run for a person to look at


def chromium() -> str:
    """Path of Debian's chromium for the browser tests: skips without it, except under CI (env CI set), where the
    test fails (``scripts/setup.sh --dev`` installs it)."""
    return require_binary("chromium")


def _wait_for_port(port: int, process: subprocess.Popen, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode} before listening on {port}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout} s")


def _stop(process: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM the process group the service runs in (its own session), SIGKILL it if it lingers."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    """A throwaway Redis on a free loopback port, no persistence; yields its URL (database 0)."""
    binary = require_binary("redis-server")
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log = open(workdir / "redis.log", "w")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_for_port(port, process, "redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _stop(process)
        log.close()


@contextlib.contextmanager
def celery_worker(env: dict[str, str], workdir: Path, name: str, concurrency: int = 2) -> Iterator[Path]:
    """A dagster-celery worker (``dagster-celery worker start``) with the broker and backend of
    ``env['KUAIREC_CELERY_BROKER']``, waiting until it answers a ping; yields its log file."""
    workdir.mkdir(parents=True, exist_ok=True)
    # The worker's config is the celery executor's own config block, flat (not under our selector's "celery" key).
    config = workdir / "worker.yaml"
    config.write_text(
        "execution:\n  config:\n    broker: {env: KUAIREC_CELERY_BROKER}\n    backend: {env: KUAIREC_CELERY_BROKER}\n"
    )
    log_path = workdir / "worker.log"
    log = open(log_path, "w")
    process = subprocess.Popen(
        [
            str(BIN / "dagster-celery"),
            "worker",
            "start",
            "-A",
            "dagster_celery.app",
            "-y",
            str(config),
            "-n",
            name,
            "--",
            "--concurrency",
            str(concurrency),
            "--pool",
            "prefork",
        ],
        env={**env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"},  # dagster-celery runs `celery` by name
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_for_worker(env, process, name, log_path)
        yield log_path
    finally:
        _stop(process)
        log.close()


def _wait_for_worker(
    env: dict[str, str], process: subprocess.Popen, name: str, log_path: Path, timeout: float = 120
) -> None:
    from celery import Celery

    app = Celery("probe", broker=env["KUAIREC_CELERY_BROKER"], backend=env["KUAIREC_CELERY_BROKER"])
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"celery worker exited ({process.returncode}): {log_path.read_text()[-3000:]}")
            replies = app.control.ping(timeout=1.0) or []
            if any(name in reply for answer in replies for reply in answer):
                return
            time.sleep(0.5)
    finally:
        app.close()
    raise RuntimeError(f"celery worker {name} did not answer within {timeout} s: {log_path.read_text()[-3000:]}")


@contextlib.contextmanager
def s3_server() -> Iterator[str]:
    """moto's S3-compatible server (``moto_server``) on a free loopback port, in a process of its own; yields its
    endpoint URL. Its own process, not a thread of this one: a pipeline run in this process then reaches it (with
    the server in a thread, an in-process run's requests were refused)."""
    port = free_port()
    process = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # own group: _stop ends it and anything it started
    )
    try:
        _wait_for_port(port, process, "moto_server")
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(process)


# ---- hand-made tables, files and small configs ------------------------------------------------------------

DAY = SECONDS_PER_DAY


T0 = 1_593_878_903.438  # 2020-07-05 00:08:23.438 Beijing time


def raw_interactions(rows: list[tuple[int, int, float | None, float]], video_duration: int = 10_000) -> pl.LazyFrame:
    """A raw interaction table (8 columns, schema.py dtypes) from (user, video, timestamp, watch_ratio) rows."""
    users, videos, stamps, ratios = (list(column) for column in zip(*rows, strict=False)) if rows else ([], [], [], [])
    frame = pl.DataFrame(
        {"user_id": users, "video_id": videos, "timestamp": stamps, "watch_ratio": ratios},
        schema={"user_id": pl.Int32, "video_id": pl.Int32, "timestamp": pl.Float64, "watch_ratio": pl.Float64},
    )
    timestamp = pl.col("timestamp")
    return (
        frame.with_columns(
            play_duration=(pl.col("watch_ratio").fill_nan(0.0) * video_duration).round().cast(pl.Int64),
            video_duration=pl.lit(video_duration, dtype=pl.Int64),
            time=pl.from_epoch((timestamp * 1000).cast(pl.Int64), time_unit="ms")
            .dt.convert_time_zone("Asia/Shanghai")
            .dt.strftime("%Y-%m-%d %H:%M:%S%.3f"),
            date=pl.from_epoch(timestamp.cast(pl.Int64), time_unit="s")
            .dt.convert_time_zone("Asia/Shanghai")
            .dt.strftime("%Y%m%d")
            .cast(pl.Int32),
        )
        .select(list(INTERACTION_COLUMNS))
        .cast(dict(INTERACTION_COLUMNS))
        .lazy()
    )


def raw_users(**overrides: list) -> pl.DataFrame:
    """Three users typed as user_features.csv; keyword arguments replace whole columns."""
    columns: dict[str, list] = {
        "user_id": [2, 0, 1],
        "user_active_degree": ["high_active", "full_active", "UNKNOWN"],
        "is_lowactive_period": [0, 1, 0],
        "is_live_streamer": [0, 0, 1],
        "is_video_author": [1, 0, 0],
        "follow_user_num": [5, 500, 0],
        "follow_user_num_range": ["(0,10]", "(250,500]", "0"],
        "fans_user_num": [1, 10_000, 0],
        "fans_user_num_range": ["[1,10)", "[1k,5k)", "0"],
        "friend_user_num": [0, 3, 0],
        "friend_user_num_range": ["0", "[1,5)", "0"],
        "register_days": [10, 100, 1000],
        "register_days_range": ["8-14", "91-180", "730+"],
        **{name: [i % 3, 1, 0] for i, name in enumerate(ONEHOT_COLUMNS)},
    }
    columns.update(overrides)
    return pl.DataFrame(columns, schema=USER_FEATURES.columns)


RAW_VIDEOS_SCHEMA = {
    "video_id": pl.Int32,
    "tags": pl.List(pl.Int8),
    "author_id": pl.Int32,
    "video_duration_ms": pl.Float64,
    "video_type": pl.String,
    "upload_dt": pl.String,
    "first_level_category_id": pl.Int32,
    "caption": pl.String,
}


def raw_videos(**columns: list) -> pl.DataFrame:
    """Four videos typed as the raw_videos asset; keyword arguments replace whole columns."""
    base: dict[str, list] = {
        "video_id": [3, 0, 1, 2],
        "tags": [[5], [0, 30], None, [1, 2, 3, 4, 6]],
        "author_id": [7, 7, None, 9],
        "video_duration_ms": [2_000.0, 10_000.0, 60_000.0, 5_000.0],
        "video_type": ["NORMAL"] * 4,
        "upload_dt": ["2020-07-01"] * 4,
        "first_level_category_id": [1, 2, None, 3],
        "caption": ["a", None, "c", "d"],
    }
    base.update(columns)
    return pl.DataFrame(base, schema=RAW_VIDEOS_SCHEMA)


class FixedScores(Recommender):
    """Scores read from a given (n_users, n_videos) matrix: lets a test choose the ranking."""

    name = "fixed"

    def __init__(self, scores: np.ndarray) -> None:
        self.scores = np.asarray(scores, dtype=np.float32)
        self.n_users, self.n_videos = self.scores.shape
        self.calls: list[int] = []

    def fit(self, data: TrainingData) -> Self:
        return self

    def score_all(self, user_ids: np.ndarray, video_ids: np.ndarray | None = None) -> np.ndarray:
        self.calls.append(len(user_ids))
        rows = self.scores[np.asarray(user_ids)]
        return rows if video_ids is None else rows[:, np.asarray(video_ids)]

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"scores": self.scores}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Self:
        return cls(arrays["scores"])


PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()


@dataclass
class FileServer:
    """Serves PAYLOAD at /KuaiRec.zip with Range support; can misbehave on purpose."""

    payload: bytes = PAYLOAD
    honour_range: bool = True
    drop_after: list[int] = field(default_factory=list)  # per request, in order: bytes sent before hanging up
    status: int = 200  # anything else: answer every request with this error status
    requests: list[str | None] = field(default_factory=list)  # the Range header of each request
    url: str = ""

    def handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the http.server API)
                range_header = self.headers.get("Range")
                server.requests.append(range_header)
                if server.status != 200:
                    self.send_error(server.status)
                    return
                body, start = server.payload, 0
                match = re.fullmatch(r"bytes=(\d+)-", range_header or "")
                if match and server.honour_range:
                    start = int(match.group(1))
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                limit = server.drop_after.pop(0) if server.drop_after else None
                chunk = body[start:] if limit is None else body[start : start + limit]
                self.wfile.write(chunk)
                if limit is not None:
                    self.wfile.flush()
                    self.close_connection = True  # hang up mid-transfer

            def log_message(self, *args: object) -> None:
                pass

        return Handler


@contextlib.contextmanager
def serving(state: FileServer) -> Iterator[FileServer]:
    """``state`` served over HTTP on a free loopback port, from a thread of this process, until the block ends;
    yields it with its ``url`` set."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), state.handler())
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/KuaiRec.zip"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


# Few factors, firm regularization: 60 users x 80 videos would be memorized by 64 free factors.
SMALL_ALS = ALSConfig(factors=8, iterations=10, regularization=30.0, alpha=10.0, seed=3, num_threads=1)


# Small enough to train in about a second on one thread, on CPU whatever the machine has.
SMALL_TWO_TOWER = TwoTowerConfig(
    embedding_dim=8,
    id_embedding_dim=8,
    feature_embedding_dim=4,
    hidden_sizes=(16,),
    dropout=0.0,
    learning_rate=0.02,
    batch_size=256,
    max_epochs=40,
    early_stopping_patience=3,
    seed=7,
    num_threads=1,
    accelerator="cpu",
    show_progress=False,
)


# loader files: the official header, three valid rows, and helpers that write and read them back
HEADER = "user_id,video_id,play_duration,video_duration,time,date,timestamp,watch_ratio"
ROW = "14,148,4381,6067,2020-07-05 05:27:48.378,20200705,1593898068.378,0.722103"
ROW2 = "14,183,11635,6100,2020-07-05 05:28:00.057,20200705,1593898080.057,1.907377"
ROW3 = "21,9,3300,11000,2020-07-06 10:00:00.000,20200706,1593997200.0,0.3"


def write(tmp_path: Path, text: str | bytes, name: str = "big_matrix.csv") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_bytes(text.encode("utf-8"))
    return path


def lines(*rows: str, header: str = HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


def with_ratio(ratio: str, row: str = ROW) -> str:
    return row.rsplit(",", 1)[0] + "," + ratio


def scan(
    path: Path, file_schema: schema.FileSchema = BIG_MATRIX, on_invalid: loader.OnInvalid = "error"
) -> tuple[pl.DataFrame, loader.ValidationReport]:
    """``loader.scan_interactions`` collected: the typed frame and the validation report."""
    lazy, report = loader.scan_interactions(path, file_schema, on_invalid=on_invalid)
    return lazy.collect(), report


# About a second of training on one CPU thread.
from kuairec_pipeline.models.sequential_config import SequentialConfig  # noqa: E402

SMALL_SEQUENTIAL = SequentialConfig(
    max_len=8,
    hidden_dim=16,
    num_heads=2,
    num_layers=1,
    feedforward_dim=32,
    dropout=0.0,
    batch_windows=32,
    max_epochs=30,
    positions_per_epoch=0,
    learning_rate=0.01,
    early_stopping_patience=3,
    seed=3,
    num_threads=1,
    accelerator="cpu",
)


def take_rows(rows: Interactions, index: np.ndarray) -> Interactions:
    """The rows of ``rows`` at ``index`` (every field)."""
    return Interactions(*(getattr(rows, f.name)[index] for f in dataclasses.fields(Interactions)))


def concat_rows(*parts: Interactions) -> Interactions:
    """``parts`` one after the other (every field)."""
    return Interactions(
        *(np.concatenate([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(Interactions))
    )


def small_components(data: TrainingData, names: Iterable[str]) -> dict[str, Recommender]:
    """The hybrids' components fitted on ``data`` with the small test configs (linear: its defaults; sequential:
    without its fixed start, which on the planted data is kept untrained, so its history would count for nothing
    and the hybrids' history checks could not fail)."""
    from kuairec_pipeline.models.als import ALSRecommender
    from kuairec_pipeline.models.linear import LinearRecommender
    from kuairec_pipeline.models.sequential import SequentialRecommender
    from kuairec_pipeline.models.two_tower import TwoTowerRecommender

    makers = {
        "linear": lambda: LinearRecommender(),
        "als": lambda: ALSRecommender(SMALL_ALS),
        "two_tower": lambda: TwoTowerRecommender(SMALL_TWO_TOWER),
        "sequential": lambda: SequentialRecommender(dataclasses.replace(SMALL_SEQUENTIAL, fixed_start=False)),
    }
    return {name: makers[name]().fit(data) for name in names}
