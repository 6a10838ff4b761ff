"""Execute every notebook twice on this machine: time the suite, and check it is reproducible.

Each run copies notebooks/ to a fresh temporary folder and executes every notebook
with nbclient, one after another. The first run gives `notebook_suite_s` and
`notebook_<name>_s`. Then every line the two runs printed is compared, cell by cell.
What varies by nature is masked first: durations and throughputs, ports, temporary
folders, runs of spaces that align a column of timings, blank lines (a stream's lone
newline shows up in one run and not the other); lines are compared in sorted order,
because several processes print into one cell in no fixed order. Cells tagged
`timing` print figures derived from measured speed (a share of peak FLOP/s, a fitted
exponent) and are skipped, and counted. Any other difference, such as a loss or an
accuracy that changed, is printed and makes the script fail.

Prints one flat JSON object of figures on its last line (see tools/run_benchmarks.py).
"""

from __future__ import annotations

import difflib
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import yaml
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
TIMING_TAG = "timing"
# The one per-cell timeout of the book, set in _config.yml (execute.timeout).
CELL_TIMEOUT_S = yaml.safe_load((ROOT / "_config.yml").read_text())["execute"]["timeout"]
# What may differ between two runs, each with its stand-in.
VOLATILE = [
    # a number followed by a unit of time or rate, or a tqdm progress bar
    (
        re.compile(
            r"\d+(?:\.\d+)?(?:e[-+]?\d+)?\s*(?:ms|µs|us|ns|s|sec|seconds|minutes|min|it/s|s/it|"
            r"samples/s|steps/s|GFLOP/s|TFLOP/s|FLOP/s)\b"
            r"|\d+%\|.*\||\[\d\d:\d\d<\d\d:\d\d.*\]"
        ),
        "<time>",
    ),
    # a timing in a dict or JSON line: "train_seconds": 3.1, 'train_runtime': '16.9', ...
    (
        re.compile(r"(\w*(?:seconds|runtime|per_second)\w*['\"]?:\s*)['\"]?[\d.]+['\"]?"),
        r"\1<time>",
    ),
    (re.compile(r"(port[=:]\s*|127\.0\.0\.1:)\d+"), r"\1<port>"),  # free ports, picked anew
    (re.compile(r"/tmp/[\w.-]+"), "<tmp>"),  # temporary folders
    (re.compile(r"\s+"), " "),  # the padding that aligns a column of timings
]


def masked(line: str) -> str:
    """Return `line` with everything that may differ between two runs replaced."""
    for pattern, stand_in in VOLATILE:
        line = pattern.sub(stand_in, line)
    return line.strip()


def printed_lines(nb: nbformat.NotebookNode) -> tuple[list[str], int]:
    """Return the masked lines each cell printed, sorted within the cell, labelled by cell.

    Also return how many cells were skipped for their `timing` tag.
    """
    lines, skipped = [], 0
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if TIMING_TAG in cell.metadata.get("tags", []):
            skipped += 1
            continue
        cell_lines = []
        for output in cell.outputs:
            text = output.get("text") or output.get("data", {}).get("text/plain", "")
            cell_lines += [masked(line) for line in "".join(text).splitlines()]
        cell_lines = [line for line in cell_lines if line]  # a lone newline comes and goes
        lines += [f"cell {index}: {line}" for line in sorted(cell_lines)]
    return lines, skipped


def run_suite(
    notebooks: list[Path],
) -> tuple[dict[str, float], dict[str, list[str]], int]:
    """Execute the notebooks in a fresh copy of notebooks/.

    Return the times, the printed lines and the number of `timing` cells skipped.
    """
    times, printed, skipped = {}, {}, 0
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "notebooks"
        shutil.copytree(ROOT / "notebooks", copy)
        for path in notebooks:
            nb = nbformat.read(copy / path.name, as_version=4)
            start = time.perf_counter()
            NotebookClient(
                nb, timeout=CELL_TIMEOUT_S, resources={"metadata": {"path": str(copy)}}
            ).execute()
            times[path.stem] = round(time.perf_counter() - start, 2)
            printed[path.stem], skipped_here = printed_lines(nb)
            skipped += skipped_here
            print(f"  {path.name}: {times[path.stem]:.1f} s", file=sys.stderr, flush=True)
    return times, printed, skipped


def main() -> int:
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    print("first run:", file=sys.stderr)
    times, first, skipped = run_suite(notebooks)
    print("second run:", file=sys.stderr)
    _, second, _ = run_suite(notebooks)
    print(f"compared every printed line except those of {skipped} cells tagged {TIMING_TAG!r}")
    differing = 0
    for name in first:
        diff = list(difflib.unified_diff(first[name], second[name], "run 1", "run 2", lineterm=""))
        if diff:
            differing += 1
            print(f"{name}: printed output differs between two runs:\n" + "\n".join(diff[:40]))
    figures = {"notebook_suite_s": round(sum(times.values()), 1)}
    figures |= {f"notebook_{name.replace('-', '_')}_s": t for name, t in times.items()}
    figures["notebooks_not_reproducible"] = differing
    figures["notebook_timing_cells_skipped"] = skipped
    print(json.dumps(figures))
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
