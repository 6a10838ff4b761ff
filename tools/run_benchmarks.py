"""Run every benchmark script and collect their figures in `_build/bench/results.json`.

A benchmark is a script `benchmarks/NAME.py` that measures something and prints, as the
last line of its standard output, one flat JSON object of figures (names to numbers).
Each runs in its own process, one after another, so they do not compete for the cores.
The results file is one flat JSON object: every script's figures, plus `bench_NAME_s`,
the wall time of each script. Two scripts reporting the same figure is an error.
A script that fails (a check inside it, such as the reproducibility of the notebooks)
does not stop the others: its figures are kept when it printed them, and the run exits
with status 1 naming it. Naming scripts reruns only those and updates their figures in
an existing results file. The wall time of each phase of the last `make test` in this
clone (`_build/test-times/phases.jsonl`, written by tools/timed.py) is recorded too, as
`make_test_phases_s_<phase>`, so the build's own cost is tracked with the other figures.

Usage: python tools/run_benchmarks.py [NAME ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "_build" / "bench" / "results.json"
PHASES = ROOT / "_build" / "test-times" / "phases.jsonl"


def make_test_phases() -> dict[str, float]:
    """Return `make_test_phases_s_<phase>` for each phase of the last `make test` here."""
    if not PHASES.exists():
        print("no `make test` recorded in this clone: no make_test_phases_s figures")
        return {}
    records = [json.loads(line) for line in PHASES.read_text().splitlines() if line.strip()]
    return {f"make_test_phases_s_{r['phase'].replace('-', '_')}": r["seconds"] for r in records}


def figures_from(output: str, script: Path) -> dict[str, float]:
    """Parse the last line of a benchmark's output as a flat JSON object of numbers."""
    lines = output.strip().splitlines()
    try:
        figures = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError) as error:
        raise SystemExit(f"{script.name}: last output line is not a JSON object") from error
    if not isinstance(figures, dict):
        raise SystemExit(f"{script.name}: last output line is not a JSON object")
    for name, value in figures.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SystemExit(f"{script.name}: figure {name!r} is {value!r}, not a number")
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="benchmark names (default: all)")
    args = parser.parse_args()
    scripts = sorted((ROOT / "benchmarks").glob("*.py"))
    if args.names:
        scripts = [s for s in scripts if s.stem in args.names]
    if not scripts:
        raise SystemExit("error: no benchmark scripts found in benchmarks/")
    results: dict[str, float] = {}
    if args.names and RESULTS.exists():
        results = json.loads(RESULTS.read_text())
    failed, seen = [], set()
    for script in scripts:
        print(f"== {script.name}", flush=True)
        start = time.perf_counter()
        run = subprocess.run(
            [sys.executable, str(script)], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        elapsed = time.perf_counter() - start
        print(run.stdout, end="")
        if run.returncode != 0:
            failed.append(script.name)
            print(f"{script.name} failed with exit code {run.returncode}", flush=True)
            try:
                figures = figures_from(run.stdout, script)
            except SystemExit:
                continue
        else:
            figures = figures_from(run.stdout, script)
        for name, value in figures.items():
            if name in seen:
                raise SystemExit(f"{script.name}: figure {name!r} is already reported")
            seen.add(name)
            results[name] = value
        results[f"bench_{script.stem}_s"] = round(elapsed, 2)
    results.update(make_test_phases())
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"{len(results)} figures written to {RESULTS.relative_to(ROOT)}")
    if failed:
        print(f"error: failed: {', '.join(failed)} (see above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
