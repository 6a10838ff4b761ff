"""The safety and hygiene lint catches each forbidden pattern, and passes clean code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools import policy

BAD = [
    ("AutoModel.from_pretrained(name, trust_remote_code=True)", "trusts remote code"),
    ("state = torch.load(path)", "torch.load without weights_only=True"),
    ("state = torch.load(path, map_location='cpu')", "torch.load without weights_only=True"),
    ("data = pickle.load(stream)", "unpickles a file"),
    ("arr = np.load(path, allow_pickle=True)", "unpickles a file"),
    ('DATA = "/home/alice/data/mnist.npz"', "absolute path of a local machine"),
    ('token = "hf_' + "a" * 34 + '"', "looks like a secret"),
    ("-----BEGIN RSA PRIVATE KEY-----", "looks like a secret"),
]
GOOD = [
    "state = torch.load(path, weights_only=True)",
    "AutoModel.from_pretrained(name, trust_remote_code=False)",
    'cache = Path.home() / ".cache" / "frameworks-book"',
    "see https://example.org/home/page for details",
]


@pytest.mark.parametrize(("line", "message"), BAD)
def test_each_rule_fires_with_file_and_line(tmp_path: Path, line: str, message: str):
    path = tmp_path / "example.py"
    path.write_text(f"x = 1\n{line}\n")
    found = policy.violations(path, "example.py")
    assert len(found) == 1 and found[0].startswith(f"example.py:line 2: {message}")


@pytest.mark.parametrize("line", GOOD)
def test_clean_lines_pass(tmp_path: Path, line: str):
    path = tmp_path / "example.py"
    path.write_text(line + "\n")
    assert policy.violations(path, "example.py") == []


def test_notebooks_are_read_cell_by_cell(tmp_path: Path):
    path = tmp_path / "example.ipynb"
    cells = [{"cell_type": "code", "source": ["x = 1\n", "m = torch.load(p)\n"]}]
    path.write_text(json.dumps({"cells": cells}))
    assert policy.violations(path, "example.ipynb")[0].startswith("example.ipynb:cell 0 line 2:")


def test_the_repository_passes():
    assert policy.main([]) == 0
