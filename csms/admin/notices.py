"""Notices after a redirect (post, redirect, get): what an action did, named by a key in the
redirect's query (``?m=registered&push=7``) and translated when the page it leads to is rendered,
in the viewer's language. The text never travels in the URL, so a notice is never stuck in the
poster's language (or English), and nobody can make a page say something of their own."""

from __future__ import annotations

import re
from typing import Any, Mapping
from urllib.parse import urlencode

from csms.i18n import gettext

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def notice_url(path: str, key: str, **params: Any) -> str:
    """``path`` with the notice ``key`` (``m``) and the values of its placeholders."""
    return f"{path}?{urlencode({'m': key, **params})}"


def notice_text(request: Any, notices: Mapping[str, str]) -> str:
    """The notice the request's ``?m=`` names, from ``notices`` (key to an ``N_``-marked text with
    ``%(name)s`` placeholders, filled from the query), in the request's language; "" for none or
    an unknown key."""
    text = notices.get(request.query_params.get("m", ""))
    if text is None:
        return ""
    return gettext(text, **{name: request.query_params.get(name, "") for name in _PLACEHOLDER.findall(text)})
