"""Build the offline kit: a classroom with no internet, on Windows, macOS and Linux laptops.

The kit holds one wheelhouse per platform and Python version (``pip download
--only-binary=:all: --platform ... --python-version ... --implementation cp`` of the book's
pins, with the framework package each platform has), the pure-Python wheels they share
once, a wheel of the helpers, the data cache, the student and instructor notebooks, the
built HTML book, the book's source, ``setup.py`` (standard library only: a student runs it
with the Python they have) and ``kit.json``, a manifest with the size and SHA-256 of every
file, so a kit copied incompletely is caught before anything is installed.

pip evaluates environment markers (``platform_system == "Linux"``, ``platform_machine``)
against the machine it runs on, even with ``--platform``: on this Linux machine it asks for
torch's CUDA packages for a Mac and for ``tensorflow-cpu`` on macOS, where it does not
exist. Every pip run here for another platform therefore goes through ``MARKER_PIP``, which
gives pip's marker evaluation the target's environment and otherwise runs pip unchanged.

The kit serves the packages a student needs (requirements.txt less the book-building and
development tools in ``DEV_ONLY``), plus pytest and nbmake for the rehearsal.

Usage:
    python tools/offline_kit.py build [--platforms linux-x86_64 macos-arm64 windows-amd64]
        [--pythons 3.11 3.12] [--dest _build/offline-kit] [--zip per-platform|none]
        (after `make book`; --without-book builds it without the HTML book)
    python tools/offline_kit.py prove KIT      # dry-run install of every wheelhouse, offline
    python tools/offline_kit.py verify KIT     # every file against the manifest
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "_build"
MANIFEST = "kit.json"
KIT_FORMAT = 1
COMMON = "common"  # wheels/common: the wheels every platform shares (py3-none-any)
HELPERS_DIST = "frameworks-book-helpers"
# In requirements.txt for building and checking the book, not for a student's laptop.
DEV_ONLY = frozenset(
    {
        "jupyter-book",
        "jupyter-cache",
        "beautifulsoup4",
        "playwright",
        "nbstripout",
        "pytest-xdist",
        "ruff",
        "pre-commit",
    }
)
DEFAULT_PLATFORMS = ("linux-x86_64", "macos-arm64", "windows-amd64")
DEFAULT_PYTHONS = ("3.11", "3.12")
# Free disk a laptop needs: its wheels unpacked, times 1.3 for the compiled .pyc files and
# pip (on Linux with Python 3.11, 2,784 MiB unpacked made a 3,410 MiB venv: 1.22), plus 1 GB
# for the data cache (the converted chat model is 0.5 GB) and the notebooks' outputs.
DISK_PER_UNPACKED_BYTE = 1.3
DISK_FOR_DATA = 10**9

# pip, with its environment markers evaluated for the target platform (see the docstring).
# argv[1] is the JSON of marker values; the rest are pip's own arguments.
MARKER_PIP = """\
import json, sys
import pip._vendor.packaging.markers as markers
environment = markers.default_environment()
environment.update(json.loads(sys.argv[1]))
markers.default_environment = lambda: dict(environment)
from pip._internal.cli.main import main
sys.exit(main(sys.argv[2:]))
"""


def manylinux(arch: str, newest: int = 28) -> tuple[str, ...]:
    """Return the manylinux tags of glibc 2.5 to 2.`newest` for `arch`, newest first."""
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(newest, 4, -1)]
    legacy = {"x86_64": ("2014", "2010", "1"), "aarch64": ("2014",)}[arch]
    return (*tags, *(f"manylinux{name}_{arch}" for name in legacy))


@dataclass(frozen=True)
class Platform:
    """A kind of laptop: pip's platform tags for it and its environment markers."""

    name: str
    laptops: str
    tags: tuple[str, ...]
    markers: dict[str, str] = field(hash=False)


PLATFORMS = {
    p.name: p
    for p in (
        Platform(
            "linux-x86_64",
            "Linux on Intel or AMD, glibc 2.28 or newer (Ubuntu 20.04+, Debian 10+, Fedora 29+)",
            manylinux("x86_64"),
            {
                "sys_platform": "linux",
                "platform_system": "Linux",
                "platform_machine": "x86_64",
                "os_name": "posix",
            },
        ),
        Platform(
            "linux-aarch64",
            "Linux on 64-bit ARM, glibc 2.28 or newer",
            manylinux("aarch64"),
            {
                "sys_platform": "linux",
                "platform_system": "Linux",
                "platform_machine": "aarch64",
                "os_name": "posix",
            },
        ),
        Platform(
            "macos-arm64",
            "Macs with Apple silicon (M1 or later), macOS 14 or newer",
            ("macosx_14_0_arm64",),  # pip adds the older macOS versions and universal2
            {
                "sys_platform": "darwin",
                "platform_system": "Darwin",
                "platform_machine": "arm64",
                "os_name": "posix",
            },
        ),
        Platform(
            "macos-x86_64",
            "Macs with an Intel processor, macOS 12 or newer",
            ("macosx_12_0_x86_64",),
            {
                "sys_platform": "darwin",
                "platform_system": "Darwin",
                "platform_machine": "x86_64",
                "os_name": "posix",
            },
        ),
        Platform(
            "windows-amd64",
            "Windows 10 or 11 on Intel or AMD (64-bit)",
            ("win_amd64",),
            {
                "sys_platform": "win32",
                "platform_system": "Windows",
                "platform_machine": "AMD64",
                "os_name": "nt",
            },
        ),
    )
}


def wheelhouse_name(platform: str, python: str) -> str:
    """Return the wheelhouse folder name, e.g. ``linux-x86_64-cp311``."""
    return f"{platform}-cp{python.replace('.', '')}"


def check_python_version(python: str) -> str:
    """Return `python` if it reads as 3.N, or stop with a clear message."""
    if not re.fullmatch(r"3\.\d{1,2}", python):
        raise SystemExit(f"error: Python version {python!r} must read like 3.11")
    return python


def platform_of(name: str) -> Platform:
    """Return the platform called `name`, or stop naming the ones this tool knows."""
    try:
        return PLATFORMS[name]
    except KeyError:
        known = ", ".join(PLATFORMS)
        raise SystemExit(f"error: unknown platform {name!r}; known: {known}") from None


def marker_pip(platform: Platform, python: str) -> list[str]:
    """Return the command that runs pip with `platform`'s markers for Python `python` (X.Y.Z)."""
    minor = ".".join(python.split(".")[:2])
    values = dict(platform.markers, python_version=minor, python_full_version=python)
    values |= {"implementation_name": "cpython", "platform_python_implementation": "CPython"}
    return [sys.executable, "-c", MARKER_PIP, json.dumps(values)]


def target_options(platform: Platform, python: str) -> list[str]:
    """Return pip's options that select wheels for `platform` and CPython `python`."""
    options = ["--only-binary=:all:", "--implementation", "cp", "--python-version", python]
    for tag in platform.tags:
        options += ["--platform", tag]
    return options


def offline_env() -> dict[str, str]:
    """Return the environment for pip with no index and no configuration file at all."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}
    return env | {"PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1"}


def student_requirements(text: str) -> str:
    """Return requirements.txt without the development-only packages of `DEV_ONLY`."""
    kept = []
    for line in text.splitlines():
        name = re.split(r"[\s=<>!~;\[]", line.strip(), maxsplit=1)[0].lower()
        if name and not line.lstrip().startswith("#") and name in DEV_ONLY:
            continue
        kept.append(line)
    return "\n".join(kept) + "\n"


def missing_wheel(pip_output: str) -> str:
    """Return pip's words for the requirement it found no wheel for, or its last error."""
    found = re.findall(r"Could not find a version that satisfies the requirement (.+)", pip_output)
    if found:
        return found[0].split(" (from versions")[0].strip()
    conflict = re.search(r"The conflict is caused by:\n((?:    .+\n)+)", pip_output)
    if conflict:
        return "a conflict: " + "; ".join(line.strip() for line in conflict[1].splitlines())
    errors = [line for line in pip_output.splitlines() if line.startswith("ERROR:")]
    return errors[-1] if errors else "pip failed without an error line (see its log)"


def requires_python(wheel: Path) -> str:
    """Return the ``Requires-Python`` of a wheel's metadata ("" when it has none)."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        for line in archive.read(name).decode("utf-8", "replace").splitlines():
            if not line.strip():
                break  # the headers end at the first blank line
            if line.lower().startswith("requires-python:"):
                return line.split(":", 1)[1].strip()
    return ""


def oldest_patch(python: str, wheels: list[Path]) -> str:
    """Return the oldest X.Y.Z of Python `python` (X.Y) that every wheel's Requires-Python accepts.

    Raises:
        SystemExit: No X.Y.Z up to X.Y.99 satisfies them all.
    """
    from packaging.specifiers import SpecifierSet

    specifiers = [SpecifierSet(text) for wheel in wheels if (text := requires_python(wheel))]
    for patch in range(100):
        if all(f"{python}.{patch}" in spec for spec in specifiers):
            return f"{python}.{patch}"
    raise SystemExit(f"error: no Python {python}.Z satisfies the Requires-Python of the wheels")


def sha256_file(path: Path) -> str:
    """Return the SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def run_logged(command: list[str], log: Path, **kwargs) -> subprocess.CompletedProcess:
    """Run `command`, its output going to `log` (and returned); never raises on failure."""
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(f"$ {' '.join(command[:1] + command[3:])}\n{result.stdout}{result.stderr}")
    return result


def downloaded_files(pip_output: str) -> list[str]:
    """Return the names of the files pip download saved or found already there."""
    found = re.findall(r"^\s*(?:Saved|File was already downloaded) (.+?)\s*$", pip_output, re.M)
    return [Path(name).name for name in found]


def explain_failure(
    pip: list[str], options: list[str], output: str, env: dict[str, str] | None = None
) -> str:
    """Return which requirement has no wheel, from pip's output or by asking pip for each.

    pip reports a missing wheel deep in the tree as a conflict ("The user requested
    torch==2.13.0 ... (constraint) torch==2.13.0"); each requirement named in the conflict
    is then resolved alone, without dependencies, and the first without a wheel is named.
    """
    said = missing_wheel(output)
    if not said.startswith("a conflict"):
        return said
    named = re.findall(r"(?:The user requested(?: \(constraint\))?|depends on) ([^\s;]+)", said)
    with tempfile.TemporaryDirectory() as scratch:
        for requirement in dict.fromkeys(named):
            command = pip + ["install", "--dry-run", "--no-deps", "--target", scratch]
            probe = subprocess.run(
                command + options + [requirement], capture_output=True, text=True, env=env
            )
            if probe.returncode != 0:
                return requirement  # no wheel for it alone, whatever pip calls it
    return said


def link_or_copy(source: Path, target: Path) -> None:
    """Hard-link `source` to `target` (same disk), else copy it."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def resolution_key(kit: Path, platform: Platform, python: str) -> str:
    """Return a digest of everything a wheelhouse's resolution depends on but the index."""
    digest = hashlib.sha256(json.dumps([platform.tags, platform.markers, python]).encode())
    for name in ("requirements-kit.txt", "constraints.txt", "requirements-nodeps.txt"):
        digest.update((kit / name).read_bytes())
    return digest.hexdigest()


def download(
    kit: Path, cache: Path, platform: Platform, python: str, logs: Path, fresh: bool = False
) -> tuple[str | None, str]:
    """Download the wheelhouse of `platform` and Python `python` (X.Y) into the kit.

    pip downloads into `cache`, and the files it chose are linked into the kit, so the
    wheelhouse holds exactly them. The cache also records what each resolution chose: a
    later build with the same pins, platform and Python reuses it without asking pip again
    (unless `fresh`). Wheels are chosen for the newest X.Y (as X.Y.99); the oldest X.Y.Z
    that all of them accept (soupsieve 4.1.3, for one, needs 3.11.5) is what the
    wheelhouse serves, and what setup.py asks for.

    Returns:
        (why it cannot be served, or None; the oldest X.Y.Z it serves).
    """
    name = wheelhouse_name(platform.name, python)
    record = cache / f"{name}.json"
    key = resolution_key(kit, platform, python)
    files: list[Path] = []
    if not fresh and record.is_file():
        saved = json.loads(record.read_text())
        found = saved["files"] and all((cache / name / f).is_file() for f in saved["files"])
        if saved["key"] == key and found:
            files = [cache / name / f for f in saved["files"]]
            print(f"[kit]   {name}: the pins are unchanged, reusing the cached resolution")
    if not files:
        pip = marker_pip(platform, f"{python}.99") + ["download", "--progress-bar", "off"]
        pip += ["--dest", str(cache / name)] + target_options(platform, f"{python}.99")
        runs = (
            ["-r", str(kit / "requirements-kit.txt"), "-c", str(kit / "constraints.txt")],
            ["--no-deps", "-r", str(kit / "requirements-nodeps.txt")],
        )
        for number, requirements in enumerate(runs):
            log = logs / f"{name}-download-{number}.log"
            result = run_logged(pip + requirements, log)
            if result.returncode != 0:
                why = explain_failure(
                    marker_pip(platform, f"{python}.99"),
                    target_options(platform, f"{python}.99"),
                    result.stdout + result.stderr,
                )
                return f"no wheel for {why} (log: {log})", f"{python}.0"
            saved = downloaded_files(result.stdout)
            if number == 0 and not saved:  # pip's wording changed?
                raise SystemExit(f"error: pip downloaded nothing for {name}? (log: {log})")
            files += [cache / name / file for file in saved]
        record.write_text(json.dumps({"key": key, "files": sorted(p.name for p in files)}))
    folder = kit / "wheels" / name
    folder.mkdir(parents=True)
    for path in files:
        link_or_copy(path, folder / path.name)
    return None, oldest_patch(python, files)


LEGACY_MANYLINUX = {"2014": 17, "2010": 12, "1": 5}  # glibc 2.N of the legacy tags


def minimum_os(wheel_names: list[str]) -> list | None:
    """Return the oldest macOS or glibc every wheel accepts, as ["macos", [14, 0]], or None.

    A wheel's own minimum is the lowest of its platform tags; the wheelhouse's is the
    highest of those. Windows and pure-Python wheels have none.
    """
    needs: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for name in wheel_names:
        tags = name.removesuffix(".whl").split("-")[-1].split(".")
        mac = [(int(m[1]), int(m[2])) for t in tags if (m := re.match(r"macosx_(\d+)_(\d+)_", t))]
        glibc = []
        for tag in tags:
            if m := re.match(r"manylinux_2_(\d+)_", tag):
                glibc.append((2, int(m[1])))
            elif m := re.match(r"manylinux(2014|2010|1)_", tag):
                glibc.append((2, LEGACY_MANYLINUX[m[1]]))
        if mac:
            needs["macos"].append(min(mac))
        if glibc:
            needs["glibc"].append(min(glibc))
    for kind in ("macos", "glibc"):
        if needs[kind]:
            return [kind, list(max(needs[kind]))]
    return None


def unpacked_bytes(folder: Path) -> int:
    """Return the bytes the wheels of `folder` take once unpacked (what pip installs)."""
    total = 0
    for wheel in folder.glob("*.whl"):
        with zipfile.ZipFile(wheel) as archive:
            total += sum(info.file_size for info in archive.infolist())
    return total


def longest_member(folder: Path) -> int:
    """Return the longest path inside the wheels of `folder` (Windows' 260-character limit)."""
    longest = 0
    for wheel in folder.glob("*.whl"):
        with zipfile.ZipFile(wheel) as archive:
            longest = max([longest, *(len(n) for n in archive.namelist() if ".data/" not in n)])
    return longest


def share_pure_wheels(wheels: Path) -> None:
    """Move the pure-Python wheels found under several wheelhouses into wheels/common, once."""
    copies: dict[str, list[Path]] = defaultdict(list)
    for path in wheels.glob("*/*-none-any.whl"):
        if path.parent.name != COMMON:
            copies[path.name].append(path)
    (wheels / COMMON).mkdir(exist_ok=True)
    for name, paths in copies.items():
        if len({sha256_file(path) for path in paths}) != 1:
            continue  # same name, different bytes: each wheelhouse keeps its own
        target = wheels / COMMON / name
        if not target.exists():
            paths[0].rename(target)
        for path in paths:
            path.unlink(missing_ok=True)


def prove(kit: Path, name: str, logs: Path) -> tuple[bool, int, str]:
    """Dry-run the install of one wheelhouse with every index off, for its own platform.

    Returns:
        (resolved, packages that would be installed, what pip said last).
    """
    manifest = json.loads((kit / MANIFEST).read_text())
    house = manifest["wheelhouses"][name]
    platform, python = platform_of(house["platform"]), house["oldest_python"]
    links = ["--find-links", str(kit / "wheels" / COMMON), "--find-links", str(kit / house["path"])]
    pip = marker_pip(platform, python)
    total = 0
    runs = (
        ["-r", str(kit / "requirements-kit.txt"), "-c", str(kit / "constraints.txt")]
        + [str(kit / manifest["helpers_wheel"])],
        ["--no-deps", "-r", str(kit / "requirements-nodeps.txt")],
    )
    with tempfile.TemporaryDirectory() as scratch:
        for number, requirements in enumerate(runs):
            report = Path(scratch) / f"report-{number}.json"
            command = pip + ["install", "--dry-run", "--no-index", "--progress-bar", "off"]
            command += links + target_options(platform, python)
            command += ["--target", str(Path(scratch) / "target"), "--report", str(report)]
            log = logs / f"{name}-prove-{number}.log"
            result = run_logged(command + requirements, log, env=offline_env())
            if result.returncode != 0:
                options = ["--no-index"] + links + target_options(platform, python)
                why = explain_failure(pip, options, result.stdout + result.stderr, offline_env())
                return False, total, why
            total += len(json.loads(report.read_text())["install"])
    return True, total, "resolved"


def file_records(kit: Path) -> dict[str, list]:
    """Return {relative path: [size, sha256]} for every file of the kit but the manifest."""
    records = {}
    for path in sorted(kit.rglob("*")):
        if path.is_file() and path.name != MANIFEST:
            records[path.relative_to(kit).as_posix()] = [path.stat().st_size, sha256_file(path)]
    return records


def verify(kit: Path) -> list[str]:
    """Return the kit's files that are missing, truncated or altered against its manifest."""
    manifest = json.loads((kit / MANIFEST).read_text())
    problems = []
    for relative, (size, sha256) in manifest["files"].items():
        path = kit / relative
        if not path.is_file():
            problems.append(f"{relative} is missing")
        elif path.stat().st_size != size:
            problems.append(f"{relative} is {path.stat().st_size:,} bytes, expected {size:,}")
        elif sha256_file(path) != sha256:
            problems.append(f"{relative} has another SHA-256 than the manifest records")
    return problems


def folder_bytes(folder: Path) -> int:
    """Return the bytes of every file under `folder`."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def program(name: str) -> str:
    """Return the full path of the program `name` on PATH, or stop, naming it."""
    path = shutil.which(name)
    if path is None:
        raise SystemExit(f"error: the offline kit needs `{name}`; install it and run again")
    return path


def copy_handouts_and_book(kit: Path, with_book: bool) -> None:
    """Copy the source (git HEAD), its handouts, the HTML book, the web assets and the data.

    The student and instructor notebooks are written from the kit's own source, the commit
    the helpers' wheel is built from, so the notebooks and the helpers always match.
    """
    if with_book and not (BUILD / "html" / "index.html").exists():
        raise SystemExit("error: _build/html/index.html is missing: run `make book`")
    archive = subprocess.run([program("git"), "archive", "HEAD"], cwd=ROOT, capture_output=True)
    if archive.returncode != 0:
        raise SystemExit(f"error: git archive failed: {archive.stderr.decode().strip()}")
    (kit / "source").mkdir()
    subprocess.run(
        [program("tar"), "-x", "-C", str(kit / "source")], input=archive.stdout, check=True
    )
    # English handouts in student/ and instructor/, Chinese ones in student-zh_CN/ and
    # instructor-zh_CN/ (from the committed Chinese notebooks of the same source).
    for language, suffix in (("en", ""), ("zh_CN", "-zh_CN")):
        with tempfile.TemporaryDirectory() as handouts:
            workshop = [sys.executable, str(kit / "source" / "tools" / "workshop.py")]
            workshop += ["--language", language, "--dest", handouts]
            subprocess.run(workshop, check=True, stdout=subprocess.DEVNULL)
            for handout in ("student", "instructor"):
                shutil.move(Path(handouts) / handout, kit / f"{handout}{suffix}")
    if with_book:
        shutil.copytree(BUILD / "html", kit / "book")
    if (BUILD / "npm-packs").exists():  # MathJax and the widget manager, to rebuild the book
        shutil.copytree(BUILD / "npm-packs", kit / "npm-packs")
    cache = Path(os.environ.get("FRAMEWORKS_BOOK_DATA") or Path.home() / ".cache/frameworks-book")
    (kit / "data").mkdir()
    for name in ("sentiment-5.0.2.tgz", "mnist.npz", "sentiment_labelled_sentences.zip"):
        if (cache / name).is_file():  # the converted chat model is rebuilt on first use
            shutil.copy2(cache / name, kit / "data" / name)
    if not (kit / "data" / "sentiment-5.0.2.tgz").exists():
        raise SystemExit(f"error: {cache}/sentiment-5.0.2.tgz is missing: run `make data`")


def build_helpers_wheel(kit: Path, logs: Path) -> str:
    """Build the helpers' wheel from the kit's source into wheels/common; return its path."""
    folder = kit / "wheels" / COMMON
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--progress-bar", "off"]
    result = run_logged(command + ["-w", str(folder), str(kit / "source")], logs / "helpers.log")
    if result.returncode != 0:
        raise SystemExit(f"error: building the helpers' wheel failed (log: {logs}/helpers.log)")
    (wheel,) = folder.glob("frameworks_book_helpers-*.whl")
    shutil.rmtree(kit / "source" / "build", ignore_errors=True)
    for egg_info in (kit / "source").rglob("*.egg-info"):
        shutil.rmtree(egg_info)
    return wheel.relative_to(kit).as_posix()


def cell_timeout() -> int:
    """Return the one per-cell timeout of the book (execute.timeout in _config.yml)."""
    sys.path.insert(0, str(ROOT))
    from tools.execute_notebooks import cell_timeout as from_config

    return from_config()


def write_zips(kit: Path, served: list[str]) -> list[Path]:
    """Write one zip per platform: the kit without the other platforms' wheelhouses."""
    manifest = json.loads((kit / MANIFEST).read_text())
    zips = []
    for platform in served:
        others = {
            house["path"]
            for house in manifest["wheelhouses"].values()
            if house["platform"] != platform
        }
        target = kit.parent / f"{kit.name}-{platform}.zip"
        with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as bundle:  # wheels are zips
            for path in sorted(kit.rglob("*")):
                relative = path.relative_to(kit).as_posix()
                if not any(relative == o or relative.startswith(o + "/") for o in others):
                    bundle.write(path, Path(kit.name) / relative)
        zips.append(target)
    return zips


def build(args: argparse.Namespace) -> int:
    """Build the kit; return 1 when a platform asked for could not be served."""
    started = time.monotonic()
    platforms = [platform_of(name) for name in args.platforms]
    pythons = [check_python_version(python) for python in args.pythons]
    kit, logs = args.dest.resolve(), args.dest.resolve().parent / f"{args.dest.name}-logs"
    for folder in (kit, logs):
        if folder.exists():
            shutil.rmtree(folder)
    kit.mkdir(parents=True)
    copy_handouts_and_book(kit, with_book=not args.without_book)
    requirements = (ROOT / "requirements.txt").read_text()
    (kit / "requirements-kit.txt").write_text(student_requirements(requirements))
    shutil.copy2(ROOT / "requirements-lock.txt", kit / "constraints.txt")
    shutil.copy2(ROOT / "requirements-nodeps.txt", kit / "requirements-nodeps.txt")
    shutil.copy2(ROOT / "tools" / "kit_setup.py", kit / "setup.py")
    helpers_wheel = build_helpers_wheel(kit, logs)
    houses, unserved, seconds = {}, {}, {}
    for platform in platforms:
        for python in pythons:
            name = wheelhouse_name(platform.name, python)
            print(f"[kit] downloading {name} ...", flush=True)
            tick = time.monotonic()
            reason, oldest = download(kit, args.cache.resolve(), platform, python, logs, args.fresh)
            seconds[name] = round(time.monotonic() - tick)
            if reason:
                unserved[name] = reason
                print(f"[kit] cannot serve {platform.name} with Python {python}: {reason}")
            else:
                houses[name] = {
                    "platform": platform.name,
                    "laptops": platform.laptops,
                    "python": python,
                    "oldest_python": oldest,
                    "path": f"wheels/{name}",
                }
    share_pure_wheels(kit / "wheels")
    common_bytes = folder_bytes(kit / "wheels" / COMMON)
    for house in houses.values():
        house["bytes"] = folder_bytes(kit / house["path"])
        house["with_common_bytes"] = house["bytes"] + common_bytes
        unpacked = unpacked_bytes(kit / house["path"]) + unpacked_bytes(kit / "wheels" / COMMON)
        house["unpacked_bytes"] = unpacked
        house["free_disk_bytes"] = int(DISK_PER_UNPACKED_BYTE * unpacked + DISK_FOR_DATA)
        wheels = sorted(p.name for p in (kit / house["path"]).glob("*.whl"))
        house["minimum_os"] = minimum_os(wheels)
        if house["platform"].startswith("windows"):
            house["longest_member"] = max(
                longest_member(kit / house["path"]), longest_member(kit / "wheels" / COMMON)
            )
    commit = subprocess.run(
        [program("git"), "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    manifest = {
        "kit_format": KIT_FORMAT,
        "built": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
        "pythons": pythons,
        "platforms": {p.name: p.laptops for p in platforms},
        "wheelhouses": houses,
        "unserved": unserved,
        "helpers_wheel": helpers_wheel,
        "cell_timeout_s": cell_timeout(),
        "download_s": seconds,
        "files": {},
    }
    (kit / "README.md").write_text(readme(manifest))
    manifest["files"] = file_records(kit)
    (kit / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    proofs = {}
    for name in houses:
        ok, packages, said = prove(kit, name, logs)
        proofs[name] = (ok, packages, said)
        print(
            f"[kit] dry-run {name}: {'complete' if ok else 'INCOMPLETE'}, {packages} packages"
            + ("" if ok else f": {said}")
        )
    zips = (
        write_zips(kit, sorted({h["platform"] for h in houses.values()}))
        if args.zip == "per-platform"
        else []
    )
    print(
        f"[kit] {kit}: {folder_bytes(kit) / 2**30:.2f} GiB in all, wheels/common "
        f"{common_bytes / 2**20:,.0f} MiB, built in {time.monotonic() - started:.0f} s"
    )
    for name, house in houses.items():
        print(
            f"[kit]   {name}: {house['bytes'] / 2**20:,.0f} MiB "
            f"(+ common = {house['with_common_bytes'] / 2**20:,.0f} MiB), "
            f"{house['unpacked_bytes'] / 2**20:,.0f} MiB unpacked, set-up asks for "
            f"{house['free_disk_bytes'] / 1e9:.1f} GB free; resolved in {seconds[name]} s"
        )
    for target in zips:
        print(f"[kit]   {target.name}: {target.stat().st_size / 2**30:.2f} GiB")
    failed = [name for name, (ok, _, _) in proofs.items() if not ok]
    if unserved or failed:
        for name, reason in unserved.items():
            print(f"error: {name} cannot be served: {reason}", file=sys.stderr)
        for name in failed:
            print(f"error: the wheelhouse {name} does not resolve offline", file=sys.stderr)
        print(
            "The kit was written without them; leave them out of KIT_PLATFORMS/KIT_PYTHONS "
            "to build without this error.",
            file=sys.stderr,
        )
        return 1
    return 0


def readme(manifest: dict) -> str:
    """Return the kit's README: what it serves and the steps per operating system."""
    served = defaultdict(list)
    for house in manifest["wheelhouses"].values():
        served[(house["platform"], house["laptops"])].append(house)
    rows = "\n".join(
        f"| {platform} | {laptops} | "
        + ", ".join(
            f"{h['oldest_python']}+ ({h['free_disk_bytes'] / 1e9:.1f} GB)"
            for h in sorted(houses, key=lambda h: h["python"])
        )
        + " |"
        for (platform, laptops), houses in sorted(served.items())
    )
    unserved = "".join(
        f"\n- {name}: {why.split(' (log:')[0]}" for name, why in manifest["unserved"].items()
    )
    return README.format(rows=rows, unserved=unserved or "\n- (none)", built=manifest["built"])


README = """# Offline kit: Frameworks for Large Models

Everything here works without a network: a wheelhouse of the book's packages for each
kind of laptop below, the data sets, the student and instructor notebooks (in Chinese in
`student-zh_CN/` and `instructor-zh_CN/`), the rendered book (`book/index.html`, its
Chinese edition `book/zh/index.html`, if it was built with one) and the book's source.
Built {built}.

| platform | laptops | Python (free disk set-up needs) |
|---|---|---|
{rows}

Not served by this kit:{unserved}

A laptop not in the table (or one that cannot install a Python above) uses Google Colab
instead: each notebook of the book opens there from its Colab badge, with an account and
the internet.

## Set up a laptop (3-10 minutes, no network needed)

1. Copy this folder (or unzip the zip for your platform) to the laptop's own disk,
   not a USB stick, with a short path such as `C:\\kit` or `~/kit`, and the free disk the
   table gives besides (set-up checks it).
2. Have one of the Python versions of the table, with pip and venv. Open a terminal
   (Windows: PowerShell; macOS: Terminal; Linux: any).
3. Run the set-up with that Python:
   - Windows: `py -3.12 C:\\kit\\setup.py` (or `py -3.11 ...`)
   - macOS: `python3.12 ~/kit/setup.py` (python.org's installer; or `python3.11`)
   - Linux: `python3 ~/kit/setup.py` (on Debian and Ubuntu: `sudo apt install python3-venv`
     first)
4. It checks the kit's files and your Python, creates `venv/` inside the kit, installs
   every package from the kit's wheelhouse (pip reads nothing else), registers the kernel
   "Python (frameworks book)", unpacks the data sets, runs the pre-flight check and prints
   the one command that starts JupyterLab on the student notebooks.

If a step fails, set-up says why, removes the half-made `venv/` and changes nothing else.

## Pre-flight check (the day before, and the first cell of the first notebook)

    Windows:       venv\\Scripts\\python -m helpers.preflight
    macOS, Linux:  venv/bin/python -m helpers.preflight

prints one line per item, `[ OK ]` in green or `[FAIL]` in red with the fix: Python and
package versions, free disk, the data and model checksums, one forward and backward pass
in PyTorch and in TensorFlow, and the widgets' JavaScript.

## Rehearse (Linux, the day before)

`bash source/tools/rehearse_offline_kit.sh .` copies the kit to a scratch folder, cuts the
network (as root), proves every wheelhouse complete with a dry-run, sets the copy up with
`setup.py`, starts JupyterLab, and runs every student notebook.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command")
    make = commands.add_parser("build", help="build the kit")
    make.add_argument("--dest", type=Path, default=BUILD / "offline-kit")
    make.add_argument("--platforms", nargs="+", default=list(DEFAULT_PLATFORMS))
    make.add_argument("--pythons", nargs="+", default=list(DEFAULT_PYTHONS))
    make.add_argument("--cache", type=Path, default=BUILD / "offline-kit-cache")
    make.add_argument("--fresh", action="store_true", help="resolve again, ignoring the cache")
    make.add_argument("--zip", choices=("per-platform", "none"), default="per-platform")
    make.add_argument("--without-book", action="store_true", help="leave the HTML book out")
    for name in ("prove", "verify"):
        commands.add_parser(name).add_argument("kit", type=Path)
    args = parser.parse_args(sys.argv[1:] or ["build"])
    if args.command == "build":
        return build(args)
    kit = args.kit.resolve()
    if not (kit / MANIFEST).is_file():
        raise SystemExit(f"error: {kit} has no {MANIFEST}: it is not an offline kit")
    if args.command == "verify":
        problems = verify(kit)
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        print(f"{kit}: {'complete' if not problems else f'{len(problems)} problems'}")
        return 1 if problems else 0
    houses = json.loads((kit / MANIFEST).read_text())["wheelhouses"]
    present = [name for name, house in houses.items() if (kit / house["path"]).is_dir()]
    logs = Path(tempfile.mkdtemp(prefix="kit-prove-"))
    failures = 0
    for name in present:
        ok, packages, said = prove(kit, name, logs)
        failures += not ok
        print(
            f"dry-run {name}: {'complete' if ok else 'INCOMPLETE'}, {packages} packages"
            + ("" if ok else f": {said} (logs in {logs})")
        )
    if not present:
        print("error: this copy of the kit holds no wheelhouse", file=sys.stderr)
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
