"""Network connection profiles of a station (OCPP 2.0.1 B09 SetNetworkProfile), and moving the
station onto a new one: A05 "upgrade the security profile" and B10 "migrate to a new CSMS" are
both a profile stored in a slot, that slot made first in ``OCPPCommCtrlr.NetworkConfigurationPriority``
(the others kept behind it as fallbacks) and a reset, after which the station connects with it.

OCPP 1.6 has no SetNetworkProfile (its security extension raises the profile through the
``SecurityProfile`` configuration key): its stations get ``NotSupported``. A profile below the
one the station is stored at is refused before sending: the station would be refused when it
connected with it (A05: no downgrade).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from csms.core.services.commands import UnknownStation
from csms.core.services.operations import OperationError, calls_with
from csms.core.tables import DeviceVariable, Station
from csms.i18n import N_

if TYPE_CHECKING:
    from csms.core.ocpp.outbound import StationCalls
    from csms.core.services.commands import CommandService
    from csms.core.services.operations import Operations

INTERFACES = ("Wired0", "Wired1", "Wired2", "Wired3", "Wireless0", "Wireless1", "Wireless2", "Wireless3")
PRIORITY_COMPONENT, PRIORITY_VARIABLE = "OCPPCommCtrlr", "NetworkConfigurationPriority"
PRIORITY_KEY = f"{PRIORITY_COMPONENT}.{PRIORITY_VARIABLE}"
MAX_URL = 512  # NetworkConnectionProfileType.ocppCsmsUrl
MAX_SLOT = 2**31 - 1
MISSING = "SetNetworkProfile (OCPP 2.0.1 has; a 1.6 station's profile is its SecurityProfile key)"


def check_connection(*, slot: int, url: str, security_profile: int, interface: str, message_timeout: int) -> None:
    """``OperationError`` for a connection a station would refuse or could not use: the URL is a
    WebSocket URL whose scheme fits the profile (1: ``ws://``; 2 and 3: ``wss://``)."""
    if not 0 <= slot <= MAX_SLOT:
        raise OperationError(N_("slot must be a whole number from 0"))
    if security_profile not in (1, 2, 3):
        raise OperationError(N_("security_profile must be 1, 2 or 3"))
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname or len(url) > MAX_URL:
        raise OperationError(N_("url must be a ws:// or wss:// URL of at most %(maximum)s characters"), maximum=MAX_URL)
    if (parts.scheme == "wss") != (security_profile >= 2):
        raise OperationError(N_("security profile 1 connects with ws://, profiles 2 and 3 with wss://"))
    if interface not in INTERFACES:
        raise OperationError(N_("interface must be one of %(interfaces)s"), interfaces=", ".join(INTERFACES))
    if not 1 <= message_timeout <= 3600:
        raise OperationError(N_("message_timeout must be 1 to 3600 seconds"))


class NetworkProfileService:
    def __init__(self, commands: CommandService, operations: Operations) -> None:
        self.commands = commands
        self.operations = operations

    async def _checked(self, station_id: str, *, slot: int, url: str, security_profile: int, interface: str,
                       message_timeout: int) -> StationCalls:
        check_connection(slot=slot, url=url, security_profile=security_profile, interface=interface,
                         message_timeout=message_timeout)
        calls = await calls_with(self.commands, station_id, "supports_network_profiles", MISSING)
        row = await Station.select(Station.security_profile).where(Station.station_id == station_id).first()
        if row is None:
            raise UnknownStation(station_id)
        if security_profile < (row["security_profile"] or 0):
            raise OperationError(N_("the station is at security profile %(stored)s: it would be refused when it "
                                    "connected with profile %(profile)s (no downgrade)"),
                                 stored=row["security_profile"], profile=security_profile)
        return calls

    async def set_profile(self, station_id: str, *, slot: int, url: str, security_profile: int,
                          interface: str = "Wired0", message_timeout: int = 30, by: str = "") -> dict[str, Any]:
        """SetNetworkProfile; the station's answer (Accepted, Rejected, Failed) and the slot."""
        calls = await self._checked(station_id, slot=slot, url=url, security_profile=security_profile,
                                    interface=interface, message_timeout=message_timeout)
        call = calls.set_network_profile(slot=slot, url=url, security_profile=security_profile, interface=interface,
                                         message_timeout=message_timeout)
        result = call.outcome(await self.commands.send(station_id, call.action, call.payload, requested_by=by))
        return {**result, "slot": slot}

    async def _priority(self, station_id: str, by: str) -> list[str]:
        """The station's NetworkConfigurationPriority, read from it now (stored on the way)."""
        await self.operations.get_configuration(station_id, keys=[PRIORITY_KEY], by=by)
        row = await DeviceVariable.select(DeviceVariable.value).where(
            (DeviceVariable.station.station_id == station_id) & (DeviceVariable.component == PRIORITY_COMPONENT)
            & (DeviceVariable.variable == PRIORITY_VARIABLE) & (DeviceVariable.attribute_type == "Actual")).first()
        value = (row or {}).get("value") or ""
        return [slot.strip() for slot in value.split(",") if slot.strip()]

    async def switch(self, station_id: str, *, slot: int, url: str, security_profile: int, interface: str = "Wired0",
                     message_timeout: int = 30, reset: bool = True, by: str = "") -> dict[str, Any]:
        """A05 / B10: SetNetworkProfile into ``slot``, then ``slot`` first in the station's
        NetworkConfigurationPriority, then (with ``reset``) a Reset OnIdle so that it reconnects
        with the new profile. Stops at the first step the station refuses: ``status`` is that
        step's answer and ``failed_at`` names it; ``steps`` has each answer."""
        steps: dict[str, str] = {}

        def stopped(step: str, status: str) -> dict[str, Any]:
            return {"status": status, "failed_at": step, "steps": steps}

        result = await self.set_profile(station_id, slot=slot, url=url, security_profile=security_profile,
                                        interface=interface, message_timeout=message_timeout, by=by)
        steps["set_network_profile"] = result["status"]
        if result["status"] != "Accepted":
            return stopped("set_network_profile", result["status"])
        order = ",".join([str(slot), *(s for s in await self._priority(station_id, by) if s != str(slot))])
        result = await self.operations.set_configuration(station_id, key=PRIORITY_KEY, value=order, by=by)
        steps["priority"] = result["status"]
        if result["status"] not in ("Accepted", "RebootRequired"):
            return stopped("priority", result["status"])
        if reset:
            result = await self.operations.reset(station_id, kind="on_idle", by=by)
            steps["reset"] = result["status"]
            if result["status"] not in ("Accepted", "Scheduled"):
                return stopped("reset", result["status"])
        return {"status": "Accepted", "priority": order, "steps": steps}
