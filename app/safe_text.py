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

__all__ = ["md"]

_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")


def md(value: object) -> str:
    """``value`` as text that a Markdown pane shows literally."""
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", html.escape(str(value), quote=True))
