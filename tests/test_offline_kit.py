"""The offline kit: wheelhouses chosen for each platform's own markers, proven complete offline,
and a set-up (the kit's setup.py) that refuses bad input clearly and leaves nothing behind.

Everything here runs real pip on real (small, hand-made) wheels with every index off; the
kit of the real pins is built and rehearsed by `make offline-kit rehearse-kit`.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tools import kit_setup, offline_kit

ROOT = Path(__file__).resolve().parent.parent
SETUP = ROOT / "tools" / "kit_setup.py"


def make_wheel(
    folder: Path,
    name: str,
    version: str = "1.0",
    tag: str = "py3-none-any",
    requires: tuple[str, ...] = (),
    requires_python: str | None = None,
) -> Path:
    """Write a real, installable wheel of an empty module `name` into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = f"{name}-{version}.dist-info"
    metadata = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    metadata += [f"Requires-Dist: {r}" for r in requires]
    if requires_python:
        metadata.append(f"Requires-Python: {requires_python}")
    files = {
        f"{name}/__init__.py": b"",
        f"{dist}/METADATA": ("\n".join(metadata) + "\n").encode(),
        f"{dist}/WHEEL": f"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: {tag}\n".encode(),
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = folder / f"{name}-{version}-{tag}.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return wheel


@pytest.fixture
def only_local_wheels(tmp_path: Path, monkeypatch) -> Path:
    """Point every pip run at a local folder of wheels, with no index and no config file."""
    links = tmp_path / "links"
    links.mkdir()
    for key in list(os.environ):
        if key.startswith("PIP_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    return links


def kit_files(kit: Path, requirements: str, constraints: str = "", nodeps: str = "") -> None:
    kit.mkdir(parents=True, exist_ok=True)
    (kit / "requirements-kit.txt").write_text(requirements)
    (kit / "constraints.txt").write_text(constraints)
    (kit / "requirements-nodeps.txt").write_text(nodeps)


def test_the_kit_serves_requirements_less_the_development_tools():
    text = (ROOT / "requirements.txt").read_text()
    kit = offline_kit.student_requirements(text)
    names = {
        line.split("==")[0].strip().lower()
        for line in text.splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert offline_kit.DEV_ONLY <= names, "every development-only name is a real pin"
    kept = {line.split("==")[0].strip().lower() for line in kit.splitlines() if "==" in line}
    assert kept == names - offline_kit.DEV_ONLY
    assert {"torch", "keras", "jupyterlab", "ipywidgets", "nbmake", "pytest"} <= kept
    # Both TensorFlow lines keep their markers: each platform takes the package it has.
    assert 'tensorflow-cpu==2.21.0; platform_machine == "x86_64"' in kit
    assert 'tensorflow==2.21.0; platform_machine != "x86_64"' in kit


def test_markers_are_evaluated_for_the_target_platform(tmp_path: Path, only_local_wheels: Path):
    make_wheel(
        only_local_wheels,
        "demo",
        requires=('onwindows; sys_platform == "win32"', 'onlinux; sys_platform == "linux"'),
    )
    make_wheel(only_local_wheels, "onwindows")
    make_wheel(only_local_wheels, "onlinux")

    def resolved(pip: list[str]) -> list[str]:
        report = tmp_path / "report.json"
        windows = offline_kit.PLATFORMS["windows-amd64"]
        command = pip + ["install", "--dry-run", "--target", str(tmp_path / "t")]
        command += offline_kit.target_options(windows, "3.11.0") + ["--report", str(report)]
        subprocess.run(command + ["demo"], check=True, capture_output=True)
        return sorted(
            item["metadata"]["name"] for item in json.loads(report.read_text())["install"]
        )

    windows = offline_kit.PLATFORMS["windows-amd64"]
    assert resolved(offline_kit.marker_pip(windows, "3.11.0")) == ["demo", "onwindows"]
    # Plain pip with --platform win_amd64 evaluates the markers for this Linux machine.
    assert resolved([sys.executable, "-m", "pip"]) == ["demo", "onlinux"]


def test_a_platform_without_a_wheel_is_refused_naming_the_wheel(
    tmp_path: Path, only_local_wheels: Path
):
    make_wheel(only_local_wheels, "native", tag="cp311-cp311-win_amd64")
    make_wheel(only_local_wheels, "helper")
    kit, cache, logs = tmp_path / "kit", tmp_path / "cache", tmp_path / "logs"
    kit_files(kit, "native==1.0\nhelper==1.0\n")
    linux, windows = offline_kit.PLATFORMS["linux-x86_64"], offline_kit.PLATFORMS["windows-amd64"]
    reason, _ = offline_kit.download(kit, cache, linux, "3.11", logs)
    assert reason is not None and reason.startswith("no wheel for native==1.0")
    assert not (kit / "wheels" / "linux-x86_64-cp311").exists()
    reason, oldest = offline_kit.download(kit, cache, windows, "3.11", logs)
    assert reason is None and oldest == "3.11.0"
    held = sorted(p.name for p in (kit / "wheels" / "windows-amd64-cp311").iterdir())
    assert held == ["helper-1.0-py3-none-any.whl", "native-1.0-cp311-cp311-win_amd64.whl"]


def test_a_pin_that_needs_a_newer_patch_release_raises_the_oldest_python(
    tmp_path: Path, only_local_wheels: Path
):
    make_wheel(only_local_wheels, "picky", requires_python=">=3.11.5")
    make_wheel(only_local_wheels, "easy", requires_python=">=3.8")
    kit = tmp_path / "kit"
    kit_files(kit, "picky==1.0\neasy==1.0\n")
    linux = offline_kit.PLATFORMS["linux-x86_64"]
    reason, oldest = offline_kit.download(kit, tmp_path / "cache", linux, "3.11", tmp_path / "l")
    assert reason is None and oldest == "3.11.5"
    manifest = {
        "wheelhouses": {
            "h": {
                "platform": "linux-x86_64",
                "python": "3.11",
                "oldest_python": oldest,
                "path": "wheels",
            }
        }
    }
    with pytest.raises(kit_setup.SetupError, match="need Python 3.11.5 or newer; this is 3.11.2"):
        kit_setup.choose_wheelhouse(manifest, kit, "linux-x86_64", (3, 11, 2))
    assert kit_setup.choose_wheelhouse(manifest, kit, "linux-x86_64", (3, 11, 5))[0] == "h"


def test_pure_wheels_are_shared_once_and_different_bytes_stay(tmp_path: Path):
    wheels = tmp_path / "wheels"
    for house in ("linux-x86_64-cp311", "windows-amd64-cp311"):
        make_wheel(wheels / house, "same")
        make_wheel(wheels / house, "native", tag="cp311-cp311-win_amd64")
    make_wheel(wheels / "linux-x86_64-cp311", "differs")
    make_wheel(wheels / "windows-amd64-cp311", "differs", requires=("same",))
    offline_kit.share_pure_wheels(wheels)
    assert sorted(p.name for p in (wheels / "common").iterdir()) == ["same-1.0-py3-none-any.whl"]
    for house in ("linux-x86_64-cp311", "windows-amd64-cp311"):
        assert sorted(p.name for p in (wheels / house).iterdir()) == [
            "differs-1.0-py3-none-any.whl",
            "native-1.0-cp311-cp311-win_amd64.whl",
        ]


def test_the_oldest_system_is_the_newest_minimum_among_the_wheels():
    mac = [
        "torch-2.13.0-cp312-cp312-macosx_14_0_arm64.whl",
        "m-3.0-cp312-cp312-macosx_11_0_arm64.whl",
    ]
    assert offline_kit.minimum_os(mac + ["six-1.17.0-py2.py3-none-any.whl"]) == ["macos", [14, 0]]
    linux = [
        "numpy-2.4.6-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
        "grpcio-1.85.3-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
    ]
    assert offline_kit.minimum_os(linux) == ["glibc", [2, 27]]
    assert offline_kit.minimum_os(["torch-2.13.0-cp311-cp311-win_amd64.whl"]) is None


def small_kit(tmp_path: Path, platform: str = "linux-x86_64") -> Path:
    """Build a kit of hand-made wheels the way offline_kit.build does, manifest included."""
    kit = tmp_path / "kit"
    house = f"wheels/{platform}-cp{sys.version_info[0]}{sys.version_info[1]}"
    make_wheel(kit / "wheels" / "common", "frameworks_book_helpers", "0.1.0")
    make_wheel(kit / house, "demo", requires=("six",))
    make_wheel(kit / house, "six", "1.17.0")
    make_wheel(kit / house, "datapack")
    kit_files(kit, "demo==1.0\n", "six==1.17.0\n", "datapack==1.0\n")
    (kit / "data").mkdir()
    (kit / "data" / "numbers.txt").write_text("1 2 3\n")
    shutil.copy2(SETUP, kit / "setup.py")
    python = ".".join(map(str, sys.version_info[:2]))
    manifest = {
        "kit_format": 1,
        "commit": "test",
        "pythons": [python],
        "wheelhouses": {
            Path(house).name: {
                "platform": platform,
                "python": python,
                "oldest_python": f"{python}.0",
                "path": house,
                "free_disk_bytes": 10**6,
            }
        },
        "unserved": {},
        "helpers_wheel": "wheels/common/frameworks_book_helpers-0.1.0-py3-none-any.whl",
        "cell_timeout_s": 300,
        "files": {},
    }
    (kit / "kit.json").write_text(json.dumps(manifest))
    manifest["files"] = offline_kit.file_records(kit)
    (kit / "kit.json").write_text(json.dumps(manifest))
    return kit


def test_a_small_kit_is_proven_complete_and_an_incomplete_one_is_not(tmp_path: Path):
    kit = small_kit(tmp_path)
    name = next(iter(json.loads((kit / "kit.json").read_text())["wheelhouses"]))
    assert offline_kit.prove(kit, name, tmp_path / "logs") == (True, 4, "resolved")
    assert offline_kit.verify(kit) == []
    (kit / "wheels" / name / "six-1.17.0-py3-none-any.whl").unlink()
    ok, _, said = offline_kit.prove(kit, name, tmp_path / "logs")
    assert not ok and said == "six", said
    assert offline_kit.verify(kit) == [f"wheels/{name}/six-1.17.0-py3-none-any.whl is missing"]


def setup_run(kit: Path, *args: str, python: str = sys.executable) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    return subprocess.run(
        [python, str(kit / "setup.py"), "--no-preflight", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_setup_refuses_a_platform_the_kit_does_not_serve(tmp_path: Path):
    kit = small_kit(tmp_path, platform="windows-amd64")
    result = setup_run(kit)
    assert result.returncode == 1
    assert (
        "This laptop is linux-x86_64; this kit has wheels only for windows-amd64" in result.stderr
    )
    assert "Colab" in result.stderr and 'KIT_PLATFORMS="linux-x86_64"' in result.stderr
    assert not (kit / "venv").exists()


def test_setup_refuses_a_python_the_kit_has_no_wheels_for(tmp_path: Path):
    kit = small_kit(tmp_path)
    manifest = json.loads((kit / "kit.json").read_text())
    with pytest.raises(kit_setup.SetupError) as caught:
        kit_setup.choose_wheelhouse(manifest, kit, "linux-x86_64", (3, 13, 0))
    python = ".".join(map(str, sys.version_info[:2]))
    assert f"the kit has wheels for linux-x86_64 only for Python {python}" in str(caught.value)
    assert f"Install Python {python} (python.org), then run: python{python} setup.py" in str(
        caught.value
    )


def pyenv_python(version: str) -> str:
    """Return a Python `version` of this machine's pyenv (these machines have 3.8 to 3.13)."""
    root = subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout.strip()
    found = sorted(Path(root, "versions").glob(f"{version}.*/bin/python{version}"))
    assert found, f"this test needs Python {version} under pyenv ({root}); none found"
    return str(found[-1])


@pytest.mark.parametrize("version", ["3.8", "3.12"])
def test_setup_run_with_another_python_says_which_to_use(tmp_path: Path, version: str):
    kit = small_kit(tmp_path)
    result = setup_run(kit, python=pyenv_python(version))
    python = ".".join(map(str, sys.version_info[:2]))
    assert result.returncode == 1, result.stderr
    assert f"error: This is Python {version}." in result.stderr
    assert f"only for Python {python}. Install Python {python}" in result.stderr
    assert not (kit / "venv").exists()


def test_setup_runs_on_the_oldest_python_it_must_tell():
    ast.parse(SETUP.read_text(), feature_version=(3, 8))  # the syntax of Python 3.8


def test_setup_refuses_a_kit_copied_incompletely(tmp_path: Path):
    kit = small_kit(tmp_path)
    house = next((kit / "wheels").glob("linux-*"))
    (house / "six-1.17.0-py3-none-any.whl").unlink()
    data = kit / "data" / "numbers.txt"
    data.write_text("1 2\n")
    result = setup_run(kit)
    assert result.returncode == 1
    assert "The kit was copied incompletely:" in result.stderr
    assert "data/numbers.txt is 4 bytes, expected 6" in result.stderr
    assert f"wheels/{house.name}/six-1.17.0-py3-none-any.whl is missing" in result.stderr
    assert "Nothing was installed." in result.stderr
    assert not (kit / "venv").exists()
    (kit / "kit.json").unlink()
    result = setup_run(kit)
    assert result.returncode == 1 and "kit.json is missing" in result.stderr


def test_setup_refuses_a_disk_without_room(tmp_path: Path):
    with pytest.raises(kit_setup.SetupError, match=r"GB are free on the disk of .*; set-up needs"):
        kit_setup.check_free_space(tmp_path / "not" / "yet", 10**18)
    kit_setup.check_free_space(tmp_path / "not" / "yet", 1)
    kit = small_kit(tmp_path)
    manifest = json.loads((kit / "kit.json").read_text())
    next(iter(manifest["wheelhouses"].values()))["free_disk_bytes"] = 10**18
    (kit / "kit.json").write_text(json.dumps(manifest))
    result = setup_run(kit)
    assert result.returncode == 1 and "set-up needs about 1000000000.0 GB" in result.stderr
    assert not (kit / "venv").exists()


def test_a_failed_install_removes_its_virtual_environment(tmp_path: Path):
    kit = small_kit(tmp_path)
    (kit / "requirements-kit.txt").write_text("demo==1.0\nnothere==2.0\n")
    manifest = json.loads((kit / "kit.json").read_text())
    manifest["files"] = offline_kit.file_records(kit)
    (kit / "kit.json").write_text(json.dumps(manifest))
    result = setup_run(kit)
    assert result.returncode == 1
    assert "[setup] creating" in result.stdout, "the virtual environment was made first"
    assert "Installing the packages failed" in result.stderr
    assert "nothere==2.0" in result.stderr
    assert "Set-up removed" in result.stderr
    assert not (kit / "venv").exists()


def test_windows_paths_past_260_characters_are_refused_unless_long_paths_are_on():
    house = {"longest_member": 180}
    venv = Path("C:/", "a-student-with-a-long-name" * 2, "Downloads", "offline-kit-windows", "venv")
    with pytest.raises(kit_setup.SetupError, match="past Windows' limit of 260.*C:\\\\kit"):
        kit_setup.check_path_length(venv, house, long_paths=False)
    kit_setup.check_path_length(venv, house, long_paths=True)
    kit_setup.check_path_length(Path("C:/kit/venv"), house, long_paths=False)


@pytest.mark.parametrize(
    ("system", "machine", "expected"),
    [
        ("Windows", "AMD64", "windows-amd64"),
        ("Darwin", "arm64", "macos-arm64"),
        ("Darwin", "x86_64", "macos-x86_64"),
        ("Linux", "x86_64", "linux-x86_64"),
        ("Linux", "aarch64", "linux-aarch64"),
    ],
)
def test_each_laptop_is_named_as_the_kit_names_its_wheelhouses(system, machine, expected):
    assert kit_setup.this_platform(system, machine) == expected
    assert expected in offline_kit.PLATFORMS


def test_the_disk_asked_for_counts_the_wheels_unpacked(tmp_path: Path):
    wheel = make_wheel(tmp_path / "w", "demo", requires=("six",))
    with zipfile.ZipFile(wheel) as archive:
        unpacked = sum(len(archive.read(name)) for name in archive.namelist())
    assert offline_kit.unpacked_bytes(tmp_path / "w") == unpacked


def test_the_zip_of_another_platform_says_so(tmp_path: Path):
    kit = small_kit(tmp_path)
    house = next((kit / "wheels").glob("linux-*"))
    shutil.rmtree(house)  # as in the zip for Windows, which leaves Linux's wheels out
    result = setup_run(kit)
    assert result.returncode == 1
    assert f"This copy of the kit has no wheels/{house.name} folder" in result.stderr
    assert "Copy the kit (or the zip) for linux-x86_64" in result.stderr
    assert not (kit / "venv").exists()
