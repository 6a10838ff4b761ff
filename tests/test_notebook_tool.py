"""The notebook hygiene tool: it names the notebook and cell at fault, and `fix` repairs them."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import nbformat
import pytest

from tools import notebooks as tool

REPO = tool.Repository(url="https://github.com/example/book", branch="main")
PATH = "notebooks/09z-example.ipynb"


def clean_notebook() -> dict:
    """Return a notebook that passes every hygiene rule for PATH and REPO."""
    nb = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"kernelspec": dict(tool.KERNELSPEC)},
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": "# An example"},
            {
                "cell_type": "markdown",
                "metadata": {"tags": ["remove-cell"]},
                "source": REPO.badge_row(PATH),
            },
            {"cell_type": "markdown", "metadata": {}, "source": "What it teaches."},
            {
                "cell_type": "code",
                "metadata": {"tags": ["setup"]},
                "source": REPO.colab_lines() + "\nimport helpers\n",
                "outputs": [],
                "execution_count": None,
            },
            {
                "cell_type": "code",
                "metadata": {},
                "source": "1 + 1",
                "outputs": [],
                "execution_count": None,
            },
        ],
    }
    for number, cell in enumerate(nb["cells"]):
        cell["id"] = f"cell-{number}"
    return nb


def test_clean_notebook_has_no_problems():
    assert tool.problems(clean_notebook(), PATH, REPO) == []


def test_badge_urls_point_at_the_notebooks_own_path():
    row = REPO.badge_row(PATH)
    assert "https://colab.research.google.com/github/example/book/blob/main/" + PATH in row
    assert "https://github.com/example/book/raw/main/" + PATH in row


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (lambda nb: nb["cells"][4].update(execution_count=3), "cell 4 has outputs"),
        (
            lambda nb: nb["cells"][4].update(outputs=[{"output_type": "stream", "text": "2"}]),
            "cell 4 has outputs",
        ),
        (lambda nb: nb["metadata"]["kernelspec"].update(name="ir"), "kernelspec must be python3"),
        (lambda nb: nb["cells"][0].update(source="An example"), "cell 0 must be a Markdown"),
        (lambda nb: nb["cells"][2].update(source="# Second title"), "exactly one"),
        (lambda nb: nb["cells"].pop(1), "cell 1 must be the badge row"),
        (lambda nb: nb["cells"][3]["metadata"].update(tags=[]), "needs the tag 'setup'"),
        (lambda nb: nb["cells"][4]["metadata"].update(tags=["solution"]), "tag it 'hide-input'"),
        (
            lambda nb: nb["cells"][3].update(
                source=REPO.colab_lines() + "\nimport torch\n\nimport helpers\n"
            ),
            "imports a framework before `import helpers`",
        ),
        (
            lambda nb: nb["cells"][3].update(source="import helpers\n"),
            "must start with the Colab lines",
        ),
    ],
)
def test_each_problem_is_reported_with_file_and_cell(breakage, expected):
    nb = clean_notebook()
    breakage(nb)
    found = tool.problems(nb, PATH, REPO)
    assert any(expected in message and message.startswith(PATH) for message in found), found


def add_figure(nb: dict, alt: str | None, caption: str | None) -> None:
    """Append a plotting cell with alt text `alt`, followed by Markdown `caption`."""
    metadata = {} if alt is None else {"mystnb": {"image": {"alt": alt}}}
    nb["cells"].append(
        {
            "cell_type": "code",
            "id": "plot",
            "metadata": metadata,
            "source": "plt.plot([1, 2])\nplt.show()",
            "outputs": [],
            "execution_count": None,
        }
    )
    if caption is not None:
        nb["cells"].append(
            {"cell_type": "markdown", "id": "caption", "metadata": {}, "source": caption}
        )


ALT = "A line rising from 1 to 2 over two points, the simplest plot there is."


def test_a_figure_with_alt_text_and_caption_passes():
    nb = clean_notebook()
    add_figure(nb, ALT, "**Figure: A rising line.** It rises.")
    assert tool.problems(nb, PATH, REPO) == []


@pytest.mark.parametrize(
    ("alt", "caption", "expected"),
    [
        (None, "**Figure: A rising line.**", "cell 5 draws a figure; describe it"),
        ("../_images/abc.png", "**Figure: A rising line.**", "describe it"),
        (ALT, None, "the next cell must be Markdown starting with '**Figure: '"),
        (ALT, "A rising line.", "the next cell must be Markdown"),
    ],
)
def test_a_figure_needs_alt_text_and_a_caption(alt, caption, expected):
    nb = clean_notebook()
    add_figure(nb, alt, caption)
    found = tool.problems(nb, PATH, REPO)
    assert any(expected in message and message.startswith(PATH) for message in found), found


def test_an_explorer_call_counts_as_a_figure():
    nb = clean_notebook()
    nb["cells"][4]["source"] = "explorers.attention_explorer(tokenizer, model)"
    assert any("cell 4 draws a figure" in m for m in tool.problems(nb, PATH, REPO))


def test_badges_for_another_path_are_rejected():
    found = tool.problems(clean_notebook(), "notebooks/renamed.ipynb", REPO)
    assert any("cell 1 must be the badge row" in message for message in found)


def test_fix_repairs_a_fresh_notebook():
    nb = clean_notebook()
    del nb["cells"][1]  # no badges yet
    nb["cells"][2]["source"] = "import helpers\n"  # setup cell without Colab lines
    nb["cells"][3].update(execution_count=7, outputs=[{"output_type": "stream", "text": "2"}])
    nb["metadata"]["kernelspec"] = {"name": "other"}
    nb["metadata"]["widgets"] = {"state": {}}
    repaired = tool.fixed(copy.deepcopy(nb), PATH, REPO)
    assert tool.problems(repaired, PATH, REPO) == []


def test_fix_is_idempotent_and_replaces_a_placeholder():
    nb = clean_notebook()
    nb["cells"][1]["source"] = "BADGES"
    once = tool.fixed(copy.deepcopy(nb), PATH, REPO)
    twice = tool.fixed(copy.deepcopy(once), PATH, REPO)
    assert once == twice
    assert len(once["cells"]) == len(nb["cells"])
    assert once["cells"][3]["source"].count("%pip install") == 1


def test_fix_restamps_when_the_repository_moves():
    moved = tool.Repository(url="https://github.com/fork/book", branch="dev")
    nb = tool.fixed(clean_notebook(), PATH, moved)
    assert tool.problems(nb, PATH, moved) == []
    assert "fork/book@dev" in nb["cells"][3]["source"]


def test_command_line_check_exits_nonzero_and_names_the_file(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.setattr(tool, "ROOT", tmp_path)
    monkeypatch.setattr(tool.Repository, "from_config", classmethod(lambda cls: REPO))
    (tmp_path / "notebooks").mkdir()
    path = tmp_path / PATH
    nb = clean_notebook()
    nb["cells"][4]["execution_count"] = 1
    path.write_text(json.dumps(nb))
    assert tool.main(["check", str(path)]) == 1
    assert f"{PATH}: cell 4 has outputs" in capsys.readouterr().out
    assert tool.main(["fix", str(path)]) == 0
    assert tool.main(["check", str(path)]) == 0


@pytest.mark.parametrize("text", ["{not json", '{"cells": "not a list", "nbformat": 4}'])
def test_an_invalid_notebook_is_named(tmp_path: Path, monkeypatch, text: str):
    monkeypatch.setattr(tool, "ROOT", tmp_path)
    path = tmp_path / "broken.ipynb"
    path.write_text(text)
    with pytest.raises(SystemExit, match=r"broken\.ipynb: not a valid notebook"):
        tool.read(path)


def saved_by_jupyter(tmp_path: Path, nb: dict, monkeypatch) -> Path:
    """Write `nb` at PATH under `tmp_path` as Jupyter saves it, with the tool pointed there."""
    monkeypatch.setattr(tool, "ROOT", tmp_path)
    monkeypatch.setattr(tool.Repository, "from_config", classmethod(lambda cls: REPO))
    path = tmp_path / PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nbformat.from_dict(nb), path)
    return path


def test_fix_leaves_a_notebook_saved_by_jupyter_unchanged(tmp_path: Path, monkeypatch):
    nb = clean_notebook()
    nb["cells"][2]["source"] = "What it teaches,\nover two lines.\n"
    nb["cells"][4]["source"] = "x = 1\n\nprint(x + 1)"
    path = saved_by_jupyter(tmp_path, nb, monkeypatch)
    saved = path.read_bytes()
    assert tool.main(["fix", str(path)]) == 0
    assert path.read_bytes() == saved


def test_fix_strips_outputs_and_state_and_keeps_cell_ids(tmp_path: Path, monkeypatch):
    nb = clean_notebook()
    nb["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    nb["cells"][4].update(
        execution_count=3,
        outputs=[
            {
                "output_type": "execute_result",
                "execution_count": 3,
                "metadata": {},
                "data": {"text/plain": "2"},
            }
        ],
    )
    nb["cells"][4]["metadata"]["execution"] = {"iopub.status.idle": "2026-12-01T10:00:00Z"}
    expected = saved_by_jupyter(tmp_path, clean_notebook(), monkeypatch).read_bytes()
    path = saved_by_jupyter(tmp_path, nb, monkeypatch)
    assert tool.main(["fix", str(path)]) == 0
    assert path.read_bytes() == expected


def test_fix_inserts_a_badge_cell_that_jupyter_can_open(tmp_path: Path, monkeypatch):
    nb = clean_notebook()
    del nb["cells"][1]
    path = saved_by_jupyter(tmp_path, nb, monkeypatch)
    assert tool.main(["fix", str(path)]) == 0
    repaired = nbformat.read(path, as_version=4)
    nbformat.validate(repaired)
    assert repaired.cells[1].id == "badges"
    assert tool.problems(repaired, PATH, REPO) == []
