"""Check the repository against the book's safety rules, in its code and in every text file.

ruff's flake8-bandit rules (`S`, configured in pyproject.toml) are the general security
lint. This script adds the book's own rules, read from the code's syntax tree, so that a
call written across lines, through an import alias or with `**{...}` is seen, and a string
or a comment that only names it is not: `trust_remote_code` set to anything but False;
`torch.load` without `weights_only=True`; unpickling (`pickle`, `dill`, `cloudpickle`,
`joblib.load`, `pandas.read_pickle`, `shelve.open`, `numpy.load(allow_pickle=True)`).
Notebooks are read cell by cell, as one program: line magics and shell lines are skipped,
a `%%writefile` script is parsed as the Python it is; a cell that cannot be parsed fails.
Every text file (prose and notebook Markdown too) is also read line by line for absolute
paths of someone's machine and for tokens and private keys. It reads the files git tracks
(and new files not yet ignored), or the files named.

Usage: python tools/policy.py [FILE ...]
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKED_SUFFIXES = {".py", ".ipynb", ".md", ".yml", ".yaml", ".toml", ".txt", ".sh", ".cfg"}
# The line rules themselves, and the tests that feed them bad examples, name what they forbid.
TEXT_RULES_EXEMPT = {"tools/policy.py", "tests/test_policy.py"}

REMOTE_CODE = "trusts remote code"
TORCH_LOAD = "torch.load without weights_only=True"
UNPICKLE = "unpickles a file"
UNPARSED = "cannot be parsed as Python, so the safety check cannot read it"

REMOTE_KEY = "trust_remote_code"
TORCH_LOADERS = {"torch.load", "torch.serialization.load"}
UNPICKLERS = {
    f"{module}.{function}"
    for module in ("pickle", "_pickle", "cPickle", "dill", "cloudpickle")
    for function in ("load", "loads", "Unpickler")
} | {"joblib.load", "pandas.read_pickle", "shelve.open"}
NUMPY_LOADERS = {"numpy.load"}  # unpickles only with allow_pickle=True
CONVENTIONAL_ALIASES = {"np": "numpy", "pd": "pandas"}  # when the import is in another file

# Cell magics whose body runs as Python (`%%writefile` only when it writes a .py file).
PYTHON_CELL_MAGICS = {"time", "timeit", "capture", "prun"}
# A line magic, a shell line or an assignment from one (`files = !ls`); not `!=` or `% x`.
MAGIC_LINE = re.compile(r"^(\s*)(?:\w+\s*=\s*)?(?:%{1,2}[A-Za-z]|!(?!=))")

LINE_RULES: list[tuple[str, re.Pattern[str]]] = [
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
    git = shutil.which("git")
    if git is None:
        raise SystemExit("error: policy.py lists the repository's files with git; install git")
    listing = subprocess.run(
        [git, "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return [ROOT / name for name in listing if (ROOT / name).is_file()]


def imported_names(trees: list[ast.AST]) -> dict[str, str]:
    """Return what each imported name stands for (`pkl` -> `pickle`, `load` -> `torch.load`)."""
    names = dict(CONVENTIONAL_ALIASES)
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        names[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".")[0]
                        names[top] = top
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def qualified_name(node: ast.AST, names: dict[str, str]) -> str | None:
    """Return the dotted name a call's function stands for, or None (a call of a call, say)."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(names.get(node.id, node.id))
    return ".".join(reversed(parts))


def _is_off(node: ast.AST) -> bool:
    """Return whether `node` is the literal False or None."""
    return isinstance(node, ast.Constant) and (node.value is False or node.value is None)


def _is_true(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _keyword(call: ast.Call, name: str) -> ast.keyword | None:
    return next((k for k in call.keywords if k.arg == name), None)


def _names_remote_key(node: ast.AST) -> bool:
    """Return whether an assignment target is `x["trust_remote_code"]` or `x.trust_remote_code`."""
    if isinstance(node, ast.Subscript):
        key = node.slice
        return isinstance(key, ast.Constant) and key.value == REMOTE_KEY
    return isinstance(node, ast.Attribute) and node.attr == REMOTE_KEY


def _call_findings(call: ast.Call, names: dict[str, str]) -> Iterator[str]:
    if any(k.arg == REMOTE_KEY and not _is_off(k.value) for k in call.keywords):
        yield REMOTE_CODE
    function = qualified_name(call.func, names)
    if function in ("setattr", "setdefault") or (function or "").endswith(".setdefault"):
        args = call.args
        for key, value in zip(args, args[1:], strict=False):
            if isinstance(key, ast.Constant) and key.value == REMOTE_KEY and not _is_off(value):
                yield REMOTE_CODE
    if function in TORCH_LOADERS:
        weights_only = _keyword(call, "weights_only")
        if weights_only is None or not _is_true(weights_only.value):
            yield TORCH_LOAD
    if function in UNPICKLERS:
        yield UNPICKLE
    if function in NUMPY_LOADERS:
        allow_pickle = _keyword(call, "allow_pickle")
        if allow_pickle is not None and not _is_off(allow_pickle.value):
            yield UNPICKLE


def code_findings(tree: ast.AST, names: dict[str, str]) -> list[tuple[int, str]]:
    """Return (line, message) for each call or setting in `tree` that breaks a code rule."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            found += [(node.lineno, message) for message in _call_findings(node, names)]
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == REMOTE_KEY:
                    if not _is_off(value):
                        found.append((node.lineno, REMOTE_CODE))
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(_names_remote_key(t) for t in targets):
                if node.value is None or not _is_off(node.value):
                    found.append((node.lineno, REMOTE_CODE))
    return found


def python_of_cell(source: str) -> str | None:
    """Return a code cell's source as Python, magics blanked, line numbers kept.

    Returns None for a cell magic whose body is not Python (`%%bash`, `%%html`, ...).
    """
    lines = source.splitlines()
    if lines and lines[0].startswith("%%"):
        magic, *arguments = lines[0][2:].split()
        writes_python = magic == "writefile" and arguments and arguments[-1].endswith(".py")
        if magic not in PYTHON_CELL_MAGICS and not writes_python:
            return None
        lines[0] = ""
    return "\n".join(
        match.group(1) + "pass" if (match := MAGIC_LINE.match(line)) else line for line in lines
    )


def _parse(code: str) -> ast.AST | SyntaxError:
    try:
        return ast.parse(code)
    except SyntaxError as error:
        return error


def _units(path: Path) -> Iterator[tuple[str, str, str | None]]:
    """Yield (where, text, python) per unit: the whole file, or each notebook cell.

    `python` is the code the syntax tree is built from, or None for prose.
    """
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".ipynb":
        for index, cell in enumerate(json.loads(text).get("cells", [])):
            source = cell.get("source", "")
            source = "".join(source) if isinstance(source, list) else source
            python = python_of_cell(source) if cell.get("cell_type") == "code" else None
            yield f"cell {index} ", source, python
    else:
        yield "", text, text if path.suffix == ".py" else None


def violations(path: Path, name: str) -> list[str]:
    """Return one message per rule broken in `path` (shown as `name`), by line."""
    try:
        units = list(_units(path))
    except json.JSONDecodeError as error:
        return [f"{name}: not a valid notebook ({error.msg}), so it cannot be checked"]
    trees = [_parse(python) if python is not None else None for _, _, python in units]
    names = imported_names([tree for tree in trees if isinstance(tree, ast.AST)])
    found = []
    for (where, text, _), tree in zip(units, trees, strict=True):
        lines = text.splitlines()
        findings: list[tuple[int, str]] = []
        if isinstance(tree, SyntaxError):
            findings.append((tree.lineno or 1, f"{UNPARSED} ({tree.msg})"))
        elif tree is not None:
            findings += code_findings(tree, names)
        if name not in TEXT_RULES_EXEMPT:
            for number, line in enumerate(lines, start=1):
                findings += [(number, message) for message, rule in LINE_RULES if rule.search(line)]
        for number, message in sorted(set(findings)):
            shown = lines[number - 1].strip()[:120] if 0 < number <= len(lines) else ""
            found.append(f"{name}:{where}line {number}: {message}: {shown}")
    return found


def main(argv: list[str] | None = None) -> int:
    paths = [Path(p).resolve() for p in (argv if argv is not None else sys.argv[1:])]
    paths = paths or tracked_files()
    found = []
    for path in paths:
        name = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
        if path.suffix in CHECKED_SUFFIXES and path.is_file():
            found += violations(path, name)
    for message in found:
        print(message)
    print(f"policy: {len(paths)} files read, {len(found)} problems")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
