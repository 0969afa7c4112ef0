"""The package's shape as docs/ARCHITECTURE.md "Layers" states it: no upward import, no import cycle, no module
over 400 lines; and the tests' shape: a test module imports shared helpers only from ``builders.py`` (or the model
contract), never from another test module or a conftest.

Imports are read from the source with ``ast`` (every ``import`` statement, function-level and ``TYPE_CHECKING``
ones included), never by importing the package, so a violation hidden in a rarely run function is still found.
A string that is exactly ``"module.path:Name"`` (``"kuairec_pipeline.models.als:ALSRecommender"``, what the model
registry hands to ``importlib``) counts as an import too; a bare dotted path in a string (a forkserver preload list,
a CLI argument) does not, as it is no dependency of the module that names it.
An import names the module it resolves to: ``from kuairec_pipeline.dataset import loader`` imports
``kuairec_pipeline.dataset.loader``; ``from kuairec_pipeline.dataset.loader import scan_interactions`` imports the
``kuairec_pipeline.dataset.loader`` package. Importing a submodule also runs its parents' ``__init__``, but that
is not counted as an edge: a package that re-exports its submodules would otherwise always be a cycle.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "kuairec_pipeline"
ARCHITECTURE_DOC = REPO / "docs" / "ARCHITECTURE.md"
MAX_LINES = 400
TEST_PACKAGE = "kuairec_pipeline_tests"
# What test modules may import from the test package: the shared builders, and the model contract (the test class
# every model's tests inherit, with the planted data it is checked on).
# rank_footprint: the callback each ddp_spawn rank unpickles, apart so that a rank does not import builders (dagster).
SHARED_TEST_MODULES = frozenset(
    {f"{TEST_PACKAGE}.builders", f"{TEST_PACKAGE}.models.contract", f"{TEST_PACKAGE}.scale.rank_footprint"}
)

# Known exceptions. Each entry names its reason; an entry that no longer applies fails the test, so these lists
# only shrink. Do not add to them: split the module or break the cycle instead.
KNOWN_CYCLES: dict[frozenset[str], str] = {}
LONG_MODULES: dict[str, str] = {
    # ruff format's wrapping took these past 400 lines (they were 383 and 315); the twin is calibrated and must stay
    # byte-identical for a seed, so they get split in a change of their own with the md5 check (issue 11).
    "kuairec_pipeline/dataset/synthetic/interactions.py": "487 lines after formatting; split with the twin's md5 check",
    "kuairec_pipeline/dataset/synthetic/side_files.py": "455 lines after formatting; split with the twin's md5 check",
}


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name
    imported: str  # dotted module name it resolves to
    line: int


def module_files(root: Path, package: str = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of ``root / package`` (a package is its ``__init__``)."""
    modules: dict[str, Path] = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _resolve(name: str, modules: Mapping[str, Path]) -> str:
    # ``import a.b.c`` and ``from a.b import c`` (c not a module) import the longest prefix that is a module.
    parts = name.split(".")
    while len(parts) > 1 and ".".join(parts) not in modules:
        parts.pop()
    return ".".join(parts)


def imports_of(module: str, path: Path, modules: Mapping[str, Path], package: str = PACKAGE) -> Iterator[Import]:
    """Every import of ``package`` in ``path``, resolved to module names (relative imports and dotted-path strings
    for ``importlib`` included)."""
    is_package = path.name == "__init__.py"
    dotted_path = re.compile(rf"{re.escape(package)}(?:\.\w+)+:\w+")
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and dotted_path.fullmatch(node.value):
            yield Import(module, _resolve(node.value.split(":")[0], modules), node.lineno)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == package or alias.name.startswith(package + "."):
                    yield Import(module, _resolve(alias.name, modules), node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source != package and not source.startswith(package + "."):
                continue
            for alias in node.names:
                candidate = f"{source}.{alias.name}"
                yield Import(module, candidate if candidate in modules else _resolve(source, modules), node.lineno)


def import_graph(root: Path, package: str = PACKAGE) -> list[Import]:
    modules = module_files(root, package)
    return [found for module, path in modules.items() for found in imports_of(module, path, modules, package)]


def read_layers(doc: Path) -> dict[str, tuple[int, str]]:
    """Top-level name (``dataset``, ``cli``, ``__init__``) -> (rank, layer label), from the doc's "Layers" table."""
    text = doc.read_text(encoding="utf-8")
    section = re.search(r"^## Layers\n(.*?)(?=^## )", text, re.MULTILINE | re.DOTALL)
    assert section, f'{doc} has no "## Layers" section'
    layers: dict[str, tuple[int, str]] = {}
    for row in re.finditer(r"^\| *(\d+) ([^|]+?) *\| *([^|]+?) *\|", section.group(1), re.MULTILINE):
        rank, label = int(row.group(1)), row.group(2).strip()
        names = re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", row.group(3))
        assert names, f"layer {rank} {label} of {doc} lists no module"
        for name in names:
            assert name not in layers, f"{name} is in two layers of {doc}"
            layers[name] = (rank, label)
    assert layers, f'no layer rows found in the "Layers" table of {doc}'
    return layers


def layer_of(module: str, layers: Mapping[str, tuple[int, str]]) -> tuple[int, str] | None:
    parts = module.split(".")
    return layers.get(parts[1] if len(parts) > 1 else "__init__")


def upward_imports(graph: list[Import], layers: Mapping[str, tuple[int, str]]) -> list[str]:
    problems = []
    for edge in graph:
        own, other = layer_of(edge.importer, layers), layer_of(edge.imported, layers)
        if own is not None and other is not None and other[0] > own[0]:
            problems.append(
                f"{edge.importer} (layer {own[0]} {own[1]}) imports {edge.imported} "
                f"(layer {other[0]} {other[1]}) at line {edge.line}"
            )
    return problems


def import_cycles(graph: list[Import]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    successors: dict[str, set[str]] = {}
    for edge in graph:
        if edge.imported != edge.importer:
            successors.setdefault(edge.importer, set()).add(edge.imported)
            successors.setdefault(edge.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[frozenset[str]] = []
    for start in sorted(successors):
        if start in index:
            continue
        work = [(start, iter(sorted(successors[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        cycles.append(frozenset(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(successors[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return cycles


def unshared_test_imports(graph: list[Import], shared: frozenset[str] = SHARED_TEST_MODULES) -> list[str]:
    """Imports of a test-package module that is not one of the ``shared`` modules (a test module or a conftest)."""
    return [
        f"{edge.importer} imports {edge.imported} at line {edge.line}: move the helper to builders.py"
        for edge in graph
        if edge.imported not in shared and edge.imported != edge.importer
    ]


def long_modules(root: Path, package: str = PACKAGE) -> dict[str, int]:
    """Repository-relative path -> line count, for every module over ``MAX_LINES`` lines."""
    counts = {
        path.relative_to(root).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for path in module_files(root, package).values()
    }
    return {path: count for path, count in counts.items() if count > MAX_LINES}


# --- the rules, on the real tree ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph() -> list[Import]:
    return import_graph(REPO)


@pytest.fixture(scope="module")
def layers() -> dict[str, tuple[int, str]]:
    return read_layers(ARCHITECTURE_DOC)


def test_every_module_is_in_a_layer(layers: dict[str, tuple[int, str]]) -> None:
    missing = sorted({module for module in module_files(REPO) if layer_of(module, layers) is None})
    assert not missing, f'modules in no layer of {ARCHITECTURE_DOC} "Layers" (add a row there): {missing}'


def test_no_module_imports_a_higher_layer(graph: list[Import], layers: dict[str, tuple[int, str]]) -> None:
    assert graph, "no import of the package found: the scan is broken"
    problems = upward_imports(graph, layers)
    assert not problems, "upward imports:\n" + "\n".join(problems)


def test_no_import_cycles(graph: list[Import]) -> None:
    found = set(import_cycles(graph))
    new = [sorted(cycle) for cycle in found if cycle not in KNOWN_CYCLES]
    assert not new, f"import cycles: {new}"
    gone = [sorted(cycle) for cycle in KNOWN_CYCLES if cycle not in found]
    assert not gone, f"these cycles are gone: remove them from KNOWN_CYCLES: {gone}"


def test_no_module_over_the_line_limit() -> None:
    found = long_modules(REPO)
    new = {path: count for path, count in found.items() if path not in LONG_MODULES}
    assert not new, f"modules over {MAX_LINES} lines (split them along their seams): {new}"
    gone = sorted(set(LONG_MODULES) - set(found))
    assert not gone, f"these modules are now within {MAX_LINES} lines: remove them from LONG_MODULES: {gone}"


# --- the checker itself, on a small made-up package: it must see what it claims to see ------------------------


def _write(root: Path, files: Mapping[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_test_modules_share_helpers_only_through_builders() -> None:
    problems = unshared_test_imports(import_graph(REPO, TEST_PACKAGE))
    assert not problems, problems


def test_checker_finds_a_test_module_importing_another(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "tests/__init__.py": "",
            "tests/builders.py": "",
            "tests/conftest.py": "from tests.builders import x\n",
            "tests/test_a.py": "from tests import builders\nfrom tests.test_b import helper\n",
            "tests/test_b.py": "def f():\n    from tests.conftest import y\n",
        },
    )
    found = unshared_test_imports(import_graph(tmp_path, "tests"), frozenset({"tests.builders"}))
    assert [problem.split(":")[0] for problem in found] == [
        "tests.test_a imports tests.test_b at line 2",
        "tests.test_b imports tests.conftest at line 2",
    ]


def test_checker_resolves_every_import_form(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/core.py": "",
            "pkg/low/__init__.py": "from pkg.low.parts import thing\n",
            "pkg/low/parts.py": "from . import sibling\nfrom .sibling import x\nfrom .. import core\n",
            "pkg/low/sibling.py": "x = 1\n",
            "pkg/high.py": (
                "import os\n"
                "import pkg.low.parts as parts\n"
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from pkg.low import sibling\n"
                "def later():\n    from pkg.low import thing\n    return thing\n"
                "LAZY = 'pkg.core:Thing'\n"
            ),
        },
    )
    graph = {(edge.importer, edge.imported) for edge in import_graph(tmp_path, "pkg")}
    assert graph == {
        ("pkg.low", "pkg.low.parts"),
        ("pkg.low.parts", "pkg.low.sibling"),
        ("pkg.low.parts", "pkg.core"),
        ("pkg.high", "pkg.low.parts"),
        ("pkg.high", "pkg.low.sibling"),  # under TYPE_CHECKING
        ("pkg.high", "pkg.low"),  # function-level, a name re-exported by the package
        ("pkg.high", "pkg.core"),  # a "module:Name" string, for importlib
    }


def test_checker_finds_upward_imports_cycles_and_long_modules(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/low.py": "def f():\n    from pkg import high\n",  # upward, and hidden in a function
            "pkg/high.py": "from pkg.low import f\n" + "x = 1\n" * MAX_LINES,
        },
    )
    graph = import_graph(tmp_path, "pkg")
    layers = {"__init__": (0, "core"), "low": (1, "low"), "high": (2, "high")}
    assert upward_imports(graph, layers) == ["pkg.low (layer 1 low) imports pkg.high (layer 2 high) at line 2"]
    assert import_cycles(graph) == [frozenset({"pkg.low", "pkg.high"})]
    assert long_modules(tmp_path, "pkg") == {"pkg/high.py": MAX_LINES + 1}


def test_layers_table_is_read_from_the_doc() -> None:
    layers = read_layers(ARCHITECTURE_DOC)
    assert (
        layers["settings"][0] == 0
        and layers["dataset"][0] == 1
        and layers["definitions"][0] == max(rank for rank, _ in layers.values())
    )
    assert layers["dataset"][0] < layers["features"][0] < layers["models"][0] < layers["evaluation"][0]
    assert layers["cli"] == layers["orchestration"] and layers["recommend"] == layers["evaluation"]
