"""piccolo-admin at ``/admin/db``: raw table access for global superusers, every write logged
in the audit log, a link back to the admin in its sidebar.

Built once when the app is built. It reads the same piccolo_api session cookie as the admin,
so a superuser logged in to the admin is logged in here too; everyone else is sent to the
login page (or refused, when logged in without superuser rights).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from litestar import asgi
from litestar.connection import ASGIConnection
from litestar.types import HTTPResponseBodyEvent, HTTPResponseStartEvent, Receive, Scope, Send

from csms.admin.auth import current_user, login_url
from csms.core import audit

PREFIX = "/admin/db"


@lru_cache(maxsize=2)  # building it takes seconds; one per process, shared by every app built in it
def create_database_admin(*, production: bool) -> Any:
    from piccolo_admin.endpoints import create_admin

    from csms.core.tables import CORE_TABLES, AuditEntry

    # The audit log is not listed: no page edits it.
    return create_admin([t for t in CORE_TABLES if t is not AuditEntry], site_name="CSMS database",
                        production=production, auto_include_related=True, read_only=False,
                        sidebar_links={"← Back to the CSMS admin": "/"})


async def _plain(send: Send, status: int, body: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    start: HTTPResponseStartEvent = {"type": "http.response.start", "status": status,
                                     "headers": [(b"content-type", b"text/plain; charset=utf-8"), *(headers or [])]}
    await send(start)
    end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body.encode(), "more_body": False}
    await send(end)


async def _audited_write(admin_app: Any, scope: Any, receive: Receive, send: Send, sub_path: str, user: Any) -> None:
    """Pass a write to piccolo-admin and log it (who, which table, what was sent, the answer)."""
    body = bytearray()
    status = {"code": 0}

    async def receive_logged() -> Any:
        message: Any = await receive()
        if message.get("type") == "http.request" and len(body) < 10_000:
            body.extend(bytes(message.get("body", b""))[:10_000 - len(body)])
        return message

    async def send_logged(message: Any) -> None:
        if message.get("type") == "http.response.start":
            status["code"] = message.get("status", 0)
        await send(message)

    await admin_app(scope, receive_logged, send_logged)
    parts = sub_path.strip("/").split("/")
    table = parts[2] if len(parts) > 2 and parts[:2] == ["api", "tables"] else sub_path
    await audit.record(actor=f"user:{user.username}" if user else "", action="database", object_type="database",
                       object_id=table, after={"method": scope.get("method"), "path": sub_path,
                                               "status": status["code"],
                                               "body": body.decode("utf-8", errors="replace")},
                       summary=f"{scope.get('method')} {sub_path} in the raw database page")


def database_mount(admin_app: Any) -> Any:
    @asgi(PREFIX, is_mount=True, copy_scope=True, include_in_schema=False, opt={"tenant": "global"})
    async def database(scope: Scope, receive: Receive, send: Send) -> None:
        full_path = scope.get("raw_path", b"").decode("latin-1").split("?", 1)[0] or PREFIX
        sub_path = full_path[len(PREFIX):] or ""
        if sub_path == "":
            await _plain(send, 308, "", [(b"location", f"{PREFIX}/".encode())])
            return
        user = None
        if not sub_path.startswith("/assets/"):
            user = await current_user(ASGIConnection(scope, receive, send))
            if user is None:
                if sub_path == "/":
                    await _plain(send, 303, "", [(b"location", login_url(f"{PREFIX}/").encode())])
                else:
                    await _plain(send, 401, "log in first")
                return
            if not user.superuser:
                await _plain(send, 403, "The database admin is for superusers only.")
                return
        scope = dict(scope)  # type: ignore[assignment]
        scope["root_path"] = scope.get("root_path", "") + PREFIX
        scope["path"] = scope["root_path"] + sub_path
        if scope.get("method", "GET") in ("GET", "HEAD", "OPTIONS"):
            await admin_app(scope, receive, send)
            return
        await _audited_write(admin_app, scope, receive, send, sub_path, user)

    return database
