"""Markdown escaping for the app: user-controlled text shown literally.

Numbers and their formats come from :mod:`graceful_core.vocabulary`; this module only
makes strings safe for ``st.markdown``-style elements.
"""

from __future__ import annotations

import re

_MARKDOWN = re.compile(r"([\\`*_\[\]()!<>#|~$:])")


def md(text: object) -> str:
    """``text`` with the characters that make Markdown links, images, code, emphasis, HTML,
    headings, Streamlit colour/icon directives or LaTeX backslash-escaped, so user-controlled
    strings (file names, class names, ids, URL values) are shown literally."""
    return _MARKDOWN.sub(r"\\\1", str(text))


def code(text: object) -> str:
    """``text`` as a Markdown code span (shown literally; a backtick inside becomes ')."""
    return "`" + str(text).replace("`", "'") + "`"
