"""One write path: the admin, the REST API, the driver portal and the OCPP adapters call services;
only services write the core's tables (issue 13).

Every module under the scanned packages is read with ``ast`` for write calls: ``X.update(...)``,
``X.insert(...)``, ``X.delete(...)``, ``X.raw(...)`` on a table of :mod:`csms.core.tables` (or on a
generic ``table`` / ``self.table``), and ``.save()`` / ``.remove()`` on anything (a row). A write
that stays outside the services is listed in :data:`ALLOWED` with the reason next to it; the test
fails with the file and line of every other one, and of an allowance nothing uses any more.
"""

from __future__ import annotations

import ast
from pathlib import Path

from piccolo.table import Table

import csms.core.tables

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ["csms/admin", "csms/api", "csms/driver", "csms/core/ocpp"]
TABLE_WRITES = {"update", "insert", "delete", "raw"}
ROW_WRITES = {"save", "remove"}
GENERIC = {"table"}  # a writer for whichever table it is given (``table``, ``self.table``, ``entity.table``)

# (file, enclosing function, written call) -> why it is not a service's
ALLOWED: dict[tuple[str, str, str], str] = {
    ("csms/api/auth.py", "api_key_principal", "ApiKey.update"):
        "the API-key layer's own bookkeeping (last_used_at), not a core object of the directory",
    ("csms/api/auth.py", "create_api_key", "row.save"):
        "the API-key layer's own: creating a key (the CLI and the admin call this function)",
    ("csms/api/auth.py", "revoke_api_key", "ApiKey.update"):
        "the API-key layer's own: revoking a key (the CLI and the admin call this function)",
}


def _tables() -> set[str]:
    return {name for name, value in vars(csms.core.tables).items()
            if isinstance(value, type) and issubclass(value, Table) and value is not Table}


def _receiver(node: ast.expr) -> str:
    """How a call's receiver reads in the source, shortly: ``IdToken``, ``row``, ``self.table``."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_receiver(node.value)}.{node.attr}"
    if isinstance(node, ast.Call):
        return f"{_receiver(node.func)}()"
    return type(node).__name__


def _last_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


class _Finder(ast.NodeVisitor):
    def __init__(self, tables: set[str]) -> None:
        self.tables = tables
        self.function: list[str] = []
        self.found: list[tuple[int, str, str]] = []  # (line, enclosing function, call)

    def _enter(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.function.append(node.name)
        self.generic_visit(node)
        self.function.pop()

    visit_FunctionDef = _enter
    visit_AsyncFunctionDef = _enter

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute):
            receiver = func.value
            name = _last_name(receiver)
            table_write = func.attr in TABLE_WRITES and (
                (isinstance(receiver, ast.Name) and receiver.id in self.tables) or name in GENERIC)
            row_write = func.attr in ROW_WRITES and not node.args and not node.keywords
            if table_write or row_write:
                self.found.append((node.lineno, self.function[-1] if self.function else "<module>",
                                   f"{_receiver(receiver)}.{func.attr}"))
        self.generic_visit(node)


def writes() -> list[tuple[str, int, str, str]]:
    """(file, line, enclosing function, call) of every write call in the scanned packages."""
    tables = _tables()
    out = []
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            finder = _Finder(tables)
            finder.visit(ast.parse(path.read_text(), filename=str(path)))
            rel = path.relative_to(ROOT).as_posix()
            out += [(rel, line, function, call) for line, function, call in finder.found]
    return out


def test_only_services_write_core_tables() -> None:
    found = writes()
    outside = [f"{path}:{line}: {call}(...) in {function}()" for path, line, function, call in found
               if (path, function, call) not in ALLOWED]
    assert not outside, ("these write core tables outside the services (call a service in csms/core, or add "
                         "an entry with its reason to ALLOWED):\n" + "\n".join(outside))


def test_every_allowance_is_still_needed() -> None:
    used = {(path, function, call) for path, _, function, call in writes()}
    stale = [f"{path}: {call}(...) in {function}()" for path, function, call in ALLOWED if
             (path, function, call) not in used]
    assert not stale, "ALLOWED names writes that are gone (remove them):\n" + "\n".join(stale)


def test_the_scan_sees_writes() -> None:
    """The finder itself: each kind of write is seen, reads and other objects' methods are not."""
    source = """
async def handler(values, entity, cache):
    await IdToken.update({IdToken.status: "Blocked"}).where(IdToken.id == 1)
    await Station.delete().where(Station.id == 2)
    await IdToken.insert(IdToken(id_token="A"))
    await Hub.raw("UPDATE hub SET name = {}", "x")
    await IdToken(**values).save()
    await entity.table.delete().where(entity.pk == 3)
    row = Site(name="s"); await row.save(); await row.remove()
    await IdToken.select().where(IdToken.id == 1)
    cache.update({"a": 1}); values.delete("a"); values.save("file.csv")
"""
    finder = _Finder(_tables())
    finder.visit(ast.parse(source))
    assert [call for _, _, call in finder.found] == [
        "IdToken.update", "Station.delete", "IdToken.insert", "Hub.raw", "IdToken().save", "entity.table.delete",
        "row.save", "row.remove"]
