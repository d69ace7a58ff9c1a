"""What became of clearing erased drivers' cards on a station (OCPP 2.0.1 N10, see
:mod:`csms.core.services.station_data_clear`), on the station's page: a panel (through
``admin_panels``, a default plugin, see ``csms.plugins.DEFAULT_PLUGINS``) listing, per card,
whether the clear is still waiting for the station, what the station answered (or that a 1.6
station got the card as Blocked in its local list), the outcome in words, the attempts and when
it was done. A station no erasure reached gets no panel."""

from __future__ import annotations

from typing import Any

from litestar import Request
from markupsafe import Markup

from csms.admin.templating import fragment, page_panel
from csms.core.services import station_data_clear
from csms.plugins import hookimpl

TEMPLATE = "stations/_data_clears.html"
SHOWN = 20


@hookimpl
@page_panel("station")
async def admin_panels(request: Request, station: dict[str, Any]) -> Markup:
    rows, total = await station_data_clear.listing(station_ids=None, station_id=station["station_id"], limit=SHOWN)
    if not rows:
        return Markup("")
    pending = sum(1 for r in rows if r["done_at"] is None)
    return fragment(request, TEMPLATE, clears=rows, total=total, pending=pending, sid=station["station_id"])
