"""Write the workshop handouts: student notebooks without solutions, instructor notebooks with.

Student copies drop every cell tagged `solution` (nbconvert's `TagRemovePreprocessor`)
and keep the exercises and their checks, so learners can test their own answers.
Instructor copies keep everything. Both are written as Jupyter writes notebooks, outputs
stripped as in the repository, under `_build/workshop/`, each set also as a zip.

Usage: python tools/workshop.py [--dest _build/workshop]
"""

from __future__ import annotations

import argparse
import copy
import shutil
import sys
from pathlib import Path

import nbformat
from nbconvert.preprocessors import TagRemovePreprocessor

ROOT = Path(__file__).resolve().parent.parent
SOLUTION_TAG = "solution"
STUDENT_NOTE = (
    "**Student copy.** The solutions to the exercises are removed; each exercise still has "
    "its check, so you can test your own answer."
)


def is_solution(cell: dict) -> bool:
    """Return whether a cell is an exercise solution."""
    return SOLUTION_TAG in cell.get("metadata", {}).get("tags", [])


def student_version(nb: dict) -> nbformat.NotebookNode:
    """Return a copy of `nb` without solution cells, with a note under the title."""
    student = nbformat.from_dict(copy.deepcopy(nb))
    remover = TagRemovePreprocessor(remove_cell_tags={SOLUTION_TAG})
    student, _ = remover.preprocess(student, {})
    note = nbformat.v4.new_markdown_cell(STUDENT_NOTE)
    if "id" in student.cells[0]:
        note.id = "student-copy-note"
    else:
        del note["id"]  # a notebook older than nbformat 4.5 has no cell ids
    student.cells.insert(1, note)
    return student


def instructor_version(nb: dict) -> nbformat.NotebookNode:
    """Return a copy of `nb` with everything in it."""
    return nbformat.from_dict(copy.deepcopy(nb))


def write_set(notebooks: list[Path], folder: Path, transform) -> Path:
    """Write transformed copies of the notebooks (and scripts beside them); return the zip."""
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(ROOT / "notebooks", folder, ignore=shutil.ignore_patterns("*.ipynb", ".*"))
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        nbformat.write(transform(nb), folder / path.name)
    return Path(shutil.make_archive(str(folder), "zip", folder.parent, folder.name))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=ROOT / "_build" / "workshop")
    args = parser.parse_args()
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    for name, transform in (("student", student_version), ("instructor", instructor_version)):
        archive = write_set(notebooks, args.dest / name, transform)
        print(f"{name}: {len(notebooks)} notebooks in {args.dest / name} and {archive.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
