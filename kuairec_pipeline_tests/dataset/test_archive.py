"""Unpacking KuaiRec.zip: the official layout, unsafe entries, damaged archives, atomicity, unpacking once."""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

import pytest

from kuairec_pipeline.dataset import archive, loader
from kuairec_pipeline.errors import KuaiRecSourceError

OFFICIAL_FILES = {
    "KuaiRec 2.0/data/big_matrix.csv": "user_id,video_id\n0,1\n",
    "KuaiRec 2.0/data/small_matrix.csv": "user_id,video_id\n0,1\n",
    "KuaiRec 2.0/data/user_features.csv": "user_id\n0\n",
    "KuaiRec 2.0/data/item_categories.csv": "video_id,feat\n0,[8]\n",
    "KuaiRec 2.0/loaddata.py": "print('hello')\n",
}


def make_zip(path: Path, entries: dict[str, str], *, symlinks: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("KuaiRec 2.0/", "")  # a folder entry, as zip tools write them
        for name, text in entries.items():
            bundle.writestr(name, text)
        for name, link_target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            bundle.writestr(info, link_target)
    return path


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock")) if folder.exists() else []


def test_official_layout_unpacks_and_is_found(tmp_path: Path) -> None:
    zip_path = make_zip(tmp_path / "KuaiRec.zip", OFFICIAL_FILES)
    target = archive.extract_archive(zip_path, tmp_path / "source" / "KuaiRec")
    assert (target / "KuaiRec 2.0" / "data" / "big_matrix.csv").read_text() == "user_id,video_id\n0,1\n"
    assert archive.is_unpacked(zip_path, target)
    files = loader.find_kuairec_files(target)
    assert files.require("big_matrix.csv").parent.name == "data"
    assert leftovers(tmp_path / "source") == ["KuaiRec"]  # no temporary folder left


def test_unpacks_only_once(tmp_path: Path) -> None:
    zip_path = make_zip(tmp_path / "KuaiRec.zip", OFFICIAL_FILES)
    target = archive.extract_archive(zip_path, tmp_path / "out")
    sentinel = target / "KuaiRec 2.0" / "data" / "big_matrix.csv"
    mtime = sentinel.stat().st_mtime_ns
    os.utime(sentinel, ns=(mtime - 10**9, mtime - 10**9))
    archive.extract_archive(zip_path, tmp_path / "out")
    assert sentinel.stat().st_mtime_ns == mtime - 10**9  # untouched: not unpacked again


def test_a_different_archive_replaces_an_old_unpacking(tmp_path: Path) -> None:
    target = tmp_path / "out"
    archive.extract_archive(make_zip(tmp_path / "old.zip", {"KuaiRec 2.0/data/stale.csv": "x"}), target)
    new_zip = make_zip(tmp_path / "KuaiRec.zip", OFFICIAL_FILES)
    archive.extract_archive(new_zip, target)
    assert not (target / "KuaiRec 2.0" / "data" / "stale.csv").exists()
    assert (target / "KuaiRec 2.0" / "data" / "user_features.csv").exists()
    assert leftovers(tmp_path) == ["KuaiRec.zip", "old.zip", "out"]


def test_incomplete_folder_without_marker_is_redone(tmp_path: Path) -> None:
    target = tmp_path / "out"
    (target / "KuaiRec 2.0" / "data").mkdir(parents=True)
    (target / "KuaiRec 2.0" / "data" / "big_matrix.csv").write_text("half")
    archive.extract_archive(make_zip(tmp_path / "KuaiRec.zip", OFFICIAL_FILES), target)
    assert (target / "KuaiRec 2.0" / "data" / "big_matrix.csv").read_text().startswith("user_id")


@pytest.mark.parametrize(
    "bad_name",
    ["../escaped.csv", "KuaiRec 2.0/../../escaped.csv", "/tmp/absolute.csv", "..\\windows.csv", "C:/drive.csv"],
)
def test_zip_slip_entries_are_refused_before_anything_is_written(tmp_path: Path, bad_name: str) -> None:
    zip_path = make_zip(tmp_path / "KuaiRec.zip", {**OFFICIAL_FILES, bad_name: "evil"})
    target = tmp_path / "deep" / "out"
    with pytest.raises(KuaiRecSourceError, match="refusing to unpack") as caught:
        archive.extract_archive(zip_path, target)
    assert str(zip_path) in str(caught.value)
    assert not target.exists()
    assert not (tmp_path / "escaped.csv").exists() and not (tmp_path / "deep" / "escaped.csv").exists()
    assert leftovers(tmp_path / "deep") == []


def test_symlink_entries_are_refused(tmp_path: Path) -> None:
    zip_path = make_zip(tmp_path / "KuaiRec.zip", OFFICIAL_FILES, symlinks={"KuaiRec 2.0/data/link": "/etc"})
    with pytest.raises(KuaiRecSourceError, match="symbolic link"):
        archive.extract_archive(zip_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_truncated_zip_is_refused_with_its_name(tmp_path: Path) -> None:
    zip_path = make_zip(tmp_path / "KuaiRec.zip", OFFICIAL_FILES)
    data = zip_path.read_bytes()
    zip_path.write_bytes(data[: len(data) // 2])
    with pytest.raises(KuaiRecSourceError, match="corrupt or truncated") as caught:
        archive.extract_archive(zip_path, tmp_path / "out")
    assert str(zip_path) in str(caught.value)
    assert leftovers(tmp_path) == ["KuaiRec.zip"]


def test_damaged_member_leaves_nothing_half_written(tmp_path: Path) -> None:
    payload = "user_id,video_id\n" + "0,1\n" * 5000
    zip_path = tmp_path / "KuaiRec.zip"
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_STORED) as bundle:
        bundle.writestr("KuaiRec 2.0/data/user_features.csv", "user_id\n0\n")
        bundle.writestr("KuaiRec 2.0/data/big_matrix.csv", payload)
    data = bytearray(zip_path.read_bytes())
    where = data.find(b"0,1\n0,1\n")
    data[where] = ord("9")  # flip stored bytes: the CRC check fails while unpacking
    zip_path.write_bytes(bytes(data))
    with pytest.raises(KuaiRecSourceError, match="corrupt or truncated"):
        archive.extract_archive(zip_path, tmp_path / "out")
    assert leftovers(tmp_path) == ["KuaiRec.zip"]


def test_not_a_zip_at_all(tmp_path: Path) -> None:
    fake = tmp_path / "KuaiRec.zip"
    fake.write_text("<html>404 Not Found</html>")
    with pytest.raises(KuaiRecSourceError, match="corrupt or truncated"):
        archive.extract_archive(fake, tmp_path / "out")


def test_missing_archive(tmp_path: Path) -> None:
    with pytest.raises(KuaiRecSourceError, match="does not exist"):
        archive.extract_archive(tmp_path / "KuaiRec.zip", tmp_path / "out")


def test_a_zip_holding_kuairec_zip_is_unpacked_one_level_deep(tmp_path: Path) -> None:
    inner = make_zip(tmp_path / "KuaiRec.zip", OFFICIAL_FILES)
    outer = tmp_path / "download.zip"
    with zipfile.ZipFile(outer, "w") as bundle:
        bundle.write(inner, "KuaiRec.zip")
    target = archive.extract_archive(outer, tmp_path / "out")
    files = loader.find_kuairec_files(target)
    assert files["big_matrix.csv"].read_text() == OFFICIAL_FILES["KuaiRec 2.0/data/big_matrix.csv"]
    assert not list(target.rglob("*.zip"))  # the inner archive is replaced by its contents


def test_a_zip_of_zips_without_data_is_refused_naming_the_inner_archive(tmp_path: Path) -> None:
    innermost = make_zip(tmp_path / "KuaiRec.zip", OFFICIAL_FILES)
    middle = tmp_path / "middle.zip"
    with zipfile.ZipFile(middle, "w") as bundle:
        bundle.write(innermost, "KuaiRec.zip")
    outer = tmp_path / "outer.zip"
    with zipfile.ZipFile(outer, "w") as bundle:
        bundle.write(middle, "nested/middle.zip")
    with pytest.raises(KuaiRecSourceError) as caught:
        archive.extract_archive(outer, tmp_path / "out")
    assert "nested/middle.zip" in str(caught.value) and str(outer) in str(caught.value)
    assert not (tmp_path / "out").exists()  # nothing half-unpacked is left behind


def test_an_inner_archive_with_an_unsafe_entry_is_refused_by_name(tmp_path: Path) -> None:
    inner = make_zip(tmp_path / "KuaiRec.zip", {**OFFICIAL_FILES, "../evil.csv": "x"})
    outer = tmp_path / "outer.zip"
    with zipfile.ZipFile(outer, "w") as bundle:
        bundle.write(inner, "KuaiRec.zip")
    with pytest.raises(KuaiRecSourceError, match="KuaiRec.zip"):
        archive.extract_archive(outer, tmp_path / "out")
    assert not (tmp_path / "evil.csv").exists() and not (tmp_path / "out").exists()
