"""Finding the official files below a folder: the archive's layout, optional files, what is missing, two copies."""

from __future__ import annotations

from pathlib import Path

import pytest

from kuairec_pipeline.dataset import loader, schema
from kuairec_pipeline.dataset.schema import BIG_MATRIX
from kuairec_pipeline.errors import KuaiRecSourceError

# --------------------------------------------------------------------------------------------------------------
# Finding the files
# --------------------------------------------------------------------------------------------------------------


def official_layout(root: Path, names: list[str] | None = None) -> Path:
    data = root / "KuaiRec 2.0" / "data"
    data.mkdir(parents=True)
    for name in names or [f.file_name for f in schema.ALL_FILES]:
        (data / name).write_text("x\n")
    return data


def test_find_files_below_the_official_folder_with_a_space(tmp_path: Path) -> None:
    data = official_layout(tmp_path)
    (tmp_path / "_truth").mkdir()
    (tmp_path / "_truth" / "big_matrix.csv").write_text("planted\n")  # never a source file
    (data / ".big_matrix.csv.1234.abcd.tmp").write_text("half-written\n")
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "small_matrix.csv").write_text("hidden\n")
    files = loader.find_kuairec_files(tmp_path)
    assert set(files) == {f.file_name for f in schema.ALL_FILES}
    assert files.require("big_matrix.csv") == data / "big_matrix.csv"
    assert files[BIG_MATRIX] == data / "big_matrix.csv"
    assert files.get("social_network.csv") == data / "social_network.csv"
    assert files.root == tmp_path


def test_find_files_optional_ones_may_be_missing(tmp_path: Path) -> None:
    official_layout(tmp_path, [f.file_name for f in schema.REQUIRED_FILES])
    files = loader.find_kuairec_files(tmp_path)
    assert files.get("item_daily_features.csv") is None
    assert "item_daily_features.csv" not in files
    with pytest.raises(KuaiRecSourceError, match="item_daily_features.csv"):
        files.require("item_daily_features.csv")


def test_find_files_names_what_is_missing_and_where(tmp_path: Path) -> None:
    official_layout(tmp_path, ["user_features.csv", "item_categories.csv"])
    with pytest.raises(KuaiRecSourceError) as caught:
        loader.find_kuairec_files(tmp_path)
    message = str(caught.value)
    assert "big_matrix.csv" in message and "small_matrix.csv" in message and str(tmp_path) in message


def test_find_files_refuses_two_copies(tmp_path: Path) -> None:
    official_layout(tmp_path / "a")
    official_layout(tmp_path / "b", ["big_matrix.csv"])
    with pytest.raises(KuaiRecSourceError, match="more than one copy"):
        loader.find_kuairec_files(tmp_path)


def test_find_files_needs_a_folder(tmp_path: Path) -> None:
    with pytest.raises(KuaiRecSourceError, match="not a folder"):
        loader.find_kuairec_files(tmp_path / "nowhere")
