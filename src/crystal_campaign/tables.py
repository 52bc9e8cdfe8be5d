"""Tables for people: aligned text for the terminal, and standalone HTML pages for the report
(summary, candidates) with no scripts or external files, so ``snakemake --report`` embeds them."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

STYLE = (
    "body{font-family:sans-serif;font-size:13px} table{border-collapse:collapse}"
    "td,th{border:1px solid #bbb;padding:2px 6px;text-align:right} th{background:#eee}"
    "td:first-child,td:last-child{text-align:left}"
)


def cell(value) -> str:
    """A table cell: floats to 3 decimals, NaN as ``n/a``."""
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def row(cells: Sequence[str], tag: str = "td") -> str:
    return "<tr>" + "".join(f"<{tag}>{html.escape(cell)}</{tag}>" for cell in cells) + "</tr>"


def page(title: str, header: Sequence[str], rows: Sequence[Sequence[str]], notes: Sequence[str] = ()) -> str:
    """A page with ``title`` as heading, one table and a list of notes under it."""
    body = "".join(row(cells) for cells in rows)
    items = "".join(f"<li>{html.escape(note)}</li>" for note in notes)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h3>{html.escape(title)}</h3>"
        f"<table><thead>{row(header, 'th')}</thead><tbody>{body}</tbody></table>"
        f"<ul>{items}</ul></body></html>\n"
    )


def text_table(rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows of cells (the first the header) as lines with aligned columns."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
