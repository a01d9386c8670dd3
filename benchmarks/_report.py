"""Result tables: what a benchmark returns, how it is printed and how it is saved.

A :class:`Table` holds raw numbers (seconds per operation are converted to the column's unit when
the table is built, so the JSON and the screen show the same figure); each :class:`Column` says
how its numbers read on screen. Columns with ``show=False`` go to the JSON file only.
"""

from __future__ import annotations

import dataclasses
import math
import typing

from rich import box
from rich.table import Table as RichTable
from rich.text import Text

__all__ = ["TIMES", "Cell", "Column", "Kind", "Row", "Table", "format_cell"]

Cell = float | int | str | None
Row = dict[str, Cell]

Kind = typing.Literal["text", "time", "delta", "ratio", "count"]
"""How a column's numbers read: ``time`` ``12.3 µs``; ``delta`` ``+35 ns``; ``ratio`` ``1.8`` and
a multiplication sign; ``count`` ``9.7``; ``text`` as given. None reads as an em dash."""

TIMES = "\N{MULTIPLICATION SIGN}"
"""The sign after a ratio."""


@dataclasses.dataclass(frozen=True, slots=True)
class Column:
    """One column: the row key it reads, its header, and how its numbers read."""

    key: str
    header: str
    kind: Kind = "text"
    unit: str = ""
    """Unit of a ``time`` or ``delta`` column, printed after the number (``µs``, ``ns``)."""
    show: bool = True
    """False: the column is saved to JSON but not printed."""


@dataclasses.dataclass(slots=True)
class Table:
    """One table of results; ``name`` identifies it in the JSON file, ``title`` on screen."""

    name: str
    title: str
    columns: tuple[Column, ...]
    rows: list[Row] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    """Printed under the table: what was measured, what a ratio means, what was skipped."""

    def to_json(self) -> dict[str, object]:
        """Return the table as JSON-ready data: columns described, rows as raw numbers."""
        return {
            "name": self.name,
            "title": self.title,
            "columns": [
                {"key": c.key, "header": c.header, "kind": c.kind, "unit": c.unit}
                for c in self.columns
            ],
            "rows": self.rows,
            "notes": self.notes,
        }

    def to_rich(self) -> RichTable:
        """Return the table for a rich console, notes as its caption."""
        table = RichTable(
            title=Text(self.title, style="bold"),
            title_justify="left",
            box=box.SIMPLE_HEAD,
            caption=Text("\n".join(self.notes)) if self.notes else None,
            caption_justify="left",
        )
        shown = self._shown()
        for column in shown:
            table.add_column(column.header, justify="left" if column.kind == "text" else "right")
        for row in self.rows:
            table.add_row(*(Text(format_cell(row.get(column.key), column)) for column in shown))
        return table

    def to_markdown(self) -> str:
        """Return the table as GitHub Markdown: a heading, the table, the notes."""
        shown = self._shown()
        lines = [f"#### {self.title}", ""]
        lines.append("| " + " | ".join(column.header for column in shown) + " |")
        lines.append("|" + "|".join("---" if c.kind == "text" else "--:" for c in shown) + "|")
        lines.extend(
            "| " + " | ".join(format_cell(row.get(column.key), column) for column in shown) + " |"
            for row in self.rows
        )
        if self.notes:
            lines.append("")
            lines.extend(self.notes)
        return "\n".join(lines) + "\n"

    def _shown(self) -> list[Column]:
        return [column for column in self.columns if column.show]


def format_cell(value: Cell, column: Column) -> str:
    """Return ``value`` as ``column`` shows it, with three significant figures for numbers."""
    if value is None:
        return "\N{EM DASH}"
    if isinstance(value, str) or column.kind == "text":
        return str(value)
    unit = f" {column.unit}" if column.unit else ""
    if column.kind == "count":
        text = f"{value:,}" if isinstance(value, int) else f"{value:,.{2 if value < 10 else 1}f}"  # noqa: PLR2004 - three significant figures
    elif column.kind == "ratio":
        text = f"{_significant(value)}{TIMES}"
    elif column.kind == "delta":
        text = f"{'+' if value >= 0 else '-'}{_significant(abs(value))}{unit}"
    else:
        text = f"{_significant(value)}{unit}"
    return text


def _significant(number: float) -> str:
    """At least three significant figures, thousands separated, never scientific notation."""
    if number >= 99.95:  # noqa: PLR2004 - rounds to 100: no decimals left to show
        return f"{number:,.0f}"
    number = float(f"{number:.3g}")  # round first: 9.999 reads 10.0, not 10.00
    if number == 0:
        return "0"
    decimals = 2 - math.floor(math.log10(number))
    return f"{number:.{decimals}f}"
