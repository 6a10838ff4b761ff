"""The Chinese edition's tools: the catalogue check, the Chinese notebooks, the handouts.

The built Chinese pages are checked with the English ones (test_built_book.py and
test_browser.py read both editions).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import nbformat
import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import write_po

from tools import i18n, notebooks, workshop

ROOT = Path(__file__).resolve().parent.parent
ENGLISH = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize(
    ("english", "chinese", "problem"),
    [
        ("Call `fit()` on $x$.", "在 $x$ 上调用 `fit()`。", None),
        ("Call `fit()`.", "调用 `fit`。", "inline code"),
        ("Scale by $\\sqrt{d}$.", "按 $\\sqrt{d_k}$ 缩放。", "math"),
        ("See [the FAQ](06-faq.md).", "见[常见问题](06-faq.html)。", "link targets"),
        ("As {cite}`vaswani2017attention` shows.", "如 {cite}`vaswani2017` 所示。", "{cite}"),
        ("The {term}`tensors <tensor>` here.", "这里的{term}`张量`。", None),
        ("The {term}`tensor`.", "张量。", "roles"),
        ("**Note:** it runs.", "**注意：**它会运行。", "asterisks"),
        ("**Note:** it runs.", "**注意**：它会运行。", None),
        ("1. Tensors", "1. 张量", "list item"),  # a numbered heading's text, translated
        ("1. Tensors", "1\\. 张量", None),
    ],
)
def test_markup_problems(english, chinese, problem):
    found = i18n.markup_problems(english, chinese)
    if problem is None:
        assert found == []
    else:
        assert len(found) == 1 and problem in found[0], found


def write_catalog(path: Path, entries: dict[str, tuple[str, bool]]) -> None:
    """Write a .po (or .pot) file of {msgid: (msgstr, fuzzy)}."""
    catalog = Catalog(locale="zh_CN" if path.suffix == ".po" else None)
    for msgid, (msgstr, fuzzy) in entries.items():
        catalog.add(msgid, msgstr, flags=["fuzzy"] if fuzzy else [])
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as stream:
        write_po(stream, catalog)


def test_catalogue_check_names_the_file_and_the_message(tmp_path: Path):
    pot, po = tmp_path / "pot", tmp_path / "po"
    english = {m: ("", False) for m in ("Tensors", "A new paragraph.", "Fuzzy one.", "Empty.")}
    write_catalog(pot / "book" / "page.pot", english)
    write_catalog(pot / "book" / "new-page.pot", {"Hello": ("", False)})
    write_catalog(
        po / "book" / "page.po",
        {"Tensors": ("张量", False), "Fuzzy one.": ("模糊。", True), "Empty.": ("", False)},
    )
    write_catalog(po / "book" / "gone.po", {"Old": ("旧", False)})
    found = i18n.catalog_problems(pot, po)
    page = f"{po / 'book' / 'page.po'}: "
    assert sorted(found) == sorted(
        [
            f"{po / 'book' / 'gone.po'}: no such page any more; delete the file",
            f"{po / 'book' / 'new-page.po'}: missing; run `python tools/i18n.py extract`",
            page + "'A new paragraph.': new English text; run `python tools/i18n.py extract`",
            page + "'Fuzzy one.': fuzzy (the English changed); check and clear the flag",
            page + "'Empty.': not translated",
        ]
    )


def test_the_books_catalogues_are_complete_for_the_pages_on_disk():
    # What `make test` runs in full after the notebooks (it needs their outputs for the
    # figures' alt text); here only the messages of the prose pages, which need none.
    kept = sorted((i18n.MESSAGES / "book").glob("*.po"))
    assert {p.stem for p in kept} == {p.stem for p in (ROOT / "book").glob("*.md")}
    for path in kept:
        catalog = i18n.read_catalog(path)
        assert not [m.id for m in catalog if m.id and (m.fuzzy or not m.string)], path.name


def test_markdown_messages_are_found_across_line_breaks_and_longest_first():
    cell = "## Summary\n\nThe loss falls\nfast.\n\n- Summary of\n  the run"
    pairs = [("Summary", "小结"), ("The loss falls fast.", "损失下降很快。"),
             ("Summary of the run", "运行小结")]  # fmt: skip
    translated = i18n.translate_markdown(cell, pairs, "demo cell 3")
    assert translated == "## 小结\n\n损失下降很快。\n\n- 运行小结"
    with pytest.raises(SystemExit, match="demo cell 3: message not found in the cell: 'Gone.'"):
        i18n.translate_markdown(cell, [("Gone.", "没了。")], "demo cell 3")


def test_relative_links_climb_one_more_folder_and_table_cells_are_translated():
    text = (
        "See [chapter 5](../book/05-trends.md) or [docs](https://x.org/a.md).\n\n"
        "| task | PyTorch |\n|---|---|\n| a dense layer | `nn.Linear` |"
    )
    translated = i18n.translate_markdown(text, [], "demo")
    assert "[chapter 5](../../book/05-trends.md)" in translated
    assert "[docs](https://x.org/a.md)" in translated
    table = i18n.translate_table_cells(translated, {"task": "任务", "a dense layer": "全连接层"})
    assert table.endswith("| 任务 | PyTorch |\n|---|---|\n| 全连接层 | `nn.Linear` |")


def test_the_chinese_notebooks_are_in_sync_and_share_the_code():
    assert i18n.stale_notebooks() == []
    for path in ENGLISH:
        english = nbformat.read(path, as_version=4)
        chinese = nbformat.read(i18n.ZH_NOTEBOOKS / path.name, as_version=4)
        assert len(chinese.cells) == len(english.cells), path.name
        for ours, theirs in zip(english.cells, chinese.cells, strict=True):
            assert ours.cell_type == theirs.cell_type
            if ours.cell_type == "code":
                assert theirs.source == ours.source, f"{path.name}: code must not be translated"
        assert chinese.cells[0].source != english.cells[0].source, f"{path.name}: title"
        assert f"notebooks/zh/{path.name}" in chinese.cells[1].source, "badges point to zh"


def test_hygiene_knows_the_chinese_captions():
    nb = nbformat.read(i18n.ZH_NOTEBOOKS / "04a-keras-mlp.ipynb", as_version=4)
    repo = notebooks.Repository.from_config()
    assert notebooks.problems(nb, "notebooks/zh/04a-keras-mlp.ipynb", repo) == []
    figure = next(i for i, c in enumerate(nb.cells) if notebooks.draws_figure(c))
    nb.cells[figure + 1].source = "**Figure: left in English.**"
    found = notebooks.problems(nb, "notebooks/zh/04a-keras-mlp.ipynb", repo)
    assert found == [
        f"notebooks/zh/04a-keras-mlp.ipynb: cell {figure} draws a figure; "
        "the next cell must be Markdown starting with '**图：'"
    ]


def test_chinese_handouts(tmp_path: Path, monkeypatch):
    monkeypatch.setattr("sys.argv", ["workshop.py", "--language", "zh_CN", "--dest", str(tmp_path)])
    assert workshop.main() == 0
    with zipfile.ZipFile(tmp_path / "student.zip") as archive:
        names = {Path(n).name for n in archive.namelist()}
    assert {p.name for p in ENGLISH} <= names and "zh" not in names
    first = json.loads((tmp_path / "student" / ENGLISH[0].name).read_text())
    texts = ["".join(c["source"]) for c in first["cells"]]
    assert texts[0] == "".join(
        nbformat.read(i18n.ZH_NOTEBOOKS / ENGLISH[0].name, as_version=4).cells[0].source
    )
    assert texts[1].startswith("**学生版。**") and any(
        t.startswith("**课前检查。**") for t in texts
    )
