"""Run one step of `make test` and record its wall time for the timing report.

Usage: python tools/timed.py PHASE COMMAND [ARG ...]

Appends `{"phase": PHASE, "seconds": S, "status": CODE}` as one JSON line to
`_build/test-times/phases.jsonl` and exits with the command's status. `make test` starts
the file afresh; `tools/test_report.py` prints it with the other timings at the end.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIMES = ROOT / "_build" / "test-times"
PHASES = TIMES / "phases.jsonl"


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        raise SystemExit(__doc__.splitlines()[2])
    phase, command = argv[0], argv[1:]
    start = time.perf_counter()
    status = subprocess.run(command).returncode  # noqa: S603 (the Makefile's own command)
    seconds = round(time.perf_counter() - start, 1)
    TIMES.mkdir(parents=True, exist_ok=True)
    with PHASES.open("a", encoding="utf-8") as stream:
        stream.write(json.dumps({"phase": phase, "seconds": seconds, "status": status}) + "\n")
    print(f"[time] {phase}: {seconds:.1f} s", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
