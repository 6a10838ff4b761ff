"""Write the workshop handouts: student notebooks without solutions, instructor notebooks with.

Student copies drop every cell tagged `solution` and keep the exercises and their
checks, so learners can test their own answers. Instructor copies keep everything. Both
are written with outputs stripped under `_build/workshop/`, each set also as a zip.

Usage: python tools/workshop.py [--dest _build/workshop]
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STUDENT_NOTE = (
    "**Student copy.** The solutions to the exercises are removed; each exercise still has "
    "its check, so you can test your own answer."
)


def is_solution(cell: dict) -> bool:
    """Return whether a cell is an exercise solution."""
    return "solution" in cell.get("metadata", {}).get("tags", [])


def student_version(nb: dict) -> dict:
    """Return a copy of `nb` without solution cells, with a note under the title."""
    student = copy.deepcopy(nb)
    student["cells"] = [cell for cell in student["cells"] if not is_solution(cell)]
    note = {"cell_type": "markdown", "metadata": {}, "source": STUDENT_NOTE}
    if "id" in student["cells"][0]:
        note["id"] = "student-copy-note"
    student["cells"].insert(1, note)
    return student


def write_set(notebooks: list[Path], folder: Path, transform) -> Path:
    """Write transformed copies of the notebooks (and scripts beside them); return the zip."""
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(ROOT / "notebooks", folder, ignore=shutil.ignore_patterns("*.ipynb", ".*"))
    for path in notebooks:
        nb = json.loads(path.read_text(encoding="utf-8"))
        text = json.dumps(transform(nb), indent=1, ensure_ascii=False) + "\n"
        (folder / path.name).write_text(text, encoding="utf-8")
    return Path(shutil.make_archive(str(folder), "zip", folder.parent, folder.name))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=ROOT / "_build" / "workshop")
    args = parser.parse_args()
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    for name, transform in (("student", student_version), ("instructor", copy.deepcopy)):
        archive = write_set(notebooks, args.dest / name, transform)
        print(f"{name}: {len(notebooks)} notebooks in {args.dest / name} and {archive.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
