"""Execute every notebook twice on this machine: time the suite, and check it is reproducible.

Each run copies notebooks/ to a fresh temporary folder and executes every notebook
with nbclient, one after another. The first run gives `notebook_suite_s` and
`notebook_<name>_s`. Then every printed line of the two runs is compared, with only
durations and throughputs masked (they vary from run to run); any other difference,
such as a metric that changed, is printed and makes the script fail.

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
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
# A number followed by a unit of time or rate, or a tqdm progress bar: these may differ.
VOLATILE = re.compile(
    r"\d+(?:\.\d+)?(?:e[-+]?\d+)?\s*(?:ms|µs|us|ns|s|sec|seconds|minutes|min|it/s|s/it|"
    r"samples/s|steps/s|GFLOP/s|TFLOP/s|FLOP/s)\b"
    r"|\d+%\|.*\||\[\d\d:\d\d<\d\d:\d\d.*\]"
)


def printed_lines(nb: nbformat.NotebookNode) -> list[str]:
    """Return every line the notebook printed or displayed as text, labelled by cell."""
    lines = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for output in cell.outputs:
            text = output.get("text") or output.get("data", {}).get("text/plain", "")
            for line in "".join(text).splitlines():
                lines.append(f"cell {index}: {VOLATILE.sub('<time>', line)}")
    return lines


def run_suite(notebooks: list[Path]) -> tuple[dict[str, float], dict[str, list[str]]]:
    """Execute the notebooks in a fresh copy of notebooks/; return times and printed lines."""
    times, printed = {}, {}
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "notebooks"
        shutil.copytree(ROOT / "notebooks", copy)
        for path in notebooks:
            nb = nbformat.read(copy / path.name, as_version=4)
            start = time.perf_counter()
            NotebookClient(nb, timeout=600, resources={"metadata": {"path": str(copy)}}).execute()
            times[path.stem] = round(time.perf_counter() - start, 2)
            printed[path.stem] = printed_lines(nb)
            print(f"  {path.name}: {times[path.stem]:.1f} s", file=sys.stderr, flush=True)
    return times, printed


def main() -> int:
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    print("first run:", file=sys.stderr)
    times, first = run_suite(notebooks)
    print("second run:", file=sys.stderr)
    _, second = run_suite(notebooks)
    differing = 0
    for name in first:
        diff = list(difflib.unified_diff(first[name], second[name], "run 1", "run 2", lineterm=""))
        if diff:
            differing += 1
            print(f"{name}: printed output differs between two runs:\n" + "\n".join(diff[:40]))
    figures = {"notebook_suite_s": round(sum(times.values()), 1)}
    figures |= {f"notebook_{name.replace('-', '_')}_s": t for name, t in times.items()}
    figures["notebooks_not_reproducible"] = differing
    print(json.dumps(figures))
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
