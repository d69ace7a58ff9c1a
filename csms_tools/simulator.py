"""Simulated charging stations (OCPP 1.6J and 2.0.1) for demos, tests and the benchmark.

A :class:`SimStation` speaks OCPP-J over a raw ``websockets`` client connection and builds its
frames by hand with msgspec (not the ``ocpp`` library's ChargePoint), so that one process can
drive thousands of stations without becoming the bottleneck of a benchmark. It is a well-behaved
peer: it boots (retrying while Pending), reports connector status, heartbeats, runs sessions with
meter values, and answers the commands a CSMS sends with payloads valid against the ``ocpp``
library's schemas, doing what the command asks (a remote start starts a session, a charging
profile limits the simulated power, a firmware update reports its progress).

    st = SimStation("CP1", "ws://127.0.0.1:8180/ocpp", version="2.0.1")
    await st.connect()
    await st.boot()
    await st.status(1, "Available")
    tx = await st.start_session(1, "CARD0001")
    await st.meter_values(1, advance_s=60)
    await st.stop_session(1)
    await st.close()

``csms simulate`` runs many of them from the command line.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import logging
import math
import random
import signal
import sys
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable, NamedTuple

import msgspec
from websockets.asyncio.client import ClientConnection, connect as ws_connect
from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.typing import Subprotocol

from csms.core.ocpp.validation import ACTIONS, OcppError, error_code, validate
from csms.core.timeutil import ocpp_ts, parse_ts

log = logging.getLogger("csms.simulator")

SUBPROTOCOLS = {"1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1", "2.1": "ocpp2.1"}  # 2.1 sends the 2.0.1 messages

ENERGY = "Energy.Active.Import.Register"
POWER = "Power.Active.Import"
CURRENT = "Current.Import"
VOLTAGE = "Voltage"

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode

# 1.6 connector states as 2.0.1 ConnectorStatus, and back.
_STATUS_201 = {"Available": "Available", "Preparing": "Occupied", "Charging": "Occupied",
               "SuspendedEV": "Occupied", "SuspendedEVSE": "Occupied", "Finishing": "Occupied",
               "Occupied": "Occupied", "Reserved": "Reserved", "Unavailable": "Unavailable", "Faulted": "Faulted"}
_STATUS_16 = {"Occupied": "Charging"}

# Stop reasons: 1.6 vocabulary -> 2.0.1 (stoppedReason, triggerReason).
_STOP_201 = {
    "Local": ("Local", "StopAuthorized"), "Remote": ("Remote", "RemoteStop"),
    "EVDisconnected": ("EVDisconnected", "EVCommunicationLost"), "DeAuthorized": ("DeAuthorized", "Deauthorized"),
    "HardReset": ("ImmediateReset", "ResetCommand"), "SoftReset": ("ImmediateReset", "ResetCommand"),
    "ImmediateReset": ("ImmediateReset", "ResetCommand"), "UnlockCommand": ("Other", "UnlockCommand"),
    "EmergencyStop": ("EmergencyStop", "AbnormalCondition"), "PowerLoss": ("PowerLoss", "AbnormalCondition"),
    "Reboot": ("Reboot", "ResetCommand"), "Other": ("Other", "AbnormalCondition"),
}
_STOP_16 = {"ImmediateReset": "HardReset", "Timeout": "Other", "StoppedByEV": "EVDisconnected"}


class CallError(Exception):
    """The CSMS answered one of our calls with a CALLERROR."""

    def __init__(self, action: str, code: str, description: str = "", details: Any = None) -> None:
        super().__init__(f"{action}: {code} {description}".strip())
        self.action = action
        self.code = code
        self.description = description
        self.details = details or {}


class SessionRejected(Exception):
    """The CSMS did not accept the id token presented to start a session."""

    def __init__(self, id_token: str, status: str) -> None:
        super().__init__(f"id token {id_token!r} not accepted: {status}")
        self.id_token = id_token
        self.status = status


class ReceivedCall(NamedTuple):
    """A CALL the CSMS sent to the station (``action, payload = call`` works too)."""

    action: str
    payload: dict[str, Any]


@dataclass
class Transaction:
    evse_id: int
    id_token: str
    token_type: str
    transaction_id: Any  # int in 1.6 (allocated by the CSMS), str in 2.0.1 (chosen by the station)
    started_at: datetime
    meter_start_wh: float
    auth_status: str = "Accepted"
    remote_start_id: int | None = None
    reservation_id: int | None = None
    seq_no: int = 0
    meter_stop_wh: float | None = None
    stop_reason: str | None = None
    meter_values_sent: int = 0

    @property
    def energy_wh(self) -> float:
        return (self.meter_stop_wh if self.meter_stop_wh is not None else self.meter_start_wh) - self.meter_start_wh


@dataclass
class Evse:
    id: int
    meter_wh: float = 0.0
    status: str = "Available"
    operative: bool = True
    pending_operative: bool | None = None  # availability change waiting for the session to end
    tx: Transaction | None = None
    reservation: dict[str, Any] | None = None
    last_sample: float = field(default_factory=time.monotonic)
    power_w: float = 0.0
    current_a: float = 0.0


@dataclass
class Var:
    """A 2.0.1 device-model variable (Actual attribute)."""

    value: str
    mutability: str = "ReadWrite"
    data_type: str = "string"
    unit: str | None = None


def _norm(name: str | None) -> str:
    return (name or "").lower()


class Backoff:
    """Reconnect delays as an OCPP 2.0.1 station draws them (``OCPPCommCtrlr``'s
    RetryBackOffWaitMinimum, RetryBackOffRandomRange and RetryBackOffRepeatTimes): the first
    attempt after ``minimum`` s plus a random 0..``random_range`` s, each failed attempt doubling
    the fixed part (``repeat`` times at most, never above ``maximum``). Many stations losing the
    same node thus come back spread over ``random_range`` seconds instead of all at once.
    """

    def __init__(self, minimum: float = 1.0, random_range: float = 2.0, *, repeat: int = 6, maximum: float = 60.0,
                 rnd: random.Random | None = None) -> None:
        if minimum < 0 or random_range < 0:
            raise ValueError("reconnect delays must not be negative")
        self.minimum, self.random_range, self.repeat, self.maximum = minimum, random_range, repeat, maximum
        self.rnd = rnd or random.Random()
        self.attempts = 0
        self.last_delay = 0.0

    @property
    def interval(self) -> float:
        """The longest wait before the first attempt: a station is back within this (plus the
        time its handshake and boot take) when that attempt succeeds."""
        return min(self.maximum, self.minimum + self.random_range)

    def next(self) -> float:
        """The wait before the next attempt (and count it)."""
        fixed = self.minimum * 2 ** min(self.attempts, self.repeat)
        self.attempts += 1
        self.last_delay = min(self.maximum, fixed + self.rnd.uniform(0.0, self.random_range))
        return self.last_delay

    def reset(self) -> None:
        """Connected and booted again: the next outage starts from the shortest wait."""
        self.attempts = 0


class SimStation:
    """One simulated station of OCPP version ``"1.6"``, ``"2.0.1"`` or ``"2.1"`` (which sends and
    answers the 2.0.1 messages, checked against the 2.1 schemas).

    Args:
        station_id: the station's identity (the last segment of the OCPP URL).
        url: the CSMS's OCPP base URL (``ws://host:port/ocpp``) or the full URL ending in the id.
        version: ``"1.6"``, ``"2.0.1"`` or ``"2.1"``.
        password: HTTP Basic password (security profile 1/2).
        evses: number of EVSEs (1.6 connectors), each with one connector.
        meter_interval: seconds between automatic meter values during a session (0: none, the
            caller sends them with :meth:`meter_values`).
        heartbeat: send Heartbeats at the interval the CSMS gives in its BootNotification answer.
        measurands: ``"full"`` (energy, power, current and voltage per phase) or ``"compact"``
            (energy, power, current per phase).
        step_delay: seconds between the steps of simulated firmware updates and log uploads.
        stop_on_invalid: stop a session at once when the CSMS does not accept its id token.
        check_frames: validate every outgoing call against the schemas (tests; costs time).
        on_event: called with ``(station, text)`` for every notable event.
        local_host: the source address to connect from (a benchmark spreads tens of thousands
            of loopback connections over 127.0.0.x, each address with its own ephemeral ports).
    """

    def __init__(self, station_id: str, url: str, version: str = "1.6", *, password: str | None = None,
                 evses: int = 2, vendor: str = "OpenCSMS", model: str = "SimCharger", serial: str | None = None,
                 firmware: str = "sim-1.0", meter_interval: float = 0.0, heartbeat: bool = True,
                 measurands: str = "full", max_current_a: float = 32.0, ev_current_a: float = 16.0,
                 phases: int = 3, voltage: float = 230.0, step_delay: float = 0.05, call_timeout: float = 30.0,
                 stop_on_invalid: bool = False, check_frames: bool = False, compression: bool = False,
                 on_event: Callable[[SimStation, str], None] | None = None, local_host: str | None = None) -> None:
        if version not in SUBPROTOCOLS:
            raise ValueError(f"version must be one of {', '.join(SUBPROTOCOLS)}")
        self.station_id = station_id
        base = url.rstrip("/")
        self.url = base if base.rsplit("/", 1)[-1] == station_id else f"{base}/{station_id}"
        self.version = version
        self.is16 = version == "1.6"
        self.password = password
        self.vendor, self.model, self.firmware = vendor, model, firmware
        self.serial = serial or station_id[-25:]
        self.meter_interval = meter_interval
        self.heartbeat_enabled = heartbeat
        self.measurands = measurands
        self.max_current_a, self.ev_current_a = max_current_a, ev_current_a
        self.phases, self.voltage = phases, voltage
        self.step_delay = step_delay
        self.call_timeout = call_timeout
        self.stop_on_invalid = stop_on_invalid
        self.check_frames = check_frames
        self.compression = compression
        self.local_host = local_host
        self.on_event = on_event
        # Called as ``observer(action, seconds, error_code_or_None)`` after each of our calls (benchmarks).
        self.call_observer: Callable[[str, float, str | None], None] | None = None

        rnd = random.Random(station_id)
        self.evses: dict[int, Evse] = {i: Evse(i, meter_wh=float(rnd.randint(1_000, 5_000_000)))
                                       for i in range(1, evses + 1)}
        self.registration: str | None = None
        self.heartbeat_interval = 300
        self.profiles: dict[int, list[dict[str, Any]]] = {}
        self.received_calls: list[ReceivedCall] = []
        self.events: deque[str] = deque(maxlen=500)
        self.firmware_status = "Idle"
        self.diagnostics_status = "Idle"
        self.log_status = "Idle"
        self.last_request_id: int | None = None
        self.calls_sent = 0
        self.errors = 0
        self.config: dict[str, list[Any]] = self._default_config(evses) if self.is16 else {}
        self.variables: dict[tuple[str, str, int | None, str, str], Var] = {} if self.is16 else \
            self._default_variables(evses)

        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._pending: dict[str, tuple[str, asyncio.Future[Any]]] = {}
        self._ids = itertools.count(1)
        self._uid_prefix = uuid.uuid4().hex[:8]
        self._accepted = asyncio.Event()
        self._followups: set[asyncio.Task[Any]] = set()
        self._meter_tasks: dict[int, asyncio.Task[None]] = {}
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._reservation_tasks: dict[int, asyncio.Task[None]] = {}
        self._installed_at: dict[tuple[int, int], datetime] = {}
        self._call_waiters: list[tuple[str, asyncio.Future[dict[str, Any]]]] = []
        self._reset_when_idle = False
        self._closing = False

    # -- defaults -------------------------------------------------------------------------------

    def _default_config(self, evses: int) -> dict[str, list[Any]]:
        """1.6 configuration keys: key -> [value, readonly]."""
        measurands = f"{ENERGY},{POWER},{CURRENT},{VOLTAGE}"
        return {
            "AllowOfflineTxForUnknownId": ["false", False],
            "AuthorizeRemoteTxRequests": ["false", False],
            "ChargeProfileMaxStackLevel": ["8", True],
            "ChargingScheduleAllowedChargingRateUnit": ["Current,Power", True],
            "ChargingScheduleMaxPeriods": ["24", True],
            "ClockAlignedDataInterval": ["0", False],
            "ConnectionTimeOut": ["60", False],
            "GetConfigurationMaxKeys": ["50", True],
            "HeartbeatInterval": [str(self.heartbeat_interval), False],
            "LocalAuthorizeOffline": ["true", False],
            "LocalPreAuthorize": ["false", False],
            "MaxChargingProfilesInstalled": ["10", True],
            "MeterValueSampleInterval": [str(int(self.meter_interval)), False],
            "MeterValuesAlignedData": [ENERGY, False],
            "MeterValuesSampledData": [measurands, False],
            "NumberOfConnectors": [str(evses), True],
            "ResetRetries": ["3", False],
            "StopTransactionOnEVSideDisconnect": ["true", False],
            "StopTransactionOnInvalidId": ["true" if self.stop_on_invalid else "false", False],
            "StopTxnAlignedData": [ENERGY, False],
            "StopTxnSampledData": [ENERGY, False],
            "SupportedFeatureProfiles": ["Core,FirmwareManagement,Reservation,SmartCharging,RemoteTrigger", True],
            "TransactionMessageAttempts": ["3", False],
            "TransactionMessageRetryInterval": ["60", False],
            "UnlockConnectorOnEVSideDisconnect": ["true", False],
            "WebSocketPingInterval": ["0", False],
        }

    def _default_variables(self, evses: int) -> dict[tuple[str, str, int | None, str, str], Var]:
        v: dict[tuple[str, str, int | None, str, str], Var] = {}

        def add(component: str, variable: str, value: Any, mutability: str = "ReadWrite", data_type: str = "string",
                unit: str | None = None, *, evse: int | None = None, instance: str = "",
                var_instance: str = "") -> None:
            v[(_norm(component), _norm(instance), evse, _norm(variable), _norm(var_instance))] = Var(
                str(value).lower() if isinstance(value, bool) else str(value), mutability, data_type, unit)

        add("ChargingStation", "Model", self.model, "ReadOnly")
        add("ChargingStation", "VendorName", self.vendor, "ReadOnly")
        add("ChargingStation", "AvailabilityState", "Available", "ReadOnly", "OptionList")
        add("ChargingStation", "Available", True, "ReadOnly", "boolean")
        add("ChargingStation", "SupplyPhases", self.phases, "ReadOnly", "integer")
        add("OCPPCommCtrlr", "HeartbeatInterval", self.heartbeat_interval, data_type="integer", unit="s")
        add("OCPPCommCtrlr", "MessageTimeout", 30, "ReadOnly", "integer", "s", var_instance="Default")
        add("OCPPCommCtrlr", "ResetRetries", 3, data_type="integer")
        add("OCPPCommCtrlr", "WebSocketPingInterval", 0, data_type="integer", unit="s")
        add("SampledDataCtrlr", "TxUpdatedInterval", int(self.meter_interval), data_type="integer", unit="s")
        add("SampledDataCtrlr", "TxUpdatedMeasurands", f"{ENERGY},{POWER},{CURRENT},{VOLTAGE}",
            data_type="MemberList")
        add("SampledDataCtrlr", "TxEndedMeasurands", ENERGY, data_type="MemberList")
        add("SampledDataCtrlr", "TxStartedMeasurands", ENERGY, data_type="MemberList")
        add("AlignedDataCtrlr", "Interval", 0, data_type="integer", unit="s")
        add("AlignedDataCtrlr", "Measurands", ENERGY, data_type="MemberList")
        add("AuthCtrlr", "AuthorizeRemoteStart", False, data_type="boolean")
        add("AuthCtrlr", "LocalAuthorizeOffline", True, data_type="boolean")
        add("AuthCtrlr", "LocalPreAuthorize", False, data_type="boolean")
        add("AuthCacheCtrlr", "Enabled", True, data_type="boolean")
        add("TxCtrlr", "EVConnectionTimeOut", 60, data_type="integer", unit="s")
        add("TxCtrlr", "StopTxOnInvalidId", self.stop_on_invalid, data_type="boolean")
        add("TxCtrlr", "TxStartPoint", "Authorized", data_type="MemberList")
        add("TxCtrlr", "TxStopPoint", "EVConnected,Authorized", data_type="MemberList")
        add("SmartChargingCtrlr", "Enabled", True, data_type="boolean")
        add("SmartChargingCtrlr", "ProfileStackLevel", 8, "ReadOnly", "integer")
        add("SmartChargingCtrlr", "PeriodsPerSchedule", 24, "ReadOnly", "integer")
        add("SmartChargingCtrlr", "RateUnit", "A,W", "ReadOnly", "MemberList")
        add("SmartChargingCtrlr", "Entries", 10, "ReadOnly", "integer", var_instance="ChargingProfiles")
        add("ReservationCtrlr", "Enabled", True, data_type="boolean")
        add("SecurityCtrlr", "SecurityProfile", 1 if self.password else 0, "ReadOnly", "integer")
        add("SecurityCtrlr", "Identity", self.station_id[:48], "ReadOnly")
        add("SecurityCtrlr", "OrganizationName", "Simulated")
        add("DeviceDataCtrlr", "ItemsPerMessage", 50, "ReadOnly", "integer", var_instance="GetReport")
        add("DeviceDataCtrlr", "ItemsPerMessage", 50, "ReadOnly", "integer", var_instance="GetVariables")
        add("DeviceDataCtrlr", "ItemsPerMessage", 50, "ReadOnly", "integer", var_instance="SetVariables")
        for i in range(1, evses + 1):
            add("EVSE", "AvailabilityState", "Available", "ReadOnly", "OptionList", evse=i)
            add("EVSE", "Power", round(self.max_current_a * self.voltage * self.phases), "ReadOnly", "decimal", "W",
                evse=i)
            add("EVSE", "SupplyPhases", self.phases, "ReadOnly", "integer", evse=i)
            add("Connector", "ConnectorType", "cType2", "ReadOnly", evse=i)
        return v

    # -- transport ------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._ws is not None and self._reader is not None and not self._reader.done()

    def _connect_options(self) -> dict[str, Any]:
        """Extra options for the socket (``loop.create_connection``): the source address."""
        return {"local_addr": (self.local_host, 0)} if self.local_host else {}

    async def connect(self, *, open_timeout: float = 30.0) -> None:
        """Open the WebSocket, offering the version's subprotocol (and Basic auth when set)."""
        headers = {}
        if self.password is not None:
            token = base64.b64encode(f"{self.station_id}:{self.password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        self._closing = False
        self._ws = await ws_connect(
            self.url, subprotocols=[Subprotocol(SUBPROTOCOLS[self.version])], additional_headers=headers,
            compression="deflate" if self.compression else None, ping_interval=None, open_timeout=open_timeout,
            max_size=16 * 1024 * 1024, close_timeout=2,
            **self._connect_options(),
        )
        if self._ws.subprotocol != SUBPROTOCOLS[self.version]:
            await self._ws.close()
            raise ConnectionError(f"CSMS did not accept subprotocol {SUBPROTOCOLS[self.version]}")
        self._reader = asyncio.create_task(self._read(self._ws))
        self._event("connected")

    async def close(self) -> None:
        """Stop every background task and close the WebSocket (sessions are left as they are)."""
        self._closing = True
        tasks = [*self._followups, *self._meter_tasks.values(), *self._reservation_tasks.values()]
        if self._heartbeat_task:
            tasks.append(self._heartbeat_task)
        current = asyncio.current_task()
        for t in tasks:
            if t is not current:
                t.cancel()
        for t in tasks:
            if t is not current:
                try:
                    await t
                except BaseException:  # cancelled or already failed: nothing left to do
                    pass
        self._meter_tasks.clear()
        self._heartbeat_task = None
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        self._ws = None

    async def wait_closed(self) -> None:
        """Return when the connection is gone (closed by either side)."""
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

    async def reconnect(self, backoff: Backoff, *, stop: asyncio.Event | None = None, open_timeout: float = 30.0,
                        boot_timeout: float | None = 60.0) -> bool:
        """After the connection was lost, come back as a real station does: wait ``backoff.next()``
        seconds, connect, boot (reason ``PowerUp``) and report every connector's status; on a
        failure wait the next, longer delay and try again. Sessions survive the outage: their
        meter values go on after the reconnection. Returns False when ``stop`` was set first.
        """
        while True:
            delay = backoff.next()
            self._event(f"reconnecting in {delay:.1f}s")
            if stop is None:
                await asyncio.sleep(delay)
            elif await _sleep_or_stop(stop, delay):
                return False
            try:
                if self._ws is not None and not self.connected:
                    await self._ws.close()  # the old socket is dead already: release it
                await self.connect(open_timeout=open_timeout)
                status = await self.boot(timeout=boot_timeout)
                if status != "Accepted":
                    raise ConnectionError(f"BootNotification {status}")
                await self.announce()
            except (OSError, ConnectionError, ConnectionClosed, WebSocketException, asyncio.TimeoutError,
                    CallError) as exc:
                self._event(f"reconnection failed: {exc!r}")
                continue
            backoff.reset()
            for ev in self.evses.values():
                if ev.tx is not None:
                    self._start_meter_loop(ev.id)
            return True

    async def _read(self, ws: ClientConnection) -> None:
        pending = self._pending
        try:
            async for raw in ws:
                try:
                    msg = _decode(raw)
                    kind = msg[0]
                except (msgspec.DecodeError, IndexError, KeyError, TypeError):
                    log.warning("%s: unreadable frame %r", self.station_id, raw[:200])
                    continue
                if kind == 3:
                    entry = pending.pop(msg[1], None)
                    if entry is not None and not entry[1].done():
                        entry[1].set_result(msg[2])
                elif kind == 4:
                    entry = pending.pop(msg[1], None)
                    if entry is not None and not entry[1].done():
                        entry[1].set_exception(CallError(entry[0], msg[2], msg[3] if len(msg) > 3 else "",
                                                         msg[4] if len(msg) > 4 else None))
                elif kind == 2:
                    await self._on_call(msg)
        except ConnectionClosed:
            pass
        finally:
            for action, fut in pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError(f"connection closed before the answer to {action}"))
            pending.clear()
            if not self._closing:
                self._event(f"disconnected ({ws.close_code})")

    async def call(self, action: str, payload: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        """Send a CALL and return the CSMS's answer; raise :class:`CallError` on a CALLERROR.

        One call at a time, as OCPP-J requires; answers to server calls are not held back by it.
        """
        if self.check_frames:
            validate(self.version, action, payload)
        ws = self._ws
        if ws is None:
            raise ConnectionError("not connected")
        loop = asyncio.get_running_loop()
        observer = self.call_observer
        started = time.perf_counter() if observer is not None else 0.0
        async with self._lock:
            uid = f"{self._uid_prefix}-{next(self._ids)}"
            fut = loop.create_future()
            self._pending[uid] = (action, fut)
            timer = loop.call_later(timeout or self.call_timeout, _expire, fut, action)
            try:
                await ws.send(_encode([2, uid, action, payload]), text=True)
                self.calls_sent += 1
                result = await fut
            except CallError as exc:
                self.errors += 1
                if observer is not None:
                    observer(action, time.perf_counter() - started, exc.code)
                raise
            finally:
                timer.cancel()
                self._pending.pop(uid, None)
        if observer is not None:
            observer(action, time.perf_counter() - started, None)
        return result

    async def _send_frame(self, frame: list[Any]) -> None:
        if self._ws is not None:
            await self._ws.send(_encode(frame), text=True)

    # -- events and waiting -------------------------------------------------------------------

    def _event(self, text: str) -> None:
        self.events.append(text)
        if self.on_event is not None:
            self.on_event(self, text)

    def _spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(self._guard(coro, name))
        self._followups.add(task)
        task.add_done_callback(self._followups.discard)
        return task

    async def _guard(self, coro: Awaitable[Any], name: str) -> Any:
        try:
            return await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a follow-up must never take the station down
            self.errors += 1
            self._event(f"{name} failed: {exc!r}")
            log.debug("%s: %s failed", self.station_id, name, exc_info=True)
            return None

    async def settle(self, timeout: float = 10.0) -> None:
        """Wait until the follow-up work of answered commands (e.g. a remote start) is done."""
        deadline = time.monotonic() + timeout
        while self._followups:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("follow-up work still running")
            await asyncio.wait(list(self._followups), timeout=remaining)

    async def wait_for_call(self, action: str, *, since: int = 0, timeout: float = 10.0) -> dict[str, Any]:
        """The payload of the first ``action`` the CSMS sent at or after index ``since``."""
        for call in self.received_calls[since:]:
            if call.action == action:
                return call.payload
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._call_waiters.append((action, fut))
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._call_waiters = [w for w in self._call_waiters if w[1] is not fut]

    # -- station-initiated messages -------------------------------------------------------------

    def _boot_payload(self, reason: str) -> dict[str, Any]:
        if self.is16:
            return {"chargePointVendor": self.vendor[:20], "chargePointModel": self.model[:20],
                    "chargePointSerialNumber": self.serial[:25], "firmwareVersion": self.firmware[:50]}
        return {"chargingStation": {"vendorName": self.vendor[:50], "model": self.model[:20],
                                    "serialNumber": self.serial[:25], "firmwareVersion": self.firmware[:50]},
                "reason": reason}

    async def _send_boot(self, reason: str = "PowerUp") -> dict[str, Any]:
        res = await self.call("BootNotification", self._boot_payload(reason))
        self.registration = res["status"]
        interval = int(res.get("interval") or 0)
        if self.registration == "Accepted":
            if interval > 0:
                self._set_heartbeat_interval(interval)
            self._accepted.set()
            self._start_heartbeat()
        else:
            self._accepted.clear()
        self._event(f"boot {self.registration} (interval {interval}s)")
        return res

    async def boot(self, *, reason: str = "PowerUp", timeout: float | None = None,
                   retry_cap: float | None = None) -> str:
        """BootNotification until Accepted (Pending/Rejected: retry after the given interval).

        A boot triggered by the CSMS while Pending counts too. Returns the final status; with
        ``timeout`` the last status is returned when it runs out.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            res = await self._send_boot(reason)
            if self.registration == "Accepted":
                return "Accepted"
            wait = max(1.0, float(res.get("interval") or 10))
            if retry_cap is not None:
                wait = min(wait, retry_cap)
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    return self.registration or "Pending"
            try:
                await asyncio.wait_for(self._accepted.wait(), wait)
                return "Accepted"
            except asyncio.TimeoutError:
                continue

    async def heartbeat(self) -> str:
        return (await self.call("Heartbeat", {}))["currentTime"]

    def _set_heartbeat_interval(self, seconds: int) -> None:
        self.heartbeat_interval = seconds
        if self.is16:
            self.config["HeartbeatInterval"][0] = str(seconds)
        else:
            self.variables[("ocppcommctrlr", "", None, "heartbeatinterval", "")].value = str(seconds)

    def _start_heartbeat(self) -> None:
        if self.heartbeat_enabled and (self._heartbeat_task is None or self._heartbeat_task.done()):
            self._heartbeat_task = asyncio.ensure_future(self._heartbeat_loop())

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(max(1, self.heartbeat_interval))
            if not self.connected:
                return
            try:
                await self.heartbeat()
            except (CallError, ConnectionError, asyncio.TimeoutError) as exc:
                self._event(f"heartbeat failed: {exc}")

    async def status(self, evse_id: int, status: str, *, connector_id: int = 1, error_code: str = "NoError",
                     info: str | None = None) -> None:
        """StatusNotification. ``status`` in either version's words (Charging -> Occupied in 2.0.1).

        ``evse_id`` 0 is the station itself (1.6 connector 0; skipped in 2.0.1).
        """
        ev = self.evses.get(evse_id)
        if self.is16:
            status16 = _STATUS_16.get(status, status)
            payload: dict[str, Any] = {"connectorId": evse_id, "errorCode": error_code, "status": status16,
                                       "timestamp": now_ts()}
            if info:
                payload["info"] = info[:50]
            if ev is not None:
                ev.status = status16
        else:
            if evse_id == 0:
                return
            status201 = _STATUS_201.get(status, status)
            payload = {"timestamp": now_ts(), "connectorStatus": status201, "evseId": evse_id,
                       "connectorId": connector_id}
            if ev is not None:
                ev.status = status201
                key = ("evse", "", evse_id, "availabilitystate", "")
                if key in self.variables:
                    self.variables[key].value = status201
        await self.call("StatusNotification", payload)

    async def announce(self) -> None:
        """StatusNotification for every connector (1.6 also for connector 0), as after a boot."""
        if self.is16:
            await self.status(0, "Available" if any(e.operative for e in self.evses.values()) else "Unavailable")
        for ev in self.evses.values():
            await self.status(ev.id, self.current_status(ev))

    def current_status(self, ev: Evse) -> str:
        if not ev.operative:
            return "Unavailable"
        if ev.tx is not None:
            return "Charging"
        if ev.reservation is not None:
            return "Reserved"
        return "Available"

    async def authorize(self, id_token: str, token_type: str = "ISO14443") -> str:
        """Authorize; returns the status the CSMS gives the token."""
        if self.is16:
            res = await self.call("Authorize", {"idTag": id_token[:20]})
            return res["idTagInfo"]["status"]
        res = await self.call("Authorize", {"idToken": {"idToken": id_token[:36], "type": token_type}})
        return res["idTokenInfo"]["status"]

    # -- meter ----------------------------------------------------------------------------------

    def _update_power(self, ev: Evse) -> None:
        if ev.tx is None or not ev.operative:
            ev.current_a = ev.power_w = 0.0
            return
        current = min(self.ev_current_a, self.max_current_a)
        limit = self.limit_a(ev.id)
        if limit is not None:
            current = min(current, limit)
        ev.current_a = max(0.0, current)
        ev.power_w = ev.current_a * self.voltage * self.phases

    def _advance(self, ev: Evse, seconds: float | None = None) -> None:
        now = time.monotonic()
        dt = now - ev.last_sample if seconds is None else seconds
        ev.last_sample = now
        self._update_power(ev)
        ev.meter_wh += ev.power_w * max(0.0, dt) / 3600.0

    def _sampled(self, ev: Evse, context: str, energy_only: bool = False) -> list[dict[str, Any]]:
        rows: list[tuple[float, str, str, str | None]] = [(ev.meter_wh, ENERGY, "Wh", None)]
        if not energy_only:
            rows.append((ev.power_w, POWER, "W", None))
            for n in range(1, self.phases + 1):
                rows.append((ev.current_a, CURRENT, "A", f"L{n}"))
            if self.measurands == "full":
                for n in range(1, self.phases + 1):
                    rows.append((self.voltage, VOLTAGE, "V", f"L{n}-N"))
        out = []
        if self.is16:
            for value, measurand, unit, phase in rows:
                sv = {"value": f"{value:.1f}", "context": context, "measurand": measurand, "location": "Outlet",
                      "unit": unit}
                if phase:
                    sv["phase"] = phase
                out.append(sv)
        else:
            for value, measurand, unit, phase in rows:
                sv2: dict[str, Any] = {"value": round(value, 1), "context": context, "measurand": measurand,
                                       "location": "Outlet", "unitOfMeasure": {"unit": unit}}
                if phase:
                    sv2["phase"] = phase
                out.append(sv2)
        return out

    async def meter_values(self, evse_id: int = 1, *, advance_s: float | None = None, energy_wh: float | None = None,
                           context: str = "Sample.Periodic", message: str | None = None) -> None:
        """Send the EVSE's meter values (energy, power, current per phase, voltage).

        The energy register advances by the simulated power over the real time since the last
        sample, or over ``advance_s`` simulated seconds; ``energy_wh`` sets the register outright.
        In 2.0.1 a session's values go in a TransactionEvent Updated unless ``message`` is
        ``"MeterValues"``; outside a session (and always in 1.6) a MeterValues message is sent.
        """
        ev = self.evses[evse_id]
        self._advance(ev, advance_s)
        if energy_wh is not None:
            ev.meter_wh = float(energy_wh)
        tx = ev.tx
        ts = now_ts()
        sampled = self._sampled(ev, context)
        if self.is16:
            payload: dict[str, Any] = {"connectorId": evse_id, "meterValue": [{"timestamp": ts,
                                                                              "sampledValue": sampled}]}
            if tx is not None and tx.transaction_id is not None:
                payload["transactionId"] = tx.transaction_id
            await self.call("MeterValues", payload)
        elif tx is not None and message != "MeterValues":
            await self._tx_event("Updated", tx, "MeterValuePeriodic" if context == "Sample.Periodic" else "Trigger",
                                 meter=[{"timestamp": ts, "sampledValue": sampled}], charging_state="Charging")
        else:
            await self.call("MeterValues", {"evseId": evse_id, "meterValue": [{"timestamp": ts,
                                                                              "sampledValue": sampled}]})
        if tx is not None:
            tx.meter_values_sent += 1

    def _start_meter_loop(self, evse_id: int) -> None:
        if self.meter_interval > 0 and evse_id not in self._meter_tasks:
            self._meter_tasks[evse_id] = asyncio.ensure_future(self._meter_loop(evse_id))

    def _stop_meter_loop(self, evse_id: int) -> None:
        task = self._meter_tasks.pop(evse_id, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _meter_loop(self, evse_id: int) -> None:
        while True:
            await asyncio.sleep(self.meter_interval)
            ev = self.evses[evse_id]
            if ev.tx is None or not self.connected:
                self._meter_tasks.pop(evse_id, None)
                return
            try:
                await self.meter_values(evse_id)
            except (CallError, ConnectionError, asyncio.TimeoutError) as exc:
                self._event(f"meter values on EVSE {evse_id} failed: {exc}")

    # -- sessions -------------------------------------------------------------------------------

    async def _tx_event(self, event_type: str, tx: Transaction, trigger: str, *, meter: list[dict[str, Any]] | None,
                        charging_state: str | None = None, stopped_reason: str | None = None,
                        with_token: bool = False, with_evse: bool = False) -> dict[str, Any]:
        info: dict[str, Any] = {"transactionId": tx.transaction_id}
        if charging_state:
            info["chargingState"] = charging_state
        if stopped_reason:
            info["stoppedReason"] = stopped_reason
        if tx.remote_start_id is not None and event_type == "Started":
            info["remoteStartId"] = tx.remote_start_id
        payload: dict[str, Any] = {"eventType": event_type, "timestamp": now_ts(), "triggerReason": trigger,
                                   "seqNo": tx.seq_no, "transactionInfo": info}
        tx.seq_no += 1
        if meter:
            payload["meterValue"] = meter
        if with_token:
            payload["idToken"] = {"idToken": tx.id_token[:36], "type": tx.token_type}
        if with_evse:
            payload["evse"] = {"id": tx.evse_id, "connectorId": 1}
        if tx.reservation_id is not None and event_type == "Started":
            payload["reservationId"] = tx.reservation_id
        return await self.call("TransactionEvent", payload)

    async def start_session(self, evse_id: int = 1, id_token: str = "SIMTOKEN", *, token_type: str = "ISO14443",
                            authorize: bool = True, remote_start_id: int | None = None,
                            transaction_id: str | None = None, trigger: str | None = None) -> Transaction:
        """Plug in, authorize and start a transaction on ``evse_id``; returns the transaction.

        1.6: StatusNotification Preparing, Authorize, StartTransaction, StatusNotification
        Charging. 2.0.1: StatusNotification Occupied, Authorize, TransactionEvent Started.
        Raises :class:`SessionRejected` when Authorize does not accept the token (and, with
        ``stop_on_invalid``, when the start is not accepted).
        """
        ev = self.evses[evse_id]
        if ev.tx is not None:
            raise RuntimeError(f"EVSE {evse_id} already has transaction {ev.tx.transaction_id}")
        reservation_id = None
        if ev.reservation is not None and ev.reservation["id_token"] == id_token:
            reservation_id = ev.reservation["id"]
        ev.last_sample = time.monotonic()
        tx = Transaction(evse_id, id_token, token_type, transaction_id, datetime.now(timezone.utc), ev.meter_wh,
                         remote_start_id=remote_start_id, reservation_id=reservation_id)
        ev.tx = tx  # claim the EVSE before the first await: concurrent starts must not share it
        try:
            await self.status(evse_id, "Preparing" if self.is16 else "Occupied")
            if authorize:
                auth = await self.authorize(id_token, token_type)
                if auth != "Accepted":
                    ev.tx = None
                    await self.status(evse_id, self.current_status(ev))
                    self._event(f"EVSE {evse_id}: token {id_token} not accepted ({auth})")
                    raise SessionRejected(id_token, auth)
            if self.is16:
                payload: dict[str, Any] = {"connectorId": evse_id, "idTag": id_token[:20],
                                           "meterStart": int(round(ev.meter_wh)), "timestamp": ocpp_ts(tx.started_at)}
                if reservation_id is not None:
                    payload["reservationId"] = reservation_id
                res = await self.call("StartTransaction", payload)
                tx.transaction_id = res["transactionId"]
                tx.auth_status = res["idTagInfo"]["status"]
                await self.status(evse_id, "Charging")
            else:
                tx.transaction_id = transaction_id or str(uuid.uuid4())
                self._update_power(ev)
                res = await self._tx_event(
                    "Started", tx, trigger or ("RemoteStart" if remote_start_id is not None else "Authorized"),
                    meter=[{"timestamp": ocpp_ts(tx.started_at),
                            "sampledValue": self._sampled(ev, "Transaction.Begin", energy_only=True)}],
                    charging_state="Charging", with_token=True, with_evse=True)
                tx.auth_status = (res.get("idTokenInfo") or {}).get("status", "Accepted")
        except BaseException:
            if ev.tx is tx:
                ev.tx = None
            raise
        if reservation_id is not None:
            self._clear_reservation(ev)
        self._event(f"EVSE {evse_id}: session {tx.transaction_id} started for {id_token} ({tx.auth_status})")
        if tx.auth_status != "Accepted" and self.stop_on_invalid:
            await self.stop_session(evse_id, reason="DeAuthorized")
            raise SessionRejected(id_token, tx.auth_status)
        self._start_meter_loop(evse_id)
        return tx

    async def stop_session(self, evse_id: int = 1, *, reason: str = "Local") -> Transaction:
        """Stop the EVSE's transaction (``reason`` in 1.6 words, mapped for 2.0.1) and unplug."""
        ev = self.evses[evse_id]
        tx = ev.tx
        if tx is None:
            raise RuntimeError(f"EVSE {evse_id} has no transaction")
        self._stop_meter_loop(evse_id)
        self._advance(ev)
        tx.meter_stop_wh = ev.meter_wh
        ts = now_ts()
        end_sample = self._sampled(ev, "Transaction.End", energy_only=True)
        try:
            if self.is16:
                reason16 = _STOP_16.get(reason, reason)
                payload: dict[str, Any] = {"transactionId": tx.transaction_id, "meterStop": int(round(ev.meter_wh)),
                                           "timestamp": ts, "reason": reason16,
                                           "transactionData": [{"timestamp": ts, "sampledValue": end_sample}]}
                if reason16 == "Local":
                    payload["idTag"] = tx.id_token[:20]
                await self.status(evse_id, "Finishing")
                await self.call("StopTransaction", payload)
                tx.stop_reason = reason16
            else:
                stopped, trigger = _STOP_201.get(reason, (reason, "AbnormalCondition"))
                await self._tx_event("Ended", tx, trigger, meter=[{"timestamp": ts, "sampledValue": end_sample}],
                                     charging_state="Idle", stopped_reason=stopped,
                                     with_token=trigger == "StopAuthorized")
                tx.stop_reason = stopped
        finally:
            ev.tx = None
            self._update_power(ev)
        if ev.pending_operative is not None:
            ev.operative, ev.pending_operative = ev.pending_operative, None
        await self.status(evse_id, self.current_status(ev))
        self._event(f"EVSE {evse_id}: session {tx.transaction_id} stopped ({tx.stop_reason}), "
                    f"{tx.energy_wh:.0f} Wh")
        if self._reset_when_idle and all(e.tx is None for e in self.evses.values()):
            self._reset_when_idle = False
            self._spawn(self._reboot("ScheduledReset"), "reset")
        return tx

    # -- smart charging -------------------------------------------------------------------------

    def _schedule_of(self, profile: dict[str, Any]) -> dict[str, Any]:
        sch = profile["chargingSchedule"]
        return sch[0] if isinstance(sch, list) else sch

    def _profile_limit(self, evse_key: int, profile: dict[str, Any], evse_id: int,
                       at: datetime) -> tuple[float, str, int] | None:
        """(limit, unit, phases) of ``profile`` at ``at``, or None when it does not apply then."""
        valid_from, valid_to = parse_ts(profile.get("validFrom")), parse_ts(profile.get("validTo"))
        if (valid_from and at < valid_from) or (valid_to and at >= valid_to):
            return None
        start = self._schedule_start(evse_key, profile, evse_id, at)
        if start is None:
            return None
        sch = self._schedule_of(profile)
        elapsed = (at - start).total_seconds()
        duration = sch.get("duration")
        if elapsed < 0 or (duration is not None and elapsed >= duration):
            return None
        period = None
        for p in sch["chargingSchedulePeriod"]:
            if p["startPeriod"] <= elapsed:
                period = p
        if period is None:
            return None
        return float(period["limit"]), sch["chargingRateUnit"], int(period.get("numberPhases") or self.phases)

    def _schedule_start(self, evse_key: int, profile: dict[str, Any], evse_id: int, at: datetime) -> datetime | None:
        sch = self._schedule_of(profile)
        kind = profile["chargingProfileKind"]
        installed = self._installed_at.get((evse_key, _profile_id(profile)), at)
        if kind == "Relative":
            ev = self.evses.get(evse_id)
            return ev.tx.started_at if ev is not None and ev.tx is not None else installed
        start = parse_ts(sch.get("startSchedule")) or installed
        if kind == "Recurring":
            period = 604800 if profile.get("recurrencyKind") == "Weekly" else 86400
            cycles = math.floor((at - start).total_seconds() / period)
            start = start + timedelta(seconds=cycles * period)
        return start

    def _to_amps(self, limit: float, unit: str, phases: int) -> float:
        return limit if unit == "A" else limit / (self.voltage * max(1, phases))

    def _stack_limit(self, evse_key: int, purposes: set[str], evse_id: int, at: datetime) -> float | None:
        candidates = [p for p in self.profiles.get(evse_key, []) if p["chargingProfilePurpose"] in purposes]
        ev = self.evses.get(evse_id)
        for prof in sorted(candidates, key=lambda p: -p["stackLevel"]):
            if prof["chargingProfilePurpose"] == "TxProfile":
                tx = ev.tx if ev is not None else None
                if tx is None or (prof.get("transactionId") is not None
                                  and str(prof["transactionId"]) != str(tx.transaction_id)):
                    continue
            found = self._profile_limit(evse_key, prof, evse_id, at)
            if found is not None:
                return self._to_amps(*found)
        return None

    def limit_a(self, evse_id: int, at: datetime | None = None) -> float | None:
        """The current limit (A per phase) that the installed charging profiles put on an EVSE now
        (``evse_id`` 0: the station-wide maximum), or None when no profile applies."""
        if not any(self.profiles.values()):
            return None
        at = at or datetime.now(timezone.utc)
        limits = []
        if evse_id:
            tx_limit = self._stack_limit(evse_id, {"TxProfile"}, evse_id, at)
            if tx_limit is None:
                tx_limit = self._stack_limit(evse_id, {"TxDefaultProfile"}, evse_id, at)
            if tx_limit is None:
                tx_limit = self._stack_limit(0, {"TxDefaultProfile"}, evse_id, at)
            limits.append(tx_limit)
            limits.append(self._stack_limit(evse_id, {"ChargingStationExternalConstraints"}, evse_id, at))
        limits.append(self._stack_limit(0, {"ChargePointMaxProfile", "ChargingStationMaxProfile",
                                            "ChargingStationExternalConstraints"}, evse_id, at))
        found = [x for x in limits if x is not None]
        return min(found) if found else None

    def limit(self, evse_id: int, unit: str = "A") -> float | None:
        """:meth:`limit_a` in ``unit`` (``"A"`` or ``"W"``)."""
        amps = self.limit_a(evse_id)
        if amps is None or unit == "A":
            return amps
        return amps * self.voltage * self.phases

    def _install_profile(self, evse_key: int, profile: dict[str, Any]) -> str:
        purpose = profile["chargingProfilePurpose"]
        max_level = int(self.config["ChargeProfileMaxStackLevel"][0]) if self.is16 else 8
        if profile["stackLevel"] > max_level:
            return "Rejected"
        if purpose in ("ChargePointMaxProfile", "ChargingStationMaxProfile") and evse_key != 0:
            return "Rejected"
        if evse_key != 0 and evse_key not in self.evses:
            return "Rejected"
        if purpose == "TxProfile":
            ev = self.evses.get(evse_key)
            if ev is None or ev.tx is None:
                return "Rejected"
            tx_id = profile.get("transactionId")
            if tx_id is not None and str(tx_id) != str(ev.tx.transaction_id):
                return "Rejected"
        pid, level = _profile_id(profile), profile["stackLevel"]
        for key, plist in self.profiles.items():  # same id anywhere, or same purpose and level here
            plist[:] = [p for p in plist if _profile_id(p) != pid and not (
                key == evse_key and p["chargingProfilePurpose"] == purpose and p["stackLevel"] == level)]
        self.profiles.setdefault(evse_key, []).append(profile)
        self._installed_at[(evse_key, pid)] = datetime.now(timezone.utc)
        return "Accepted"

    def _clear_profiles(self, profile_id: int | None, evse_key: int | None, purpose: str | None,
                        stack_level: int | None) -> bool:
        removed = False
        for key, plist in self.profiles.items():
            keep = []
            for p in plist:
                if profile_id is not None:
                    match = _profile_id(p) == profile_id
                else:
                    match = ((evse_key is None or key == evse_key)
                             and (purpose is None or p["chargingProfilePurpose"] == purpose)
                             and (stack_level is None or p["stackLevel"] == stack_level))
                if match:
                    removed = True
                else:
                    keep.append(p)
            plist[:] = keep
        return removed

    def composite_schedule(self, evse_id: int, duration: int, unit: str = "A") -> tuple[datetime, list[dict[str, Any]]]:
        """The limits over the next ``duration`` seconds as schedule periods (start, periods)."""
        now = datetime.now(timezone.utc)
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # as precise as scheduleStart is
        offsets = {0}
        for key in {0, evse_id}:
            for prof in self.profiles.get(key, []):
                start = self._schedule_start(key, prof, evse_id, now)
                if start is None:
                    continue
                sch = self._schedule_of(prof)
                marks = [p["startPeriod"] for p in sch["chargingSchedulePeriod"]]
                if sch.get("duration") is not None:
                    marks.append(sch["duration"])
                for mark in marks:
                    off = math.ceil((start - now).total_seconds() + mark)
                    if 0 < off < duration:
                        offsets.add(off)
                for edge in (prof.get("validFrom"), prof.get("validTo")):
                    ts = parse_ts(edge)
                    if ts is not None:
                        off = math.ceil((ts - now).total_seconds())
                        if 0 < off < duration:
                            offsets.add(off)
        periods: list[dict[str, Any]] = []
        for off in sorted(offsets):
            amps = self.limit_a(evse_id, now + timedelta(seconds=off))
            if amps is None:
                amps = self.max_current_a
            value = amps if unit == "A" else amps * self.voltage * self.phases
            value = round(value, 1)
            if not periods or periods[-1]["limit"] != value:
                periods.append({"startPeriod": off, "limit": value, "numberPhases": self.phases})
        return now, periods

    # -- reservations ---------------------------------------------------------------------------

    def _reserve(self, ev: Evse, reservation_id: int, id_token: str, expiry: datetime) -> None:
        ev.reservation = {"id": reservation_id, "id_token": id_token, "expiry": expiry}
        old = self._reservation_tasks.pop(ev.id, None)
        if old is not None:
            old.cancel()
        self._reservation_tasks[ev.id] = asyncio.ensure_future(self._expire_reservation(ev, reservation_id, expiry))

    async def _expire_reservation(self, ev: Evse, reservation_id: int, expiry: datetime) -> None:
        await asyncio.sleep(max(0.0, (expiry - datetime.now(timezone.utc)).total_seconds()))
        if ev.reservation is None or ev.reservation["id"] != reservation_id:
            return
        ev.reservation = None
        self._reservation_tasks.pop(ev.id, None)
        self._event(f"EVSE {ev.id}: reservation {reservation_id} expired")
        try:
            if not self.is16:
                await self.call("ReservationStatusUpdate", {"reservationId": reservation_id,
                                                            "reservationUpdateStatus": "Expired"})
            await self.status(ev.id, self.current_status(ev))
        except (CallError, ConnectionError, asyncio.TimeoutError) as exc:
            self._event(f"reservation expiry report failed: {exc}")

    def _clear_reservation(self, ev: Evse) -> None:
        ev.reservation = None
        task = self._reservation_tasks.pop(ev.id, None)
        if task is not None:
            task.cancel()

    # -- server-initiated calls -----------------------------------------------------------------

    async def _on_call(self, msg: list[Any]) -> None:
        uid = msg[1]
        action = msg[2] if len(msg) > 2 and isinstance(msg[2], str) else ""
        # Any: a malformed CALL may lack its payload (None); validate() refuses it before a handler runs
        payload: Any = msg[3] if len(msg) > 3 else None
        self.received_calls.append(ReceivedCall(action, payload))
        for waited, fut in self._call_waiters:
            if waited == action and not fut.done():
                fut.set_result(payload)
        version = self.version
        followup: Awaitable[Any] | None = None
        try:
            if action not in ACTIONS[version]:
                raise OcppError(error_code(version, "not_implemented"), f"unknown action {action!r}")
            handler = self._handlers().get(action)
            if handler is None:
                raise OcppError(error_code(version, "not_supported"), f"{action} is not supported by this station")
            validate(version, action, payload)
            result, followup = handler(payload)
            try:
                validate(version, action, result, response=True)
            except OcppError as exc:  # our own bug: report loudly, still answer
                self.errors += 1
                self._event(f"answer to {action} breaks the schema: {exc}")
                log.error("%s: answer to %s breaks the schema: %s (%r)", self.station_id, action, exc, result)
            frame: list[Any] = [3, uid, result]
        except OcppError as exc:
            frame = [4, uid, exc.code, exc.description[:255], {}]
            followup = None
        except Exception as exc:
            log.exception("%s: handling %s failed", self.station_id, action)
            frame = [4, uid, error_code(version, "internal"), repr(exc)[:255], {}]
            followup = None
        self._event(f"received {action}" + ("" if frame[0] == 3 else f" -> CALLERROR {frame[2]}"))
        try:
            await self._send_frame(frame)
        except ConnectionClosed:
            if followup is not None and hasattr(followup, "close"):
                followup.close()
            return
        if followup is not None:
            self._spawn(followup, f"follow-up of {action}")

    def _handlers(self) -> dict[str, Callable[[dict[str, Any]], tuple[dict[str, Any], Awaitable[Any] | None]]]:
        common: dict[str, Callable[[dict[str, Any]], tuple[dict[str, Any], Awaitable[Any] | None]]] = {
            "Reset": self._h_reset, "UnlockConnector": self._h_unlock, "ChangeAvailability": self._h_availability,
            "TriggerMessage": self._h_trigger, "ClearCache": lambda p: ({"status": "Accepted"}, None),
            "SetChargingProfile": self._h_set_profile, "ClearChargingProfile": self._h_clear_profile,
            "GetCompositeSchedule": self._h_composite, "UpdateFirmware": self._h_update_firmware,
            "GetLog": self._h_get_log, "DataTransfer": self._h_data_transfer, "ReserveNow": self._h_reserve,
            "CancelReservation": self._h_cancel_reservation,
        }
        if self.is16:
            common.update({"RemoteStartTransaction": self._h_remote_start, "RemoteStopTransaction": self._h_remote_stop,
                           "GetConfiguration": self._h_get_configuration,
                           "ChangeConfiguration": self._h_change_configuration,
                           "GetDiagnostics": self._h_get_diagnostics})
        else:
            common.update({"RequestStartTransaction": self._h_remote_start,
                           "RequestStopTransaction": self._h_remote_stop, "GetVariables": self._h_get_variables,
                           "SetVariables": self._h_set_variables, "GetBaseReport": self._h_get_base_report,
                           "GetTransactionStatus": self._h_transaction_status})
        return common

    def _free_evse(self) -> Evse | None:
        for ev in self.evses.values():
            if ev.tx is None and ev.operative and ev.reservation is None:
                return ev
        return None

    def _h_remote_start(self, p: dict[str, Any]) -> tuple[dict[str, Any], Awaitable[Any] | None]:
        evse_id = p.get("connectorId") if self.is16 else p.get("evseId")
        if self.is16:
            token, token_type, remote_id = p["idTag"], "ISO14443", None
        else:
            token, token_type, remote_id = p["idToken"]["idToken"], p["idToken"]["type"], p["remoteStartId"]
        if evse_id:
            ev = self.evses.get(evse_id)
            if ev is None or ev.tx is not None or not ev.operative or (
                    ev.reservation is not None and ev.reservation["id_token"] != token):
                ev = None
        else:
            ev = self._free_evse()
        if ev is None:
            return {"status": "Rejected"}, None
        profile = p.get("chargingProfile")
        if profile is not None and profile["chargingProfilePurpose"] != "TxProfile":
            return {"status": "Rejected"}, None
        if self.is16:
            authorize = self.config["AuthorizeRemoteTxRequests"][0] == "true"
            return {"status": "Accepted"}, self._remote_start(ev.id, token, token_type, None, None, authorize,
                                                              profile)
        authorize = self.variables[("authctrlr", "", None, "authorizeremotestart", "")].value == "true"
        tx_id = str(uuid.uuid4())
        return ({"status": "Accepted", "transactionId": tx_id},
                self._remote_start(ev.id, token, token_type, remote_id, tx_id, authorize, profile))

    async def _remote_start(self, evse_id: int, token: str, token_type: str, remote_id: int | None,
                            tx_id: str | None, authorize: bool, profile: dict[str, Any] | None) -> None:
        try:
            tx = await self.start_session(evse_id, token, token_type=token_type, authorize=authorize,
                                          remote_start_id=remote_id, transaction_id=tx_id)
        except SessionRejected:
            return
        if profile is not None:
            profile = dict(profile)
            profile["transactionId"] = tx.transaction_id
            self._install_profile(evse_id, profile)

    def _evse_of_tx(self, transaction_id: Any) -> Evse | None:
        for ev in self.evses.values():
            if ev.tx is not None and str(ev.tx.transaction_id) == str(transaction_id):
                return ev
        return None

    def _h_transaction_status(self, p: dict[str, Any]) -> tuple[dict[str, Any], Awaitable[Any] | None]:
        # nothing is ever queued: a CALL that got no answer is not sent again
        tx_id = p.get("transactionId")
        if tx_id is None:
            return {"messagesInQueue": False}, None
        ongoing = any(ev.tx is not None and ev.tx.transaction_id == tx_id for ev in self.evses.values())
        return {"ongoingIndicator": ongoing, "messagesInQueue": False}, None

    def _h_remote_stop(self, p: dict[str, Any]) -> tuple[dict[str, Any], Awaitable[Any] | None]:
        ev = self._evse_of_tx(p["transactionId"])
        if ev is None:
            return {"status": "Rejected"}, None
        return {"status": "Accepted"}, self.stop_session(ev.id, reason="Remote")

    def _h_reset(self, p: dict[str, Any]) -> tuple[dict[str, Any], Awaitable[Any] | None]:
        kind = p["type"]
        if self.is16:
            return {"status": "Accepted"}, self._reboot("HardReset" if kind == "Hard" else "SoftReset")
        evse_id = p.get("evseId")
        if evse_id:
            ev = self.evses.get(evse_id)
            if ev is None:
                return {"status": "Rejected"}, None
            if ev.tx is not None:
                if kind == "OnIdle":
                    return {"status": "Scheduled"}, None
                return {"status": "Accepted"}, self.stop_session(evse_id, reason="ImmediateReset")
            return {"status": "Accepted"}, None
        if kind == "OnIdle" and any(e.tx is not None for e in self.evses.values()):
            self._reset_when_idle = True
            return {"status": "Scheduled"}, None
        return {"status": "Accepted"}, self._reboot("ImmediateReset")

    async def _reboot(self, reason: str) -> None:
        """Stop running sessions, then boot again on the same connection."""
        await asyncio.sleep(self.step_delay)
        for ev in self.evses.values():
            if ev.tx is not None:
                await self.stop_session(ev.id, reason=reason)
        self._accepted.clear()
        await self.boot(reason="RemoteReset")
        await self.announce()

    def _h_unlock(self, p: dict[str, Any]) -> tuple[dict[str, Any], Awaitable[Any] | None]:
        evse_id = p["connectorId"] if self.is16 else p["evseId"]
        ev = self.evses.get(evse_id)
        if self.is16:
            if ev is None:
                return {"status": "NotSupported"}, None
            if ev.tx is not None:
                return {"status": "Unlocked"}, self.stop_session(evse_id, reason="UnlockCommand")
            return {"status": "Unlocked"}, None
        if ev is None or p["connectorId"] != 1:
            return {"status": "UnknownConnector"}, None
        if ev.tx is not None:
            return {"status": "OngoingAuthorizedTransaction"}, None
        return {"status": "Unlocked"}, None

    def _h_availability(self, p: dict[str, Any]) -> tuple[dict[str, Any], Awaitable[Any] | None]:
        if self.is16:
            target, operative = p["connectorId"], p["type"] == "Operative"
        else:
            evse = p.get("evse") or {}
            target, operative = evse.get("id", 0), p["operationalStatus"] == "Operative"
            if evse.get("connectorId") not in (None, 1):
                return {"status": "Rejected"}, None
        if target and target not in self.evses:
            return {"status": "Rejected"}, None
        affected = [self.evses[target]] if target else list(self.evses.values())
        scheduled = False
        changed = []
        for ev in affected:
            if ev.tx is not None and not operative:
                ev.pending_operative = operative
                scheduled = True
            elif ev.operative != operative:
                ev.operative = operative
                ev.pending_operative = None
                changed.append(ev.id)
        if not target and not self.is16:
            key = ("chargingstation", "", None, "availabilitystate", "")
            self.variables[key].value = "Available" if operative else "Unavailable"

        async def report() -> None:
            if self.is16 and not target:
                await self.status(0, "Available" if operative else "Unavailable")
            for evse_id in changed:
                await self.status(evse_id, self.current_status(self.evses[evse_id]))

        return {"status": "Scheduled" if scheduled else "Accepted"}, report() if changed or (
            self.is16 and not target) else None

    def _h_trigger(self, p: dict[str, Any]) -> tuple[dict[str, Any], Awaitable[Any] | None]:
        what = p["requestedMessage"]
        if self.is16:
            evse_id = p.get("connectorId")
        else:
            evse_id = (p.get("evse") or {}).get("id")
        if evse_id and evse_id not in self.evses:
            return {"status": "Rejected"}, None
        targets = [evse_id] if evse_id else list(self.evses)
        if what == "BootNotification":
            return {"status": "Accepted"}, self._send_boot("Triggered")
        if what == "Heartbeat":
            return {"status": "Accepted"}, self.heartbeat()
        if what == "StatusNotification":
            if self.is16 and evse_id is None:
                return {"status": "Accepted"}, self.announce()

            async def statuses() -> None:
                for i in targets:
                    await self.status(i, self.current_status(self.evses[i]))

            return {"status": "Accepted"}, statuses()
        if what == "MeterValues":
            async def meters() -> None:
                for i in targets:
                    await self.meter_values(i, context="Trigger", message="MeterValues")

            return {"status": "Accepted"}, meters()
        if what == "TransactionEvent" and not self.is16:
            busy = [i for i in targets if self.evses[i].tx is not None]
            if not busy:
                return {"status": "Rejected"}, None

            async def tx_events() -> None:
                for i in busy:
                    ev = self.evses[i]
                    self._advance(ev)
                    if ev.tx is not None:
                        await self._tx_event("Updated", ev.tx, "Trigger", charging_state="Charging",
                                             meter=[{"timestamp": now_ts(),
                                                     "sampledValue": self._sampled(ev, "Trigger")}])

            return {"status": "Accepted"}, tx_events()
        if what == "FirmwareStatusNotification":
            payload: dict[str, Any] = {"status": self.firmware_status}
            if not self.is16 and self.firmware_status != "Idle" and self.last_request_id is not None:
                payload["requestId"] = self.last_request_id
            return {"status": "Accepted"}, self.call("FirmwareStatusNotification", payload)
        if what == "DiagnosticsStatusNotification" and self.is16:
            return {"status": "Accepted"}, self.call("DiagnosticsStatusNotification",
                                                     {"status": self.diagnostics_status})
        if what == "LogStatusNotification" and not self.is16:
            payload = {"status": self.log_status}
            if self.log_status != "Idle" and self.last_request_id is not None:
                payload["requestId"] = self.last_request_id
            return {"status": "Accepted"}, self.call("LogStatusNotification", payload)
        return {"status": "NotImplemented"}, None

    def _h_set_profile(self, p: dict[str, Any]) -> tuple[dict[str, Any], Awaitable[Any] | None]:
        if self.is16:
            evse_key, profile = p["connectorId"], p["csChargingProfiles"]
        else:
            evse_key, profile = p["evseId"], p["chargingProfile"]
        status = self._install_profile(evse_key, profile)
        if status == "Accepted":
            self._event(f"charging profile {_profile_id(profile)} ({profile['chargingProfilePurpose']}) on "
                        f"{'station' if evse_key == 0 else f'EVSE {evse_key}'}: limit now "
                        f"{_fmt_limit(self.limit_a(evse_key or 1))}")
        return {"status": status}, None

    def _h_clear_profile(self, p: dict[str, Any]) -> tuple[dict[str, Any], Awaitable[Any] | None]:
        if self.is16:
            removed = self._clear_profiles(p.get("id"), p.get("connectorId"), p.get("chargingProfilePurpose"),
                                           p.get("stackLevel"))
        else:
            crit = p.get("chargingProfileCriteria") or {}
            removed = self._clear_profiles(p.get("chargingProfileId"), crit.get("evseId"),
                                           crit.get("chargingProfilePurpose"), crit.get("stackLevel"))
        return {"status": "Accepted" if removed else "Unknown"}, None

    def _h_composite(self, p: dict[str, Any]) -> tuple[dict[str, Any], Awaitable[Any] | None]:
        evse_id = p["connectorId"] if self.is16 else p["evseId"]
        if evse_id and evse_id not in self.evses:
            return {"status": "Rejected"}, None
        unit = p.get("chargingRateUnit") or "A"
        start, periods = self.composite_schedule(evse_id, p["duration"], unit)
        if self.is16:
            return {"status": "Accepted", "connectorId": evse_id, "scheduleStart": ocpp_ts(start),
                    "chargingSchedule": {"duration": p["duration"], "startSchedule": ocpp_ts(start),
                                         "chargingRateUnit": unit, "chargingSchedulePeriod": periods}}, None
        return {"status": "Accepted", "schedule": {"evseId": evse_id, "duration": p["duration"],
                                                   "scheduleStart": ocpp_ts(start), "chargingRateUnit": unit,
                                                   "chargingSchedulePeriod": periods}}, None

    def _h_update_firmware(self, p: dict[str, Any]) -> tuple[dict[str, Any], Awaitable[Any] | None]:
        request_id = None if self.is16 else p["requestId"]
        location = p["location"] if self.is16 else p["firmware"]["location"]
        self.last_request_id = request_id
        result: dict[str, Any] = {} if self.is16 else {"status": "Accepted"}
        return result, self._firmware_steps(request_id, location)

    async def _firmware_steps(self, request_id: int | None, location: str) -> None:
        for status in ("Downloading", "Downloaded", "Installing", "Installed"):
            await asyncio.sleep(self.step_delay)
            self.firmware_status = status
            payload: dict[str, Any] = {"status": status}
            if request_id is not None:
                payload["requestId"] = request_id
            await self.call("FirmwareStatusNotification", payload)
        self.firmware = (location.rstrip("/").rsplit("/", 1)[-1] or self.firmware)[:50]

    def _h_get_diagnostics(self, p: dict[str, Any]) -> tuple[dict[str, Any], Awaitable[Any] | None]:
        name = f"diagnostics-{self.station_id}-{int(time.time())}.log"[:255]

        async def steps() -> None:
            for status in ("Uploading", "Uploaded"):
                await asyncio.sleep(self.step_delay)
                self.diagnostics_status = status
                await self.call("DiagnosticsStatusNotification", {"status": status})

        return {"fileName": name}, steps()

    def _h_get_log(self, p: dict[str, Any]) -> tuple[dict[str, Any], Awaitable[Any] | None]:
        request_id = p["requestId"]
        self.last_request_id = request_id
        name = f"{p['logType'].lower()}-{self.station_id}-{int(time.time())}.log"[:255]

        async def steps() -> None:
            for status in ("Uploading", "Uploaded"):
                await asyncio.sleep(self.step_delay)
                self.log_status = status
                await self.call("LogStatusNotification", {"status": status, "requestId": request_id})

        return {"status": "Accepted", "filename": name}, steps()

    def _h_data_transfer(self, p: dict[str, Any]) -> tuple[dict[str, Any], Awaitable[Any] | None]:
        result: dict[str, Any] = {"status": "Accepted"}
        if p.get("data") is not None:
            result["data"] = p["data"]
        return result, None

    def _h_reserve(self, p: dict[str, Any]) -> tuple[dict[str, Any], Awaitable[Any] | None]:
        if self.is16:
            evse_id, res_id, token, expiry = p["connectorId"], p["reservationId"], p["idTag"], p["expiryDate"]
        else:
            evse_id, res_id, token, expiry = p.get("evseId"), p["id"], p["idToken"]["idToken"], p["expiryDateTime"]
        if evse_id:
            ev = self.evses.get(evse_id)
            if ev is None:
                return {"status": "Rejected"}, None
        else:
            ev = self._free_evse()
            if ev is None:
                return {"status": "Occupied"}, None
        if not ev.operative:
            return {"status": "Unavailable"}, None
        if ev.status == "Faulted":
            return {"status": "Faulted"}, None
        if ev.tx is not None or (ev.reservation is not None and ev.reservation["id"] != res_id):
            return {"status": "Occupied"}, None
        expiry_at = parse_ts(expiry) or datetime.now(timezone.utc)
        self._reserve(ev, res_id, token, expiry_at)
        return {"status": "Accepted"}, self.status(ev.id, "Reserved")

    def _h_cancel_reservation(self, p: dict[str, Any]) -> tuple[dict[str, Any], Awaitable[Any] | None]:
        for ev in self.evses.values():
            if ev.reservation is not None and ev.reservation["id"] == p["reservationId"]:
                self._clear_reservation(ev)
                return {"status": "Accepted"}, self.status(ev.id, self.current_status(ev))
        return {"status": "Rejected"}, None

    # 1.6 configuration

    def _h_get_configuration(self, p: dict[str, Any]) -> tuple[dict[str, Any], Awaitable[Any] | None]:
        keys = p.get("key") or list(self.config)
        known, unknown = [], []
        by_lower = {k.lower(): k for k in self.config}
        for k in keys:
            name = by_lower.get(k.lower())
            if name is None:
                unknown.append(k)
            else:
                value, readonly = self.config[name]
                known.append({"key": name, "readonly": readonly, "value": value})
        result: dict[str, Any] = {"configurationKey": known}
        if unknown:
            result["unknownKey"] = unknown
        return result, None

    def _h_change_configuration(self, p: dict[str, Any]) -> tuple[dict[str, Any], Awaitable[Any] | None]:
        by_lower = {k.lower(): k for k in self.config}
        name = by_lower.get(p["key"].lower())
        if name is None:
            return {"status": "NotSupported"}, None
        value, readonly = self.config[name]
        if readonly:
            return {"status": "Rejected"}, None
        new = p["value"]
        if value.lstrip("-").isdigit() and not new.strip().lstrip("-").isdigit():
            return {"status": "Rejected"}, None
        if value in ("true", "false") and new.lower() not in ("true", "false"):
            return {"status": "Rejected"}, None
        self.config[name][0] = new.lower() if value in ("true", "false") else new.strip()
        self._apply_setting(name.lower(), self.config[name][0])
        return {"status": "Accepted"}, None

    def _apply_setting(self, name: str, value: str) -> None:
        if name == "heartbeatinterval":
            self.heartbeat_interval = int(value)
            if self._heartbeat_task is not None:
                self._heartbeat_task.cancel()
                self._heartbeat_task = None
                self._start_heartbeat()
        elif name in ("metervaluesampleinterval", "txupdatedinterval"):
            self.meter_interval = float(value)
            for ev in self.evses.values():
                if ev.tx is not None:
                    self._stop_meter_loop(ev.id)
                    self._start_meter_loop(ev.id)
        elif name in ("stoptransactiononinvalidid", "stoptxoninvalidid"):
            self.stop_on_invalid = value == "true"

    # 2.0.1 device model

    def _lookup(self, component: dict[str, Any], variable: dict[str, Any]) -> tuple[Var | None, str | None]:
        """(variable, None) or (None, "UnknownComponent" / "UnknownVariable")."""
        evse = (component.get("evse") or {}).get("id")
        cname, cinst = _norm(component["name"]), _norm(component.get("instance"))
        key = (cname, cinst, evse, _norm(variable["name"]), _norm(variable.get("instance")))
        var = self.variables.get(key)
        if var is not None:
            return var, None
        if not any(k[0] == cname and k[1] == cinst and k[2] == evse for k in self.variables):
            return None, "UnknownComponent"
        return None, "UnknownVariable"

    def _h_get_variables(self, p: dict[str, Any]) -> tuple[dict[str, Any], Awaitable[Any] | None]:
        results = []
        for item in p["getVariableData"]:
            out: dict[str, Any] = {"component": item["component"], "variable": item["variable"]}
            if "attributeType" in item:
                out["attributeType"] = item["attributeType"]
            var, problem = self._lookup(item["component"], item["variable"])
            if var is None:
                out["attributeStatus"] = problem
            elif item.get("attributeType", "Actual") != "Actual":
                out["attributeStatus"] = "NotSupportedAttributeType"
            elif var.mutability == "WriteOnly":
                out["attributeStatus"] = "Rejected"
            else:
                out["attributeStatus"] = "Accepted"
                out["attributeValue"] = var.value
            results.append(out)
        return {"getVariableResult": results}, None

    def _h_set_variables(self, p: dict[str, Any]) -> tuple[dict[str, Any], Awaitable[Any] | None]:
        results = []
        for item in p["setVariableData"]:
            out: dict[str, Any] = {"component": item["component"], "variable": item["variable"]}
            if "attributeType" in item:
                out["attributeType"] = item["attributeType"]
            var, problem = self._lookup(item["component"], item["variable"])
            value = item["attributeValue"]
            if var is None:
                out["attributeStatus"] = problem
            elif item.get("attributeType", "Actual") != "Actual":
                out["attributeStatus"] = "NotSupportedAttributeType"
            elif var.mutability == "ReadOnly" or not _fits(var.data_type, value):
                out["attributeStatus"] = "Rejected"
            else:
                var.value = value.lower() if var.data_type == "boolean" else value
                out["attributeStatus"] = "Accepted"
                self._apply_setting(_norm(item["variable"]["name"]), var.value)
            results.append(out)
        return {"setVariableResult": results}, None

    def _h_get_base_report(self, p: dict[str, Any]) -> tuple[dict[str, Any], Awaitable[Any] | None]:
        base = p["reportBase"]
        items = []
        for (cname, cinst, evse, vname, vinst), var in self.variables.items():
            if base == "ConfigurationInventory" and var.mutability == "ReadOnly":
                continue
            if base == "SummaryInventory" and vname not in ("availabilitystate", "available"):
                continue
            items.append(self._report_entry(cname, cinst, evse, vname, vinst, var))
        return {"status": "Accepted"}, self._notify_report(p["requestId"], items)

    def _report_entry(self, cname: str, cinst: str, evse: int | None, vname: str, vinst: str,
                      var: Var) -> dict[str, Any]:
        component: dict[str, Any] = {"name": _CANONICAL.get(cname, cname)}
        if cinst:
            component["instance"] = cinst
        if evse is not None:
            component["evse"] = {"id": evse}
        variable: dict[str, Any] = {"name": _CANONICAL.get(vname, vname)}
        if vinst:
            variable["instance"] = _CANONICAL.get(vinst, vinst)
        characteristics: dict[str, Any] = {"dataType": var.data_type, "supportsMonitoring": False}
        if var.unit:
            characteristics["unit"] = var.unit
        return {"component": component, "variable": variable,
                "variableAttribute": [{"type": "Actual", "value": var.value, "mutability": var.mutability}],
                "variableCharacteristics": characteristics}

    async def _notify_report(self, request_id: int, items: list[dict[str, Any]], per_message: int = 50) -> None:
        await asyncio.sleep(self.step_delay)
        chunks = [items[i:i + per_message] for i in range(0, len(items), per_message)] or [[]]
        for seq, chunk in enumerate(chunks):
            payload: dict[str, Any] = {"requestId": request_id, "generatedAt": now_ts(), "seqNo": seq,
                                       "tbc": seq < len(chunks) - 1}
            if chunk:
                payload["reportData"] = chunk
            await self.call("NotifyReport", payload)


_ts_second = -1
_ts_prefix = ""


def now_ts() -> str:
    """The current time as ``YYYY-MM-DDTHH:MM:SS.mmmZ``, cheaply (the date part is cached per second)."""
    global _ts_second, _ts_prefix
    now = time.time()
    second = int(now)
    if second != _ts_second:
        _ts_second, _ts_prefix = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return f"{_ts_prefix}.{int((now - second) * 1000):03d}Z"


def _expire(fut: asyncio.Future[Any], action: str) -> None:
    if not fut.done():
        fut.set_exception(asyncio.TimeoutError(f"no answer to {action}"))


def _profile_id(profile: dict[str, Any]) -> int:
    return profile.get("chargingProfileId", profile.get("id"))  # type: ignore[return-value]


def _fmt_limit(amps: float | None) -> str:
    return "none" if amps is None else f"{amps:.1f} A"


def _fits(data_type: str, value: str) -> bool:
    try:
        if data_type == "integer":
            int(value)
        elif data_type == "decimal":
            float(value)
        elif data_type == "boolean":
            return value.lower() in ("true", "false")
    except ValueError:
        return False
    return True


# Device-model names in their canonical spelling (keys are stored lower-case).
_CANONICAL = {n.lower(): n for n in (
    "ChargingStation", "Model", "VendorName", "AvailabilityState", "Available", "SupplyPhases", "OCPPCommCtrlr",
    "HeartbeatInterval", "MessageTimeout", "Default", "ResetRetries", "WebSocketPingInterval", "SampledDataCtrlr",
    "TxUpdatedInterval", "TxUpdatedMeasurands", "TxEndedMeasurands", "TxStartedMeasurands", "AlignedDataCtrlr",
    "Interval", "Measurands", "AuthCtrlr", "AuthorizeRemoteStart", "LocalAuthorizeOffline", "LocalPreAuthorize",
    "AuthCacheCtrlr", "Enabled", "TxCtrlr", "EVConnectionTimeOut", "StopTxOnInvalidId", "TxStartPoint",
    "TxStopPoint", "SmartChargingCtrlr", "ProfileStackLevel", "PeriodsPerSchedule", "RateUnit", "Entries",
    "ChargingProfiles", "ReservationCtrlr", "SecurityCtrlr", "SecurityProfile", "Identity", "OrganizationName",
    "DeviceDataCtrlr", "ItemsPerMessage", "GetReport", "GetVariables", "SetVariables", "EVSE", "Power",
    "Connector", "ConnectorType",
)}


# -- csms simulate ----------------------------------------------------------------------------------


def station_versions(version: str, count: int) -> list[str]:
    """The version of each of ``count`` stations: one version, or alternating for ``mixed``."""
    if version == "mixed":
        return ["1.6" if i % 2 == 0 else "2.0.1" for i in range(count)]
    return [version] * count


@dataclass
class SimulationStats:
    connected: int = 0
    accepted: int = 0
    sessions_started: int = 0
    sessions_stopped: int = 0
    rejected_tokens: int = 0
    energy_wh: float = 0.0
    failures: int = 0


async def _run_station(st: SimStation, args: argparse.Namespace, stats: SimulationStats, index: int,
                       stop: asyncio.Event, gate: asyncio.Semaphore) -> None:
    rnd = random.Random(st.station_id)
    backoff = Backoff(getattr(args, "reconnect_min", 1.0), getattr(args, "reconnect_random", 2.0),
                      maximum=getattr(args, "reconnect_max", 60.0), rnd=random.Random(f"{st.station_id}-backoff"))
    while not stop.is_set():
        try:
            async with gate:  # handshakes are the expensive part for the CSMS: not all at once
                await st.connect()
            stats.connected += 1
            await st.boot()
            stats.accepted += 1
            await st.announce()
            backoff.reset()
            for ev in st.evses.values():  # a session that outlived the outage goes on
                if ev.tx is not None:
                    st._start_meter_loop(ev.id)
            if args.sessions:
                await _session_loop(st, args, stats, index, rnd, stop)
            else:
                await _first_of(st.wait_closed(), stop.wait())
        except (OSError, ConnectionError, ConnectionClosed, asyncio.TimeoutError, CallError) as exc:
            stats.failures += 1
            st._event(f"connection problem: {exc!r}")
        except Exception as exc:  # noqa: BLE001 -- report any failure of one station and carry on
            stats.failures += 1
            st._event(f"failed: {exc!r}")
        if stop.is_set():
            break
        if st.connected:
            await st.close()
        delay = backoff.next()
        st._event(f"reconnecting in {delay:.1f}s")
        if await _sleep_or_stop(stop, delay):
            break
    for ev in st.evses.values():
        if ev.tx is not None and st.connected:
            try:
                tx = await st.stop_session(ev.id, reason="Local")
                stats.sessions_stopped += 1
                stats.energy_wh += tx.energy_wh
            except (ConnectionError, CallError, asyncio.TimeoutError, ConnectionClosed):
                pass
    await st.close()


async def _first_of(*aws: Awaitable[Any]) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()


async def _session_loop(st: SimStation, args: argparse.Namespace, stats: SimulationStats, index: int,
                        rnd: random.Random, stop: asyncio.Event) -> None:
    evse_id = 1
    while not stop.is_set() and st.connected:
        if await _sleep_or_stop(stop, rnd.uniform(1, args.idle_time)):
            return
        ev = st.evses[evse_id]
        if ev.tx is None and ev.operative:
            token = args.id_token.format(i=index, station=st.station_id, evse=evse_id) if args.id_token else \
                f"{st.station_id}"[:20]
            try:
                await st.start_session(evse_id, token, token_type=args.token_type)
                stats.sessions_started += 1
            except SessionRejected:
                stats.rejected_tokens += 1
                continue
            if await _sleep_or_stop(stop, rnd.uniform(0.5, 1.5) * args.session_length):
                return
            if ev.tx is not None:
                tx = await st.stop_session(evse_id, reason="EVDisconnected" if rnd.random() < 0.3 else "Local")
                stats.sessions_stopped += 1
                stats.energy_wh += tx.energy_wh
        evse_id = evse_id % len(st.evses) + 1


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
        return True
    except asyncio.TimeoutError:
        return False


async def simulate(args: argparse.Namespace) -> SimulationStats:
    """Run ``args.stations`` simulated stations until ``args.duration`` elapses or Ctrl-C."""
    raise_fd_limit()
    stats = SimulationStats()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    quiet = args.quiet

    def show(st: SimStation, text: str) -> None:
        if not quiet:
            print(f"{time.strftime('%H:%M:%S')} {st.station_id} [{st.version}] {text}", flush=True)

    versions = station_versions(args.version, args.stations)
    stations = [SimStation(f"{args.prefix}{i:05d}", args.url, versions[i - 1], password=args.password,
                           evses=args.evses, meter_interval=args.meter_interval, on_event=show,
                           step_delay=1.0)
                for i in range(1, args.stations + 1)]
    gate = asyncio.Semaphore(max(1, args.connect_concurrency))
    tasks = [asyncio.ensure_future(_run_station(st, args, stats, i, stop, gate)) for i, st in enumerate(stations, 1)]
    started = time.monotonic()
    if args.duration:
        loop.call_later(args.duration, stop.set)
    await stop.wait()
    await asyncio.gather(*tasks, return_exceptions=True)
    elapsed = time.monotonic() - started
    calls = sum(st.calls_sent for st in stations)
    answered = sum(len(st.received_calls) for st in stations)
    print(f"\nsimulated {args.stations} stations for {elapsed:.0f}s: {stats.accepted} boots accepted, "
          f"{stats.sessions_started} sessions started, {stats.sessions_stopped} stopped "
          f"({stats.energy_wh / 1000:.2f} kWh), {stats.rejected_tokens} tokens not accepted, "
          f"{calls} calls sent, {answered} CSMS calls answered, {stats.failures} connection failures")
    if stats.rejected_tokens and not args.id_token:
        print("hint: each station presents its own id as token; create them (POST /api/v1/tokens) or pass "
              "--id-token with a known token ('{i}', '{station}' and '{evse}' are filled in)")
    return stats


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to its hard limit; returns the new soft limit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def install_uvloop() -> bool:
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def cmd_simulate(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_uvloop()
    try:
        asyncio.run(simulate(args))
    except KeyboardInterrupt:
        sys.exit(130)


def add_simulate_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "simulate", help="run simulated charging stations against a CSMS",
        description="Run N simulated stations (OCPP 1.6J, 2.0.1 or 2.1; mixed: 1.6 and 2.0.1) that boot, report status, heartbeat and, "
                    "with --sessions, charge with meter values; they answer the CSMS's commands.")
    p.add_argument("--url", default="ws://127.0.0.1:8180/ocpp", help="OCPP base URL (the station id is appended)")
    p.add_argument("--stations", type=int, default=1, help="number of stations")
    p.add_argument("--version", choices=["1.6", "2.0.1", "2.1", "mixed"], default="2.0.1")
    p.add_argument("--password", help="HTTP Basic password of every station")
    p.add_argument("--sessions", action="store_true", help="run charging sessions continuously")
    p.add_argument("--meter-interval", type=float, default=10.0, help="seconds between meter values in a session")
    p.add_argument("--session-length", type=float, default=120.0, help="mean session length (s)")
    p.add_argument("--idle-time", type=float, default=20.0, help="longest pause between sessions (s)")
    p.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: until Ctrl-C)")
    p.add_argument("--id-token", help="token presented to start sessions; '{i}', '{station}', '{evse}' are "
                                      "filled in (default: the station id)")
    p.add_argument("--token-type", default="ISO14443", help="2.0.1 IdToken type (NoAuthorization: no lookup)")
    p.add_argument("--prefix", default="SIM", help="station ids are PREFIX00001, PREFIX00002, ...")
    p.add_argument("--evses", type=int, default=2, help="EVSEs (connectors) per station")
    p.add_argument("--connect-concurrency", type=int, default=50, help="handshakes in flight at once")
    p.add_argument("--reconnect-min", type=float, default=1.0,
                   help="after a lost connection, wait at least this long (s) before reconnecting; doubled after "
                        "each failed attempt (OCPP 2.0.1 RetryBackOffWaitMinimum)")
    p.add_argument("--reconnect-random", type=float, default=2.0,
                   help="plus a random 0..this many seconds (RetryBackOffRandomRange), so that stations come back "
                        "spread out")
    p.add_argument("--reconnect-max", type=float, default=60.0, help="longest wait between attempts (s)")
    p.add_argument("--quiet", action="store_true", help="print only the summary")
    p.set_defaults(func=cmd_simulate)
