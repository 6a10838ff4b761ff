"""On Colab, each notebook's setup cell installs the book's helpers and nothing else.

Colab is simulated: a `google.colab` module is put in `sys.modules`, and the setup
cell's Colab lines are transformed the way IPython does and run with a stand-in for
`get_ipython()` that records the `%pip` call instead of running it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
import types
from pathlib import Path

import pytest
from IPython.core.inputtransformer2 import TransformerManager

from tools import notebooks as hygiene

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
FRAMEWORKS = {"torch", "tensorflow", "tensorflow-cpu", "keras", "transformers", "jax"}


class RecordingShell:
    """Stands in for IPython's shell: records line magics instead of running them."""

    def __init__(self) -> None:
        self.magics: list[tuple[str, str]] = []

    def run_line_magic(self, name: str, line: str) -> None:
        self.magics.append((name, line))


def run_colab_lines(source: str, on_colab: bool, monkeypatch) -> list[tuple[str, str]]:
    """Run a setup cell's Colab lines as IPython would; return the magics they called."""
    block = source[: len(hygiene.Repository.from_config().colab_lines())]
    code = TransformerManager().transform_cell(block)
    if on_colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    shell = RecordingShell()
    exec(compile(code, "<setup cell>", "exec"), {"get_ipython": lambda: shell})
    return shell.magics


def setup_source(path: Path) -> str:
    nb = json.loads(path.read_text())
    cell = next(c for c in nb["cells"] if c["cell_type"] == "code")
    return hygiene.source(cell)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_setup_cell_installs_only_the_helpers_on_colab(path: Path, monkeypatch):
    repo = hygiene.Repository.from_config()
    magics = run_colab_lines(setup_source(path), on_colab=True, monkeypatch=monkeypatch)
    assert magics == [("pip", f'install -q "git+{repo.url}@{repo.branch}"')]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_setup_cell_installs_nothing_elsewhere(path: Path, monkeypatch):
    assert run_colab_lines(setup_source(path), on_colab=False, monkeypatch=monkeypatch) == []


def test_helpers_declare_no_framework():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {
        dep.split(";")[0].split("=")[0].split(">")[0].split("<")[0].strip().lower()
        for dep in project["dependencies"]
    }
    assert not names & FRAMEWORKS


def test_where_the_frameworks_are_installed_only_the_helpers_get_installed(tmp_path: Path):
    report = tmp_path / "report.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--quiet",
            "--no-index",
            "--no-build-isolation",
            "--report",
            str(report),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    installed = [item["metadata"]["name"] for item in json.loads(report.read_text())["install"]]
    assert installed == ["frameworks-book-helpers"]
