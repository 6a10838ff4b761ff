"""tools/lab_smoke.py against a real Jupyter server on loopback: a cell's output, an error."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools import lab_smoke

TOKEN = "test-token"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start a Jupyter server on a free loopback port; yield its URL."""
    port, root = free_port(), tmp_path_factory.mktemp("lab")
    command = [sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root"]
    command += [f"--port={port}", "--ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}"]
    command += [f"--ServerApp.root_dir={root}"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=1)
                break
            except OSError:
                assert process.poll() is None, "the Jupyter server exited"
                time.sleep(0.5)
        else:
            pytest.fail(f"the Jupyter server did not answer on {url} within 60 s")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_cell_runs_in_a_new_kernel_and_its_output_comes_back(server: str):
    assert asyncio.run(lab_smoke.run_cell(server, TOKEN, "print(6 * 7)")) == "42\n"


def test_an_error_in_the_cell_is_reported_with_its_message(server: str):
    with pytest.raises(RuntimeError, match="ZeroDivisionError: division by zero"):
        asyncio.run(lab_smoke.run_cell(server, TOKEN, "1 / 0"))


def test_kernels_are_shut_down_afterwards(server: str):
    asyncio.run(lab_smoke.run_cell(server, TOKEN, "pass"))
    with urllib.request.urlopen(f"{server}/api/kernels?token={TOKEN}") as reply:
        assert reply.read() == b"[]"


def test_the_default_cell_imports_the_helpers_and_the_frameworks():
    code = lab_smoke.DEFAULT_CODE
    assert all(name in code for name in ("helpers", "torch", "tensorflow", "transformers"))
    assert Path(lab_smoke.__file__).parent.name == "tools"
