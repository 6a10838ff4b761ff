"""The build tools fail loudly and clearly: wrong Python, a failing notebook, no kit."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tools import execute_notebooks, run_benchmarks

ROOT = Path(__file__).resolve().parent.parent


def test_setup_refuses_a_python_that_is_not_3_11(tmp_path: Path):
    result = subprocess.run(
        ["bash", str(ROOT / "tools" / "setup_venv.sh"), str(tmp_path / "venv")],
        env={"PATH": "/usr/bin:/bin", "PYTHON": "/bin/false"},
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs Python 3.11" in lines[0]
    assert not (tmp_path / "venv").exists()


def test_rehearsal_refuses_a_folder_that_is_not_an_offline_kit(tmp_path: Path):
    result = subprocess.run(
        ["bash", str(ROOT / "tools" / "rehearse_offline_kit.sh"), str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 1
    assert "is not an offline kit: run `make offline-kit` first" in result.stderr


def test_a_failing_notebook_is_named_with_its_cell(tmp_path: Path, capfd):
    notebook = tmp_path / "99z-broken.ipynb"
    cells = [
        {
            "cell_type": "code",
            "id": "ok",
            "metadata": {},
            "outputs": [],
            "execution_count": None,
            "source": "x = 1",
        },
        {
            "cell_type": "code",
            "id": "bad",
            "metadata": {},
            "outputs": [],
            "execution_count": None,
            "source": "raise ValueError('this cell is broken on purpose')",
        },
    ]
    nb = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "cells": cells,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
    }
    notebook.write_text(json.dumps(nb))
    code = execute_notebooks.run_nbmake([notebook], workers=1, timeout=60)
    out = capfd.readouterr().out
    assert code != 0
    assert "99z-broken.ipynb" in out
    assert "this cell is broken on purpose" in out
    executed = execute_notebooks.nbformat.read(notebook, as_version=4)
    where = execute_notebooks.failure(executed)
    assert where == "cell 1: ValueError: this cell is broken on purpose"


def test_a_failing_benchmark_keeps_its_figures_and_the_others_run(tmp_path, monkeypatch, capsys):
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "a_check.py").write_text(
        "print('{\"suite_s\": 12.5}')\nraise SystemExit(1)\n"
    )
    (tmp_path / "benchmarks" / "b_speed.py").write_text("print('{\"speed\": 3}')\n")
    results = tmp_path / "results.json"
    monkeypatch.setattr(run_benchmarks, "ROOT", tmp_path)
    monkeypatch.setattr(run_benchmarks, "RESULTS", results)
    monkeypatch.setattr("sys.argv", ["run_benchmarks.py"])
    assert run_benchmarks.main() == 1
    figures = json.loads(results.read_text())
    assert figures["suite_s"] == 12.5 and figures["speed"] == 3
    assert "failed: a_check.py" in capsys.readouterr().err

    (tmp_path / "benchmarks" / "b_speed.py").write_text("print('{\"speed\": 4}')\n")
    monkeypatch.setattr("sys.argv", ["run_benchmarks.py", "b_speed"])
    assert run_benchmarks.main() == 0
    figures = json.loads(results.read_text())
    assert figures["speed"] == 4 and figures["suite_s"] == 12.5  # updated, others kept
