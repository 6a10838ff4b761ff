"""A local Sphinx extension that ties the English and Chinese editions together.

The Chinese edition is the same source built with `language = "zh_CN"` into `zh/` beside
the English pages (tools/i18n.py). On every page this extension:
- adds a header button to the same page in the other edition, and a `hreflang` link;
- in the Chinese edition, points the Colab button at the Chinese notebook
  (`notebooks/zh/`, generated from the same catalogues);
- keeps the text of code cells' outputs out of the catalogues and untranslated (it is
  what the code printed, the same in both editions), but not their figures' alt text;
- indexes Chinese pages for search without Sphinx 7.4's quadratic cost (below);
- translates the table of contents' part captions, which sphinx-external-toc inserts
  after Sphinx's i18n has run;
- translates the alt text of widget figures, which myst-nb takes from cell metadata
  rather than from an image node, so Sphinx's own i18n never sees it; the gettext
  builder extracts it here for the same reason.
"""

from __future__ import annotations

import re
from os import path
from typing import Any

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.builders.gettext import MsgOrigin
from sphinx.locale import init as init_locale
from sphinx.search.zh import SearchChinese
from sphinx.transforms import SphinxTransform
from sphinx.util.i18n import docname_to_domain

CHINESE = "zh_CN"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _is_chinese(app: Sphinx) -> bool:
    return app.config.language == CHINESE


def _other_edition(app: Sphinx, pagename: str) -> tuple[str, str, str, str]:
    """Return (href, hreflang, button text, tooltip) of `pagename` in the other edition."""
    up = "../" * pagename.count("/")
    if _is_chinese(app):
        return f"../{up}{pagename}.html", "en", "English", "Read this page in English"
    return f"{up}zh/{pagename}.html", "zh-CN", "中文", "阅读本页的中文版"


def _link_editions(
    app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any
) -> None:
    if doctree is None:  # search, genindex: no page of the other edition to point at
        return
    href, hreflang, text, tooltip = _other_edition(app, pagename)
    context["metatags"] = (
        context.get("metatags", "")
        + f'\n<link rel="alternate" hreflang="{hreflang}" href="{href}">'
    )
    buttons = context.setdefault("header_buttons", [])
    buttons.append(
        {
            "type": "link",
            "url": href,
            "text": text,
            "tooltip": tooltip,
            "icon": "fas fa-language",
            "label": "edition-button",
        }
    )
    if _is_chinese(app):
        for group in buttons:
            for button in group.get("buttons", []):
                if button.get("text") == "Colab":
                    button["url"] = re.sub(
                        r"/notebooks/([^/]+\.ipynb)$", r"/notebooks/zh/\1", button["url"]
                    )


class _TermSet(set):
    extend = set.update


class ChineseSearch(SearchChinese):
    """Sphinx's Chinese search, with the Latin words it has seen kept in a set.

    Sphinx 7.4 appends every Latin word of every page to one list, repeats included, and
    searches that list once per word while it stems: quadratic in the book's length, 15 s
    of a 57 s build of this book. A set gives the same index.
    """

    def init(self, options: dict[str, str]) -> None:
        super().init(options)
        self.latin_terms = _TermSet()


class KeepOutputsUntranslated(SphinxTransform):
    """Mark every text node of a code cell's output as not translatable."""

    default_priority = 15  # before Sphinx's i18n transform (Locale, 20)

    def apply(self, **kwargs: Any) -> None:
        for output in self.document.findall(nodes.container):
            if output.get("nb_element") == "cell_code_output":
                for node in output.findall(nodes.TextElement):
                    node["translatable"] = False


def widget_alt_messages(doctree: nodes.document) -> list[tuple[nodes.Element, str]]:
    """Return each widget cell of a page with its figure alt text from the cell metadata."""
    found = []
    for cell in doctree.findall(nodes.container):
        if cell.get("nb_element") != "cell_code":
            continue
        alt = cell.get("cell_metadata", {}).get("mystnb", {}).get("image", {}).get("alt")
        if alt and any(WIDGET_VIEW in raw.astext() for raw in cell.findall(nodes.raw)):
            found.append((cell, alt))
    return found


def _translate_late_messages(app: Sphinx, doctree: nodes.document) -> None:
    """Translate widget alt text and toctree captions, which Sphinx's i18n never sees."""
    if app.builder.name == "gettext" or not _is_chinese(app):
        return  # the gettext builder extracts them as they are (_extract_widget_alt)
    widgets = widget_alt_messages(doctree)
    toctrees = [node for node in doctree.findall(addnodes.toctree) if node.get("caption")]
    if not widgets and not toctrees:
        return
    domain = docname_to_domain(app.env.docname, app.config.gettext_compact)
    dirs = [path.join(app.srcdir, folder) for folder in app.config.locale_dirs]
    catalog, has_catalog = init_locale(dirs, app.config.language, domain)
    if not has_catalog:
        return
    for cell, alt in widgets:
        metadata = cell["cell_metadata"]["mystnb"]["image"]
        metadata["alt"] = catalog.gettext(alt)
    for toctree in toctrees:
        toctree["caption"] = toctree["rawcaption"] = catalog.gettext(toctree["caption"])


def _extract_widget_alt(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    if app.builder.name != "gettext":
        return
    catalog = app.builder.catalogs[docname_to_domain(docname, app.config.gettext_compact)]
    for cell, alt in widget_alt_messages(doctree):
        catalog.add(alt, MsgOrigin(cell.source or app.env.doc2path(docname), cell.line or 0))


def setup(app: Sphinx) -> dict[str, Any]:
    # After sphinx-book-theme's buttons (priority 501), so the Colab button exists.
    app.connect("html-page-context", _link_editions, priority=600)
    app.add_transform(KeepOutputsUntranslated)
    app.add_search_language(ChineseSearch)
    app.connect("doctree-read", _translate_late_messages)
    app.connect("doctree-resolved", _extract_widget_alt)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
