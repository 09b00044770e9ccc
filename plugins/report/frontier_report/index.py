"""The report's ``index.html``: one self-contained page (no scripts, no external assets)
that shows each figure, links the image files and the run's data files, and holds the
report's notes and small tables. Every text is HTML-escaped."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

# A table cell: plain text, or (text, href) for a link.
Cell = str | tuple[str, str]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #555; font-size: 0.9em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
td, th { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.5em 1em; }
"""


@dataclass
class FigureEntry:
    """One image of the report: its file name (relative to index.html) and captions."""

    file: str
    title: str
    caption: str = ""


@dataclass
class Table:
    """A small table: caption, header and rows of cells."""

    caption: str
    header: list[str]
    rows: list[list[Cell]] = field(default_factory=list)


def _cell(c: Cell, tag: str = "td") -> str:
    if isinstance(c, tuple):
        text, href = c
        return f'<{tag}><a href="{escape(href)}">{escape(text)}</a></{tag}>'
    return f"<{tag}>{escape(c)}</{tag}>"


def _table(t: Table) -> str:
    head = "".join(_cell(h, "th") for h in t.header)
    body = "\n".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in t.rows)
    return (f"<table>\n<caption>{escape(t.caption)}</caption>\n<tr>{head}</tr>\n{body}\n"
            "</table>")


def render(title: str, subtitle: str, figures: Sequence[FigureEntry],
           links: Sequence[tuple[str, str, str]] = (), notes: Sequence[str] = (),
           tables: Sequence[Table] = ()) -> str:
    """The page: ``links`` are ``(text, href, explanation)``; ``notes`` are shown
    highlighted before the figures (e.g. why a plot is missing)."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        f'<head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{_STYLE}</style></head>",
        "<body>",
        f"<h1>{escape(title)}</h1>",
        f"<p>{escape(subtitle)}</p>",
    ]
    parts += [f'<p class="note">{escape(n)}</p>' for n in notes]
    if links:
        parts.append("<h2>Files</h2><ul>")
        parts += [f'<li><a href="{escape(href)}">{escape(text)}</a>'
                  + (f" — {escape(why)}" if why else "") + "</li>" for text, href, why in links]
        parts.append("</ul>")
    parts += [_table(t) for t in tables]
    if figures:
        parts.append("<h2>Plots</h2>")
    for f in figures:
        src = escape(f.file)
        parts.append(
            f'<figure id="{src}"><h3>{escape(f.title)}</h3>'
            f'<a href="{src}"><img src="{src}" alt="{escape(f.title)}"></a>'
            f"<figcaption>{escape(f.caption)} (<a href=\"{src}\">{src}</a>)</figcaption>"
            "</figure>"
        )
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)
