"""Finding the official KuaiRec files below a folder, by name (the archive unpacks to ``KuaiRec 2.0/data/``)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kuairec_pipeline.dataset.schema import ALL_FILES, REQUIRED_FILES, FileSchema
from kuairec_pipeline.errors import KuaiRecSourceError

OFFICIAL_FILE_NAMES = frozenset(file_schema.file_name for file_schema in ALL_FILES)

# Folders never searched: the twin's planted truth, hidden folders, macOS resource forks inside zips.
_SKIPPED_FOLDERS = frozenset({"_truth", "__MACOSX"})


@dataclass(frozen=True)
class KuaiRecFiles(Mapping[str, Path]):
    """The official files found below ``root``: file name (e.g. ``"big_matrix.csv"``) -> path."""

    root: Path
    paths: Mapping[str, Path] = field(default_factory=dict)

    def __getitem__(self, name: str | FileSchema) -> Path:
        return self.paths[_file_name(name)]

    def __iter__(self) -> Iterator[str]:
        return iter(self.paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str | FileSchema) and _file_name(name) in self.paths

    def get(self, name: str | FileSchema, default: Path | None = None) -> Path | None:  # type: ignore[override]
        return self.paths.get(_file_name(name), default)

    def require(self, name: str | FileSchema) -> Path:
        """The path of ``name``; KuaiRecSourceError if that file was not found."""
        file_name = _file_name(name)
        if file_name not in self.paths:
            raise KuaiRecSourceError(
                f"{file_name} was not found below {self.root} (found: {', '.join(sorted(self.paths)) or 'nothing'})"
            )
        return self.paths[file_name]


def _file_name(name: str | FileSchema) -> str:
    return name.file_name if isinstance(name, FileSchema) else name


def find_kuairec_files(root: str | os.PathLike[str]) -> KuaiRecFiles:
    """Find the official files by name anywhere below ``root`` (the archive unpacks to ``KuaiRec 2.0/data/``).

    ``_truth/`` folders, hidden folders and dot-files (temporary files) are ignored. Raises KuaiRecSourceError
    when a required file (``schema.REQUIRED_FILES``) is missing or a file name occurs twice.
    """
    root_path = Path(root).expanduser()
    if not root_path.is_dir():
        raise KuaiRecSourceError(f"{root_path} is not a folder holding the KuaiRec files")
    found: dict[str, list[Path]] = {}
    visited: set[Path] = set()
    for folder, subfolders, file_names in os.walk(root_path, followlinks=True):
        real = Path(folder).resolve()
        if real in visited:  # a symlink loop
            subfolders[:] = []
            continue
        visited.add(real)
        subfolders[:] = sorted(d for d in subfolders if d not in _SKIPPED_FOLDERS and not d.startswith("."))
        for name in file_names:
            if name in OFFICIAL_FILE_NAMES:
                found.setdefault(name, []).append(Path(folder) / name)
    duplicated = {name: paths for name, paths in found.items() if len(paths) > 1}
    if duplicated:
        listing = "; ".join(f"{name}: {', '.join(str(p) for p in paths)}" for name, paths in sorted(duplicated.items()))
        raise KuaiRecSourceError(
            f"more than one copy of a KuaiRec file below {root_path} ({listing}); point KUAIREC_SOURCE at the "
            "folder of one copy"
        )
    missing = [f.file_name for f in REQUIRED_FILES if f.file_name not in found]
    if missing:
        raise KuaiRecSourceError(
            f"required KuaiRec file(s) {', '.join(missing)} not found anywhere below {root_path} "
            f"(found: {', '.join(sorted(found)) or 'none of the official files'})"
        )
    return KuaiRecFiles(root_path, {name: paths[0] for name, paths in sorted(found.items())})
