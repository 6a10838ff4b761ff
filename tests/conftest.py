"""Fixtures shared by the test files: a stand-in GPU driver and a check for leftover processes."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import psutil
import pytest

H200 = "NVIDIA H200"
# What `nvidia-smi --query-gpu=index,name,uuid,memory.total,driver_version` prints for two H200s.
SMI_LINES = (
    f"0, {H200}, GPU-8932f937-d72c-4106-c12f-20bd9faed9f6, 143771, 570.124.06",
    f"1, {H200}, GPU-1f0ad4a9-6cc1-a2b3-9a70-4c5b1f5a8d21, 143771, 570.124.06",
)


def install_nvidia_smi(folder: Path, lines: Sequence[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Put an ``nvidia-smi`` shell script that prints ``lines`` first on PATH."""
    script = folder / "nvidia-smi"
    script.write_text("#!/bin/sh\n" + "".join(f"echo '{line}'\n" for line in lines))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


@pytest.fixture
def two_gpu_driver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Put an ``nvidia-smi`` on PATH that lists two H200s, as the real one would."""
    install_nvidia_smi(tmp_path, SMI_LINES, monkeypatch)


@pytest.fixture
def drawn_figures(monkeypatch: pytest.MonkeyPatch) -> list:
    """Record every figure that ``plt.subplots`` makes (explorers close theirs after drawing)."""
    import matplotlib.pyplot as plt

    figures: list = []
    real_subplots = plt.subplots

    def recording_subplots(*args, **kwargs):
        fig, axes = real_subplots(*args, **kwargs)
        figures.append(fig)
        return fig, axes

    monkeypatch.setattr(plt, "subplots", recording_subplots)
    return figures


@pytest.fixture
def no_process_left_behind() -> Iterator[None]:
    """Fail the test if any process it started is still running when it ends."""
    yield
    assert psutil.Process().children(recursive=True) == []
