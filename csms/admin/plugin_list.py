"""The plugins page: what is loaded, which hooks each plugin implements, and the routes each
declares public (no login, no API key) with the reason."""

from __future__ import annotations

from litestar import Request, get
from litestar.response import Template

from csms import hookspecs
from csms.admin.templating import render
from csms.i18n import gettext
from csms.plugin_routes import plugin_public_routes, public_summary
from csms.plugins import plugins_info
from csms.settings import get_settings


@get("/admin/plugins", include_in_schema=False, opt={"tenant": "global"})
async def plugin_list(request: Request) -> Template:
    docs = {name: " ".join((getattr(hookspecs, name).__doc__ or "").split()).replace("``", "")
            for name in dir(hookspecs) if hasattr(getattr(hookspecs, name), "csms_spec")}
    state = request.app.state
    if "plugin_public_routes" not in state:  # the plugins' routes are fixed when the app is built
        state.plugin_public_routes = {name: public_summary(routes)
                                      for name, routes in plugin_public_routes(get_settings()).items()}
    return await render(request, "plugins.html", title=gettext("Plugins"), plugins=plugins_info(), hook_docs=docs,
                        public_routes=state.plugin_public_routes)
