"""The safety lint: its AST check catches each forbidden call however it is written, passes
safe code written across lines, reads notebooks cell by cell past their magics, and ruff's
flake8-bandit rules run with the project's configuration."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tools import policy

ROOT = Path(__file__).resolve().parent.parent

REMOTE = "trusts remote code"
TORCH_LOAD = "torch.load without weights_only=True"
UNPICKLE = "unpickles a file"
LOCAL_PATH = "absolute path of a local machine"
LEAKED = "looks like a secret"

# (code, what the lint must say, the line it must name)
BAD = [
    ("AutoModel.from_pretrained(name, trust_remote_code=True)", REMOTE, 2),
    ("AutoModel.from_pretrained(\n    name,\n    trust_remote_code=\n    True,\n)", REMOTE, 2),
    ('AutoModel.from_pretrained(name, **{"trust_remote_code": True})', REMOTE, 2),
    ("options = dict(local_files_only=True, trust_remote_code=True)", REMOTE, 2),
    ('options["trust_remote_code"] = True', REMOTE, 2),
    ("config.trust_remote_code = True", REMOTE, 2),
    ("state = torch.load(path)", TORCH_LOAD, 2),
    ("state = torch.load(path, map_location='cpu')", TORCH_LOAD, 2),
    ("state = torch.load(path, weights_only=False)", TORCH_LOAD, 2),
    ("state = torch.load(\n    path,\n    map_location='cpu',\n)", TORCH_LOAD, 2),
    ("state = torch.load(path, **options)", TORCH_LOAD, 2),
    ("import torch as t\nstate = t.load(path)", TORCH_LOAD, 3),
    ("from torch import load\nstate = load(path)", TORCH_LOAD, 3),
    ("data = pickle.load(stream)", UNPICKLE, 2),
    ("import pickle as pkl\ndata = pkl.loads(blob)", UNPICKLE, 3),
    ("model = joblib.load(path)", UNPICKLE, 2),
    ("frame = pd.read_pickle(path)", UNPICKLE, 2),
    ("arr = np.load(path, allow_pickle=True)", UNPICKLE, 2),
    ("arr = numpy.load(\n    path,\n    allow_pickle=True,\n)", UNPICKLE, 2),
    ('DATA = "/home/alice/data/mnist.npz"', LOCAL_PATH, 2),
    ('token = "hf_' + "a" * 34 + '"', LEAKED, 2),
    ('KEY = """\n-----BEGIN RSA PRIVATE KEY-----\n"""', LEAKED, 3),
]
GOOD = [
    "state = torch.load(path, weights_only=True)",
    "state = torch.load(\n    path,\n    map_location='cpu',\n    weights_only=True,\n)",
    "AutoModel.from_pretrained(name, trust_remote_code=False)",
    'options = {"local_files_only": True, "trust_remote_code": False}',
    "AutoModel.from_pretrained(name, **{'trust_remote_code': False})",
    "arr = np.load(path, allow_pickle=False)",
    "arr = np.load(path)",
    "loaded = safetensors.torch.load_file(path)",
    "config = json.load(stream)",
    'cache = Path.home() / ".cache" / "frameworks-book"',
    'url = "see https://example.org/home/page for details"',
    '# "trust_remote_code=True" in a comment or "torch.load(path)" in a string is no call',
]


@pytest.mark.parametrize(("code", "message", "line"), BAD)
def test_each_rule_fires_with_file_and_line(tmp_path: Path, code: str, message: str, line: int):
    path = tmp_path / "example.py"
    path.write_text(f"x = 1\n{code}\n")
    found = policy.violations(path, "example.py")
    assert len(found) == 1, found
    assert found[0].startswith(f"example.py:line {line}: {message}"), found


@pytest.mark.parametrize("code", GOOD)
def test_clean_code_passes(tmp_path: Path, code: str):
    path = tmp_path / "example.py"
    path.write_text(code + "\n")
    assert policy.violations(path, "example.py") == []


def notebook(tmp_path: Path, *sources: str, cell_type: str = "code") -> Path:
    path = tmp_path / "example.ipynb"
    cells = [
        {"cell_type": cell_type, "source": source.splitlines(keepends=True)} for source in sources
    ]
    path.write_text(json.dumps({"cells": cells}))
    return path


def test_notebooks_are_read_cell_by_cell(tmp_path: Path):
    path = notebook(tmp_path, "x = 1\n", "x = 1\nm = torch.load(p)\n")
    found = policy.violations(path, "example.ipynb")
    assert len(found) == 1 and found[0].startswith(f"example.ipynb:cell 1 line 2: {TORCH_LOAD}")


def test_notebook_imports_in_one_cell_count_in_the_next(tmp_path: Path):
    path = notebook(tmp_path, "import pickle as pkl\n", "state = pkl.load(stream)\n")
    assert policy.violations(path, "example.ipynb")[0].startswith("example.ipynb:cell 1 line 1:")


def test_magics_are_skipped_and_the_code_around_them_is_checked(tmp_path: Path):
    setup = (
        "import sys\n"
        'if "google.colab" in sys.modules:\n'
        '    %pip install -q "git+https://github.com/example/book@main"\n'
        "!nvidia-smi\n"
        "files = !ls\n"
        "%matplotlib inline\n"
        "model = AutoModel.from_pretrained(\n"
        "    name, trust_remote_code=True\n"
        ")\n"
    )
    found = policy.violations(notebook(tmp_path, setup), "example.ipynb")
    assert len(found) == 1 and found[0].startswith(f"example.ipynb:cell 0 line 7: {REMOTE}")


def test_a_script_written_by_writefile_is_checked(tmp_path: Path):
    script = "%%writefile train.py\nimport torch\n\nstate = torch.load('model.pt')\n"
    found = policy.violations(notebook(tmp_path, script), "example.ipynb")
    assert len(found) == 1 and found[0].startswith(f"example.ipynb:cell 0 line 4: {TORCH_LOAD}")


def test_a_shell_cell_is_not_parsed_as_python(tmp_path: Path):
    path = notebook(tmp_path, "%%bash\nls -l | head\n")
    assert policy.violations(path, "example.ipynb") == []


def test_a_cell_the_check_cannot_read_fails_loudly(tmp_path: Path):
    found = policy.violations(notebook(tmp_path, "def broken(:\n"), "example.ipynb")
    assert len(found) == 1 and "cannot be parsed" in found[0], found


def test_markdown_is_checked_for_secrets_but_not_parsed(tmp_path: Path):
    prose = "Never pass `trust_remote_code=True`.\nThe data live in /home/alice/data.\n"
    found = policy.violations(notebook(tmp_path, prose, cell_type="markdown"), "example.ipynb")
    assert len(found) == 1 and found[0].startswith(f"example.ipynb:cell 0 line 2: {LOCAL_PATH}")


def test_the_repository_passes(capsys):
    assert policy.main([]) == 0, capsys.readouterr().out


def ruff_findings(code: str, filename: str) -> list[str]:
    """Return the rule codes ruff reports for `code` as the file `filename` of this repository."""
    command = [sys.executable, "-m", "ruff", "check", "--output-format", "json", "--no-cache"]
    command += ["--stdin-filename", str(ROOT / filename), "-"]
    run = subprocess.run(command, input=code, capture_output=True, text=True, cwd=ROOT)
    assert run.returncode in (0, 1), run.stderr
    return [finding["code"] for finding in json.loads(run.stdout)]


def test_ruff_runs_the_bandit_rules_on_the_package():
    code = "import pickle\nimport subprocess\n\n\ndef f(blob, cmd):\n"
    code += "    subprocess.run(cmd, shell=True)\n    return pickle.loads(blob)\n"
    found = ruff_findings(code, "src/helpers/example.py")
    assert "S301" in found and "S602" in found, found


def test_ruff_allows_assert_in_tests_only():
    code = "def test_one():\n    assert 1 + 1 == 2\n"
    assert ruff_findings(code, "tests/test_example.py") == []
    assert ruff_findings(code, "src/helpers/example.py") == ["S101"]
