"""The timing report of `make test` reads the records a run leaves: phases, JUnit, cell stamps."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat

from tools import test_report, timed

ROOT = Path(__file__).resolve().parent.parent


def test_timed_records_the_phase_and_keeps_the_exit_status(tmp_path, monkeypatch):
    monkeypatch.setattr(timed, "TIMES", tmp_path)
    monkeypatch.setattr(timed, "PHASES", tmp_path / "phases.jsonl")
    assert timed.main(["ok", sys.executable, "-c", "import time; time.sleep(0.2)"]) == 0
    assert timed.main(["fails", sys.executable, "-c", "raise SystemExit(3)"]) == 3
    records = [json.loads(line) for line in (tmp_path / "phases.jsonl").read_text().splitlines()]
    assert [(r["phase"], r["status"]) for r in records] == [("ok", 0), ("fails", 3)]
    assert 0.2 <= records[0]["seconds"] < 10


def test_junit_cases_name_test_files_and_notebooks(tmp_path):
    report = tmp_path / "r.xml"
    report.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.test_data" name="test_a" time="1.5"/>'
        '<testcase classname=".executed.notebooks.02a-tensors.ipynb"'
        ' name="02a-tensors.ipynb" time="9.25"/>'
        "</testsuite></testsuites>"
    )
    assert test_report.junit_cases(report) == [
        ("tests/test_data.py", "test_a", 1.5),
        ("02a-tensors.ipynb", "02a-tensors.ipynb", 9.25),
    ]


def test_cell_seconds_come_from_nbclients_stamps(tmp_path):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("1")
    cell.metadata["execution"] = {
        "iopub.execute_input": "2026-12-01T10:00:00.000000Z",
        "shell.execute_reply": "2026-12-01T10:00:02.500000Z",
    }
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), cell]
    nbformat.write(nb, tmp_path / "x.ipynb")
    assert test_report.cell_seconds(tmp_path) == [("x.ipynb", 1, 2.5)]


def test_the_report_runs_with_nothing_recorded():
    run = subprocess.run(
        [sys.executable, "tools/test_report.py"], cwd=ROOT, capture_output=True, text=True
    )
    assert run.returncode == 0 and "Where the time of make test went" in run.stdout
