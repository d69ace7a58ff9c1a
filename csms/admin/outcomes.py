"""What a command sent from a panel of the station page came to, as the panel says it: shared by
the monitoring, display message and customer information panels."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from litestar import Request
from litestar.exceptions import NotFoundException
from litestar.response import Template

from csms.admin.templating import is_htmx, keep_form, render
from csms.core.ocpp.validation import InvalidPayload, OcppError
from csms.core.services.commands import CommandTimeout, StationOffline, UnknownStation
from csms.core.services.operations import OperationError
from csms.i18n import gettext


async def command_outcome(request: Request, station_id: str, command: Awaitable[dict[str, Any]],
                          words: Callable[[dict[str, Any]], tuple[bool, str]],
                          again: Callable[..., Awaitable[Template]]) -> Template:
    """Await ``command``; ``words`` says of its result whether it went well and what to tell.
    The panel comes back (``again(notice, ok)``) with the outcome; a form sent without HTMX gets a
    page with the outcome and a link back to the station (:func:`outcome_page`). After an error
    the panel's form keeps what was typed (:func:`csms.admin.templating.keep_form`).
    Everything is worded in the viewer's language (an ``OperationError`` when it is read here)."""
    try:
        ok, notice = words(await command)
    except UnknownStation:
        raise NotFoundException(gettext("There is no station %(station)s.", station=station_id)) from None
    except StationOffline:
        ok, notice = False, gettext("The station is offline.")
    except CommandTimeout:
        ok, notice = False, gettext("The station did not answer in time.")
    except OperationError as exc:
        ok, notice = False, str(exc)
    except InvalidPayload as exc:  # ours, refused before it was sent
        ok, notice = False, gettext("The request is not valid OCPP (%(code)s): %(description)s", code=exc.code,
                                    description=exc.description)
    except OcppError as exc:
        ok, notice = False, gettext("The station answered %(code)s: %(description)s", code=exc.code,
                                    description=exc.description)
    if not is_htmx(request):
        return await outcome_page(request, station_id, notice, ok)
    if not ok:
        await keep_form(request)
    return await again(notice, ok)


async def outcome_page(request: Request, station_id: str, notice: str, ok: bool) -> Template:
    """What a station panel's form came to, on a page of its own with a link back to the station:
    the answer to a form sent without HTMX (JavaScript off), which would otherwise lose it."""
    return await render(request, "stations/outcome_page.html", station_id=station_id, notice=notice, ok=ok,
                        title=gettext("Station %(station)s", station=station_id))
