"""Substring search in text columns for the admin's and the API's search boxes.

``column.ilike(f"%{q}%")`` reads ``%`` and ``_`` in what the user typed as wildcards (a search for
``%`` matched every card). :func:`contains` escapes them, so the text is matched as typed, case
insensitively, on PostgreSQL (``ILIKE``) and SQLite (``LIKE``, case-insensitive for ASCII).
"""

from __future__ import annotations

from typing import Any

from piccolo.columns.combination import Where
from piccolo.columns.operators.comparison import ComparisonOperator


class _ILikeEscaped(ComparisonOperator):
    template = "{name} ILIKE {value} ESCAPE '\\'"


class _LikeEscaped(ComparisonOperator):
    template = "{name} LIKE {value} ESCAPE '\\'"


def like_pattern(text: str) -> str:
    """``%text%`` with the LIKE wildcards and the escape character of ``text`` escaped."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def contains(column: Any, text: str) -> Where:
    """A condition: ``column`` holds ``text`` (as typed, any case)."""
    operator = _ILikeEscaped if column._meta.engine_type in ("postgres", "cockroach") else _LikeEscaped
    return Where(column=column, value=like_pattern(text), operator=operator)
