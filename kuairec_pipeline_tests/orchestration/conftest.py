"""Helpers that run the real Dagster CLI against a real local instance on the tiny synthetic twin.

The ``materialized_pipeline`` fixture built with them lives in ``kuairec_pipeline_tests/conftest.py``, so that the
orchestration and the reliability tests share one materialization per session."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DAGSTER = str(Path(sys.executable).with_name("dagster"))


def instance_dir(root: Path) -> Path:
    """A DAGSTER_HOME with the project's dagster.yaml, its storage redirected below ``root``."""
    home = root / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    text = (REPO / "dagster.yaml").read_text().replace("data/dagster", str(root / "dagster_storage"))
    (home / "dagster.yaml").write_text(text)
    return home


def pipeline_env(root: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUAIREC_", "DAGSTER_"))}
    env.update(
        {
            "KUAIREC_HOME": str(root / "home"),
            "KUAIREC_PROFILE": "tiny",
            "DAGSTER_HOME": str(instance_dir(root)),
            "OPENBLAS_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    return env


def materialize(
    env: dict[str, str], select: str = "*", timeout: float = 600, extra: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DAGSTER, "asset", "materialize", "-m", "kuairec_pipeline.definitions", "--select", select, *extra],
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
