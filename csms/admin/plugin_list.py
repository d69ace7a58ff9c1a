"""The plugins page: what is loaded and which hooks each plugin implements."""

from __future__ import annotations

from litestar import Request, get
from litestar.response import Template

from csms import hookspecs
from csms.admin.templating import render
from csms.plugins import plugins_info


@get("/admin/plugins", include_in_schema=False)
async def plugin_list(request: Request) -> Template:
    docs = {name: " ".join((getattr(hookspecs, name).__doc__ or "").split()).replace("``", "")
            for name in dir(hookspecs) if hasattr(getattr(hookspecs, name), "csms_spec")}
    return await render(request, "plugins.html", title="Plugins", plugins=plugins_info(), hook_docs=docs)
