"""Fallback tariff texts on the station (OCPP 2.0.1/2.1 I04 Show Fallback Tariff Information, I05
Show Fallback Total Cost Message): what a station shows a driver when it cannot ask the CSMS — the
tariff (``TariffCostCtrlr.TariffFallbackMessage``) and, at the end of a transaction whose cost it
cannot get, a message instead of the total cost (``TariffCostCtrlr.TotalCostFallbackMessage``).

The tariff text is the ``tariff_message`` hook's answer for the station with no driver known (the
billing plugin: the text of the tariff a driver without a contract pays there); the total-cost
text is the ``total_cost_fallback_message`` setting. After an accepted BootNotification each text
the station does not hold yet (as far as its stored variables tell) is set with SetVariables
(setting ``tariff_fallback_texts``); ``POST /stations/{id}/tariffs/fallback`` sends them now,
or texts of the operator's. Every SetVariables and its answer is in the command log, an accepted
value in the station's variables. 1.6 has no such variables (``NotSupported``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable

from csms.core.background import BackgroundTasks
from csms.core import events as ev
from csms.core.ocpp.outbound import known_calls
from csms.core.ocpp.validation import OcppError
from csms.core.services.commands import CommandTimeout, StationOffline, UnknownStation
from csms.core.services.operations import OperationError, calls_with
from csms.core.services.tariff_messages import MAX_CONTENT, message_content
from csms.core.tables import DeviceVariable
from csms.i18n import N_
from csms.plugins import call_hook, hook_impls

if TYPE_CHECKING:
    from csms.core.services.commands import CommandService
    from csms.core.services.operations import Operations
    from csms.core.services.tariff_messages import TariffMessageService
    from csms.settings import Settings

log = logging.getLogger(__name__)

COMPONENT = "TariffCostCtrlr"
VARIABLES = {"tariff": "TariffFallbackMessage", "total_cost": "TotalCostFallbackMessage"}


class TariffFallbackService:
    def __init__(self, settings: Settings, events: ev.EventDispatcher, commands: CommandService,
                 operations: Operations, tariff_messages: TariffMessageService) -> None:
        self.settings = settings
        self.events = events
        self.commands = commands
        self.operations = operations
        self.tariff_messages = tariff_messages
        self._tasks = BackgroundTasks(log, "fallback tariff texts")
        self._unsubscribe: Callable[[], None] | None = None

    async def start(self) -> None:
        if self.settings.tariff_fallback_texts:
            self._unsubscribe = self.events.listen(self._on_event)

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        await self._tasks.cancel()

    async def drain(self) -> None:
        """Wait until the texts being sent are sent (tests; after ``events.drain()``)."""
        await self._tasks.drain()

    def _on_event(self, event: ev.Event) -> None:
        """After an accepted boot (the station has its answer): the texts it does not hold yet."""
        if not isinstance(event, ev.StationBooted) or event.registration_status != "Accepted":
            return
        calls = known_calls(self.commands.version_of(event.station_id))
        if calls is None or not calls.supports_fallback_texts:
            return
        self._tasks.spawn(self._after_boot(event.station_id))

    async def _after_boot(self, station_id: str) -> None:
        try:
            wanted = await self.texts(station_id)
            if wanted:  # else no plugin text and no configured text: nothing to set
                await self._set(station_id, wanted, only_new=True, by="tariff-fallback")
        except (OperationError, StationOffline, UnknownStation, CommandTimeout, OcppError) as exc:
            log.info("%s: fallback tariff texts not sent: %s", station_id, exc)  # the next boot tries again
        except Exception:
            log.exception("%s: fallback tariff texts not sent", station_id)

    async def texts(self, station_id: str) -> dict[str, str]:
        """The texts for the station now: ``tariff`` (the ``tariff_message`` hook's, no driver
        known) and ``total_cost`` (the setting); a kind without a text is left out."""
        out: dict[str, str] = {}
        if hook_impls("tariff_message"):
            answer = await call_hook("tariff_message", station_id=station_id, evse_id=0, id_token="",
                                     transaction_id=None, languages=await self.tariff_messages.languages(station_id))
            content = message_content(answer)
            if content is not None:
                out["tariff"] = content["content"]
        if self.settings.total_cost_fallback_message.strip():
            out["total_cost"] = self.settings.total_cost_fallback_message.strip()[:MAX_CONTENT]
        return out

    async def _held(self, station_id: str) -> dict[str, str]:
        rows = await DeviceVariable.select(DeviceVariable.variable, DeviceVariable.value).where(
            (DeviceVariable.station.station_id == station_id) & (DeviceVariable.component == COMPONENT)
            & DeviceVariable.variable.is_in(list(VARIABLES.values())) & (DeviceVariable.attribute_type == "Actual"))
        return {r["variable"]: r["value"] or "" for r in rows}

    async def send(self, station_id: str, *, tariff: str | None = None, total_cost: str | None = None,
                   only_new: bool = False, by: str = "") -> dict[str, Any]:
        """SetVariables of the texts (``tariff`` / ``total_cost`` given, else :meth:`texts`);
        ``only_new``: only those the station does not hold already. Per kind the station's
        answer (``status``, ``variable``, ``text``); ``OperationError`` when there is no text."""
        await calls_with(self.commands, station_id, "supports_fallback_texts",
                         "fallback tariff texts (OCPP 2.0.1 and 2.1 have TariffCostCtrlr)")
        given = {k: v.strip() for k, v in (("tariff", tariff), ("total_cost", total_cost)) if v is not None}
        if any(len(v) > MAX_CONTENT or not v for v in given.values()):
            raise OperationError(N_("a fallback text has 1 to %(most)s characters"), most=MAX_CONTENT)
        wanted = {**await self.texts(station_id), **given}
        if not wanted:
            raise OperationError(N_("no text to send: no plugin gives a tariff text for this station "
                                    "(tariff_message hook) and total_cost_fallback_message is not set"))
        return await self._set(station_id, wanted, only_new=only_new, by=by)

    async def _set(self, station_id: str, wanted: dict[str, str], *, only_new: bool, by: str) -> dict[str, Any]:
        """SetVariables of each of ``wanted`` (kind → text), with ``only_new`` those the station
        does not hold already; per kind the station's answer."""
        held = await self._held(station_id) if only_new else {}
        results: dict[str, Any] = {}
        for kind, text in wanted.items():
            variable = VARIABLES[kind]
            if held.get(variable) == text:
                continue
            answer = await self.operations.set_configuration(station_id, key=f"{COMPONENT}.{variable}", value=text,
                                                             by=by)
            results[kind] = {**answer, "variable": f"{COMPONENT}.{variable}", "text": text}
        return results
