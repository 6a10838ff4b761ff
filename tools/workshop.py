"""Write the workshop handouts: student notebooks without solutions, instructor notebooks with.

Student copies drop every cell tagged `solution` (nbconvert's `TagRemovePreprocessor`)
and keep the exercises and their checks, so learners can test their own answers.
The first student notebook opens with the pre-flight check
(`helpers.preflight`), so every laptop's first cell says whether it is ready, item by item.
Instructor copies keep everything. Both are written as Jupyter writes notebooks, outputs
stripped as in the repository, under `_build/workshop/`, each set also as a zip.

With `--language zh_CN` both sets are made from the Chinese notebooks (notebooks/zh/,
generated from the translation catalogues), with the notes in Chinese.

Usage: python tools/workshop.py [--language en|zh_CN] [--dest FOLDER]
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

PREFLIGHT_TAG = "preflight"
PREFLIGHT_NOTE = (
    "**Pre-flight check.** Run the next cell first. Each line is one thing this laptop needs: "
    "green `[ OK ]` is ready, yellow `[NOTE]` works with a remark, red `[FAIL]` says how to "
    "fix it. Tell your teacher about any red line."
)
# The notes of each edition, and where its notebooks are.
EDITIONS = {
    "en": {"notebooks": ROOT / "notebooks", "student": STUDENT_NOTE, "preflight": PREFLIGHT_NOTE},
    "zh_CN": {
        "notebooks": ROOT / "notebooks" / "zh",
        "student": (
            "**学生版。** 练习的答案已删去；每道练习仍附有检查单元格，你可以用它检验自己的答案。"
        ),
        "preflight": (
            "**课前检查。** 请先运行下一个单元格。每一行是这台笔记本电脑需要的一项：绿色 `[ OK ]` "
            "表示就绪，黄色 `[NOTE]` 表示可用但有说明，红色 `[FAIL]` 会告诉你如何修复。"
            "如有红色的行，请告诉老师。"
        ),
    },
}
PREFLIGHT_CODE = "from helpers import preflight\n\npreflight.run()"


def is_solution(cell: dict) -> bool:
    """Return whether a cell is an exercise solution."""
    return SOLUTION_TAG in cell.get("metadata", {}).get("tags", [])


def student_version(nb: dict, note_text: str = STUDENT_NOTE) -> nbformat.NotebookNode:
    """Return a copy of `nb` without solution cells, with a note under the title."""
    student = nbformat.from_dict(copy.deepcopy(nb))
    remover = TagRemovePreprocessor(remove_cell_tags={SOLUTION_TAG})
    student, _ = remover.preprocess(student, {})
    note = nbformat.v4.new_markdown_cell(note_text)
    if "id" in student.cells[0]:
        note.id = "student-copy-note"
    else:
        del note["id"]  # a notebook older than nbformat 4.5 has no cell ids
    student.cells.insert(1, note)
    return student


def with_preflight(nb: dict, note_text: str = PREFLIGHT_NOTE) -> nbformat.NotebookNode:
    """Return a copy of `nb` with the pre-flight check as its first code cell, under the notes.

    The check goes after the title and the Markdown cells that follow it (the student note),
    before the notebook's own setup cell, so it reports on a broken install before anything
    else fails.
    """
    checked = nbformat.from_dict(copy.deepcopy(nb))
    at = next(
        (i for i, cell in enumerate(checked.cells) if cell.cell_type == "code"), len(checked.cells)
    )
    note = nbformat.v4.new_markdown_cell(note_text)
    code = nbformat.v4.new_code_cell(PREFLIGHT_CODE, metadata={"tags": [PREFLIGHT_TAG]})
    for cell, cell_id in ((note, "preflight-note"), (code, "preflight-check")):
        if "id" in checked.cells[0]:
            cell.id = cell_id
        else:
            del cell["id"]
    checked.cells[at:at] = [note, code]
    return checked


def instructor_version(nb: dict) -> nbformat.NotebookNode:
    """Return a copy of `nb` with everything in it."""
    return nbformat.from_dict(copy.deepcopy(nb))


def first_student_version(nb: dict, language: str = "en") -> nbformat.NotebookNode:
    """Return the student copy of the first notebook: without solutions, with the pre-flight."""
    notes = EDITIONS[language]
    return with_preflight(student_version(nb, notes["student"]), notes["preflight"])


def write_set(notebooks: list[Path], folder: Path, transform, first=None) -> Path:
    """Write transformed copies of the notebooks (and scripts beside them); return the zip.

    `first`, when given, transforms the first notebook instead of `transform`.
    """
    if folder.exists():
        shutil.rmtree(folder)
    ignored = shutil.ignore_patterns("*.ipynb", ".*", "zh")  # scripts and data beside them
    shutil.copytree(ROOT / "notebooks", folder, ignore=ignored)
    for number, path in enumerate(notebooks):
        nb = nbformat.read(path, as_version=4)
        nbformat.write((first if number == 0 and first else transform)(nb), folder / path.name)
    return Path(shutil.make_archive(str(folder), "zip", folder.parent, folder.name))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--language", choices=sorted(EDITIONS), default="en")
    parser.add_argument("--dest", type=Path, help="default: _build/workshop, or workshop-zh_CN")
    args = parser.parse_args()
    suffix = "" if args.language == "en" else f"-{args.language}"
    args.dest = args.dest or ROOT / "_build" / f"workshop{suffix}"
    notes = EDITIONS[args.language]
    notebooks = sorted(notes["notebooks"].glob("*.ipynb"))
    if not notebooks:
        raise SystemExit(f"error: no notebooks in {notes['notebooks']}")
    sets = (
        (
            "student",
            lambda nb: student_version(nb, notes["student"]),
            lambda nb: first_student_version(nb, args.language),
        ),
        ("instructor", instructor_version, None),
    )
    for name, transform, first in sets:
        archive = write_set(notebooks, args.dest / name, transform, first)
        print(f"{name}: {len(notebooks)} notebooks in {args.dest / name} and {archive.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
