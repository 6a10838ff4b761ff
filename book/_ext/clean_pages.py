"""A local Sphinx extension that keeps every page of the book clean in a browser.

Three fixes for the stock Jupyter Book 1 stack, each found by the browser checks:
- sphinx-thebe adds its inline configuration script twice, which throws
  "Identifier 'THEBE_JS_URL' has already been declared": drop repeated scripts;
- the theme logs "Got invalid theme mode" unless a default mode is set: set "auto";
- widgets: the manager calls MathJax 2's API, and its figures lack alt text: fix both.
  myst-nb puts a cell's `mystnb.image.alt` on plain image outputs only; for a widget,
  the view is wrapped in an element carrying that alt text, which widgets.js applies.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.config import Config

STATIC = Path(__file__).parent / "static"


def _add_static_folder(app: Sphinx, config: Config) -> None:
    config.html_static_path.append(str(STATIC))


def _clean_page(
    app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any
) -> None:
    context.setdefault("default_mode", "auto")
    scripts = context.get("script_files", [])
    seen, unique = set(), []
    for script in scripts:
        key = (script.filename or "", script.attributes.get("body"))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    # In place: handlers that run later (MathJax's) append to this very list.
    scripts[:] = unique


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _label_widget_figures(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    for cell in doctree.findall(nodes.container):
        if cell.get("nb_element") != "cell_code":
            continue
        alt = cell.get("cell_metadata", {}).get("mystnb", {}).get("image", {}).get("alt")
        if not alt:
            continue
        for raw in list(cell.findall(nodes.raw)):
            if WIDGET_VIEW in raw.astext():
                wrapped = f'<div data-figure-alt="{html.escape(alt)}">{raw.astext()}</div>'
                raw.replace_self(nodes.raw("", wrapped, format="html"))


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("config-inited", _add_static_folder)
    app.connect("doctree-resolved", _label_widget_figures)
    # Early: `html-page-context` stops at the first handler that returns a template.
    app.connect("html-page-context", _clean_page, priority=100)
    # Deferred like MathJax and after it, so the shim sees MathJax 3 once it has loaded.
    app.add_js_file("widgets.js", loading_method="defer", priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
