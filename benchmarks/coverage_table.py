"""Line coverage before and after, per module, from two saved outputs of
``pytest --cov=kuairec_pipeline --cov-report=term`` (pytest-cov's terminal table).

Usage: python benchmarks/coverage_table.py BEFORE.txt AFTER.txt --label-before main@cddd0a4 --label-after suite@HEAD
Prints a Markdown table: statements, missed lines and coverage per module for each run, drops first.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

# "kuairec_pipeline/x.py      120     14    88%" and the closing "TOTAL   4567   321   93%"
ROW = re.compile(
    r"^(?P<name>kuairec_pipeline\S*\.py|TOTAL)\s+(?P<stmts>\d+)\s+(?P<miss>\d+)\s+(?P<cover>\d+(?:\.\d+)?)%"
)


def read_table(path: Path) -> dict[str, tuple[int, int]]:
    """Module (or ``TOTAL``) -> (statements, missed lines), from a pytest-cov term report.

    Raises
    ------
    ValueError
        When the file holds no TOTAL row (not a coverage report, or a run that did not finish).
    """
    rows = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = ROW.match(line.strip())
        if match:
            rows[match["name"]] = (int(match["stmts"]), int(match["miss"]))
    if "TOTAL" not in rows:
        raise ValueError(f"{path}: no TOTAL row of a pytest-cov report")
    return rows


def percent(stmts: int, miss: int) -> float:
    return 100.0 * (stmts - miss) / stmts if stmts else 100.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--label-before", default="before")
    parser.add_argument("--label-after", default="after")
    args = parser.parse_args()
    before, after = read_table(args.before), read_table(args.after)
    names = sorted((set(before) | set(after)) - {"TOTAL"}) + ["TOTAL"]

    def cells(table: dict[str, tuple[int, int]], name: str) -> tuple[str, float | None]:
        if name not in table:
            return "| - | - | - ", None
        stmts, miss = table[name]
        return f"| {stmts} | {miss} | {percent(stmts, miss):.1f}% ", percent(stmts, miss)

    header = f"stmts ({args.label_before}) | missed | cover | stmts ({args.label_after}) | missed | cover"
    print(f"| module | {header} | change |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in names:
        left, old = cells(before, name)
        right, new = cells(after, name)
        change = f"{new - old:+.1f}" if old is not None and new is not None else "n/a"
        label = f"**{name}**" if name == "TOTAL" else f"`{name}`"
        print(f"| {label} {left}{right}| {change} |")


if __name__ == "__main__":
    main()
