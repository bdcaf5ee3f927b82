"""Results tables for the book, rendered as HTML (a pandas Styler) rather than printed text.

One look for every table: compact type, cells that wrap instead of widening the page (the book's
text column is about 800 px wide at a 1280 px window), no index column, numbers right-aligned,
and a colour per status where a table has a ``status`` column. Each table gets a fixed id, so
re-executing a chapter gives the same HTML (the notebook tests compare it).
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd
from pandas.io.formats.style import Styler

__all__ = ["STATUS_COLOURS", "frame", "styled"]

#: Background of a status cell: reproduced, explained (a known cause), off, missing.
STATUS_COLOURS = {
    "reproduced": "#dff0d8",
    "explained": "#fcf3d6",
    "off": "#f6d5d5",
    "missing": "#ececec",
}

_TABLE_STYLE = [
    {"selector": "", "props": "font-size: 0.8em; border-collapse: collapse; width: 100%;"},
    {"selector": "caption", "props": "caption-side: top; text-align: left; font-weight: 600;"},
    {
        "selector": "th, td",
        "props": "padding: 2px 6px; white-space: normal; overflow-wrap: anywhere; "
        "border-bottom: 1px solid #ddd; vertical-align: top;",
    },
    {"selector": "th", "props": "text-align: left; background: #f5f5f5;"},
]


def frame(rows: Iterable[Sequence[Any]], columns: Sequence[str]) -> pd.DataFrame:
    """A DataFrame of ``rows`` under ``columns`` (chapters need not import pandas)."""
    return pd.DataFrame(list(rows), columns=list(columns))


def _status_colour(value: Any) -> str:
    text = re.sub(r"<[^>]+>", "", str(value)).strip().split(" ")[0]
    colour = STATUS_COLOURS.get(text)
    return f"background-color: {colour};" if colour else ""


def styled(
    table: pd.DataFrame,
    name: str,
    *,
    caption: str | None = None,
    numeric: Sequence[str] = (),
    widths: Mapping[str, str] | None = None,
) -> Styler:
    """``table`` as a Styler in the book's style, with the fixed HTML id ``name``.

    ``numeric`` columns are right-aligned; ``widths`` maps a column onto a CSS width (for
    instance a note column that should take the remaining space). Cells are rendered as given,
    so a cell may hold a link (``<a href=...>``). A column called ``status`` is coloured by
    :data:`STATUS_COLOURS`.
    """
    if not re.fullmatch(r"[A-Za-z][\w-]*", name):
        raise ValueError(f"table name must be an HTML id, got {name!r}")
    style = table.style.hide(axis="index").set_uuid(name).set_table_styles(_TABLE_STYLE)
    if caption:
        style = style.set_caption(caption)
    if numeric:
        style = style.set_properties(subset=list(numeric), **{"text-align": "right"})
    for column, width in (widths or {}).items():
        style = style.set_properties(subset=[column], **{"width": width})
    if "status" in table.columns:
        style = style.map(_status_colour, subset=["status"])
    return style
