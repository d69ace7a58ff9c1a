"""Certificates on a station's page: a read-only panel (through ``admin_panels``, a default plugin,
see ``csms.plugins.DEFAULT_PLUGINS``) with the certificates the CSMS issued to the station, their
validity and the station's answer, expiring ones flagged. Installing, deleting and renewing go
through ``/api/v1/stations/{id}/certificates``."""

from __future__ import annotations

from typing import Any

from litestar import Request
from markupsafe import Markup

from csms.admin.templating import fragment, page_panel
from csms.core.certificates import certificate_settings
from csms.core.runtime import get_core
from csms.plugins import hookimpl

TEMPLATE = "stations/_certificates.html"
SHOWN = 10


@hookimpl
@page_panel("station")
async def admin_panels(request: Request, station: dict[str, Any]) -> Markup:
    issued = await get_core().certificates.issued(station["station_id"])
    return fragment(request, TEMPLATE, issued=issued[:SHOWN], more=max(0, len(issued) - SHOWN),
                    warning_days=certificate_settings().expiry_warning_days, sid=station["station_id"])
