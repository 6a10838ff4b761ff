"""The Chinese edition from the same source: catalogues, the translated build, the notebooks.

Every prose page and every notebook's Markdown is English in the repository. Sphinx's
gettext builder extracts its messages (one per paragraph, heading, list item, table cell,
caption, figure alt text) into `locales/zh_CN/LC_MESSAGES/<page>.po`, where the
translations live. Code cells and their outputs are never translated: the Chinese build
renders the notebooks from the same execution cache as the English one and runs none.

  python tools/i18n.py extract        update the .po files from the pages (after an English edit)
  python tools/i18n.py check          every message translated, none fuzzy, markup kept, in sync
  python tools/i18n.py build [--strict]   the Chinese book into _build/html/zh/
  python tools/i18n.py notebooks [--check]   notebooks/zh/*.ipynb, the Chinese Colab notebooks

Extraction and the build read the notebooks' outputs (figure alt text is a message) from
the execution cache that `make notebooks` or `make book` fills; they stop if it lacks one.
"""

from __future__ import annotations

import argparse
import io
import re
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po
from jupyter_book.sphinx import build_sphinx
from jupyter_cache import get_cache
from markdown_it import MarkdownIt
from myst_nb.core.render import base_render_priority
from sphinx_intl import basic

sys.path.insert(0, str(Path(__file__).resolve().parent))
import notebooks as hygiene  # noqa: E402  (tools/notebooks.py: badges, Colab lines, writing)

ROOT = Path(__file__).resolve().parent.parent
LANGUAGE = "zh_CN"
LOCALES = ROOT / "locales"
MESSAGES = LOCALES / LANGUAGE / "LC_MESSAGES"
CACHE = ROOT / "_build" / ".jupyter_cache"
OUTPUT = ROOT / "_build" / "zh"  # the Chinese build's own folder (doctrees, outputs)
PUBLISHED = ROOT / "_build" / "html" / "zh"  # where the English book links to it
# The extracted messages; a fixed folder, so the source paths in the .po files are the same
# in every clone.
POT = ROOT / "_build" / "gettext"
NOTEBOOKS = ROOT / "notebooks"
ZH_NOTEBOOKS = NOTEBOOKS / "zh"
TITLE = "大模型框架"


def sphinx_overrides(**extra: object) -> dict[str, object]:
    """Return what the Jupyter Book CLI would pass, plus `extra` (Sphinx config values)."""
    return {
        "external_toc_path": "_toc.yml",
        "latex_individualpages": False,
        "nb_execution_cache_path": str(CACHE),
        **extra,
    }


def require_cached_outputs() -> None:
    """Stop unless every notebook's current code has its outputs in the execution cache."""
    cache = get_cache(str(CACHE))
    missing = []
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        if not _cached(cache, nb):
            missing.append(path.name)
    if missing:
        raise SystemExit(
            f"error: the execution cache {CACHE.relative_to(ROOT)} has no outputs for the "
            f"current code of {', '.join(missing)}; run `make notebooks` (or `make book`) first"
        )


def _cached(cache, nb: nbformat.NotebookNode) -> bool:
    try:
        cache.match_cache_notebook(nb)
    except KeyError:
        return False
    return True


def gettext(out: Path) -> None:
    """Extract every page's messages into `out/<page>.pot` (Sphinx's gettext builder)."""
    require_cached_outputs()
    if out.exists():
        shutil.rmtree(out)  # no .pot of a page that is gone
    code = build_sphinx(
        ROOT,
        out,
        noconfig=True,
        path_config=str(ROOT / "_config.yml"),
        # myst-nb knows no output formats for this builder: render outputs as for HTML, so
        # that the figures (and their alt text) are on the extracted pages.
        confoverrides=sphinx_overrides(
            nb_mime_priority_overrides=[
                ("gettext", mime, priority)
                for mime, priority in base_render_priority()["html"].items()
            ]
        ),
        doctreedir=str(out.parent / f"{out.name}.doctrees"),
        builder="gettext",
        quiet=True,
        warningiserror=True,
        keep_going=True,
    )
    if code:
        raise SystemExit(f"error: extracting the messages failed (Sphinx exit status {code})")


def extract() -> None:
    """Update (or create) every page's .po file from the pages as they are now."""
    gettext(POT)
    basic.update(str(LOCALES), str(POT), (LANGUAGE,), jobs=1)


# --- check ----------------------------------------------------------------------------

ROLE = re.compile(r"\{([\w:]+)\}`([^`]*)`")
CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
MATH = re.compile(r"\$\$?[^$]+\$\$?")
LINK_TARGET = re.compile(r"\]\(([^)\s]+)\)")
# A translation that starts like a list item, heading or quote is parsed as one by Sphinx,
# which then drops it (it keeps only translations that parse as a paragraph).
BLOCK_START = re.compile(r"\s*(\d+[.)]|[-*+]|#{1,6}|>)(\s|$)")
MARKDOWN = MarkdownIt("commonmark")
RENDERED_CODE = re.compile(r"<code>.*?</code>", re.DOTALL)


def stray_asterisks(text: str) -> int:
    """Return how many asterisks of `text` CommonMark leaves as text, outside code.

    In Chinese this catches `**注意：**后面`: a closing `**` after punctuation and before
    a letter does not close, so both pairs of asterisks would show on the page.
    """
    return RENDERED_CODE.sub("", MARKDOWN.renderInline(text)).count("*")


def markup_problems(english: str, chinese: str) -> list[str]:
    """Return how `chinese` fails to keep the code, math, links and roles of `english`."""
    found = []
    roles = [ROLE.findall(text) for text in (english, chinese)]
    if sorted(r for r, _ in roles[0]) != sorted(r for r, _ in roles[1]):
        found.append("its roles differ from the English")
    for role in {r for r, _ in roles[0]} - {"term"}:  # a term's target is the Chinese term
        targets = [sorted(_target(b) for r, b in found_roles if r == role) for found_roles in roles]
        if targets[0] != targets[1]:
            found.append(f"its {{{role}}} targets differ from the English")
    without_roles = [ROLE.sub("", text) for text in (english, chinese)]
    spans = [sorted(m.group(0) for m in CODE.finditer(text)) for text in without_roles]
    if spans[0] != spans[1]:
        found.append("its inline code differs from the English")
    if sorted(MATH.findall(english)) != sorted(MATH.findall(chinese)):
        found.append("its math differs from the English")
    if sorted(LINK_TARGET.findall(english)) != sorted(LINK_TARGET.findall(chinese)):
        found.append("its link targets differ from the English")
    if chinese != english and BLOCK_START.match(chinese):
        found.append(
            "it starts like a list item, heading or quote, so Sphinx would drop it; "
            "escape the first mark (`1\\.`, `\\-`)"
        )
    if stray_asterisks(chinese) > stray_asterisks(english):
        found.append("its emphasis does not close, so its asterisks would show")
    return found


def _target(body: str) -> str:
    return body.rsplit("<", 1)[1].rstrip(">").strip() if body.endswith(">") else body


def read_catalog(path: Path) -> Catalog:
    """Read a .po or .pot file."""
    with path.open("rb") as stream:
        return read_po(stream)


def catalog_problems(pot_dir: Path, messages: Path = MESSAGES) -> list[str]:
    """Return every catalogue problem, one line each naming the file and the message.

    `pot_dir` holds the freshly extracted .pot files, `messages` the .po files.
    """
    found = []
    pages = {p.relative_to(pot_dir).with_suffix("") for p in pot_dir.rglob("*.pot")}
    kept = {p.relative_to(messages).with_suffix("") for p in messages.rglob("*.po")}
    for page in sorted(kept - pages):
        found.append(f"{_po(page, messages)}: no such page any more; delete the file")
    for page in sorted(pages):
        po_path = messages / page.with_suffix(".po")
        if not po_path.exists():
            found.append(f"{_po(page, messages)}: missing; run `python tools/i18n.py extract`")
            continue
        po = read_catalog(po_path)
        for message in read_catalog(pot_dir / page.with_suffix(".pot")):
            if not message.id:
                continue
            where = f"{_po(page, messages)}: {_short(message.id)}"
            entry = po.get(message.id)
            if entry is None:
                found.append(f"{where}: new English text; run `python tools/i18n.py extract`")
            elif entry.fuzzy:
                found.append(f"{where}: fuzzy (the English changed); check and clear the flag")
            elif not entry.string:
                found.append(f"{where}: not translated")
            else:
                found += [
                    f"{where}: {problem}" for problem in markup_problems(message.id, entry.string)
                ]
        if po.obsolete:
            found.append(
                f"{_po(page, messages)}: {len(po.obsolete)} obsolete messages; run extract"
            )
    return found


def _po(page: Path, messages: Path) -> str:
    path = messages / page.with_suffix(".po")
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


def _short(text: str) -> str:
    return repr(text if len(text) <= 70 else text[:67] + "...")


def check() -> int:
    """Print every catalogue problem and every stale Chinese notebook; return 1 if any."""
    gettext(POT)
    found = catalog_problems(POT)
    found += [
        f"{name}: out of date; run `python tools/i18n.py notebooks`" for name in stale_notebooks()
    ]
    for line in found:
        print(line)
    print(f"Chinese edition: {len(found)} problems")
    return 1 if found else 0


# --- build ----------------------------------------------------------------------------


def build(strict: bool) -> int:
    """Build the Chinese book from the execution cache; publish it in _build/html/zh."""
    require_cached_outputs()
    html = OUTPUT / "html"
    overrides = sphinx_overrides(
        language=LANGUAGE,
        html_search_language="zh",
        project=TITLE,
        html_title=TITLE,
        nb_execution_mode="cache",
    )
    if strict:
        overrides["nitpicky"] = True
    code = build_sphinx(
        ROOT,
        html,
        noconfig=True,
        path_config=str(ROOT / "_config.yml"),
        confoverrides=overrides,
        doctreedir=str(OUTPUT / ".doctrees"),
        builder="html",
        warningiserror=strict,
        keep_going=strict,
        force_all=strict,
    )
    if code:
        return code
    if PUBLISHED.exists():
        shutil.rmtree(PUBLISHED)
    shutil.copytree(html, PUBLISHED)
    print(f"The Chinese edition is built: open {PUBLISHED / 'index.html'}")
    return 0


# --- notebooks ------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """One translated message of a notebook: the cell it came from, its English and Chinese."""

    cell: int | None  # None: no line recorded (a figure's alt text, from an output)
    english: str
    chinese: str


def notebook_messages(name: str) -> Iterator[Message]:
    """Yield the translated messages of notebook `name`, with their cells.

    myst-nb numbers a notebook's lines as (cell index + 1) * 10000 + line in the cell,
    and Sphinx records those numbers as each message's locations.
    """
    po = read_catalog(MESSAGES / "notebooks" / f"{Path(name).stem}.po")
    for entry in po:
        if not entry.id or not entry.string:
            continue
        for _, line in entry.locations or [(None, None)]:
            cell = int(line) // 10000 - 1 if line else None
            yield Message(cell, entry.id, entry.string)


def _pattern(english: str) -> re.Pattern:
    # Sphinx joins a paragraph's lines with spaces; the cell keeps its line breaks
    # and the indentation of list continuations.
    return re.compile(r"\s+".join(re.escape(word) for word in english.split()))


def translate_markdown(text: str, pairs: list[tuple[str, str]], where: str) -> str:
    """Replace each English message in a Markdown cell by its Chinese; longest first.

    Raises:
        SystemExit: A message is not found in the cell (the catalogue is out of date).
    """
    taken: list[tuple[int, int, str]] = []
    for english, chinese in sorted(set(pairs), key=lambda pair: -len(pair[0])):
        for match in _pattern(english).finditer(text):
            start, end = match.span()
            if all(end <= a or start >= b for a, b, _ in taken):
                taken.append((start, end, chinese))
                break
        else:
            raise SystemExit(f"error: {where}: message not found in the cell: {_short(english)}")
    for start, end, chinese in sorted(taken, reverse=True):
        text = text[:start] + chinese + text[end:]
    # The notebook moves one folder down: relative links climb one more level.
    return re.sub(r"\]\((?!https?:|#|mailto:)", "](../", text)


def translate_table_cells(text: str, translations: dict[str, str]) -> str:
    """Translate the cells of the Markdown tables in `text` (Sphinx gives them no line)."""
    lines = text.split("\n")
    for number, line in enumerate(lines):
        if line.startswith("|") and not set(line) <= set("|-: "):
            cells = line.split("|")
            for i, cell in enumerate(cells):
                english = " ".join(cell.split())
                if english in translations:
                    cells[i] = f" {translations[english]} "
            lines[number] = "|".join(cells)
    return "\n".join(lines)


def chinese_notebook(path: Path, repo: hygiene.Repository) -> nbformat.NotebookNode:
    """Return the Chinese version of the English notebook at `path`."""
    nb = nbformat.read(path, as_version=4)
    by_cell: dict[int, list[tuple[str, str]]] = {}
    unplaced: dict[str, str] = {}  # messages Sphinx records without a line: table cells
    translations: dict[str, str] = {}  # every message: for the figures' alt text
    for message in notebook_messages(path.name):
        translations[message.english] = message.chinese
        if message.cell is None:
            unplaced[message.english] = message.chinese
        else:
            by_cell.setdefault(message.cell, []).append((message.english, message.chinese))
    for index, cell in enumerate(nb.cells):
        image = cell.metadata.get("mystnb", {}).get("image", {})
        if image.get("alt") in translations:
            image["alt"] = translations[image["alt"]]
        if cell.cell_type != "markdown":
            continue
        if index in by_cell:
            where = f"{path.name} cell {index}"
            cell.source = translate_markdown(cell.source, by_cell[index], where)
        cell.source = translate_table_cells(cell.source, unplaced)
    return hygiene.fixed(nb, f"notebooks/zh/{path.name}", repo)


def _rendered(nb: nbformat.NotebookNode) -> str:
    stream = io.StringIO()
    nbformat.write(nb, stream)
    return stream.getvalue()


def stale_notebooks(write: bool = False) -> list[str]:
    """Return the Chinese notebooks that a fresh generation changes; rewrite them if `write`."""
    repo = hygiene.Repository.from_config()
    stale = []
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        target = ZH_NOTEBOOKS / path.name
        text = _rendered(chinese_notebook(path, repo))
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            stale.append(target.relative_to(ROOT).as_posix())
            if write:
                target.parent.mkdir(exist_ok=True)
                target.write_text(text, encoding="utf-8")
    english = {p.name for p in NOTEBOOKS.glob("*.ipynb")}
    for orphan in sorted(p for p in ZH_NOTEBOOKS.glob("*.ipynb") if p.name not in english):
        stale.append(orphan.relative_to(ROOT).as_posix())
        if write:
            orphan.unlink()
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("extract", help="update the .po files from the pages")
    commands.add_parser("check", help="every message translated, none fuzzy, all in sync")
    build_parser = commands.add_parser("build", help="the Chinese book into _build/html/zh")
    build_parser.add_argument("--strict", action="store_true", help="-W -n --keep-going --all")
    notebooks_parser = commands.add_parser("notebooks", help="write notebooks/zh/*.ipynb")
    notebooks_parser.add_argument("--check", action="store_true", help="only say which are stale")
    args = parser.parse_args(argv)
    if args.command == "extract":
        extract()
        return 0
    if args.command == "check":
        return check()
    if args.command == "build":
        return build(args.strict)
    stale = stale_notebooks(write=not args.check)
    verb = "out of date" if args.check else "written"
    for name in stale:
        print(f"{name}: {verb}")
    print(f"{len(stale)} Chinese notebooks {verb}")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
