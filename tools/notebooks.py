"""Check and fix the hygiene of the book's notebooks.

`check` fails, naming the notebook and the cell, when a notebook has outputs or execution
counts, a kernel other than `python3`, no `#` title in its first cell, a badge row that
does not point at its own path in the repository named in `_config.yml`, no setup cell,
a solution cell that the book would not fold away, or a figure without alt text and
caption: a cell that draws one (`plt.show()` or an `..._explorer(` call) needs alt text in
its metadata (`mystnb: {image: {alt: ...}}`, which the book puts on the image) and must be
followed by a Markdown cell that starts with `**Figure: `, seen in Jupyter and the book.
`fix` repairs what it can: it strips outputs, execution counts and saved widget state
(with nbstripout), sets the kernel, and stamps the badge row and the Colab lines of the
setup cell from `_config.yml`. It writes the notebook as Jupyter does (`nbformat.write`:
keys sorted, indent 1, sources as lists of lines), so fixing a notebook saved by Jupyter
changes nothing but what needed fixing.

Usage: python tools/notebooks.py {check,fix} [NOTEBOOK ...]   (default: notebooks/*.ipynb)
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import yaml
from nbstripout import strip_output

ROOT = Path(__file__).resolve().parent.parent
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
BADGE_TAG = "remove-cell"  # the book has launch buttons; the badges are for Colab and GitHub
SETUP_TAG = "setup"
COLAB_MARKER = "# On Colab, install the book's helper package"
CAPTION_START = "**Figure: "
BADGE_ID = "badges"  # the id of a badge cell that `fix` inserts
# What nbstripout removes besides outputs and execution counts.
STRIPPED_KEYS = ["metadata.widgets", "cell.metadata.execution"]
MIN_ALT_LENGTH = 40  # a description, not a file name or a two-word label


@dataclass(frozen=True)
class Repository:
    """Where the book lives, as configured once in `_config.yml`."""

    url: str  # https://github.com/OWNER/NAME
    branch: str

    @classmethod
    def from_config(cls, config: Path = ROOT / "_config.yml") -> Repository:
        """Read the repository URL and branch from a Jupyter Book `_config.yml`."""
        repo = yaml.safe_load(config.read_text())["repository"]
        return cls(url=repo["url"].rstrip("/"), branch=repo.get("branch", "main"))

    @property
    def slug(self) -> str:
        """Return OWNER/NAME."""
        return self.url.removeprefix("https://github.com/")

    def colab_url(self, path: str) -> str:
        """Return the Colab URL that opens the notebook at `path` (relative to the repo root)."""
        return f"https://colab.research.google.com/github/{self.slug}/blob/{self.branch}/{path}"

    def download_url(self, path: str) -> str:
        """Return a URL that downloads the raw notebook file."""
        return f"{self.url}/raw/{self.branch}/{path}"

    def badge_row(self, path: str) -> str:
        """Return the Markdown badge row of the notebook at `path`."""
        colab_badge = "https://colab.research.google.com/assets/colab-badge.svg"
        download_badge = "https://img.shields.io/badge/download-.ipynb-blue"
        return (
            f"[![Open In Colab]({colab_badge})]({self.colab_url(path)}) "
            f"[![Download the notebook]({download_badge})]({self.download_url(path)})"
        )

    def colab_lines(self) -> str:
        """Return the lines that open every setup cell: install the helpers on Colab only."""
        return (
            f"{COLAB_MARKER} (Colab has the frameworks).\n"
            "import sys\n"
            "\n"
            'if "google.colab" in sys.modules:\n'
            f'    %pip install -q "git+{self.url}@{self.branch}"\n'
        )


def source(cell: dict) -> str:
    """Return a cell's source as one string (nbformat allows a list of lines)."""
    text = cell.get("source", "")
    return "".join(text) if isinstance(text, list) else text


def tags(cell: dict) -> list[str]:
    """Return a cell's tags."""
    return cell.get("metadata", {}).get("tags", [])


def relative(path: Path) -> str:
    """Return `path` relative to the repository root, in POSIX form."""
    return path.resolve().relative_to(ROOT).as_posix()


def setup_index(cells: list[dict]) -> int | None:
    """Return the index of the setup cell: the first code cell."""
    return next((i for i, c in enumerate(cells) if c["cell_type"] == "code"), None)


def problems(nb: dict, path: str, repo: Repository) -> list[str]:
    """Return the hygiene problems of notebook `nb` stored at `path`, one message each."""
    found = []
    cells = nb.get("cells", [])
    if nb.get("metadata", {}).get("kernelspec", {}).get("name") != "python3":
        found.append(f"{path}: kernelspec must be python3 (run `make fix-notebooks`)")
    if "widgets" in nb.get("metadata", {}):
        found.append(f"{path}: saved widget state in the metadata (run `make fix-notebooks`)")
    for i, cell in enumerate(cells):
        if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count")):
            found.append(f"{path}: cell {i} has outputs or an execution count (strip them)")
        if "solution" in tags(cell) and "hide-input" not in tags(cell):
            found.append(f"{path}: cell {i} is a solution; tag it 'hide-input' to fold it away")
        if draws_figure(cell):
            found += [f"{path}: cell {i} draws a figure; {p}" for p in _figure_problems(cells, i)]
    titles = [i for i, c in enumerate(cells) if c["cell_type"] == "markdown" and _h1(source(c))]
    if not cells or cells[0]["cell_type"] != "markdown" or not _h1(source(cells[0])):
        found.append(f"{path}: cell 0 must be a Markdown cell that starts with a `# ` title")
    elif titles != [0]:
        found.append(f"{path}: cells {titles} have `# ` titles; a notebook has exactly one")
    if len(cells) < 2 or source(cells[1]).strip() != repo.badge_row(path):
        found.append(f"{path}: cell 1 must be the badge row for {path} (run `make fix-notebooks`)")
    elif BADGE_TAG not in tags(cells[1]):
        found.append(f"{path}: cell 1 (badges) needs the tag {BADGE_TAG!r}")
    index = setup_index(cells)
    if index is None:
        found.append(f"{path}: no code cell, so no setup cell")
    else:
        setup = cells[index]
        if SETUP_TAG not in tags(setup):
            found.append(f"{path}: cell {index} (the first code cell) needs the tag 'setup'")
        if not source(setup).startswith(repo.colab_lines()):
            found.append(
                f"{path}: cell {index} (setup) must start with the Colab lines "
                "(run `make fix-notebooks`)"
            )
        if "import helpers" not in source(setup):
            found.append(f"{path}: cell {index} (setup) must `import helpers`")
        elif _framework_before_helpers(source(setup)):
            found.append(
                f"{path}: cell {index} (setup) imports a framework before `import helpers`, "
                "so TensorFlow's start-up log is not quieted"
            )
    return found


def draws_figure(cell: dict) -> bool:
    """Return whether a code cell shows a Matplotlib figure or an explorer widget."""
    text = source(cell)
    return cell["cell_type"] == "code" and ("plt.show()" in text or "_explorer(" in text)


def _figure_problems(cells: list[dict], index: int) -> list[str]:
    alt = cells[index].get("metadata", {}).get("mystnb", {}).get("image", {}).get("alt", "")
    found = []
    if len(alt.strip()) < MIN_ALT_LENGTH:
        found.append(
            f"describe it in the cell metadata `mystnb: {{image: {{alt: ...}}}}` "
            f"(at least {MIN_ALT_LENGTH} characters)"
        )
    after = cells[index + 1] if index + 1 < len(cells) else None
    if (
        after is None
        or after["cell_type"] != "markdown"
        or not source(after).startswith(CAPTION_START)
    ):
        found.append(f"the next cell must be Markdown starting with {CAPTION_START!r}")
    return found


FRAMEWORKS = ("tensorflow", "keras", "torch", "transformers")


def _framework_before_helpers(text: str) -> bool:
    """Return whether a framework is imported before `import helpers` in `text`."""
    for line in text.splitlines():
        words = line.split()
        if words[:2] == ["import", "helpers"]:
            return False
        if len(words) > 1 and words[0] in ("import", "from"):
            if words[1].split(".")[0] in FRAMEWORKS:
                return True
    return False


def _h1(text: str) -> bool:
    return any(line.startswith("# ") for line in text.splitlines())


def fixed(nb: dict, path: str, repo: Repository) -> nbformat.NotebookNode:
    """Return `nb` with outputs stripped, kernel set, badges and Colab lines stamped."""
    nb = nbformat.from_dict(nb)
    strip_output(
        nb,
        keep_output=False,
        keep_count=False,
        keep_id=True,
        extra_keys=STRIPPED_KEYS,
        strip_init_cells=True,
    )
    nb.metadata["kernelspec"] = nbformat.from_dict(KERNELSPEC)
    cells = nb.cells
    if len(cells) > 1 and _is_badge_cell(cells[1]):
        badge = cells[1]
    else:
        badge = nbformat.v4.new_markdown_cell("", metadata={"tags": [BADGE_TAG]})
        if "id" not in cells[0]:
            del badge["id"]  # a notebook older than nbformat 4.5 has no cell ids
        elif BADGE_ID not in {cell.get("id") for cell in cells}:
            badge.id = BADGE_ID
        cells.insert(1, badge)
    badge["source"] = repo.badge_row(path)
    badge.setdefault("metadata", {})["tags"] = sorted(set(tags(badge)) | {BADGE_TAG})
    index = setup_index(cells)
    if index is not None:
        setup = cells[index]
        setup.setdefault("metadata", {})["tags"] = sorted(set(tags(setup)) | {SETUP_TAG})
        setup["source"] = repo.colab_lines() + "\n" + _without_colab_lines(source(setup))
    return nb


def _is_badge_cell(cell: dict) -> bool:
    text = source(cell).strip()
    return cell["cell_type"] == "markdown" and (text == "BADGES" or "colab-badge" in text)


def _without_colab_lines(text: str) -> str:
    """Drop a previously stamped Colab block (everything up to its %pip line)."""
    if not text.startswith(COLAB_MARKER):
        return text
    lines = text.splitlines(keepends=True)
    end = next(i for i, line in enumerate(lines) if "%pip install" in line)
    return "".join(lines[end + 1 :]).lstrip("\n")


def read(path: Path) -> nbformat.NotebookNode:
    """Read a notebook, failing with its name if it is not a valid nbformat 4."""
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
        version = data.get("nbformat") if isinstance(data, dict) else None
        if version != 4:
            raise nbformat.ValidationError(f"nbformat version {version!r}, not 4")
        nb = nbformat.reads(text, as_version=nbformat.NO_CONVERT)
        nbformat.validate(nb)
    except (json.JSONDecodeError, nbformat.ValidationError) as error:
        message = str(error).splitlines()[0]
        raise SystemExit(f"{relative(path)}: not a valid notebook ({message})") from error
    return nb


def write(path: Path, nb: dict) -> None:
    """Write a notebook the way Jupyter does (`nbformat.write`: keys sorted, indent 1)."""
    nbformat.write(nbformat.from_dict(nb), path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["check", "fix"])
    parser.add_argument("paths", nargs="*", type=Path)
    args = parser.parse_args(argv)
    paths = args.paths or sorted((ROOT / "notebooks").glob("*.ipynb"))
    repo = Repository.from_config()
    found = []
    for path in paths:
        name = relative(path)
        nb = read(path)
        if args.command == "fix":
            write(path, fixed(nb, name, repo))
            nb = read(path)
        found += problems(nb, name, repo)
    for message in found:
        print(message)
    print(f"{len(paths)} notebooks {args.command}ed, {len(found)} problems")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
