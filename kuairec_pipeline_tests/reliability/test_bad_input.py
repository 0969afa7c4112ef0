"""Bad input through the real assets and the real CLI: every row of docs/BAD_INPUT.md.

Each case copies the session's full materialization (``baseline``) and the tiny twin, damages the copy of one
file, and runs ``dagster asset materialize`` on the assets that read it (downstream included, as a user re-running
from ingest would). The run must exit non-zero with a message naming the file (and the column and row where one is
at fault), leave every file of the earlier materialization byte for byte as it was, and write nothing anywhere in
the case's folder. The cases run two at a time (each has its own folders and Dagster instance).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from kuairec_pipeline.dataset import loader, schema
from kuairec_pipeline.errors import KuaiRecDataError
from kuairec_pipeline_tests.builders import (
    REPO,
    Baseline,
    copy_home,
    digests,
    is_lock_file,
    materialize,
    output,
    temporaries,
    twin_data,
)

BIG, SMALL = "big_matrix.csv", "small_matrix.csv"
ZIP_NAME = "KuaiRec.zip"


# ---- ways to damage a copy of the twin --------------------------------------------------------------------------


def edit_field(path: Path, row: int, column: str, value: bytes) -> None:
    """Set ``column`` of data row ``row`` (1-based; the header is row 0) to ``value``."""
    lines = path.read_bytes().split(b"\n")
    index = lines[0].decode().split(",").index(column)
    fields = lines[row].split(b",")
    fields[index] = value
    lines[row] = b",".join(fields)
    path.write_bytes(b"\n".join(lines))


def drop_column(path: Path, column: str) -> None:
    lines = path.read_bytes().split(b"\n")
    index = lines[0].decode().split(",").index(column)
    path.write_bytes(
        b"\n".join(
            b",".join(f for i, f in enumerate(line.split(b",")) if i != index) if line else line for line in lines
        )
    )


def zip_twin(source: Path, archive: Path, extra: dict[str, bytes] | None = None) -> Path:
    """The twin's CSV files in the official archive layout (``KuaiRec 2.0/data/...``), plus ``extra`` entries last."""
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as bundle:
        for path in sorted(twin_data(source).iterdir()):
            bundle.write(path, f"KuaiRec 2.0/data/{path.name}")
        for name, data in (extra or {}).items():
            bundle.writestr(name, data)
    return archive


# ---- the cases ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    source: Path  # KUAIREC_SOURCE for the run
    expected: list[str]  # what the output must contain, verbatim


@dataclass(frozen=True)
class BadInput:
    name: str  # also the row's id in docs/BAD_INPUT.md
    select: str
    damage: Callable[[Path, Path], Setup]  # (case folder, copy of the twin) -> Setup


def where(path: Path, column: str | None = None, row: int | None = None) -> str:
    """The start of a KuaiRecDataError message (kuairec_pipeline/errors.py) for this file, column and row."""
    text = f"file {path}"
    if column is not None:
        text += f", column {column!r}"
    if row is not None:
        text += f", row {row}"
    return text


def missing_file(case: Path, source: Path) -> Setup:
    (twin_data(source) / BIG).unlink()
    return Setup(source, [f"required KuaiRec file(s) {BIG} not found anywhere below {source}"])


def empty_file(case: Path, source: Path) -> Setup:
    path = twin_data(source) / SMALL
    path.write_bytes(b"")
    return Setup(source, [f"{where(path)}: the file is empty (0 bytes)"])


def missing_column(case: Path, source: Path) -> Setup:
    path = twin_data(source) / BIG
    drop_column(path, "watch_ratio")
    return Setup(source, [f"{where(path, 'watch_ratio')}: column 'watch_ratio' is missing"])


def value_case(file_name: str, edits: list[tuple[int, str, bytes]], *messages: str) -> Callable[[Path, Path], Setup]:
    """Set fields of ``file_name`` (``(row, column, value)``); the error must name the first edit's column and row.
    The loader reports the first invalid row and counts every invalid row per reason (``messages`` check both)."""

    def damage(case: Path, source: Path) -> Setup:
        path = twin_data(source) / file_name
        for row, column, value in edits:
            edit_field(path, row, column, value)
        row, column, _ = edits[0]
        return Setup(source, [where(path, column, row), *messages])

    return damage


def truncated_last_line(case: Path, source: Path) -> Setup:
    path = twin_data(source) / BIG
    data = path.read_bytes()[:-30]  # cut inside the last line, as an interrupted copy does
    path.write_bytes(data)
    return Setup(source, [where(path, row=data.count(b"\n")), "the file looks truncated"])


def non_utf8_big(case: Path, source: Path) -> Setup:
    path = twin_data(source) / BIG
    lines = path.read_bytes().split(b"\n")
    lines[31] = lines[31].replace(b" ", b" \xff", 1)  # inside the time column
    path.write_bytes(b"\n".join(lines))
    return Setup(source, [where(path, "time", 31), "holds bytes that are not UTF-8 text"])


def truncated_zip(case: Path, source: Path) -> Setup:
    archive = zip_twin(source, case / ZIP_NAME)
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])  # an interrupted download
    return Setup(archive, [f"{archive} is corrupt or truncated"])


ESCAPE = "../../../escaped.txt"  # from $KUAIREC_HOME/source/KuaiRec-unpacked up to the case folder


def zip_slip(case: Path, source: Path) -> Setup:
    archive = zip_twin(source, case / ZIP_NAME, extra={ESCAPE: b"written outside the target folder\n"})
    return Setup(archive, [f"refusing to unpack {archive}: entry {ESCAPE!r} climbs out of the folder with '..'"])


CASES = [
    BadInput("missing_file", "*", missing_file),
    BadInput("empty_file", "raw_eval_interactions+", empty_file),
    BadInput("missing_column", "raw_interactions+", missing_column),
    BadInput(
        "non_numeric_value",
        "raw_interactions+",
        value_case(BIG, [(7, "play_duration", b"12abc")], "value '12abc': is not a whole number"),
    ),
    # A null duration first, then a null watch_ratio: the first is named, both are counted.
    BadInput(
        "null_values",
        "raw_interactions+",
        value_case(
            BIG,
            [(11, "play_duration", b""), (19, "watch_ratio", b"")],
            "play_duration is blank",
            "1 play_duration_blank, 1 watch_ratio_blank",
        ),
    ),
    # A negative watch_ratio first, then a negative duration.
    BadInput(
        "negative_values",
        "raw_interactions+",
        value_case(
            BIG,
            [(13, "watch_ratio", b"-0.5"), (23, "video_duration", b"-100")],
            "value -0.5: watch_ratio is negative",
            "1 video_duration_negative, 1 watch_ratio_negative",
        ),
    ),
    BadInput(
        "infinite_watch_ratio",
        "raw_eval_interactions+",
        value_case(SMALL, [(17, "watch_ratio", b"inf")], "value inf: watch_ratio is infinite"),
    ),
    # Durations are whole milliseconds: "inf" is text in an integer column.
    BadInput(
        "infinite_duration",
        "raw_interactions+",
        value_case(BIG, [(29, "video_duration", b"inf")], "value 'inf': is not a whole number"),
    ),
    BadInput("truncated_last_line", "raw_interactions+", truncated_last_line),
    BadInput(
        "unseen_ids",
        "raw_eval_interactions+",
        value_case(SMALL, [(4, "user_id", b"999999")], "value 999999: user 999999 never appears in big_matrix.csv"),
    ),
    BadInput("non_utf8_byte", "raw_interactions+", non_utf8_big),
    BadInput("truncated_zip", "*", truncated_zip),
    BadInput("zip_slip", "*", zip_slip),
]


# ---- running them ---------------------------------------------------------------------------------------------


@dataclass
class CaseRun:
    case: BadInput
    root: Path
    setup: Setup
    env: dict[str, str]
    before: dict[str, str]
    result: subprocess.CompletedProcess[str] | None = None


def _snapshot(root: Path) -> dict[str, str]:
    """Every file the case owns outside its Dagster instance (which records the failed run, as it should)."""
    return digests(root, skip=lambda path: is_lock_file(path) or path.relative_to(root).parts[0].startswith("dagster"))


def _run_case(case: BadInput, baseline: Baseline, root: Path) -> CaseRun:
    """One case in its own folder: the twin copied and damaged, the baseline's home copied, then the run."""
    source = root / "source"
    shutil.copytree(baseline.twin, source)
    setup = case.damage(root, source)
    env = copy_home(baseline, root, source=source, KUAIREC_SOURCE=str(setup.source))
    run = CaseRun(case, root, setup, env, _snapshot(root))
    run.result = materialize(run.env, select=run.case.select, timeout=300)
    return run


# One test per case, each running only its own case: a module-scoped fixture running all of them was built again by
# every pytest-xdist worker that took one of the module's tests.
@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_fails_clearly_and_changes_nothing(baseline: Baseline, case: BadInput, tmp_path: Path) -> None:
    run = _run_case(case, baseline, tmp_path)
    text = output(run.result)
    assert run.result.returncode != 0, text[-4000:]
    for expected in run.setup.expected:
        assert expected in text, f"{expected!r} not in the output:\n{text[-6000:]}"
    assert re.search(r"KuaiRec(Data|Source)Error", text), text[-4000:]  # ours, not polars' or zipfile's alone
    # The earlier materialization (assets, models, the twin copy) is byte for byte what it was, nothing was added
    # anywhere in the case folder (an escaping zip entry would land there too), and no temporary file is left.
    assert _snapshot(run.root) == run.before
    assert temporaries(run.root) == []
    if case.name == "zip_slip":  # the entry that escapes would land beside the case's home: it must not exist
        home = Path(run.env["KUAIREC_HOME"])
        escaped = (home / "source" / "KuaiRec-unpacked" / ESCAPE).resolve()
        assert escaped == run.root / "escaped.txt"
        assert not escaped.exists()
        assert not (home / "source" / "KuaiRec-unpacked").exists()  # all or nothing: the good entries were not kept


def test_every_case_is_documented() -> None:
    table = (REPO / "docs" / "BAD_INPUT.md").read_text()
    documented = set(re.findall(r"`test_bad_input\.py::(\w+)`", table))
    assert documented == {case.name for case in CASES}


def test_unseen_ids_are_named_by_row_or_dropped(tmp_path: Path) -> None:
    """loader.require_known_ids, which raw_eval_interactions runs against raw_interactions."""
    header = ",".join(schema.SMALL_MATRIX.column_names)
    rows = [
        "0,1,100,200,2020-07-05 00:00:00.000,20200705.0,1593878400.0,0.5",
        "0,7,100,200,2020-07-05 00:00:01.000,20200705.0,1593878401.0,0.5",  # video 7: never in big_matrix
        "9,1,100,200,,,,0.5",
    ]  # user 9: never in big_matrix
    path = tmp_path / SMALL
    path.write_text("\n".join([header, *rows]) + "\n")
    known = pl.LazyFrame({"user_id": [0, 3], "video_id": [1, 2]}, schema={"user_id": pl.Int32, "video_id": pl.Int32})
    lazy, _ = loader.scan_interactions(path, schema.SMALL_MATRIX)
    with pytest.raises(KuaiRecDataError, match="1 user_id_unseen, 1 video_id_unseen") as caught:
        loader.require_known_ids(lazy, path, known)
    assert (caught.value.file, caught.value.column, caught.value.row, caught.value.value) == (
        str(path),
        "video_id",
        2,
        7,
    )
    assert "video 7 never appears in big_matrix.csv" in str(caught.value)

    lazy, _ = loader.scan_interactions(path, schema.SMALL_MATRIX, on_invalid="drop")
    kept, dropped = loader.require_known_ids(lazy, path, known, on_invalid="drop")
    assert kept.collect()["video_id"].to_list() == [1]
    assert dropped == {"user_id_unseen": 1, "video_id_unseen": 1}
    assert loader.require_known_ids(lazy, path, pl.LazyFrame({"user_id": [0, 9], "video_id": [1, 7]}))[1] == {}
