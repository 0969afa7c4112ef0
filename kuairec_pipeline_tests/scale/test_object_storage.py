"""The tiny graph on s3:// (a local S3-compatible server), every table read back, `kuairec recommend` against it;
the same run, in a process of its own, gives the session baseline's metrics (determinism end to end)."""

from __future__ import annotations

import io
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from dagster import AssetKey, DagsterInstance

from kuairec_pipeline.asset_storage import is_remote, mirror_assets, readable_asset_folder
from kuairec_pipeline.definitions import build_definitions
from kuairec_pipeline.orchestration.metadata import array_summary
from kuairec_pipeline.settings import Settings
from kuairec_pipeline_tests.builders import REPO, RunResult, assets_dir, materialize, pipeline_env, s3_server

BUCKET = "kuairec-assets"
PREFIX = "runs/tiny"
TOLERANCE = 1e-6  # metrics of two runs of one seed agree to this (float32 sums in another order)
KUAIREC = str(Path(sys.executable).with_name("kuairec"))


def _s3_env(endpoint: str) -> dict[str, str]:
    # Made up per test run and passed only through the environment: no credential is in any file of the repo.
    return {
        "AWS_ACCESS_KEY_ID": secrets.token_hex(10),
        "AWS_SECRET_ACCESS_KEY": secrets.token_hex(20),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }


def _filesystem(env: dict[str, str]):
    """An s3fs client of the test server, with the bucket created."""
    import boto3
    import s3fs

    credentials = {
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
        "endpoint_url": env["AWS_ENDPOINT_URL"],
        "region_name": env["AWS_DEFAULT_REGION"],
    }
    boto3.client("s3", **credentials).create_bucket(Bucket=BUCKET)
    return s3fs.S3FileSystem(
        key=env["AWS_ACCESS_KEY_ID"],
        secret=env["AWS_SECRET_ACCESS_KEY"],
        client_kwargs={"endpoint_url": env["AWS_ENDPOINT_URL"], "region_name": "us-east-1"},
    )


def test_asset_storage_setting():
    assert Settings.from_env({"KUAIREC_HOME": "/h"}).asset_location == "/h/assets"
    assert Settings.from_env({"KUAIREC_ASSET_STORAGE": "s3://b/p"}).asset_location == "s3://b/p"
    assert is_remote("s3://b/p") and not is_remote("/h/assets") and not is_remote("file:///h/assets")
    assert readable_asset_folder(Settings.from_env({"KUAIREC_HOME": "/h"})) == Path("/h/assets")  # no mirror
    with pytest.raises(ValueError, match="KUAIREC_ASSET_STORAGE='nope://x': unknown protocol 'nope'"):
        Settings.from_env({"KUAIREC_ASSET_STORAGE": "nope://x"})


def test_mirror_downloads_only_what_changed(tmp_path):
    with s3_server() as endpoint:
        env = _s3_env(endpoint)
        fs = _filesystem(env)
        fs.pipe(f"{BUCKET}/p/a.parquet", b"one")
        fs.pipe(f"{BUCKET}/p/b.npz", b"two")
        fs.pipe(f"{BUCKET}/p/notes.txt", b"not an asset")
        with pytest.MonkeyPatch.context() as patch:
            for name, value in env.items():
                patch.setenv(name, value)
            folder = tmp_path / "mirror"
            assert mirror_assets(f"s3://{BUCKET}/p", folder) == {"downloaded": 2, "unchanged": 0, "removed": 0}
            fs.pipe(f"{BUCKET}/p/a.parquet", b"one, changed")
            fs.rm(f"{BUCKET}/p/b.npz")
            fs.invalidate_cache()
            assert mirror_assets(f"s3://{BUCKET}/p", folder) == {"downloaded": 1, "unchanged": 0, "removed": 1}
            assert (folder / "a.parquet").read_bytes() == b"one, changed" and not (folder / "b.npz").exists()
            assert not (folder / "notes.txt").exists()
            with pytest.raises(FileNotFoundError, match="holds no asset file"):
                mirror_assets(f"s3://{BUCKET}/empty", tmp_path / "other")


@dataclass
class S3Run:
    env: dict[str, str]
    fs: object  # s3fs.S3FileSystem
    result: RunResult
    home: Path


@pytest.fixture(scope="module")
def s3_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Run]:
    """The tiny graph (the session baseline's profile and seed) materialized in this process into a local
    S3-compatible server (a process of its own), which lives as long as the module's tests."""
    home = tmp_path_factory.mktemp("s3")
    with s3_server() as endpoint:
        s3 = _s3_env(endpoint)
        env = pipeline_env(home, KUAIREC_ASSET_STORAGE=f"s3://{BUCKET}/{PREFIX}", **s3)
        fs = _filesystem(s3)
        yield S3Run(env, fs, materialize(env), home)


@pytest.mark.slow
@pytest.mark.scale
def test_tiny_graph_on_s3_reads_back_and_recommends(s3_run: S3Run) -> None:
    env, fs, tmp_path = s3_run.env, s3_run.fs, s3_run.home
    assert s3_run.result.returncode == 0, s3_run.result.stderr[-6000:]
    # Every asset is an object under the prefix, and nothing went to the local asset folder.
    keys = {k.to_user_string() for k in build_definitions(environ=env).resolve_asset_graph().materializable_asset_keys}
    objects = {Path(name).name: name for name in fs.ls(f"{BUCKET}/{PREFIX}")}
    assert {Path(name).stem for name in objects} == keys
    local_assets = Path(env["KUAIREC_HOME"]) / "assets"
    assert not local_assets.exists() or not any(local_assets.iterdir())

    # Every table reads back from the store with the row count (Parquet) or the array names, shapes and bytes
    # (NumPy) that its materialization recorded.
    with DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        for name, key in objects.items():
            data = fs.cat_file(key)
            metadata = instance.get_latest_materialization_event(
                AssetKey(Path(name).stem)
            ).asset_materialization.metadata
            if name.endswith(".parquet"):
                assert pl.read_parquet(io.BytesIO(data)).height == metadata["dagster/row_count"].value > 0, name
            else:
                with np.load(io.BytesIO(data), allow_pickle=False) as bundle:
                    summary = array_summary({f: bundle[f] for f in bundle.files})
                assert summary["arrays"].value == metadata["arrays"].value, name  # names and shapes
                assert summary["size_bytes"].value == metadata["size_bytes"].value > 0, name

    # The command line answers from the store: the stored top 5 of a user, in order.
    recs = pl.read_parquet(io.BytesIO(fs.cat_file(objects["recommendations.parquet"])))
    user = int(recs["user_id"][0])
    expected = recs.filter(pl.col("user_id") == user).sort("rank")["video_id"].head(5).to_list()
    answer = subprocess.run(
        [KUAIREC, "recommend", "--user", str(user), "-k", "5"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert answer.returncode == 0, answer.stderr
    rows = [line.split() for line in answer.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert [int(row[1]) for row in rows] == expected
    metrics = subprocess.run([KUAIREC, "metrics"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert metrics.returncode == 0 and "| hybrid_fusion |" in metrics.stdout, metrics.stderr

    # The secret went nowhere on disk: not into the run history, the run config, nor the mirror's files.
    secret = env["AWS_SECRET_ACCESS_KEY"].encode()
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret not in path.read_bytes(), path


@pytest.mark.slow
def test_a_second_whole_graph_run_in_another_process_gives_the_same_metrics(
    s3_run: S3Run, materialized_pipeline: dict[str, str]
) -> None:
    """Determinism end to end: the same seed and data give the same metrics (to 1e-6) in the session's run on local
    files and in this one, a second whole graph (usually in another xdist worker) writing to object storage."""
    assert s3_run.result.returncode == 0, s3_run.result.stderr[-6000:]
    key = ["model", "split", "metric"]
    first = pl.read_parquet(assets_dir(materialized_pipeline) / "metrics.parquet").sort(key)
    second = pl.read_parquet(io.BytesIO(s3_run.fs.cat_file(f"{BUCKET}/{PREFIX}/metrics.parquet"))).sort(key)
    assert first.select(key).equals(second.select(key))
    difference = np.abs(first["value"].to_numpy() - second["value"].to_numpy())
    worst = first.with_columns(difference=difference).sort("difference", descending=True).head(3)
    assert np.nanmax(difference) <= TOLERANCE, worst
    assert np.array_equal(np.isnan(first["value"].to_numpy()), np.isnan(second["value"].to_numpy()))
