"""The operator admin: server-rendered pages (Jinja2 + HTMX) for stations, sites, sessions,
cards and plugins, with live updates over SSE and piccolo-admin for raw tables.

``AdminPlugin`` mounts it into the Litestar app; ``csms.admin.nav`` is the default plugin that
lists the built-in pages in the navigation through the ``admin_nav`` hook.
"""

from csms.admin.mount import AdminPlugin

__all__ = ["AdminPlugin"]
