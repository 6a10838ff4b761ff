"""Tests of helpers.runtime.env on this CPU-only machine; GPU rules through pure functions."""

import importlib.metadata
import sys
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

from helpers import environment_info, parse_cuda_visible_devices, tf_device, torch_device
from helpers.runtime.env import describe_cuda_visible_devices, resolve_device_request

cpu_only = pytest.mark.skipif(Path("/dev/nvidia0").exists(), reason="a GPU is present")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", []),
        ("0,1", ["0", "1"]),
        (" 2 , 0 ", ["2", "0"]),
        ("01,+2gpu", ["1", "2"]),  # ordinals are read like C's strtoul
        ("1,1", []),
        ("GPU-8932f937-d72c-4106,GPU-aaaa", ["GPU-8932f937-d72c-4106", "GPU-aaaa"]),
        ("MIG-4b2d4f1c-aaaa", ["MIG-4b2d4f1c-aaaa"]),
        ("-1", []),
        ("0,2,-1,1", ["0", "2"]),
        ("0,foo,1", ["0"]),
        ("0,,1", ["0"]),
        ("0,GPU-aaaa", ["0"]),
        ("GPU-aaaa,0", ["GPU-aaaa"]),
        ("GPU-aaaa,MIG-bbbb", ["GPU-aaaa"]),
    ],
)
def test_parse_cuda_visible_devices(value, expected):
    assert parse_cuda_visible_devices(value) == expected


def test_describe_cuda_visible_devices(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert describe_cuda_visible_devices() == "CUDA_VISIBLE_DEVICES is unset"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert describe_cuda_visible_devices() == "CUDA_VISIBLE_DEVICES='0,1'"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,-1,1")
    assert (
        describe_cuda_visible_devices()
        == "CUDA_VISIBLE_DEVICES='0,-1,1', which CUDA reads as ['0']"
    )


@pytest.mark.parametrize(
    ("prefer", "gpus", "mps", "expected"),
    [
        ("auto", 2, True, ("gpu", 0)),
        ("auto", 0, True, ("mps", None)),
        ("auto", 0, False, ("cpu", None)),
        ("cpu", 2, False, ("cpu", None)),
        ("CUDA", 1, False, ("gpu", 0)),
        ("cuda:1", 2, False, ("gpu", 1)),
        ("/GPU:1", 2, False, ("gpu", 1)),
        ("gpu", 1, False, ("gpu", 0)),
        ("mps", 0, True, ("mps", None)),
    ],
)
def test_resolve_device_request(prefer, gpus, mps, expected):
    assert resolve_device_request(prefer, gpu_count=gpus, mps_available=mps) == expected


def test_resolve_device_request_names_count_and_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with pytest.raises(ValueError) as error:
        resolve_device_request("cuda:3", gpu_count=1)
    assert str(error.value) == (
        "cuda:3 requested but only 1 CUDA device is visible (CUDA_VISIBLE_DEVICES='0')."
    )
    with pytest.raises(ValueError, match=r"only 2 CUDA devices are visible"):
        resolve_device_request("cuda:2", gpu_count=2)


@pytest.mark.parametrize("prefer", ["tpu", "cuda:x", "mps:0", "auto:1", ""])
def test_resolve_device_request_rejects_malformed(prefer):
    with pytest.raises(ValueError, match="Unknown device"):
        resolve_device_request(prefer, gpu_count=1)


def test_resolve_device_request_without_mps():
    with pytest.raises(ValueError, match="MPS device is not available"):
        resolve_device_request("mps", gpu_count=0)


@cpu_only
def test_torch_device_on_cpu(monkeypatch):
    import torch

    assert torch_device() == torch.device("cpu")
    assert torch_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with pytest.raises(ValueError) as error:
        torch_device("cuda:3")
    message = str(error.value)
    assert "cuda:3 requested but 0 CUDA devices are visible" in message
    assert "CUDA_VISIBLE_DEVICES='0'" in message


@cpu_only
def test_tf_device_on_cpu(monkeypatch):
    assert tf_device() == "/CPU:0"
    assert tf_device("cpu") == "/CPU:0"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(
        ValueError, match=r"0 TensorFlow GPUs are visible \(CUDA_VISIBLE_DEVICES=''"
    ):
        tf_device("gpu:0")


def _distribution_version(module: str) -> str:
    distribution = importlib.metadata.packages_distributions()[module][0]
    return importlib.metadata.version(distribution)


@cpu_only
def test_environment_info_on_cpu(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    info = environment_info("torch", "tensorflow", "keras", "transformers")
    assert info.cuda_visible_devices == "0,1"
    assert info.cpu_count >= 1
    assert info.python == ".".join(map(str, sys.version_info[:3]))
    for name in ("torch", "tensorflow"):
        framework = info.framework(name)
        assert framework.build == "CPU-only build"
        assert framework.gpu_count == 0
        assert [device.kind for device in framework.devices] == ["CPU"]
    for name in ("torch", "tensorflow", "keras", "transformers"):
        assert info.framework(name).version == _distribution_version(name)
    with pytest.raises(FrozenInstanceError):
        info.cpu_count = 64


def test_environment_info_defaults_and_text():
    info = environment_info()
    assert [framework.name for framework in info.frameworks] == ["torch", "tensorflow"]
    text = info.as_text()
    lines = text.splitlines()
    assert lines[0].startswith(f"Python {info.python}, ")
    assert lines[1] == f"Platform {info.platform}"
    assert lines[2].split() == ["framework", "version", "build", "devices"]
    for framework, line in zip(info.frameworks, lines[3:], strict=True):
        assert line.startswith(framework.name)
        assert framework.version in line
    # aligned: the version column starts at the same offset on every table line
    versions = ["version", *(framework.version for framework in info.frameworks)]
    assert len({line.index(v) for line, v in zip(lines[2:], versions, strict=True)}) == 1


def test_environment_info_reports_missing_framework(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # Python's way to block an import
    info = environment_info("transformers")
    assert info.framework("transformers").version is None
    assert "not installed" in info.as_text()


def test_environment_info_rejects_unknown_framework():
    with pytest.raises(ValueError, match=r"\['jax'\].*'torch', 'tensorflow', 'keras'"):
        environment_info("torch", "jax")


def test_print_environment(capsys):
    from helpers import print_environment

    print_environment("torch")
    out = capsys.readouterr().out
    assert "torch" in out and "tensorflow" not in out
