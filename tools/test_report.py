"""Print where the time of `make test` went: phases, notebooks, cells, test files, tests.

Reads what the run left behind: the phase times that `tools/timed.py` recorded, nbmake's
JUnit report and the executed notebooks in `.executed/` (each cell's start and end, which
nbclient stamps in its metadata), and pytest's JUnit reports of the unit tests and of the
page checks. Prints tables; prints nothing for a part whose record is missing.

Usage: python tools/test_report.py [--top N]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from xml.etree import ElementTree

import nbformat

ROOT = Path(__file__).resolve().parent.parent
TIMES = ROOT / "_build" / "test-times"
PHASES = TIMES / "phases.jsonl"
JUNIT_REPORTS = {"unit tests": TIMES / "unit.xml", "page checks": TIMES / "book-checks.xml"}
NOTEBOOK_JUNIT = ROOT / ".executed" / "nbmake-report.xml"
EXECUTED = ROOT / ".executed" / "notebooks"


def phases() -> list[tuple[str, float]]:
    """Return (phase, seconds) in the order the phases ran (the last run of each)."""
    if not PHASES.exists():
        return []
    latest: dict[str, float] = {}
    for line in PHASES.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        latest[record["phase"]] = record["seconds"]
    return list(latest.items())


def junit_cases(path: Path) -> list[tuple[str, str, float]]:
    """Return (file, test name, seconds) for every test case of a JUnit report."""
    if not path.exists():
        return []
    cases = []
    for case in ElementTree.parse(path).getroot().iter("testcase"):  # noqa: S314 (our own reports)
        file, classname = case.get("file"), case.get("classname", "")
        if classname.endswith(".ipynb"):  # nbmake: the test's name is the notebook's
            file = case.get("name", "")
        elif not file:  # pytest names the test module, dotted
            file = classname.replace(".", "/") + ".py"
        cases.append((file, case.get("name", ""), float(case.get("time", 0))))
    return cases


def cell_seconds(folder: Path = EXECUTED) -> list[tuple[str, int, float]]:
    """Return (notebook, cell index, seconds) for each executed code cell with timing stamps."""
    found = []
    for path in sorted(folder.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for index, cell in enumerate(nb.cells):
            stamps = cell.get("metadata", {}).get("execution", {})
            start, end = stamps.get("iopub.execute_input"), stamps.get("shell.execute_reply")
            if start and end:
                seconds = (_time(end) - _time(start)).total_seconds()
                found.append((path.name, index, seconds))
    return found


def _time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _table(title: str, rows: list[tuple[str, float]], total: bool = True) -> None:
    if not rows:
        return
    width = max(len(name) for name, _ in rows)
    print(f"\n{title}")
    for name, seconds in rows:
        print(f"  {name:<{width}}  {seconds:8.1f} s")
    if total:
        print(f"  {'total':<{width}}  {sum(s for _, s in rows):8.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=10, help="rows in the slowest-N tables")
    top = parser.parse_args().top
    print("== Where the time of make test went ==")
    _table("Phases", phases())
    notebooks = [(Path(f).name, s) for f, _, s in junit_cases(NOTEBOOK_JUNIT)]
    _table("Notebooks (nbmake)", sorted(notebooks))
    cells = sorted(cell_seconds(), key=lambda row: -row[2])[:top]
    _table(f"Slowest {top} notebook cells", [(f"{nb} cell {i}", s) for nb, i, s in cells], False)
    for label, report in JUNIT_REPORTS.items():
        cases = junit_cases(report)
        by_file: dict[str, float] = defaultdict(float)
        for file, _, seconds in cases:
            by_file[file] += seconds
        _table(f"Test files ({label})", sorted(by_file.items(), key=lambda row: -row[1]))
        slowest = sorted(cases, key=lambda row: -row[2])[:top]
        rows = [(f"{Path(file).name}::{name}", s) for file, name, s in slowest]
        _table(f"Slowest {top} tests ({label})", rows, False)


if __name__ == "__main__":
    main()
