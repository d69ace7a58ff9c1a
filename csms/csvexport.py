"""CSV for spreadsheets, safe from formula injection: every CSV the CSMS serves is written here.

A station chooses its idTags and transaction ids, a driver or operator types names and labels;
a spreadsheet opening an export would run a cell such as ``=HYPERLINK("//x")`` as a formula.
Following OWASP (CSV injection), a *text* cell beginning with ``=``, ``+``, ``-``, ``@``, a tab
or a carriage return gets a leading single quote, which spreadsheets show as text. Numbers
passed as numbers (``int``, ``float``, ``Decimal``) stay numbers, negative ones included, so
an export writes amounts and quantities as numbers, never as pre-formatted strings.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any, Iterable

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """``value`` as a CSV cell a spreadsheet will not evaluate (``None`` is an empty cell)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return "'" + value if value.startswith(FORMULA_PREFIXES) else value
    if isinstance(value, Decimal):
        return f"{value:f}"  # plain notation: 0E-2 is written 0.00
    return value


def csv_text(rows: Iterable[Iterable[Any]]) -> str:
    """The rows (the header first) as CSV text, every cell through :func:`safe_cell`.

    Lines end in CRLF (RFC 4180), which also makes the writer quote any cell holding a CR or an
    LF: with a bare LF terminator a CR inside a cell would go out unquoted, and a spreadsheet
    would start a new row, and read a new first cell, after it."""
    out = io.StringIO()
    writer = csv.writer(out)
    for row in rows:
        writer.writerow([safe_cell(v) for v in row])
    return out.getvalue()
