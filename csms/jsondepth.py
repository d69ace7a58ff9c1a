"""How deeply a JSON text nests, checked on the raw bytes before any parser sees them.

JSON parsers (``json``, ``msgspec``) recurse once per ``[`` or ``{`` and raise ``RecursionError``
after a few hundred or thousand levels, which a caller expecting ``ValueError`` turns into a
crash. :func:`json_depth_exceeds` answers "would this nest deeper than ``limit``?" without
recursion, in time linear in the size: strings are cut out and every byte but the brackets
dropped at C speed, then only the brackets are counted (about 60 ns each, stopping as soon as
the limit is passed). Text with no more brackets than ``limit`` costs two ``bytes.count``.

Brackets inside strings do not count. The answer is exact for well-formed JSON; malformed text
is judged as a parser would read it up to its first error, or erring towards "too deep".
"""

from __future__ import annotations

import re

# A string literal; an unterminated one runs to the end, so no byte is scanned twice.
_STRING = re.compile(rb'"[^"\\]*(?:\\[\s\S][^"\\]*)*"?')
# Openers become "[", closers "]", every other byte is dropped.
_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPEN = ord("[")

MAX_JSON_DEPTH = 64
"""The nesting the CSMS accepts in JSON from outside (REST and OCPI bodies, partners' answers);
real documents nest a handful of levels."""


def json_depth_exceeds(raw: bytes | str, limit: int) -> bool:
    """True if the JSON text ``raw`` nests arrays/objects more than ``limit`` levels deep."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw)
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    brackets = _STRING.sub(b"", data).translate(_BRACKETS, _NOT_BRACKETS)
    if b"[" * (limit + 1) in brackets:  # the usual attack: a run of openers
        return True
    depth = 0
    for byte in brackets:
        if byte == _OPEN:
            depth += 1
            if depth > limit:
                return True
        elif depth:
            depth -= 1
    return False
