"""Workshop handouts: no solution survives in the student copies; every solution passes."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import nbformat
import pytest

from tools import workshop

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def cell_text(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_student_copy_keeps_no_solution(path: Path):
    nb = json.loads(path.read_text())
    solutions = [cell_text(c) for c in nb["cells"] if workshop.is_solution(c)]
    student = workshop.student_version(nb)
    remaining = [cell_text(c) for c in student["cells"]]
    assert not any(workshop.is_solution(c) for c in student["cells"])
    for solution in solutions:
        assert solution.strip() not in remaining, f"{path.name}: a solution survived"
    kept = [cell_text(c) for c in nb["cells"] if not workshop.is_solution(c)]
    assert remaining[0] == kept[0] and remaining[2:] == kept[1:], "other cells must stay"


def test_chapter_notebooks_have_exercises_with_solutions():
    chapters = [p for p in NOTEBOOKS if not p.name.startswith("9")]
    for path in chapters:
        nb = json.loads(path.read_text())
        assert any(workshop.is_solution(c) for c in nb["cells"]), f"{path.name}: no solutions"


def test_handouts_are_written_and_zipped(tmp_path: Path, monkeypatch):
    monkeypatch.setattr("sys.argv", ["workshop.py", "--dest", str(tmp_path)])
    assert workshop.main() == 0
    for name in ("student", "instructor"):
        with zipfile.ZipFile(tmp_path / f"{name}.zip") as archive:
            names = {Path(n).name for n in archive.namelist()}
        assert {p.name for p in NOTEBOOKS} <= names


def test_only_cells_tagged_solution_are_removed():
    cells = [
        nbformat.v4.new_markdown_cell("# Title", id="title"),
        nbformat.v4.new_code_cell("answer = 1", id="a", metadata={"tags": ["solution", "x"]}),
        nbformat.v4.new_code_cell("hint = 1", id="b", metadata={"tags": ["solution-hint"]}),
        nbformat.v4.new_code_cell("check(answer)", id="c"),
    ]
    nb = nbformat.v4.new_notebook(cells=cells)
    student = workshop.student_version(nb)
    assert [c.id for c in student.cells] == ["title", "student-copy-note", "b", "c"]
    assert len(nb.cells) == 4, "the original notebook is left as it was"
    nbformat.validate(student)


def test_handouts_are_valid_notebooks_written_as_jupyter_writes_them(tmp_path: Path, monkeypatch):
    monkeypatch.setattr("sys.argv", ["workshop.py", "--dest", str(tmp_path)])
    assert workshop.main() == 0
    for name in ("student", "instructor"):
        for path in NOTEBOOKS:
            text = (tmp_path / name / path.name).read_text(encoding="utf-8")
            nb = nbformat.reads(text, as_version=4)
            nbformat.validate(nb)
            assert text == nbformat.writes(nb) + "\n", f"{name}/{path.name}"
            ids = [cell.id for cell in nb.cells]
            assert len(ids) == len(set(ids)), f"{name}/{path.name}: repeated cell ids"


@pytest.mark.book
def test_every_solution_passes_its_own_check():
    executed = sorted((ROOT / ".executed" / "notebooks").glob("*.ipynb"))
    if not executed:
        pytest.fail("no executed notebooks in .executed/: run `make notebooks` first")
    checked = 0
    for path in executed:
        nb = json.loads(path.read_text())
        for index, cell in enumerate(nb["cells"]):
            if not workshop.is_solution(cell):
                continue
            printed = "".join(cell_text({"source": o.get("text", "")}) for o in cell["outputs"])
            assert "correct" in printed.lower(), f"{path.name} cell {index}: no 'correct'"
            assert "not yet" not in printed.lower(), f"{path.name} cell {index}: {printed}"
            checked += 1
    assert checked > 0


def code_cells(nb: dict) -> list[dict]:
    return [cell for cell in nb["cells"] if cell["cell_type"] == "code"]


def test_the_first_student_notebook_opens_with_the_preflight_check(tmp_path: Path, monkeypatch):
    monkeypatch.setattr("sys.argv", ["workshop.py", "--dest", str(tmp_path)])
    assert workshop.main() == 0
    first, *others = NOTEBOOKS
    student = nbformat.read(tmp_path / "student" / first.name, as_version=4)
    original = nbformat.read(first, as_version=4)
    check, setup = code_cells(student)[:2]
    assert workshop.PREFLIGHT_TAG in check.metadata["tags"]
    assert cell_text(check) == "from helpers import preflight\n\npreflight.run()"
    assert cell_text(setup) == cell_text(code_cells(original)[0]), "the setup cell comes next"
    before = student.cells[student.cells.index(check) - 1]
    assert before.cell_type == "markdown" and "Pre-flight check" in cell_text(before)
    for path in [tmp_path / "student" / p.name for p in others] + [
        tmp_path / "instructor" / first.name
    ]:
        nb = nbformat.read(path, as_version=4)
        assert not any("preflight" in cell_text(c) for c in nb.cells), path.name


def test_the_preflight_cell_is_inserted_without_ids_in_old_notebooks():
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_markdown_cell("# T"), nbformat.v4.new_code_cell("x = 1")]
    )
    nb.nbformat_minor = 4
    for cell in nb.cells:
        del cell["id"]
    checked = workshop.with_preflight(nb)
    assert [cell_text(c) for c in checked.cells][2:] == [workshop.PREFLIGHT_CODE, "x = 1"]
    assert not any("id" in cell for cell in checked.cells)
    nbformat.validate(checked)
