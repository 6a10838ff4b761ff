"""Tests of helpers.runtime.gpu: GPU selection, TensorFlow device set-up and the GPU doctor.

A stand-in ``nvidia-smi`` (a shell script on PATH printing what the real one prints)
lets the GPU rules run on this CPU-only machine; everything that depends on the
framework's state in the process runs in a fresh Python, so the order of tests does not
matter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import H200, SMI_LINES, install_nvidia_smi

from helpers.checks import ch06 as checks
from helpers.runtime import gpu
from helpers.runtime.gpu import Finding, GpuFacts, PhysicalGpu, diagnose

cpu_only = pytest.mark.skipif(Path("/dev/nvidia0").exists(), reason="a GPU is present")
TWO_GPUS = tuple(gpu._parse_nvidia_smi_line(line) for line in SMI_LINES)


pytestmark = pytest.mark.usefixtures("no_process_left_behind")


def test_parse_nvidia_smi_line():
    first = TWO_GPUS[0]
    assert first == PhysicalGpu(
        0, H200, "GPU-8932f937-d72c-4106-c12f-20bd9faed9f6", 143771 * 1024**2, "570.124.06"
    )
    assert str(first) == f"0: {H200} (140 GiB)"
    assert gpu._parse_nvidia_smi_line("0, T4, GPU-aa, [N/A], 535.1").memory_bytes is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ["0", "1"]),
        ("1", ["1"]),
        ("1,0", ["1", "0"]),
        ("0,2,1", ["0"]),  # GPU 2 does not exist: it hides itself and what follows
        ("-1", []),
        ("GPU-1f0ad4a9", ["GPU-1f0ad4a9"]),  # a UUID prefix is enough
        ("GPU-ffff,0", []),
        ("MIG-aaaa", ["MIG-aaaa"]),
    ],
)
def test_visible_gpus(value, expected):
    assert gpu.visible_gpus(TWO_GPUS, value) == expected


def test_visible_gpus_without_driver():
    assert gpu.visible_gpus((), None) == []
    assert gpu.visible_gpus((), "0") == []


def test_driver_listing_through_nvidia_smi(two_gpu_driver):
    assert gpu.nvidia_gpus() == TWO_GPUS
    assert gpu.visible_gpu_count() == 2
    assert gpu.visible_gpu_count({"CUDA_VISIBLE_DEVICES": "1"}) == 1


@cpu_only
def test_no_driver_lists_nothing(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert gpu.nvidia_gpus() == ()
    assert gpu.visible_gpu_count() == 0


def test_select_gpus_rejects_more_gpus_than_present(two_gpu_driver):
    with pytest.raises(ValueError) as error:
        gpu.select_gpus([0, 2])
    assert str(error.value) == (
        f"Asked for GPU(s) [2], but the driver lists 2 GPU(s): 0: {H200} (140 GiB); "
        f"1: {H200} (140 GiB)."
    )
    assert "CUDA_VISIBLE_DEVICES" not in os.environ


@cpu_only
def test_select_gpus_without_driver_names_the_cause(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ValueError, match=r"lists 0 GPU\(s\): none \(no NVIDIA driver found\)"):
        gpu.select_gpus([0])


@pytest.mark.parametrize("value", ["abc", "0,abc", "GPU-aa,1"])
def test_select_gpus_refuses_a_value_that_would_silently_hide_gpus(value, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with pytest.raises(ValueError, match="is not a list of GPUs"):
        gpu.select_gpus(value)
    assert "CUDA_VISIBLE_DEVICES" not in os.environ


@pytest.mark.parametrize("value", ["0,1", "GPU-8932f937", "-1", ""])
def test_select_gpus_takes_well_formed_raw_values(value, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    # Other tests in this process may have started TensorFlow; the value check is the point.
    monkeypatch.setattr(gpu, "cuda_holders", lambda: [])
    assert gpu.select_gpus(value) == value


def test_an_unexpected_nvidia_smi_line_is_skipped_with_a_warning(tmp_path, monkeypatch):
    notice = "WARNING: infoROM is corrupted at gpu 0000:41:00.0"
    install_nvidia_smi(tmp_path, [notice, *SMI_LINES], monkeypatch)
    with pytest.warns(UserWarning, match="infoROM is corrupted"):
        assert gpu.nvidia_gpus() == TWO_GPUS


@pytest.mark.parametrize("indices", [[0, 0], [-1]])
def test_select_gpus_rejects_bad_indices(indices):
    with pytest.raises(ValueError, match="distinct and non-negative"):
        gpu.select_gpus(indices)


FRESH_PROCESS = """
import json, os, sys
from pathlib import Path
from helpers.runtime import gpu
out = {"holders_at_start": gpu.cuda_holders()}
out["selected"] = gpu.select_gpus([1, 0])
out["order"] = os.environ["CUDA_DEVICE_ORDER"]
import torch
torch.zeros(1)
out["holders_after_torch"] = gpu.cuda_holders()  # a CPU tensor does not start CUDA
import tensorflow as tf
out["memory_growth"] = gpu.tf_memory_growth()
out["cpus"] = gpu.tf_logical_cpus(2)
out["holders_after_tf"] = gpu.cuda_holders()
try:
    gpu.select_gpus([0])
except gpu.GpuSelectionError as error:
    out["too_late"] = str(error)
out["same_value_again"] = gpu.select_gpus([1, 0])
tf.constant(1.0) + 1  # TensorFlow's first operation starts its runtime
out["cpus_again"] = gpu.tf_logical_cpus(2)
try:
    gpu.tf_logical_cpus(3)
except RuntimeError as error:
    out["too_few_cpus"] = str(error)
report = gpu.doctor()  # a driver with 2 GPUs, but CPU-only framework builds
out["doctor"] = str(report)
out["problems"] = [finding.message for finding in report.findings if not finding.ok]
os.environ["PATH"] = os.pathsep.join(
    d for d in os.environ["PATH"].split(os.pathsep) if not (Path(d) / "nvidia-smi").exists()
)
out["doctor_without_driver"] = str(gpu.doctor())
print(json.dumps(out))
"""


@cpu_only
def test_selection_devices_and_doctor_in_a_fresh_process(two_gpu_driver):
    run = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS], capture_output=True, text=True, timeout=180
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout.splitlines()[-1])
    assert out["holders_at_start"] == []
    assert out["selected"] == "1,0"
    assert out["order"] == "PCI_BUS_ID"
    assert out["holders_after_torch"] == []
    assert out["memory_growth"] == []  # no TensorFlow GPU on this CPU-only build
    assert out["cpus"] == ["/device:CPU:0", "/device:CPU:1"]
    assert out["holders_after_tf"] == ["TensorFlow has listed its devices"]
    assert out["too_late"].startswith(
        "Too late to set CUDA_VISIBLE_DEVICES='0' in this process: TensorFlow has listed its "
        "devices, so CUDA has already read the variable (CUDA_VISIBLE_DEVICES='1,0')"
    )
    assert out["same_value_again"] == "1,0"  # asking for what is in force is not an error
    assert out["cpus_again"] == out["cpus"]
    assert (
        "already started with 2 logical CPU device(s), and 3 were asked for"
        in (out["too_few_cpus"])
    )
    doctor = out["doctor"].splitlines()
    assert doctor[:3] == [
        "GPU doctor",
        f"NVIDIA driver 570.124.06, 2 GPU(s): 0: {H200} (140 GiB); 1: {H200} (140 GiB)",
        "CUDA_VISIBLE_DEVICES='1,0'; CUDA shows ['1', '0']",
    ]
    assert out["problems"] == [
        f"The driver lists 2 GPU(s), but this {name} is a CPU-only build: it cannot use them."
        for name in ("PyTorch", "TensorFlow")
    ]
    without = out["doctor_without_driver"].splitlines()
    assert without[1].startswith("No NVIDIA driver or GPU found")
    assert "TensorFlow memory growth: no TensorFlow GPU" in without
    assert without[-2].startswith("[ok] No NVIDIA GPU")


def test_tf_logical_cpus_rejects_zero():
    with pytest.raises(ValueError, match="at least 1; got 0"):
        gpu.tf_logical_cpus(0)


def _facts(**changes) -> GpuFacts:
    base = {
        "driver_gpus": TWO_GPUS,
        "cuda_visible_devices": None,
        "torch_cuda_build": True,
        "torch_gpu_count": 2,
        "tf_cuda_build": True,
        "tf_gpu_count": 2,
        "tf_memory_growth": {"/physical_device:GPU:0": True, "/physical_device:GPU:1": True},
        "torch_imported": True,
        "tf_imported": True,
    }
    return GpuFacts(**{**base, **changes})


def _problems(findings: list[Finding]) -> list[str]:
    return [finding.message for finding in findings if not finding.ok]


def test_diagnose_healthy_machine():
    findings = diagnose(_facts())
    assert _problems(findings) == []
    assert findings[-1].message == "2 of 2 GPU(s) visible; builds and counts agree."


def test_diagnose_no_gpu():
    findings = diagnose(_facts(driver_gpus=(), torch_cuda_build=False, tf_gpu_count=0))
    assert _problems(findings) == []
    assert findings[0].message.startswith("No NVIDIA GPU")


def test_diagnose_index_out_of_range():
    problems = _problems(diagnose(_facts(cuda_visible_devices="1,2,0", torch_gpu_count=1)))
    assert problems[0] == (
        "CUDA_VISIBLE_DEVICES='1,2,0' names '2', but the driver lists GPUs 0 to 1: CUDA drops "
        "that entry and every entry after it, leaving ['1']."
    )


def test_diagnose_cpu_only_build():
    problems = _problems(diagnose(_facts(tf_cuda_build=False, tf_gpu_count=0)))
    assert problems == [
        "The driver lists 2 GPU(s), but this TensorFlow is a CPU-only build: it cannot use them."
    ]


def test_diagnose_set_too_late():
    problems = _problems(diagnose(_facts(cuda_visible_devices="0")))
    assert len(problems) == 2  # both frameworks still see the 2 GPUs of their start
    assert problems[0].startswith("PyTorch sees 2 GPU(s), but CUDA_VISIBLE_DEVICES now allows 1")


def test_diagnose_tensorflow_next_to_pytorch():
    growth = {"/physical_device:GPU:0": False, "/physical_device:GPU:1": True}
    findings = diagnose(_facts(tf_memory_growth=growth))
    problem = next(finding for finding in findings if not finding.ok)
    assert "memory growth is off on /physical_device:GPU:0" in problem.message
    assert "tf_memory_growth()" in problem.fix
    assert "[PROBLEM]" in str(problem) and "Fix: " in str(problem)
    assert _problems(diagnose(_facts(tf_memory_growth=growth, torch_imported=False))) == []


@pytest.mark.parametrize(
    ("check", "right", "wrong"),
    [
        (checks.check_visible_count, 1, 2),
        (checks.check_framework_index, 0, 3),
    ],
)
def test_exercise_checks(check, right, wrong, capsys):
    check(right)
    assert capsys.readouterr().out.startswith("Correct")
    for answer in (wrong, None, "x", 99):
        check(answer)
        assert capsys.readouterr().out.startswith(("Not yet", "Not attempted"))
