"""Deliberate copies between a notebook and the helpers stay equal (the idea of Transformers'
``# Copied from``).

A notebook writes some lesson code out on the page that a helper also holds, so the reader
sees it and the tests and benchmarks reuse it. Such a function is marked in its cell:

    # Copied from helpers.lessons.mlp.evaluate_torch
    # with evaluate_torch->evaluate, torch.nn.functional.cross_entropy->loss_fn
    def evaluate(model, x, y): ...

This test finds every marker, applies the replacements to the helper's source, and
compares the two functions' code (docstrings, type hints and the helper's local imports
aside). Change both together, or the test names the cell and the function.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import re
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"^# Copied from (helpers(?:\.\w+)+)\.(\w+)$")


def _normalised(function: ast.FunctionDef) -> str:
    """Dump a function's code without its docstring, annotations and leading local imports."""
    body = list(function.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    while body and isinstance(body[0], (ast.Import, ast.ImportFrom)):
        body = body[1:]
    for arg in function.args.args + function.args.kwonlyargs:
        arg.annotation = None
    function.returns, function.body = None, body
    return ast.dump(function, annotate_fields=False)


def _marked_copies() -> list[tuple[str, int, str, str, list[tuple[str, str]], ast.FunctionDef]]:
    """Return (notebook, cell, module, name, replacements, the notebook's function) per marker."""
    found = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        for index, cell in enumerate(cells):
            if cell["cell_type"] != "code":
                continue
            source = "".join(cell["source"])
            lines = source.splitlines()
            for number, line in enumerate(lines):
                match = MARKER.match(line.strip())
                if not match:
                    continue
                replacements = []
                after = number + 1
                while after < len(lines) and lines[after].startswith("# with "):
                    for pair in lines[after][len("# with ") :].split(","):
                        old, new = (part.strip() for part in pair.split("->"))
                        replacements.append((old, new))
                    after += 1
                tree = ast.parse(source)
                defined = [
                    node
                    for node in tree.body
                    if isinstance(node, ast.FunctionDef) and node.lineno > after
                ]
                assert defined, f"{path.name} cell {index}: no function after the marker"
                found.append(
                    (path.name, index, match.group(1), match.group(2), replacements, defined[0])
                )
    return found


COPIES = _marked_copies()


def test_the_book_has_marked_copies():
    assert len(COPIES) >= 2  # 04b's training and evaluation functions at least


@pytest.mark.parametrize(
    ("notebook", "cell", "module", "name", "replacements", "copy"),
    COPIES,
    ids=[f"{c[0]}:{c[3]}" for c in COPIES],
)
def test_marked_copy_equals_the_helper(notebook, cell, module, name, replacements, copy):
    original = getattr(importlib.import_module(module), name)
    source = textwrap.dedent(inspect.getsource(original))
    for old, new in replacements:
        assert old in source, f"{module}.{name} has no {old!r} to replace"
        source = source.replace(old, new)
    helper = ast.parse(source).body[0]
    assert _normalised(helper) == _normalised(copy), (
        f"{notebook} cell {cell}: {copy.name} differs from {module}.{name}; change both"
    )


def test_04c_writes_out_the_same_training_arguments_as_the_recipe(tmp_path):
    # 04c builds its TrainingArguments on the page; helpers.lessons.finetune builds the ones
    # the benchmark, chapter 5 and the launchers use. Run the notebook's cell and compare.
    import tempfile

    import torch
    import transformers

    from helpers.lessons import finetune

    cells = json.loads((ROOT / "notebooks/04c-fine-tuning.ipynb").read_text())["cells"]
    (cell,) = [
        "".join(c["source"])
        for c in cells
        if c["cell_type"] == "code" and "transformers.TrainingArguments(" in "".join(c["source"])
    ]
    names = {"MAX_STEPS": finetune.MAX_STEPS, "BATCH_SIZE": finetune.BATCH_SIZE}
    names |= {"LEARNING_RATE": finetune.LEARNING_RATE, "transformers": transformers}
    names |= {"torch": torch, "tempfile": tempfile, "Path": Path}
    exec(cell, names)  # noqa: S102 (the repository's own notebook cell)
    page = names["args"].to_dict()
    recipe = finetune.training_arguments(page["output_dir"]).to_dict()
    differing = {key for key in page.keys() | recipe.keys() if page.get(key) != recipe.get(key)}
    # What the recipe sets beyond the page, and why the page may leave it out:
    allowed = {
        "use_cpu",  # only for torchrun without a GPU (chapter 6)
        "average_tokens_across_devices",  # only matters with several processes (chapter 6)
        "ddp_find_unused_parameters",  # only matters with several processes (chapter 6)
        "num_train_epochs",  # ignored while max_steps is set, as it is on the page
    }
    assert page["max_steps"] > 0
    assert differing <= allowed, {k: (page.get(k), recipe.get(k)) for k in differing - allowed}
