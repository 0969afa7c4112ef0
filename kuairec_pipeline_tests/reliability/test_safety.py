"""Nothing unsafe: no eval/exec and no unpickling of anything read from disk (a static scan of the source, then the
loaders fed files that would run code if unpickled), and the web UI listens on 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from dagster import build_input_context, build_output_context
from upath import UPath

from kuairec_pipeline.models.linear import LinearRecommender
from kuairec_pipeline.models.two_tower import TwoTowerRecommender
from kuairec_pipeline.orchestration.io_managers import NumpyIOManager
from kuairec_pipeline_tests.builders import (
    REPO,
    Baseline,
)

SCANNED = [REPO / "kuairec_pipeline", REPO / "benchmarks", REPO / "scripts"]
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal", "jsonpickle"}
UNSAFE_CALLS = {"eval", "exec"}
UNSAFE_METHODS = {"read_pickle", "to_pickle", "unsafe_load", "full_load"}


# ---- the static scan ------------------------------------------------------------------------------------------


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_constant(node: ast.expr | None, value: object) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def unsafe_uses(source: str, filename: str = "<source>") -> list[str]:
    """Every unsafe construct in ``source``: eval/exec, a pickle-like module, ``allow_pickle`` not literally False,
    ``np.load`` without ``allow_pickle=False``, ``torch.load`` without ``weights_only=True``, pickle readers and
    ``yaml.load`` without a safe loader."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        where = f"{filename}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [alias.name for alias in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                if name and name.split(".")[0] in UNSAFE_MODULES:
                    found.append(f"{where}: imports {name}")
        if not isinstance(node, ast.Call):
            continue
        function = _dotted(node.func)
        short = function.rsplit(".", 1)[-1]
        if function in UNSAFE_CALLS or function in {f"builtins.{name}" for name in UNSAFE_CALLS}:
            found.append(f"{where}: calls {function}()")
        if short in UNSAFE_METHODS:
            found.append(f"{where}: calls {function}()")
        allow_pickle = _keyword(node, "allow_pickle")
        if allow_pickle is not None and not _is_constant(allow_pickle, False):
            found.append(f"{where}: allow_pickle is not False")
        if function in {"np.load", "numpy.load"} and not _is_constant(allow_pickle, False):
            found.append(f"{where}: {function}() without allow_pickle=False")
        if function == "torch.load" and not _is_constant(_keyword(node, "weights_only"), True):
            found.append(f"{where}: torch.load() without weights_only=True")
        if function == "yaml.load" and "Safe" not in ast.unparse(_keyword(node, "Loader") or ast.Constant(None)):
            found.append(f"{where}: yaml.load() without a safe Loader")
    return found


def test_the_scan_finds_each_unsafe_construct() -> None:
    snippet = "\n".join(
        [
            "import pickle",
            "from joblib import load",
            "eval('1')",
            "exec('x = 1')",
            "builtins.eval('1')",
            "np.load(f)",
            "np.load(f, allow_pickle=True)",
            "numpy.load(f, allow_pickle=flag)",
            "torch.load(f)",
            "torch.load(f, weights_only=False)",
            "pd.read_pickle(f)",
            "yaml.load(f)",
            # and what is fine:
            "np.load(f, allow_pickle=False)",
            "torch.load(f, map_location='cpu', weights_only=True)",
            "model.eval()",
            "pl.col('tags').list.eval(pl.element() + 1)",
            "yaml.load(f, Loader=yaml.SafeLoader)",
        ]
    )
    flagged_lines = {int(use.split(":")[1]) for use in unsafe_uses(snippet)}
    assert flagged_lines == set(range(1, 13)), unsafe_uses(snippet)


def test_no_eval_exec_or_pickle_in_the_source() -> None:
    files = [path for folder in SCANNED for path in sorted(folder.rglob("*.py"))]
    assert len(files) > 20
    found = [use for path in files for use in unsafe_uses(path.read_text(), str(path.relative_to(REPO)))]
    assert found == []


# ---- behaviour: files that would run code if unpickled ---------------------------------------------------------


class RunsCodeWhenUnpickled:
    """Unpickling this creates a file: the proof that a loader ran code from the data it read."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _npz_with_object_array(path: Path, marker: Path) -> Path:
    payload = np.empty(1, dtype=object)
    payload[0] = RunsCodeWhenUnpickled(marker)
    with open(path, "wb") as handle:
        np.savez(handle, weights=np.zeros(3, dtype=np.float32), payload=payload)  # np.savez pickles object arrays
    return path


def test_numpy_io_manager_refuses_an_object_array(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    path = _npz_with_object_array(tmp_path / "als_factors.npz", marker)
    manager = NumpyIOManager(base_path=UPath(tmp_path))
    with pytest.raises(ValueError, match="allow_pickle=False"):
        manager.load_from_path(build_input_context(), UPath(path))
    assert not marker.exists()
    # and none is ever written: the write path refuses object arrays before pickle could be needed
    with pytest.raises(TypeError, match="dtype object"):
        manager.dump_to_path(
            build_output_context(asset_key="als_factors"),
            {"payload": np.empty(1, dtype=object)},
            UPath(tmp_path / "written.npz"),
        )
    assert not (tmp_path / "written.npz").exists()


def test_recommender_load_refuses_an_object_array(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    path = _npz_with_object_array(tmp_path / "model.npz", marker)
    with pytest.raises(ValueError, match="allow_pickle=False"):
        LinearRecommender.load(path)
    assert not marker.exists()


@pytest.mark.slow
def test_two_tower_load_weights_refuses_pickled_objects(baseline: Baseline, tmp_path: Path) -> None:
    with np.load(baseline.home / "assets" / "two_tower_embeddings.npz", allow_pickle=False) as stored:
        model = TwoTowerRecommender.from_bundle({name: stored[name] for name in stored.files})
    good = model.save_weights(tmp_path / "good.pt")
    model.load_weights(good)  # a state dict of tensors loads

    marker = tmp_path / "code-ran"
    state = dict(model.network.state_dict())
    evil = tmp_path / "evil.pt"
    torch.save({**state, "extra": RunsCodeWhenUnpickled(marker)}, evil)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        model.load_weights(evil)
    assert not marker.exists()


# ---- the web UI -----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_no_project_file_configures_a_public_bind() -> None:
    files = [
        REPO / "README.md",
        REPO / "workspace.yaml",
        REPO / "dagster.yaml",
        *sorted((REPO / "scripts").glob("*")),
        *sorted((REPO / ".ci").glob("*")),
    ]
    for path in files:
        if path.is_file():
            text = path.read_text()
            assert "0.0.0.0" not in text and "--host ::" not in text and "-h ::" not in text, path
