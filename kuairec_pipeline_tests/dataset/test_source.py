"""resolve_source: each kind of KUAIREC_SOURCE, prepared once, and clear errors for the rest."""

from __future__ import annotations

import hashlib
import sys
import types
import zipfile
from pathlib import Path

import pytest

from kuairec_pipeline.dataset import download, loader, schema, source
from kuairec_pipeline.dataset.download import DownloadConfig
from kuairec_pipeline.errors import KuaiRecSourceError
from kuairec_pipeline.settings import Settings
from kuairec_pipeline_tests.builders import FileServer, serving


def write_official_files(root: Path, names: list[str] | None = None) -> Path:
    data = root / "KuaiRec 2.0" / "data"
    data.mkdir(parents=True, exist_ok=True)
    for name in names or [f.file_name for f in schema.REQUIRED_FILES]:
        (data / name).write_text("header\n")
    return data


def make_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as bundle:
        for file_schema in schema.REQUIRED_FILES:
            bundle.writestr(f"KuaiRec 2.0/data/{file_schema.file_name}", "header\n")
    return path


@pytest.fixture
def fake_twin(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Path, str, int]]:
    """Stand-in for dataset.synthetic: records its calls, writes the twin's layout and _truth/params.json."""
    calls: list[tuple[Path, str, int]] = []

    def generate_twin(out_dir: Path, profile: str = "demo", seed: int = 0) -> Path:
        calls.append((Path(out_dir), profile, seed))
        write_official_files(Path(out_dir))
        (Path(out_dir) / "_truth").mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "_truth" / "params.json").write_text("{}")
        return Path(out_dir)

    module = types.ModuleType("kuairec_pipeline.dataset.synthetic")
    module.generate_twin = generate_twin  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "kuairec_pipeline.dataset.synthetic", module)
    return calls


def test_synthetic_twin_is_generated_once(tmp_path: Path, fake_twin: list[tuple[Path, str, int]]) -> None:
    settings = Settings(home=tmp_path, source="synthetic", profile="tiny", seed=7)
    files = source.resolve_source(settings)
    again = source.resolve_source(settings)
    assert fake_twin == [(settings.synthetic_dir, "tiny", 7)]
    assert files.require("big_matrix.csv") == settings.synthetic_dir / "KuaiRec 2.0" / "data" / "big_matrix.csv"
    assert dict(again) == dict(files)
    assert source.truth_dir(files) == settings.synthetic_dir / "_truth"


def test_folder_source(tmp_path: Path) -> None:
    data = write_official_files(tmp_path / "unpacked")
    files = source.resolve_source(Settings(home=tmp_path / "home", source=str(tmp_path / "unpacked")))
    assert files.require("small_matrix.csv") == data / "small_matrix.csv"
    assert source.truth_dir(files) is None


def test_truth_dir_is_not_looked_for_above_the_searched_folder(tmp_path: Path) -> None:
    (tmp_path / "_truth").mkdir()
    write_official_files(tmp_path / "real")
    files = source.resolve_source(Settings(home=tmp_path / "home", source=str(tmp_path / "real")))
    assert source.truth_dir(files) is None


def test_zip_source_is_unpacked_below_source_dir_once(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "KuaiRec.zip")
    settings = Settings(home=tmp_path / "home", source=str(archive))
    files = source.resolve_source(settings)
    path = files.require("big_matrix.csv")
    assert path.is_relative_to(settings.source_dir)
    mtime = path.stat().st_mtime_ns
    assert source.resolve_source(settings).require("big_matrix.csv").stat().st_mtime_ns == mtime


def test_download_source_fetches_with_the_config_it_is_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Against a local HTTP server (download.py's own behaviour is tested in test_download.py)."""
    archive = make_zip(tmp_path / "served.zip").read_bytes()
    settings = Settings(home=tmp_path / "home", source="download")
    with serving(FileServer(payload=archive, drop_after=[100])) as server:
        monkeypatch.setenv(download.URL_ENV, server.url)
        monkeypatch.setenv(download.MD5_ENV, hashlib.md5(archive).hexdigest())
        once = DownloadConfig(attempts=1, retry_wait_s=0.0)  # the server hangs up after 100 bytes: one try fails
        with pytest.raises(KuaiRecSourceError, match="after 1 tries"):
            source.resolve_source(settings, once)
        files = source.resolve_source(settings, DownloadConfig(attempts=2, retry_wait_s=0.0))  # resumes, unpacks
    assert server.requests == [None, "bytes=100-"]
    assert (settings.downloads_dir / "KuaiRec.zip").read_bytes() == archive
    assert files.require("user_features.csv").is_relative_to(settings.source_dir)


def test_missing_path_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "KuaiRec"
    with pytest.raises(KuaiRecSourceError, match="no such file or folder") as caught:
        source.resolve_source(Settings(home=tmp_path, source=str(missing)))
    assert str(missing) in str(caught.value)


def test_a_file_that_is_not_a_zip(tmp_path: Path) -> None:
    stray = tmp_path / "big_matrix.csv"
    stray.write_text("x")
    with pytest.raises(KuaiRecSourceError, match="not a .zip"):
        source.resolve_source(Settings(home=tmp_path, source=str(stray)))


def test_folder_without_the_files(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(KuaiRecSourceError, match="big_matrix.csv"):
        source.resolve_source(Settings(home=tmp_path, source=str(tmp_path / "empty")))


def test_tiny_twin_reads_through_the_real_loader(tmp_path: Path) -> None:
    """The twin is written like the real files and read by exactly the same loader code."""
    settings = Settings(home=tmp_path, source="synthetic", profile="tiny", seed=3)
    files = source.resolve_source(settings)
    assert source.truth_dir(files) == settings.synthetic_dir / "_truth"
    big, big_report = loader.scan_interactions(files.require(schema.BIG_MATRIX), schema.BIG_MATRIX)
    small, _ = loader.scan_interactions(files.require(schema.SMALL_MATRIX), schema.SMALL_MATRIX)
    assert big.collect().height == big_report.rows_read > 0
    assert small.collect()["date"].null_count() > 0  # the forced-exposure rows
    users = loader.read_user_features(files.require(schema.USER_FEATURES))
    categories = loader.read_item_categories(files.require(schema.ITEM_CATEGORIES))
    daily = files.get(schema.ITEM_DAILY_FEATURES)
    captions = files.get(schema.CAPTION_CATEGORY)
    videos = loader.build_raw_videos(
        categories,
        loader.scan_item_daily_features(daily) if daily else None,
        loader.read_captions(captions) if captions else None,
    )
    assert users.height > 0
    assert videos.height == categories.height
    if files.get(schema.SOCIAL_NETWORK):
        assert loader.read_social_network(files.require(schema.SOCIAL_NETWORK)).height > 0
