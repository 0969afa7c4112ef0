"""Real services on loopback ports for the scale tests: Redis, a dagster-celery worker, an S3-compatible server.

Each is started by the test that needs it and stopped after it, whatever the outcome."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kuairec_pipeline_tests.orchestration.conftest import free_port

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
    """moto's S3-compatible server on a free loopback port, in this process (a thread); yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
