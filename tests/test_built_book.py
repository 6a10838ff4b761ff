"""Checks of the built HTML book (`make test` runs them after the strict build).

They read the pages in _build/html, the Chinese edition in _build/html/zh included:
everything a page loads must come from the book itself, math must use the bundled
MathJax, widgets the bundled widget manager, search must know the book's words, launch
buttons must open each notebook's own path, and no TensorFlow start-up noise may reach a
page. Every page links to itself in the other edition, and the Chinese pages are Chinese.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import pytest
import yaml
from babel.messages.pofile import read_po
from bs4 import BeautifulSoup

pytestmark = pytest.mark.book

ROOT = Path(__file__).resolve().parent.parent
HTML = ROOT / "_build" / "html"
ZH = HTML / "zh"
CJK = re.compile(r"[\u4e00-\u9fff]")
TF_NOISE = ("cpu_feature_guard", "absl::InitializeLog", "oneDNN custom operations")


def pages() -> list[Path]:
    """Return the book's own HTML pages (not search or index pages)."""
    if not (HTML / "index.html").exists():
        pytest.fail("no built book in _build/html: run `make strict-book` (or `make book`) first")
    skip = {"search.html", "genindex.html"}
    return [
        p for p in sorted(HTML.rglob("*.html")) if p.name not in skip and "_static" not in p.parts
    ]


@functools.cache
def soup(page: Path) -> BeautifulSoup:
    """Return the parsed page, parsed once per test run; do not change it."""
    return BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")


def remote(url: str | None) -> bool:
    return bool(url) and re.match(r"(https?:)?//", url) is not None


def test_pages_load_nothing_from_the_network():
    for page in pages():
        doc = soup(page)
        loaded = [tag.get("src") for tag in doc.find_all(["script", "img", "iframe"])]
        loaded += [
            link.get("href")
            for link in doc.find_all("link")
            if set(link.get("rel", [])) & {"stylesheet", "preload", "icon", "modulepreload"}
        ]
        offenders = [url for url in loaded if remote(url)]
        assert not offenders, f"{page.relative_to(HTML)} loads {offenders}"


def local_target(page: Path, url: str) -> Path:
    return (page.parent / url.split("?")[0].split("#")[0]).resolve()


def script_sources(doc: BeautifulSoup) -> list[str]:
    """Return the src of each script without its cache-busting query."""
    return [s.get("src", "").split("?")[0] for s in doc.find_all("script")]


def test_math_uses_the_bundled_mathjax():
    with_math = [p for p in pages() if soup(p).select(".math")]
    assert with_math, "no page has math; the check would prove nothing"
    for page in with_math:
        mathjax = [s for s in script_sources(soup(page)) if s.endswith("mathjax/tex-mml-chtml.js")]
        assert mathjax, f"{page.relative_to(HTML)} has math but does not load the bundled MathJax"
        assert local_target(page, mathjax[0]).is_file()


def test_widgets_use_the_bundled_widget_manager():
    with_widgets = [
        p for p in pages() if "application/vnd.jupyter.widget-view+json" in p.read_text()
    ]
    assert with_widgets, "no page shows a widget; the check would prove nothing"
    for page in with_widgets:
        doc = soup(page)
        manager = [s for s in script_sources(doc) if s.endswith("html-manager/embed.js")]
        assert manager, f"{page.relative_to(HTML)} has widgets but no bundled widget manager"
        assert local_target(page, manager[0]).is_file()
        state = doc.find("script", type="application/vnd.jupyter.widget-state+json")
        assert state is not None and '"state"' in state.text, "widget state is not embedded"


def test_search_index_knows_the_books_words():
    index = (HTML / "searchindex.js").read_text()
    for word in ("gradienttap", "token", "pytorch"):
        assert f'"{word}' in index, f"search index lacks {word!r}"


def test_no_tensorflow_startup_noise_in_pages():
    for page in pages():
        text = page.read_text()
        assert not [n for n in TF_NOISE if n in text], page.relative_to(HTML)


def test_launch_buttons_open_each_notebooks_own_path():
    repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    slug = repo["url"].removeprefix("https://github.com/")
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks
    for notebook in notebooks:
        page = HTML / "notebooks" / f"{notebook.stem}.html"
        links = [a.get("href", "") for a in soup(page).find_all("a")]
        colab = f"https://colab.research.google.com/github/{slug}/blob/{repo['branch']}/notebooks/{notebook.name}"
        assert colab in links, f"{page.relative_to(HTML)} has no Colab button for {notebook.name}"


def english_pages() -> list[Path]:
    """Return the English edition's own pages (the Chinese ones live in zh/)."""
    return [p for p in pages() if ZH not in p.parents and p.parent != HTML]


def edition_link(page: Path) -> Path:
    """Return the page that `page`'s language button and hreflang link point to."""
    doc = soup(page)
    button = doc.select_one(
        'a[href][title="Read this page in English"], a[href][title="阅读本页的中文版"]'
    )
    alternate = doc.find("link", rel="alternate", hreflang=True)
    assert button is not None and alternate is not None, f"{page.relative_to(HTML)}: no link"
    assert button["href"] == alternate["href"]
    return local_target(page, button["href"])


def test_every_page_links_to_itself_in_the_other_edition():
    english = english_pages()
    assert len(english) > 30
    for page in english:
        chinese = ZH / page.relative_to(HTML)
        assert edition_link(page) == chinese.resolve(), page.relative_to(HTML)
        assert chinese.is_file(), f"no Chinese {page.relative_to(HTML)}"
        assert edition_link(chinese) == page.resolve(), chinese.relative_to(HTML)


def test_chinese_pages_are_in_chinese():
    # The prose, not the code or what it printed: Chinese characters outnumber Latin
    # letters on every page but the bibliography, whose entries are the works' own titles.
    for page in english_pages():
        chinese = ZH / page.relative_to(HTML)
        doc = BeautifulSoup(chinese.read_text(encoding="utf-8"), "html.parser")  # changed below
        assert doc.html.get("lang") == "zh-CN", chinese.relative_to(HTML)
        if page.name == "references.html":
            continue
        article = doc.select_one("article")
        for tag in article.select("pre, code, .cell_output, .math, .highlight"):
            tag.decompose()
        text = article.get_text(" ")
        cjk, latin = len(CJK.findall(text)), len(re.findall(r"[A-Za-z]", text))
        assert cjk > latin, f"{chinese.relative_to(HTML)}: {cjk} Chinese to {latin} Latin"


def test_chinese_headings_and_contents_are_translated():
    # Sphinx silently drops a translation it cannot parse as a paragraph (a heading's
    # "1. ..." parses as a list), and sphinx-external-toc adds the part captions after its
    # i18n: both left English on Chinese pages once. A heading may stay as it is only where
    # its translation is the English itself (a name such as "PyTorch").
    kept = set()
    for catalog in (ROOT / "locales" / "zh_CN" / "LC_MESSAGES").rglob("*.po"):
        with catalog.open("rb") as stream:
            kept |= {m.id for m in read_po(stream) if m.id and m.string == m.id}
    for page in english_pages():
        doc = soup(ZH / page.relative_to(HTML))
        for heading in doc.select("article h1, article h2, article h3"):
            text = heading.get_text(" ", strip=True).removesuffix("#").strip()
            assert CJK.search(text) or text in kept, f"zh/{page.relative_to(HTML)}: {text!r}"
    captions = [
        c.get_text(strip=True) for c in soup(ZH / "book" / "index.html").select("p.caption")
    ]
    english = [
        c.get_text(strip=True) for c in soup(HTML / "book" / "index.html").select("p.caption")
    ]
    assert len(captions) == len(english) > 3 and all(CJK.search(c) for c in captions), captions


def test_chinese_launch_buttons_open_the_chinese_notebooks():
    repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    slug = repo["url"].removeprefix("https://github.com/")
    for notebook in sorted((ROOT / "notebooks" / "zh").glob("*.ipynb")):
        page = ZH / "notebooks" / f"{notebook.stem}.html"
        links = [a.get("href", "") for a in soup(page).find_all("a")]
        colab = f"https://colab.research.google.com/github/{slug}/blob/{repo['branch']}/notebooks/zh/{notebook.name}"
        assert colab in links, f"{page.relative_to(HTML)} has no Colab button for {notebook.name}"


def test_chinese_search_index_knows_chinese_words():
    text = (ZH / "searchindex.js").read_text(encoding="utf-8")
    terms = json.loads(text[text.index("(") + 1 : text.rindex(")")])["terms"]
    for word in ("张量", "梯度", "微调", "pytorch"):  # jieba's words, and Latin ones
        assert word in terms, f"Chinese search index lacks {word!r}"


def test_framework_tabs_are_synchronised():
    page = HTML / "book" / "02-core-concepts.html"
    tabs = soup(page).select("[data-sync-group]")
    groups = {tab["data-sync-group"] for tab in tabs}
    assert groups == {"framework"} and len(tabs) >= 4, "expected synced framework tab sets"


def test_internal_links_and_anchors_resolve():
    ids: dict[Path, set[str]] = {}
    citations = 0
    for page in pages():
        for link in soup(page).find_all("a", href=True):
            href = link["href"]
            if remote(href) or href.startswith(("mailto:", "javascript:")):
                continue
            path, _, anchor = href.partition("#")
            target = local_target(page, path) if path else page.resolve()
            assert target.exists(), f"{page.relative_to(HTML)} links to missing {href}"
            if anchor and target.suffix == ".html":
                if target not in ids:
                    ids[target] = {tag["id"] for tag in soup(target).find_all(id=True)}
                assert anchor in ids[target], f"{page.relative_to(HTML)}: no #{anchor} in {path}"
            citations += "references.html#" in href
    assert citations > 0, "no citation links to the bibliography; the check would prove nothing"
