"""A Sphinx extension for this book: every inline script once per page.

Under Sphinx 7.4, the inline configuration scripts that sphinx-thebe and sphinx-togglebutton
register appear twice in each page. A repeated ``const`` declaration is a script error in the
browser (``Identifier 'THEBE_JS_URL' has already been declared``), so the second copy of an
inline script with the same body is dropped before the page is written.
"""

from __future__ import annotations

from typing import Any


def _once(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    """Keep the first of several inline scripts with the same body."""
    seen: set[str] = set()
    kept = []
    for script in context.get("script_files", []):
        body = getattr(script, "attributes", {}).get("body")
        if body is not None and body in seen:
            continue
        if body is not None:
            seen.add(body)
        kept.append(script)
    context["script_files"] = kept


def setup(app: Any) -> dict[str, Any]:
    """Connect the filter after every other handler of the page context."""
    app.connect("html-page-context", _once, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
