"""User-given text shown in a Markdown or HTML pane, made inert.

Names, messages and file contents that come from users (a dataset's ``system`` string and
parameter names, an upload's file name, error messages that quote them) reach panes that
render Markdown with embedded HTML. :func:`md` escapes them so they show as typed: HTML
special characters become entities (no tag, attribute or script ever reaches the page) and
Markdown's punctuation is backslash-escaped (no link, image or emphasis is formed).
"""

from __future__ import annotations

import html
import re

__all__ = ["md", "hide_server_paths"]

#: escaped with a backslash; '>' (a quote block) needs none: it becomes &gt; (html.escape)
_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_{}\[\]()#+\-.!|~])")


def _server_folders() -> list[tuple[str, str]]:
    """(absolute folder, what a page shows instead), longest first."""
    import tempfile
    from pathlib import Path

    from app.state import catalog

    folders = [(catalog.user_models_dir(), "<your models>"), (catalog.pretrained_dir(), "<pretrained>"),
               (Path(__file__).resolve().parents[2], "<srom>"), (Path(tempfile.gettempdir()), "<tmp>"),
               (Path.home(), "~")]
    out = []
    for folder, label in folders:
        try:
            text = str(Path(folder).resolve())
        except OSError:
            continue
        if len(text) > 1:
            out.append((text, label))
    return sorted(out, key=lambda pair: -len(pair[0]))


def hide_server_paths(text: str) -> str:
    """``text`` without the server's absolute folders (the models folder, the checkout, the
    temporary and home folders): a page never tells a visitor where things live."""
    text = str(text)
    for folder, label in _server_folders():
        text = text.replace(folder, label)
    return text


def md(value: object) -> str:
    """``value`` as text that a Markdown pane shows literally, with the server's folders
    hidden (:func:`hide_server_paths`)."""
    # Markdown's escapes first: escaping the entities' '#' (of &#x27;) would show them as text
    return html.escape(_MARKDOWN_PUNCTUATION.sub(r"\\\1", hide_server_paths(str(value))), quote=True)
