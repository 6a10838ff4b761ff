"""Execute every notebook once with nbmake and hand the results to the book build.

The notebooks are copied to `.executed/`, so the repository's copies stay clean (nbmake
refuses any path inside a `_build` folder), and run there by nbmake, which names the
failing notebook and cell. Each notebook that ran cleanly is stored in the Jupyter Book
execution cache (`_build/.jupyter_cache`), keyed by its code, so the book build that
follows renders those outputs instead of running the notebook again. A cell may run for
`execute.timeout` seconds of `_config.yml`, the one per-cell timeout that the book build
(myst-nb) and every other run of the notebooks read too.

With `--reuse`, a run over every notebook is not repeated when nothing it depends on has
changed since the last run that passed: the notebooks, the helpers, the tools, the
configuration, the pinned packages and the Python version, hashed together into one key
(`make test` passes it; it says so, and `make notebooks` always runs them).

Usage: python tools/execute_notebooks.py [--workers N] [--reuse] [NOTEBOOK ...]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import nbformat
import yaml
from jupyter_cache import get_cache
from jupyter_cache.base import CacheBundleIn

ROOT = Path(__file__).resolve().parent.parent
STAGE = ROOT / ".executed"
CACHE = ROOT / "_build" / ".jupyter_cache"
JUNIT = STAGE / "nbmake-report.xml"
CONFIG = ROOT / "_config.yml"
PASSED = ROOT / "_build" / "test-times" / "notebooks-passed.json"
# What a notebook's run depends on, besides the notebooks themselves.
INPUTS = (
    "src",
    "tools",
    "_config.yml",
    "pyproject.toml",
    "requirements-lock.txt",
    "requirements-nodeps.txt",
)


def cell_timeout(config: Path = CONFIG) -> int:
    """Return the seconds a notebook cell may run: `execute.timeout` in `_config.yml`."""
    timeout = yaml.safe_load(config.read_text(encoding="utf-8"))["execute"]["timeout"]
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout <= 0:
        raise SystemExit(
            f"error: execute.timeout in {config} must be whole seconds, not {timeout!r}"
        )
    return timeout


def stage(sources: list[Path]) -> list[Path]:
    """Copy notebooks/ (with any scripts beside the notebooks) to the staging folder."""
    target = STAGE / "notebooks"
    if target.exists():
        shutil.rmtree(target)
    JUNIT.unlink(missing_ok=True)
    shutil.copytree(ROOT / "notebooks", target, ignore=shutil.ignore_patterns(".ipynb_*"))
    return [target / path.name for path in sources]


def run_nbmake(staged: list[Path], workers: int, timeout: int, junit: Path = JUNIT) -> int:
    """Run nbmake over the staged notebooks, writing their outputs back; return pytest's code.

    Each notebook's run time goes to the JUnit report `junit`.
    """
    command = [sys.executable, "-m", "pytest", "--nbmake", "--overwrite", f"--junitxml={junit}"]
    command += [f"--nbmake-timeout={timeout}", "-p", "no:cacheprovider", "-q", "--durations=0"]
    env = dict(os.environ)
    if workers > 1:
        command += ["-n", str(workers)]
        # Share the cores between the kernels instead of oversubscribing them.
        threads = str(max(1, (os.cpu_count() or 1) // workers))
        env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    paths = [str(path) for path in staged]
    return subprocess.run(command + paths, cwd=ROOT, env=env).returncode


def failure(nb: nbformat.NotebookNode) -> str | None:
    """Return where an executed notebook stopped ("cell N: error"), or None if it ran cleanly."""
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        errors = [out for out in cell.outputs if out.output_type == "error"]
        if errors:
            return f"cell {index}: {errors[0].ename}: {errors[0].evalue}"
        if cell.execution_count is None and cell.source.strip():
            return f"cell {index}: not executed (an earlier cell timed out or the kernel died)"
    return None


def run_times() -> dict[str, float]:
    """Return each notebook's execution time in seconds, by file name, from nbmake's report."""
    if not JUNIT.exists():
        return {}
    cases = ElementTree.parse(JUNIT).getroot().iter("testcase")
    return {
        Path(case.get("file") or case.get("name")).name: float(case.get("time")) for case in cases
    }


def cache_results(sources: list[Path], staged: list[Path]) -> int:
    """Store each cleanly executed notebook in the book's execution cache; return how many.

    The cache keeps each notebook's run time, which the book's run-time tables show. A
    notebook that failed is named with its failing cell instead.
    """
    cache = get_cache(str(CACHE))
    times = run_times()
    stored = 0
    for source, executed_path in zip(sources, staged, strict=True):
        executed = nbformat.read(executed_path, as_version=4)
        where = failure(executed)
        if where is not None:
            print(f"FAILED {os.path.relpath(source, ROOT)}, {where}")
            continue
        for cell in executed.cells:
            cell.metadata.pop("execution", None)  # timing stamps would change the cache key
        original = nbformat.read(source, as_version=4)
        if cache.create_hashed_notebook(executed)[1] != cache.create_hashed_notebook(original)[1]:
            raise SystemExit(f"{source}: executed copy differs from the source; not cached")
        data = {"execution_seconds": times[source.name]} if source.name in times else {}
        bundle = CacheBundleIn(executed, str(source.resolve()), data=data)
        cache.cache_notebook_bundle(bundle, check_validity=False, overwrite=True)
        stored += 1
    return stored


def inputs_key(sources: list[Path]) -> str:
    """Return the SHA-256 of everything the notebooks' results depend on (see INPUTS)."""
    digest = hashlib.sha256(f"{platform.python_version()} {sys.platform}".encode())
    files = list(sources)
    for name in INPUTS:
        path = ROOT / name
        files += (
            sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
            if path.is_dir()
            else [path]
        )
    for path in files:
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def reusable(sources: list[Path], key: str) -> bool:
    """Whether the last passing run had this key and the cache still holds every notebook."""
    if not PASSED.exists() or json.loads(PASSED.read_text()).get("key") != key:
        return False
    cache = get_cache(str(CACHE))
    for source in sources:
        try:
            cache.match_cache_notebook(nbformat.read(source, as_version=4))
        except KeyError:
            return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--workers", type=int, default=1, help="notebooks run in parallel")
    parser.add_argument("--reuse", action="store_true", help="skip a run whose inputs passed")
    args = parser.parse_args()
    every = sorted((ROOT / "notebooks").glob("*.ipynb"))
    sources = [p.resolve() for p in args.notebooks] or every
    if not sources:
        raise SystemExit("error: no notebooks found in notebooks/")
    key = inputs_key(every)
    if args.reuse and sources == every and reusable(sources, key):
        print(
            f"All {len(sources)} notebooks passed with exactly these inputs (key {key[:12]}); "
            "not run again. Their outputs come from the execution cache; `make notebooks` "
            "runs them."
        )
        return 0
    staged = stage(sources)
    code = run_nbmake(staged, args.workers, cell_timeout())
    stored = cache_results(sources, staged)
    print(f"{stored} of {len(sources)} executed notebooks stored in {CACHE.relative_to(ROOT)}")
    if code == 0 and sources == every and stored == len(every):
        PASSED.parent.mkdir(parents=True, exist_ok=True)
        PASSED.write_text(json.dumps({"key": key}) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
