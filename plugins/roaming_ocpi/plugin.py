"""The roaming plugin's hook implementations (entry point ``roaming_ocpi`` in the ``csms`` group).

OCPI endpoints live under ``/ocpi`` (see :mod:`plugins.roaming_ocpi.routes`), the REST API under
``/api/v1/roaming`` and the admin pages under ``/admin/roaming``. Core events reach the plugin
through one queue, worked off in order by one task, so a slow partner never holds up the core's
event delivery and a session's pushes keep their order.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from csms.plugin_api import N_, NavItem, PlanFeature, events as ev, hookimpl, public_route
from plugins.roaming_ocpi.config import ROAMING, OcpiSettings

log = logging.getLogger("csms.ocpi")

TEMPLATE_DIR = Path(__file__).parent / "templates"
LOCALE_DIR = Path(__file__).parent / "locale"
SETTINGS_CLASSES = (OcpiSettings,)
# The events cpo.on_event acts on; the others (a MeterValues' meter.values above all) are not queued.
HANDLED_EVENTS = (ev.ConnectorStatusChanged, ev.StationConnected, ev.StationDisconnected, ev.SessionStarted,
                  ev.SessionUpdated, ev.SessionStopped)


class EventQueue:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[Any] | None = None
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.queue = asyncio.Queue(maxsize=100_000)
        self.task = asyncio.create_task(self._run(), name="ocpi-events")

    async def stop(self) -> None:
        if self.queue is not None:
            try:
                async with asyncio.timeout(5):
                    await self.queue.join()
            except TimeoutError:
                log.warning("OCPI event queue not drained at shutdown")
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        self.queue = self.task = None

    def put(self, event: Any) -> None:
        if self.queue is None:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            log.warning("OCPI event queue full; dropping %s", event.name)

    async def drain(self) -> None:
        if self.queue is not None:
            await self.queue.join()

    async def _run(self) -> None:
        from plugins.roaming_ocpi.cpo import on_event

        assert self.queue is not None
        while True:
            event = await self.queue.get()
            try:
                await on_event(event)
            except Exception:
                log.exception("OCPI handling of %s failed", event.name)
            finally:
                self.queue.task_done()


event_queue = EventQueue()


@hookimpl
def piccolo_apps():
    return ["plugins.roaming_ocpi.piccolo_app"]


@hookimpl
def register_routes(settings):
    from plugins.roaming_ocpi.admin import roaming_admin_router
    from plugins.roaming_ocpi.api import roaming_api_router
    from plugins.roaming_ocpi.routes import ocpi_router

    return [public_route(ocpi_router(), "OCPI partners: every request is checked against the partner's "
                                        "credentials token (Authorization: Token ...)"),
            roaming_api_router(), roaming_admin_router()]


@hookimpl
def startup(app, settings):
    from plugins.roaming_ocpi.routes import answer_unrouted

    answer_unrouted(app)

    async def start() -> None:
        from plugins.roaming_ocpi.cpo import load_links
        from plugins.roaming_ocpi.sync import worker

        await load_links()
        event_queue.start()
        worker.start()

    return start


@hookimpl
def shutdown(app):
    async def stop() -> None:
        from plugins.roaming_ocpi.client import close_client
        from plugins.roaming_ocpi.sync import worker

        await event_queue.stop()
        await worker.stop()
        await close_client()

    return stop


@hookimpl
def authorize_token(station_id, id_token, token_type, evse_id, purpose):
    from plugins.roaming_ocpi.cpo import authorize

    return authorize(station_id, id_token, token_type, evse_id, purpose)


@hookimpl
def session_limit(load, now):
    from plugins.roaming_ocpi.chargingprofiles import session_limit as limit
    from plugins.roaming_ocpi.config import ocpi_settings

    if "CPO" not in ocpi_settings().role_set:
        return None
    return limit(load, now)


@hookimpl
def event_batch(events):
    for event in events:
        if isinstance(event, HANDLED_EVENTS):  # cpo.on_event does nothing with the others
            event_queue.put(event)


@hookimpl
def public_site_facts(site_ids):
    """The opening times set for OCPI, for the public map."""
    from plugins.roaming_ocpi.tables import SiteDetails

    async def facts() -> dict[int, dict[str, Any]]:
        rows = await SiteDetails.select(SiteDetails.site_id, SiteDetails.opening_times).where(
            SiteDetails.site_id.is_in(list(site_ids) or [-1])).output(load_json=True)
        return {r["site_id"]: {"opening_times": r["opening_times"] or {"twentyfourseven": True}} for r in rows}

    return facts


@hookimpl
def template_dirs():
    return [str(TEMPLATE_DIR)]


@hookimpl
def locale_dirs():
    return [str(LOCALE_DIR)]


@hookimpl
def plan_features():
    return [PlanFeature(ROAMING, N_("Roaming (OCPI): locations to partners"))]


@hookimpl
def admin_nav(request):
    return [NavItem(N_("Roaming"), "/admin/roaming", order=70)]
