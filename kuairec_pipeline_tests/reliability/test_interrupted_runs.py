"""``kill -9`` in the middle of a materialization: the previous files stay intact and readable, the next run succeeds
and leaves no temporary file behind. Real CLI runs on copies of the session's materialization."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from kuairec_pipeline.atomic import atomic_path
from kuairec_pipeline.models.two_tower import TwoTowerRecommender
from kuairec_pipeline_tests.builders import (
    DAGSTER,
    REPO,
    Baseline,
    copy_home,
    digests,
    materialize,
    temporaries,
    twin_data,
)

START_TIMEOUT_S = 180


def start(env: dict[str, str], select: str, log: Path, config: str | None = None) -> subprocess.Popen[bytes]:
    """``dagster asset materialize`` in its own process group (so that the kill reaches every process it starts)."""
    extra = [] if config is None else ["--config-json", config]
    with open(log, "wb") as sink:
        return subprocess.Popen(
            [DAGSTER, "asset", "materialize", "-m", "kuairec_pipeline.definitions", "--select", select, *extra],
            cwd=REPO,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def kill_when(process: subprocess.Popen[bytes], log: Path, ready: Callable[[], bool], what: str) -> None:
    """SIGKILL the whole process group as soon as ``ready()`` holds; fail if the run ends first."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            pytest.fail(f"the run ended (exit {process.returncode}) before {what}:\n{log.read_text()[-6000:]}")
        time.sleep(0.005)
    os.killpg(process.pid, signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL


def asset_files(home: Path) -> dict[str, str]:
    """Every asset and model file, temporary files left out (a kill -9 leaves its temporary file behind)."""
    return {
        **{f"assets/{k}": v for k, v in digests(home / "assets", skip=_is_temporary).items()},
        **{f"models/{k}": v for k, v in digests(home / "models", skip=_is_temporary).items()},
    }


def _is_temporary(path: Path) -> bool:
    return path.name.endswith(".tmp")


@pytest.mark.slow
def test_kill_while_raw_interactions_is_written(baseline: Baseline, tmp_path: Path) -> None:
    # A big_matrix ~80 times the tiny one (its rows repeated: valid, duplicates are kept) takes a few seconds to
    # stream to Parquet, long enough to kill the run while the temporary file is being written.
    source = tmp_path / "source"
    shutil.copytree(baseline.twin, source)
    big = twin_data(source) / "big_matrix.csv"
    header, body = big.read_bytes().split(b"\n", 1)
    big.write_bytes(header + b"\n" + body * 80)
    env = copy_home(baseline, tmp_path, source=source)
    home = Path(env["KUAIREC_HOME"])
    assets = home / "assets"
    target = assets / "raw_interactions.parquet"
    before = asset_files(home)
    rows_before = pl.scan_parquet(target).select(pl.len()).collect().item()

    def writing() -> bool:
        try:
            return any(path.stat().st_size > 0 for path in assets.glob(".raw_interactions.parquet.*.tmp"))
        except FileNotFoundError:  # renamed into place between the listing and the stat: too late, fails below
            return False

    process = start(env, "raw_interactions", tmp_path / "killed.log")
    kill_when(process, tmp_path / "killed.log", writing, "raw_interactions.parquet was being written")

    assert list(assets.glob(".raw_interactions.parquet.*.tmp")), "the kill did not land mid-write"
    assert asset_files(home) == before  # the previous file, byte for byte, and every other one
    assert pl.read_parquet(target).height == rows_before

    rerun = materialize(env, select="raw_interactions", timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-6000:]
    assert pl.read_parquet(target).height == 80 * rows_before
    assert temporaries(home / "assets") == []  # the killed run's temporary file was swept by the next write


@pytest.mark.slow
def test_kill_while_two_tower_embeddings_trains(baseline: Baseline, tmp_path: Path) -> None:
    env = copy_home(baseline, tmp_path)
    home = Path(env["KUAIREC_HOME"])
    log = tmp_path / "killed.log"
    bundle_path, weights_path = home / "assets" / "two_tower_embeddings.npz", home / "models" / "two_tower.pt"
    before = asset_files(home)

    def training() -> bool:
        # EpochProgress's first line (INFO): the network trains now (seconds on the tiny twin); 0.2 s into it, kill.
        if "two_tower: training up to" not in log.read_text(errors="replace"):
            return False
        time.sleep(0.2)
        return True

    # From its fixed start the two-tower stops after ~3 epochs (0.1 s on tiny on a quiet machine): a long patience
    # keeps it training for seconds, so the kill lands mid-training.
    long_fit = '{"ops": {"two_tower_embeddings": {"config": {"max_epochs": 500, "early_stopping_patience": 500}}}}'
    process = start(env, "two_tower_embeddings", log, long_fit)
    kill_when(process, log, training, "two_tower_embeddings started training")
    # EpochProgress's closing line ("... N epochs in T s") comes when training ends, before the bundle is written
    assert "epochs in" not in log.read_text(errors="replace"), "the kill came after training had finished"

    assert asset_files(home) == before
    _assert_two_tower_loads(bundle_path, weights_path)

    rerun = materialize(env, select="two_tower_embeddings", timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-6000:]
    _assert_two_tower_loads(bundle_path, weights_path)
    assert temporaries(home) == []


def _assert_two_tower_loads(bundle_path: Path, weights_path: Path) -> None:
    with np.load(bundle_path, allow_pickle=False) as stored:
        model = TwoTowerRecommender.from_bundle({name: stored[name] for name in stored.files}, str(bundle_path))
    scores = model.score_all(np.arange(3))
    assert scores.shape == (3, model.n_videos) and np.isfinite(scores).all()
    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    model.load_weights(weights_path)
    assert set(state) == set(model.network.state_dict())


def test_a_killed_writers_temporary_files_are_swept_by_the_next_write(tmp_path: Path) -> None:
    target = tmp_path / "raw_interactions.parquet"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # its pid names no running process now
    stale_file = tmp_path / f".{target.name}.{gone.pid}.0123abcd.tmp"
    stale_file.write_bytes(b"half a parquet file")
    stale_folder = tmp_path / f".{target.name}.{gone.pid}.89abcdef.tmp"  # an unpacking cut short
    stale_folder.mkdir()
    (stale_folder / "big_matrix.csv").write_bytes(b"user_id")
    live = tmp_path / f".{target.name}.{os.getppid()}.0123abcd.tmp"  # a writer that still runs: left alone
    live.write_bytes(b"being written")
    other = tmp_path / f".filtered_ratios.parquet.{gone.pid}.0123abcd.tmp"  # another file's: swept on its own write
    other.write_bytes(b"")
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"complete")
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([target.name, live.name, other.name])
    assert target.read_bytes() == b"complete"


def test_a_failed_write_removes_the_folders_it_created_and_no_other(tmp_path: Path) -> None:
    target = tmp_path / "interaction_days" / "day=2020-09-06" / "part-0.parquet"
    with pytest.raises(ValueError, match="bad row"), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise ValueError("bad row")
    assert list(tmp_path.iterdir()) == []  # both folders it made are gone

    kept = tmp_path / "interaction_days" / "day=2020-09-05"
    kept.mkdir(parents=True)  # a folder that existed before (empty even): never removed
    with pytest.raises(ValueError), atomic_path(kept / "part-0.parquet"):
        raise ValueError("bad row")
    assert kept.is_dir()

    busy = target.parent  # another writer's file lands in the folder meanwhile: the folder stays
    with pytest.raises(ValueError), atomic_path(target):
        (busy / "other.parquet").write_bytes(b"theirs")
        raise ValueError("bad row")
    assert [path.name for path in busy.iterdir()] == ["other.parquet"]
