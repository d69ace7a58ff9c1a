"""Start a charge by QR code: every EVSE of a public station has a stable page,
``/driver/start/{station_id}/{evse_id}`` (:func:`csms.admin.qr_labels.start_path`; the admin
prints it as a QR label).

Signed out, the page sends the driver to the portal's sign-in and back here afterwards (a ``next``
that can only be a portal path). Signed in, it shows what the public map shows of the charger
(the site's name and address, the EVSE's plugs and power) with its live status, the tariff when
the pricing plugin tells one (``select_tariff``), and the driver's active cards; *Start* sends a
remote start through the core's operations (RequestStartTransaction / RemoteStartTransaction,
the card as id token, as the admin's and REST's remote start), and the outcome follows on the
page: refused here (card blocked or not the driver's, EVSE in use or out of order, station
offline, too many starts), rejected by the station, or accepted, then polled until the session
starts (a link to its live view). Only stations :func:`public_station` finds exist here: any other
id, and an EVSE the station never reported, answer the same friendly 404.

Every start sent is audited (``driver:<id>``); starts are limited per driver.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from litestar import Request, get, post
from litestar.exceptions import NotFoundException
from litestar.response import Redirect, Template

from csms.admin.public_map import PLUGS, POWER_TYPES
from csms.admin.qr_labels import public_station, start_path, station_evses
from csms.admin.templating import is_htmx
from csms.core import audit
from csms.core.ocpp.validation import OcppError
from csms.core.runtime import get_core
from csms.core.services.commands import CommandTimeout, StationOffline, UnknownStation
from csms.core.services import plans
from csms.core.services.operations import OperationError
from csms.core.tables import ChargingSession, Connector, IdToken
from csms.i18n import N_, gettext
from csms.core.timeutil import utcnow
from csms.driver.portal import DRIVER_COOKIE, SIGNED_IN, _organization, _over_limit, me, render, signed_in_driver
from csms.plugins import call_hook

log = logging.getLogger("csms.driver.start")

START_LIMIT = 5  # remote starts a driver may send to stations ...
START_WINDOW_S = 300  # ... in this many seconds
STATUS_INTERVAL_S = 5  # the EVSE's status on the page refreshes this often
PROGRESS_INTERVAL_S = 2  # after an accepted start, the page looks for the session this often
WAIT_FOR_SESSION = timedelta(minutes=3)  # and gives up after this (the station's connection timeout)

# OCPP connector statuses in a driver's words, with the badge they get
STATUS_WORDS = {
    "Available": (N_("Available"), "ok"), "Preparing": (N_("Preparing: a car is plugged in"), "busy"),
    "Charging": (N_("Charging"), "busy"), "SuspendedEV": (N_("Charging, paused by the car"), "busy"),
    "SuspendedEVSE": (N_("Charging, paused by the charger"), "busy"), "Finishing": (N_("Finishing"), "busy"),
    "Occupied": (N_("Occupied"), "busy"), "Reserved": (N_("Reserved"), "warn"), "Unavailable": (N_("Unavailable"), "bad"),
    "Faulted": (N_("Faulted"), "bad"), "Unknown": (N_("Status not known yet"), "muted"),
}  # words for drivers, translated where shown
# which connector's status speaks for an EVSE with several
PRECEDENCE = ["Charging", "SuspendedEVSE", "SuspendedEV", "Finishing", "Occupied", "Preparing", "Reserved", "Faulted",
              "Unavailable", "Available", "Unknown"]
IN_USE = {"Charging", "SuspendedEV", "SuspendedEVSE", "Finishing"}
OUT_OF_ORDER = {"Faulted", "Unavailable"}


# -- what the page shows -------------------------------------------------------------------------


async def _charger(station_id: str, evse_id: int) -> dict[str, Any]:
    """The public station and this EVSE of it, else 404 (the same for unknown and unpublished)."""
    station = await public_station(station_id)
    if station is None or evse_id not in (await station_evses([station["id"]])).get(station["id"], []):
        raise NotFoundException(gettext("There is no charger with this code. Check the label, or ask the operator."))
    return station


async def evse_status(station: dict[str, Any], evse_id: int) -> dict[str, Any]:
    """The EVSE's live status (``offline`` when the station holds no connection) and connectors."""
    connectors = await Connector.select(Connector.connector_id, Connector.status, Connector.standard,
                                        Connector.power_type, Connector.max_power_w).where(
        (Connector.station == station["id"]) & (Connector.evse_id == evse_id)).order_by(Connector.connector_id)
    statuses = {c["status"] for c in connectors}
    status = next((s for s in PRECEDENCE if s in statuses), "Unknown")
    online = bool(station["connected"])
    word, badge = STATUS_WORDS.get(status, (status, "muted")) if online else (N_("Offline"), "muted")
    return {"status": status if online else "Offline", "online": online, "word": word, "badge": badge,
            "connectors": [{"connector": c["connector_id"], "plug": PLUGS.get(c["standard"]) or None,
                            "power_type": POWER_TYPES.get(c["power_type"]) or None,
                            "max_power_kw": round(c["max_power_w"] / 1000, 1) if c["max_power_w"] else None}
                           for c in connectors]}


def _money(value: Any) -> str:
    try:
        return f"{float(value):.2f}"
    except (TypeError, ValueError):
        return str(value)


def tariff_summary(tariff: dict[str, Any]) -> str | None:
    """An OCPI Tariff in a line: its alternative text (English first), else the prices of its
    first element without restrictions."""
    texts = [t for t in tariff.get("tariff_alt_text") or [] if isinstance(t, dict) and t.get("text")]
    if texts:
        return str(next((t for t in texts if t.get("language") == "en"), texts[0])["text"])
    currency = str(tariff.get("currency") or "")
    units = {"ENERGY": "per kWh", "TIME": "per hour", "PARKING_TIME": "per hour parked", "FLAT": "per session"}
    for element in tariff.get("elements") or []:
        if not isinstance(element, dict) or element.get("restrictions"):
            continue
        parts = [f"{_money(pc.get('price'))} {currency} {units[pc['type']]}".replace("  ", " ")
                 for pc in element.get("price_components") or [] if isinstance(pc, dict) and pc.get("type") in units]
        if parts:
            return ", ".join(parts) + " (excl. VAT)"
    return None


async def tariff_text(station_id: str, evse_id: int, driver_id: int, id_token: str) -> str | None:
    """What the pricing plugin (``select_tariff``) says charging here costs this driver, if anything."""
    try:
        choice = await call_hook("select_tariff", session={
            "id": None, "station_id": station_id, "evse_id": evse_id, "started_at": utcnow(), "id_token": id_token,
            "driver": driver_id, "state": "active"})
    except Exception:  # a pricing plugin's trouble must not keep a driver from charging
        log.exception("select_tariff failed for %s/%s", station_id, evse_id)
        return None
    if choice is None:
        return None
    if isinstance(choice, str):
        return choice.strip() or None
    tariff = getattr(choice, "tariff", choice)
    if hasattr(tariff, "to_ocpi"):
        tariff = tariff.to_ocpi()
    return tariff_summary(tariff) if isinstance(tariff, dict) else None


def _active(now: Any) -> Any:
    return (IdToken.status == "Accepted") & (IdToken.expires_at.is_null() | (IdToken.expires_at > now))


async def active_cards(driver_id: int) -> list[dict[str, Any]]:
    return await IdToken.select(IdToken.id, IdToken.id_token, IdToken.label).where(
        (IdToken.driver == driver_id) & _active(utcnow())).order_by(IdToken.id)


async def _page_context(request: Request, station: dict[str, Any], evse_id: int) -> dict[str, Any]:
    driver = me(request)
    cards = await active_cards(driver["id"])
    return {"station": station, "evse_id": evse_id, "evse": await evse_status(station, evse_id), "cards": cards,
            "base": start_path(station["station_id"], evse_id), "interval": STATUS_INTERVAL_S,
            "tariff": await tariff_text(station["station_id"], evse_id, driver["id"],
                                        cards[0]["id_token"] if len(cards) == 1 else "")}


# -- outcomes ------------------------------------------------------------------------------------


@dataclass
class Outcome:
    kind: str  # accepted|started|waiting_over|rejected|offline|timeout|occupied|out_of_order|blocked|no_card|limited|error|not_offered
    message: str
    status_code: int = 200
    session_id: int | None = None
    poll: str | None = None  # where the page looks for the session next


def _answer(request: Request, station: dict[str, Any], evse_id: int, outcome: Outcome,
            context: dict[str, Any] | None = None) -> Template:
    if is_htmx(request) or context is None:
        return render(request, "_start_outcome.html", status_code=outcome.status_code, outcome=outcome,
                      interval=PROGRESS_INTERVAL_S)
    return render(request, "start.html", status_code=outcome.status_code, title=N_("Start charging"), outcome=outcome,
                  progress_interval=PROGRESS_INTERVAL_S, **context)


async def _running_here(station: dict[str, Any], evse_id: int) -> dict[str, Any] | None:
    return await ChargingSession.select(ChargingSession.id, ChargingSession.driver).where(
        (ChargingSession.station == station["id"]) & (ChargingSession.evse_id == evse_id)
        & (ChargingSession.state == "active")).first()


async def _not_offered(station: dict[str, Any]) -> Outcome | None:
    """The refusal when the plan of the station's organization does not include the driver portal."""
    if await plans.feature_enabled(station["organization"], plans.DRIVER_PORTAL):
        return None
    return Outcome("not_offered", gettext("Starting from your phone is not offered at this charger. Use your card at "
                                          "the charger, or ask its operator."), 403)


async def _refusal(request: Request, station: dict[str, Any], evse_id: int,
                   card: dict[str, Any] | None) -> Outcome | None:
    """Why the start is not sent at all, if it is not."""
    driver_id = me(request)["id"]
    if (refused := await _not_offered(station)) is not None:
        return refused
    if card is None:
        return Outcome("no_card", gettext("That card is not one of yours. Choose one of your cards."), 404)
    if card["status"] != "Accepted" or (card["expires_at"] is not None and card["expires_at"] <= utcnow()):
        name = card["label"] or card["id_token"]
        if card["status"] == "Blocked":
            why = gettext("Your card %(card)s is blocked: it cannot start a charge.", card=name)
        elif card["status"] == "Expired" or card["expires_at"] is not None:
            why = gettext("Your card %(card)s has expired: it cannot start a charge.", card=name)
        else:
            why = gettext("Your card %(card)s is not valid: it cannot start a charge.", card=name)
        return Outcome("blocked", why + " " + gettext("Choose another card, or ask your operator."), 409)
    if not station["connected"]:
        return Outcome("offline", gettext("The charger is offline at the moment, so it cannot be started from here. "
                                          "Try again later, or use your card at the charger."), 503)
    running = await _running_here(station, evse_id)
    status = (await evse_status(station, evse_id))["status"]
    if running is not None and running["driver"] == driver_id:
        return Outcome("started", gettext("You are charging here already."), 200, session_id=running["id"])
    if running is not None or status in IN_USE:
        return Outcome("occupied", gettext("Someone is charging at this charger. Choose another one, or wait until it "
                                           "is free."), 409)
    if status in OUT_OF_ORDER:
        return Outcome("out_of_order", gettext("This charger is out of order (%(status)s). Choose another one.",
                                               status=gettext(STATUS_WORDS[status][0]).lower()), 409)
    return None


async def _send(request: Request, station: dict[str, Any], evse_id: int, card: dict[str, Any]) -> Outcome:
    """The remote start through the core's operations, told in a driver's words, and audited."""
    driver_id = me(request)["id"]
    station_id, since = station["station_id"], int(utcnow().timestamp())
    answer = ""
    try:
        result = await get_core().operations.remote_start(station_id, id_token=card["id_token"], evse_id=evse_id,
                                                          token_type=card["type"], by=f"driver:{driver_id}")
        answer = str(result.get("status", ""))
        if answer == "Accepted":
            poll = f"{start_path(station_id, evse_id)}/progress?card={card['id']}&since={since}"
            outcome = Outcome("accepted", gettext("The charger accepted. Plug in your car if you have not yet: "
                                                  "charging starts in a moment."), 200, poll=poll)
        else:
            outcome = Outcome("rejected", gettext("The charger refused to start (it answered %(answer)s). "
                                                  "Try another charger, or use your card at the charger.",
                                                  answer=answer or gettext("nothing")), 409)
    except (StationOffline, ConnectionError, UnknownStation):
        answer = "offline"
        outcome = Outcome("offline", gettext("The charger is offline at the moment, so it cannot be started from here. "
                                             "Try again later, or use your card at the charger."), 503)
    except CommandTimeout:
        answer = "timeout"
        outcome = Outcome("timeout", gettext("The charger did not answer in time. It may still start: watch it, or look "
                                             "at My sessions in a minute."), 504)
    except (OcppError, OperationError) as exc:
        answer = "error"
        log.warning("remote start by QR at %s/%s failed: %s", station_id, evse_id, exc)
        outcome = Outcome("error", gettext("The charger could not take the request. Try again, or use your card at the "
                                           "charger."), 502)
    organization = await _organization(request)
    await audit.record(actor=f"driver:{driver_id}", action="remote_start", object_type="station",
                       object_id=station_id, organization=station["organization"], actor_organization=organization,
                       after={"evse_id": evse_id, "id_token": card["id_token"], "answer": answer},
                       summary=f"remote start by QR code on EVSE {evse_id} with card {card['id_token']}: {answer}")
    return outcome


async def _found_session(driver_id: int, station: dict[str, Any], card: dict[str, Any], since: int) -> int | None:
    from datetime import datetime, timezone

    after = datetime.fromtimestamp(since, tz=timezone.utc) - timedelta(minutes=1)  # station clocks drift a little
    row = await ChargingSession.select(ChargingSession.id).where(
        (ChargingSession.station == station["id"]) & (ChargingSession.driver == driver_id)
        & (ChargingSession.id_token == card["id_token"]) & (ChargingSession.started_at >= after)).order_by(
        ChargingSession.started_at, ascending=False).first()
    return row["id"] if row else None


# -- routes --------------------------------------------------------------------------------------


@get("/driver/start/{station_id:str}/{evse_id:int}")
async def start_page(request: Request, station_id: str, evse_id: int) -> Template | Redirect:
    driver = await signed_in_driver(request.cookies.get(DRIVER_COOKIE))
    if driver is None:  # the same answer for any code: nothing is told before signing in
        return Redirect(f"/driver?next={quote(start_path(station_id, evse_id), safe='')}", status_code=303)
    request.scope["csms_driver"] = driver  # type: ignore[typeddict-unknown-key]
    station = await _charger(station_id, evse_id)
    refused = await _not_offered(station)
    return render(request, "start.html", status_code=refused.status_code if refused else 200,
                  title=N_("Start charging"), outcome=refused, progress_interval=PROGRESS_INTERVAL_S,
                  **await _page_context(request, station, evse_id))


@get("/driver/start/{station_id:str}/{evse_id:int}/status", guards=SIGNED_IN)
async def start_status(request: Request, station_id: str, evse_id: int) -> Template:
    station = await _charger(station_id, evse_id)
    return render(request, "_start_status.html", evse=await evse_status(station, evse_id),
                  base=start_path(station_id, evse_id), interval=STATUS_INTERVAL_S)


@post("/driver/start/{station_id:str}/{evse_id:int}", guards=SIGNED_IN)
async def start_charge(request: Request, station_id: str, evse_id: int) -> Template:
    station = await _charger(station_id, evse_id)
    driver_id = me(request)["id"]
    raw = str((await request.form()).get("card", "")).strip()
    context = None if is_htmx(request) else await _page_context(request, station, evse_id)
    card = await IdToken.select(IdToken.id, IdToken.id_token, IdToken.type, IdToken.status, IdToken.label,
                                IdToken.expires_at).where(
        (IdToken.id == int(raw)) & (IdToken.driver == driver_id)).first() if raw.isdigit() else None
    outcome = await _refusal(request, station, evse_id, card)
    if outcome is None and card is not None:
        # what is limited is what reaches a station (a refusal here costs a station nothing)
        if _over_limit(request, "start-driver", str(driver_id), timespan=START_WINDOW_S, limit=START_LIMIT):
            outcome = Outcome("limited", gettext("Too many starts in a short time. Wait %(minutes)s minutes and try "
                                                 "again.", minutes=START_WINDOW_S // 60), 429)
        else:
            outcome = await _send(request, station, evse_id, card)
    assert outcome is not None
    return _answer(request, station, evse_id, outcome, context)


@get("/driver/start/{station_id:str}/{evse_id:int}/progress", guards=SIGNED_IN)
async def start_progress(request: Request, station_id: str, evse_id: int, card: int, since: int) -> Template:
    """After an accepted start: the session once it runs, else waiting (until it is too late)."""
    station = await _charger(station_id, evse_id)
    driver_id = me(request)["id"]
    row = await IdToken.select(IdToken.id, IdToken.id_token).where(
        (IdToken.id == card) & (IdToken.driver == driver_id)).first()
    if row is None:
        raise NotFoundException(gettext("There is no such card."))
    session_id = await _found_session(driver_id, station, row, since)
    if session_id is not None:
        outcome = Outcome("started", gettext("Charging started."), session_id=session_id)
    elif utcnow().timestamp() - since > WAIT_FOR_SESSION.total_seconds():
        outcome = Outcome("waiting_over", gettext("No charge started: the charger stopped waiting for your car. "
                                                  "Plug in and press Start again."))
    else:
        outcome = Outcome("accepted", gettext("The charger accepted. Plug in your car if you have not yet: "
                                              "charging starts in a moment."), poll=f"{start_path(station_id, evse_id)}/progress?card={card}"
                                                           f"&since={since}")
    return render(request, "_start_outcome.html", outcome=outcome, interval=PROGRESS_INTERVAL_S)


START_ROUTES = [start_page, start_status, start_charge, start_progress]
