"""Check the repository against the book's safety and hygiene rules.

Fails, naming file and line, on: `trust_remote_code=True`; `torch.load` without
`weights_only=True`; unpickling (`pickle.load(s)`, `joblib.load`, `allow_pickle=True`);
absolute paths of someone's machine; tokens and private keys. It reads the files git
tracks (and new files not yet ignored), notebooks cell by cell.

Usage: python tools/policy.py [FILE ...]
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKED_SUFFIXES = {".py", ".ipynb", ".md", ".yml", ".yaml", ".toml", ".txt", ".sh", ".cfg"}
# The rules themselves, and the tests that feed them bad examples, name what they forbid.
EXEMPT = {"tools/policy.py", "tests/test_policy.py"}

RULES: list[tuple[str, re.Pattern[str]]] = [
    ("trusts remote code", re.compile(r"trust_remote_code\s*=\s*True")),
    (
        "torch.load without weights_only=True",
        re.compile(r"torch\.load\((?![^)]*weights_only=True)"),
    ),
    (
        "unpickles a file",
        re.compile(r"\bpickle\.loads?\(|\bjoblib\.load\(|allow_pickle\s*=\s*True"),
    ),
    (
        "absolute path of a local machine",
        re.compile(r"(?<![\w.])/(?:home|Users|root|work)/[\w.-]+|[A-Z]:\\\\Users\\\\"),
    ),
    (
        "looks like a secret",
        re.compile(
            r"\bhf_[A-Za-z0-9]{30,}|\bghp_[A-Za-z0-9]{30,}|\bAKIA[0-9A-Z]{16}\b"
            r"|-----BEGIN [A-Z ]*PRIVATE KEY-----|\bsk-[A-Za-z0-9]{32,}"
        ),
    ),
]


def tracked_files() -> list[Path]:
    """Return the files git tracks or would track (untracked but not ignored)."""
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return [ROOT / name for name in listing if (ROOT / name).is_file()]


def lines_of(path: Path) -> Iterator[tuple[str, str]]:
    """Yield (where, text) for each line; notebooks by cell and line."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".ipynb":
        for index, cell in enumerate(json.loads(text).get("cells", [])):
            source = cell.get("source", "")
            source = "".join(source) if isinstance(source, list) else source
            for number, line in enumerate(source.splitlines(), start=1):
                yield f"cell {index} line {number}", line
    else:
        for number, line in enumerate(text.splitlines(), start=1):
            yield f"line {number}", line


def violations(path: Path, name: str) -> list[str]:
    """Return one message per rule broken in `path` (shown as `name`)."""
    found = []
    for where, line in lines_of(path):
        for message, pattern in RULES:
            if pattern.search(line):
                found.append(f"{name}:{where}: {message}: {line.strip()[:120]}")
    return found


def main(argv: list[str] | None = None) -> int:
    paths = [Path(p).resolve() for p in (argv if argv is not None else sys.argv[1:])]
    paths = paths or tracked_files()
    found = []
    for path in paths:
        name = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
        if path.suffix in CHECKED_SUFFIXES and name not in EXEMPT:
            found += violations(path, name)
    for message in found:
        print(message)
    print(f"policy: {len(paths)} files read, {len(found)} problems")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
