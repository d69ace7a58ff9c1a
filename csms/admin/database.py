"""piccolo-admin at ``/admin/db``: raw table access for superusers.

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

PREFIX = "/admin/db"


@lru_cache(maxsize=2)  # building it takes seconds; one per process, shared by every app built in it
def create_database_admin(*, production: bool) -> Any:
    from piccolo_admin.endpoints import create_admin

    from csms.core.tables import CORE_TABLES

    return create_admin(list(CORE_TABLES), site_name="CSMS database", production=production,
                        auto_include_related=True, read_only=False)


async def _plain(send: Send, status: int, body: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    start: HTTPResponseStartEvent = {"type": "http.response.start", "status": status,
                                     "headers": [(b"content-type", b"text/plain; charset=utf-8"), *(headers or [])]}
    await send(start)
    end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body.encode(), "more_body": False}
    await send(end)


def database_mount(admin_app: Any) -> Any:
    @asgi(PREFIX, is_mount=True, copy_scope=True, include_in_schema=False)
    async def database(scope: Scope, receive: Receive, send: Send) -> None:
        full_path = scope.get("raw_path", b"").decode("latin-1").split("?", 1)[0] or PREFIX
        sub_path = full_path[len(PREFIX):] or ""
        if sub_path == "":
            await _plain(send, 308, "", [(b"location", f"{PREFIX}/".encode())])
            return
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
        await admin_app(scope, receive, send)

    return database
