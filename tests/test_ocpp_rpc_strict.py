"""An independent, strict OCPP peer in CI: stations built on the npm package ``ocpp-rpc`` in strict
mode (``tests/node/strict_station.mjs``) talk to a real CSMS.

ocpp-rpc validates every frame the CSMS sends (its answers and its own calls) against the official
OCPP 1.6 / 2.0.1 / 2.1 schemas it ships, independently of the Python ``ocpp`` library the server uses;
the script adds the OCPP-J framing rules (CALLERROR shape and codes, unique ids, one outstanding
CALL) and exits non-zero on any violation. Each test runs the station as a subprocess, follows the
JSON lines it prints, drives server-initiated commands through the REST API while it lingers,
and checks both sides: the HTTP answer carries exactly what the station answered, and what the
station reported is what the CSMS stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import shutil
import subprocess
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import pytest

NODE_DIR = Path(__file__).parent / "node"
SCRIPT = NODE_DIR / "strict_station.mjs"
VENDOR = "org.csms.strict"  # the DataTransfer vendor id the station knows

PROTOCOLS = ["ocpp1.6", "ocpp2.0.1"]
# OCPP 2.1 (a superset of 2.0.1): the walk with every REST command, and the broken frames.
WITH_21 = [*PROTOCOLS, "ocpp2.1"]
SIDS = {"ocpp1.6": "16", "ocpp2.0.1": "201", "ocpp2.1": "21"}


# ---------------------------------------------------------------------------------------------
# node and ocpp-rpc, installed once per test session


def _pinned_version() -> str:
    return json.loads((NODE_DIR / "package.json").read_text())["dependencies"]["ocpp-rpc"]


def _installed_version() -> str | None:
    pkg = NODE_DIR / "node_modules" / "ocpp-rpc" / "package.json"
    if not pkg.exists():
        return None
    return json.loads(pkg.read_text()).get("version")


@pytest.fixture(scope="session")
def node_station() -> list[str]:
    """The command that runs the strict station; ``npm ci`` first when ocpp-rpc is missing."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("node and npm are needed for the ocpp-rpc strict-peer tests (CI installs Node 20)")
    # One installer at a time (pytest-xdist workers share the directory).
    lock_path = Path(tempfile.gettempdir()) / f"csms-ocpp-rpc-{hashlib.sha1(str(NODE_DIR).encode()).hexdigest()[:12]}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed_version() != _pinned_version():
            has_lock = (NODE_DIR / "package-lock.json").exists()
            cmd = [npm, "ci" if has_lock else "install", "--no-audit", "--no-fund", "--loglevel=error"]
            done = subprocess.run(cmd, cwd=NODE_DIR, capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                pytest.fail(f"{' '.join(cmd)} failed in {NODE_DIR}:\n{done.stdout}\n{done.stderr}")
        if _installed_version() != _pinned_version():
            pytest.fail(f"ocpp-rpc {_pinned_version()} is pinned but {_installed_version()} is installed")
    return [node, str(SCRIPT)]


# ---------------------------------------------------------------------------------------------
# the station process


class StrictStation:
    """A running ``strict_station.mjs`` and the events it printed so far."""

    def __init__(self, proc: asyncio.subprocess.Process, argv: list[str]) -> None:
        self.proc = proc
        self.argv = argv
        self.events: list[dict[str, Any]] = []
        self.noise: list[str] = []  # stdout lines that are not JSON (must stay empty)
        self.stderr = b""
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read_stdout())
        self._err_reader = asyncio.create_task(self._read_stderr())

    @classmethod
    async def start(cls, cmd: list[str], server: Any, station_id: str, protocol: str, *, token: str | None = None,
                    linger: float = 0, password: str | None = None, extra: list[str] | None = None,
                    ) -> StrictStation:
        argv = [*cmd, "--url", f"ws://127.0.0.1:{server.port}/ocpp", "--id", station_id, "--protocol", protocol]
        if token:
            argv += ["--token", token]
        if linger:
            argv += ["--linger", str(linger)]
        if password:
            argv += ["--password", password]
        argv += extra or []
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=NODE_DIR, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, limit=16 * 1024 * 1024)
        return cls(proc, argv)

    async def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            text = line.decode().strip()
            if not text:
                continue
            try:
                self.events.append(json.loads(text))
            except ValueError:
                self.noise.append(text)
            self._changed.set()
        self._changed.set()

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        self.stderr = await self.proc.stderr.read()

    def mark(self) -> int:
        return len(self.events)

    def find(self, pred: Callable[[dict[str, Any]], bool], since: int = 0) -> dict[str, Any] | None:
        return next((e for e in self.events[since:] if pred(e)), None)

    def find_all(self, pred: Callable[[dict[str, Any]], bool], since: int = 0) -> list[dict[str, Any]]:
        return [e for e in self.events[since:] if pred(e)]

    async def wait_for(self, pred: Callable[[dict[str, Any]], bool], *, since: int = 0, timeout: float = 20,
                       what: str = "") -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = self.find(pred, since)
            if found is not None:
                return found
            if self.errors:
                pytest.fail(f"the strict station reported violations while waiting for {what or pred}:\n"
                            + self.report())
            if self._reader.done():
                pytest.fail(f"the strict station exited before {what or pred}:\n" + self.report())
            remaining = deadline - loop.time()
            if remaining <= 0:
                pytest.fail(f"timed out waiting for {what or pred}:\n" + self.report())
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def wait_event(self, name: str, *, since: int = 0, timeout: float = 20, **fields: Any) -> dict[str, Any]:
        return await self.wait_for(lambda e: e.get("event") == name and all(e.get(k) == v for k, v in fields.items()),
                                   since=since, timeout=timeout, what=f"{name} {fields or ''}")

    async def reply_to(self, action: str, since: int, timeout: float = 10) -> dict[str, Any]:
        """The station's answer to the CSMS's ``action`` call made after ``since``."""
        return await self.wait_event("reply", action=action, since=since, timeout=timeout)

    async def call(self, action: str, params: dict[str, Any], timeout: float = 20) -> dict[str, Any]:
        """Send ``action`` while lingering; the CSMS's answer (ocpp-rpc checked it against the
        official schema: a CALLRESULT that fails is an ``answer_error``, and fails here)."""
        assert self.proc.stdin is not None
        mark = self.mark()
        self.proc.stdin.write(f"call {json.dumps({'action': action, 'params': params})}\n".encode())
        await self.proc.stdin.drain()
        event = await self.wait_for(lambda e: e.get("event") in ("answer", "answer_error") and e.get("action") == action,
                                    since=mark, timeout=timeout)
        assert event["event"] == "answer", self.report()
        return event["payload"]

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == "error"]

    async def quit(self, timeout: float = 30) -> int:
        """End the linger (open transactions are stopped first) and wait for the exit code."""
        if self.proc.returncode is None and self.proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.proc.stdin.write(b"quit\n")
                await self.proc.stdin.drain()
        return await self.wait_exit(timeout)

    async def wait_exit(self, timeout: float = 30) -> int:
        try:
            rc = await asyncio.wait_for(self.proc.wait(), timeout)
        except asyncio.TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            pytest.fail(f"the strict station did not exit within {timeout} s:\n" + self.report())
        await asyncio.gather(self._reader, self._err_reader)
        return rc

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        for task in (self._reader, self._err_reader):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 5)

    def report(self, last: int = 60) -> str:
        lines = [f"$ {' '.join(self.argv)}", f"returncode: {self.proc.returncode}"]
        if self.errors:
            lines.append("violations:")
            lines += ["  " + json.dumps(e)[:3000] for e in self.errors]
        lines.append(f"last {last} events:")
        lines += ["  " + json.dumps(e)[:600] for e in self.events[-last:]]
        if self.noise:
            lines.append("non-JSON stdout: " + "\n".join(self.noise[-20:]))
        if self.stderr:
            lines.append("stderr: " + self.stderr.decode(errors="replace")[-4000:])
        return "\n".join(lines)

    def assert_clean_exit(self, rc: int) -> None:
        assert rc == 0 and not self.errors and not self.noise, self.report()
        assert self.find(lambda e: e.get("event") == "exit" and e.get("code") == 0), self.report()


@contextlib.asynccontextmanager
async def strict_station(cmd: list[str], server: Any, station_id: str, protocol: str, **kw: Any):
    station = await StrictStation.start(cmd, server, station_id, protocol, **kw)
    try:
        yield station
    finally:
        await station.kill()


# ---------------------------------------------------------------------------------------------
# helpers on the REST side


async def create_token(server: Any, id_token: str) -> None:
    r = await server.api.post("/tokens", json={"id_token": id_token, "type": "ISO14443"})
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "Accepted"


async def sessions_of(server: Any, station_id: str) -> list[dict[str, Any]]:
    r = await server.api.get("/sessions", params={"station": station_id})
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def eventually(check: Callable[[], Any], timeout: float = 10, interval: float = 0.1, *,
                     what: str = "", context: Callable[[], Any] | None = None) -> Any:
    """Await ``check()`` until it returns a truthy value (it may be sync or async)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            extra = context() if context else ""
            if asyncio.iscoroutine(extra):
                extra = await extra
            raise AssertionError(f"{what or check} not met within {timeout} s\n{extra}")
        await asyncio.sleep(interval)


# Calls the CSMS makes by itself at any moment (the local authorization list kept in step).
AUTOMATIC_CALLS = {"GetLocalListVersion", "SendLocalList"}


class Commands:
    """Send a command over REST, check the HTTP answer against what the station answered."""

    def __init__(self, server: Any, station: StrictStation, station_id: str) -> None:
        self.server, self.station, self.station_id = server, station, station_id

    async def send(self, method: str, path: str, body: Any = None, *, action: str,
                   status: str | None = None, http: int = 201, asked_first: bool = False) -> dict[str, Any]:
        """``asked_first``: the CSMS first asks the station's per-message limit with a call of the
        same action (configuration read by name); the answer compared is the next one."""
        mark = self.station.mark()
        url = f"/stations/{self.station_id}{path}"
        r = await self.server.api.request(method, url, json=body)
        assert r.status_code == http, f"{method} {url} {body} -> {r.status_code} {r.text}\n" + self.station.report()
        data = r.json()
        reply = await self.station.reply_to(action, since=mark)
        if asked_first:
            assert reply["payload"] != data["response"], reply
            reply = await self.station.reply_to(action, since=self.station.events.index(reply) + 1)
        assert data["response"] == reply["payload"], (data, reply)
        if status is not None:
            got = data.get("status", data["response"].get("status"))
            assert got == status, (data, reply)
        return data

    async def raw(self, action: str, payload: dict[str, Any], *, status: str | None = None) -> dict[str, Any]:
        data = await self.send("POST", f"/ocpp/{action}", payload, action=action)
        assert data["action"] == action
        if status is not None:
            assert data["response"]["status"] == status, data
        return data

    async def refused(self, method: str, path: str, body: Any, *, http: int = 400) -> dict[str, Any]:
        """A request the CSMS must refuse before anything reaches the station."""
        mark = self.station.mark()
        url = f"/stations/{self.station_id}{path}"
        r = await self.server.api.request(method, url, json=body)
        assert r.status_code == http, f"{method} {url} {body} -> {r.status_code} {r.text}"
        await asyncio.sleep(0.3)
        assert self.station.find(lambda e: e.get("event") == "call" and e["action"] not in AUTOMATIC_CALLS,
                                 since=mark) is None, \
            "the CSMS sent a call it should have refused:\n" + self.station.report()
        return r.json()


# ---------------------------------------------------------------------------------------------
# version-specific payloads


def tx_default_profile(v16: bool, profile_id: int, limit: float) -> dict[str, Any]:
    schedule = {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}]}
    if v16:
        return {"connectorId": 1, "csChargingProfiles": {
            "chargingProfileId": profile_id, "stackLevel": 1, "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Absolute", "chargingSchedule": schedule}}
    return {"evseId": 1, "chargingProfile": {
        "id": profile_id, "stackLevel": 1, "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute", "chargingSchedule": [{"id": 1, **schedule}]}}


def composite_request(v16: bool) -> dict[str, Any]:
    return ({"connectorId": 1, "duration": 3600, "chargingRateUnit": "A"} if v16
            else {"evseId": 1, "duration": 3600, "chargingRateUnit": "A"})


def composite_limit(v16: bool, response: dict[str, Any]) -> float:
    if v16:
        return response["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"]
    return response["schedule"]["chargingSchedulePeriod"][0]["limit"]


def clear_profile(v16: bool, profile_id: int) -> dict[str, Any]:
    return {"id": profile_id} if v16 else {"chargingProfileId": profile_id}


# ---------------------------------------------------------------------------------------------
# the tests


@pytest.mark.parametrize("protocol", WITH_21)
async def test_strict_station_walk_and_commands(server, node_station, protocol):
    v16 = protocol == "ocpp1.6"
    sid = f"STRICT{SIDS[protocol]}"
    tag, remote_tag = f"{sid}-TAG", f"{sid}-RMT"  # 1.6 idTags are at most 20 characters
    for t in (tag, remote_tag):
        await create_token(server, t)

    async with strict_station(node_station, server, sid, protocol, token=tag, linger=180) as st:
        # -- the scripted walk: boot, status, authorize, start, meter values, stop ------------
        await st.wait_event("lingering", timeout=60)
        walk = await st.wait_event("tx_stopped", reason="Local")
        assert walk["energyWh"] > 0
        boot = st.find(lambda e: e.get("event") == "answer" and e["action"] == "BootNotification")
        assert boot["payload"]["status"] == "Accepted"
        rows = await sessions_of(server, sid)
        assert len(rows) == 1, rows
        s = rows[0]
        assert s["state"] == "completed", s
        assert s["id_token"] == tag
        assert str(s["transaction_id"]) == str(walk["transactionId"])
        assert s["meter_start_wh"] == walk["meterStart"], s
        assert s["meter_stop_wh"] == walk["meterStop"], s
        assert s["energy_wh"] == walk["energyWh"] > 0, s
        detail = (await server.api.get(f"/stations/{sid}")).json()
        assert detail["ocpp_version"] == protocol.removeprefix("ocpp")
        assert detail["vendor"] == "StrictVendor" and detail["model"] == "ocpp-rpc-strict"
        assert detail["online"] is True

        cmd = Commands(server, st, sid)

        # -- configuration ---------------------------------------------------------------------
        if v16:
            data = await cmd.send("POST", "/configuration/refresh", {}, action="GetConfiguration", status="Accepted")
            assert {k["key"] for k in data["response"]["configurationKey"]} >= {"HeartbeatInterval",
                                                                                  "NumberOfConnectors"}
            conf = (await server.api.get(f"/stations/{sid}/configuration")).json()
            stored = {k["key"]: k["value"] for k in conf["configuration_keys"]}
            assert stored.get("HeartbeatInterval") == "300", conf
            data = await cmd.send("POST", "/configuration/refresh", {"keys": ["HeartbeatInterval", "NoSuchKey"]},
                                  action="GetConfiguration", asked_first=True)  # GetConfigurationMaxKeys
            assert data["response"]["unknownKey"] == ["NoSuchKey"]
            await cmd.send("PUT", "/configuration", {"key": "HeartbeatInterval", "value": "120"},
                           action="ChangeConfiguration", status="Accepted", http=200)
            await cmd.send("PUT", "/configuration", {"key": "NumberOfConnectors", "value": "2"},
                           action="ChangeConfiguration", status="Rejected", http=200)
            await cmd.send("PUT", "/configuration", {"key": "NoSuchKey", "value": "1"},
                           action="ChangeConfiguration", status="NotSupported", http=200)
            conf = (await server.api.get(f"/stations/{sid}/configuration")).json()
            stored = {k["key"]: k["value"] for k in conf["configuration_keys"]}
            assert stored["HeartbeatInterval"] == "120", conf
            assert stored.get("NumberOfConnectors") == "1", conf
        else:
            mark = st.mark()
            await cmd.send("POST", "/configuration/refresh", {}, action="GetBaseReport", status="Accepted")
            report = await st.wait_event("report_sent", since=mark)

            async def stored_variables() -> dict[str, str]:
                conf = (await server.api.get(f"/stations/{sid}/configuration")).json()
                return {f"{v['component']}.{v['variable']}": v["value"] for v in conf["variables"]}

            variables = await eventually(lambda: _when(stored_variables(), lambda d: len(d) >= report["items"]))
            assert variables["OCPPCommCtrlr.HeartbeatInterval"] == "300", variables
            data = await cmd.send("POST", "/configuration/refresh",
                                  {"keys": ["OCPPCommCtrlr.HeartbeatInterval", "NoSuchCtrlr.Thing"]},
                                  action="GetVariables", status="Accepted", asked_first=True)  # ItemsPerMessage
            results = data["response"]["getVariableResult"]
            assert [r["attributeStatus"] for r in results] == ["Accepted", "UnknownComponent"], results
            await cmd.send("PUT", "/configuration", {"key": "OCPPCommCtrlr.HeartbeatInterval", "value": "120"},
                           action="SetVariables", status="Accepted", http=200)
            await cmd.send("PUT", "/configuration", {"key": "SecurityCtrlr.SecurityProfile", "value": "3"},
                           action="SetVariables", status="Rejected", http=200)
            await cmd.send("PUT", "/configuration", {"key": "NoSuchCtrlr.Thing", "value": "1"},
                           action="SetVariables", status="UnknownComponent", http=200)
            variables = await stored_variables()
            assert variables["OCPPCommCtrlr.HeartbeatInterval"] == "120", variables
            assert variables["SecurityCtrlr.SecurityProfile"] == "0", variables

        # -- remote trigger ----------------------------------------------------------------------
        for message, evse in (("Heartbeat", None), ("StatusNotification", 1), ("MeterValues", 1)):
            mark = st.mark()
            body = {"message": message, **({"evse_id": evse} if evse else {})}
            await cmd.send("POST", "/trigger", body, action="TriggerMessage", status="Accepted")
            await st.wait_event("triggered", message=message, since=mark)
        await cmd.refused("POST", "/trigger", {"message": "NoSuchMessage"})
        # a message of the other version is not valid for this station
        await cmd.refused("POST", "/trigger", {"message": "TransactionEvent" if v16 else "DiagnosticsStatusNotification"})

        # -- cache, unlock, availability ---------------------------------------------------------
        await cmd.send("POST", "/clear-cache", None, action="ClearCache", status="Accepted")
        await cmd.send("POST", "/unlock", {"evse_id": 1}, action="UnlockConnector", status="Unlocked")

        async def connector_status() -> str:
            d = (await server.api.get(f"/stations/{sid}")).json()
            return d["evses"][0]["connectors"][0]["status"]

        mark = st.mark()
        await cmd.send("POST", "/availability", {"operative": False, "evse_id": 1}, action="ChangeAvailability",
                       status="Accepted")
        await st.wait_event("status", operative=False, since=mark)
        await eventually(lambda: _when(connector_status(), lambda s: s == "Unavailable"))
        mark = st.mark()
        await cmd.send("POST", "/availability", {"operative": True, "evse_id": 1}, action="ChangeAvailability",
                       status="Accepted")
        await st.wait_event("status", operative=True, since=mark)
        await eventually(lambda: _when(connector_status(), lambda s: s == "Available"))

        # -- smart charging through the generic endpoint -------------------------------------------
        await cmd.raw("SetChargingProfile", tx_default_profile(v16, 71, 16.0), status="Accepted")
        data = await cmd.raw("GetCompositeSchedule", composite_request(v16), status="Accepted")
        assert composite_limit(v16, data["response"]) == 16.0, data
        await cmd.raw("ClearChargingProfile", clear_profile(v16, 71), status="Accepted")
        await cmd.raw("ClearChargingProfile", clear_profile(v16, 71), status="Unknown")
        data = await cmd.raw("GetCompositeSchedule", composite_request(v16), status="Accepted")
        assert composite_limit(v16, data["response"]) == 32.0, data

        # -- data transfer -------------------------------------------------------------------------
        payload = "ping" if v16 else {"ping": [1, 2, 3]}
        data = await cmd.raw("DataTransfer", {"vendorId": VENDOR, "messageId": "echo", "data": payload},
                             status="Accepted")
        assert data["response"]["data"] == payload
        await cmd.raw("DataTransfer", {"vendorId": "com.example.other"}, status="UnknownVendorId")

        # -- what the station does not implement comes back as its CALLERROR -------------------------
        mark = st.mark()
        cert = {"certificateType": "CentralSystemRootCertificate"} if v16 else {}
        r = await server.api.post(f"/stations/{sid}/ocpp/GetInstalledCertificateIds", json=cert)
        assert r.status_code == 502, r.text
        assert r.json()["extra"]["error"] == "NotImplemented", r.text
        await st.wait_for(lambda e: e.get("event") == "call" and e.get("unhandled"), since=mark)

        # -- payloads the CSMS must refuse before sending -----------------------------------------------
        await cmd.refused("POST", "/ocpp/Reset", {"type": "Sideways"})
        await cmd.refused("POST", "/ocpp/UnlockConnector", {})
        await cmd.refused("POST", "/ocpp/RequestStartTransaction" if v16 else "/ocpp/RemoteStartTransaction",
                          {"idTag": "X"})

        # -- many operators at once: the CSMS keeps one outstanding CALL per station ------------------
        # (the station flags a CALL that arrives while it still owes an answer)
        mark = st.mark()
        burst = await asyncio.gather(
            server.api.post(f"/stations/{sid}/clear-cache"),
            server.api.post(f"/stations/{sid}/trigger", json={"message": "Heartbeat"}),
            server.api.post(f"/stations/{sid}/unlock", json={"evse_id": 1}),
            server.api.post(f"/stations/{sid}/ocpp/GetCompositeSchedule", json=composite_request(v16)),
            server.api.post(f"/stations/{sid}/ocpp/DataTransfer", json={"vendorId": VENDOR, "messageId": "echo"}),
            server.api.post(f"/stations/{sid}/configuration/refresh",
                            json={"keys": ["HeartbeatInterval" if v16 else "OCPPCommCtrlr.HeartbeatInterval"]}),
        )
        assert [r.status_code for r in burst] == [201] * len(burst), [(r.status_code, r.text[:300]) for r in burst if r.status_code != 201]
        await st.wait_for(lambda e: len(st.find_all(lambda x: x.get("event") == "reply", since=mark)) >= len(burst),
                          what="a reply to every call of the burst")
        assert not st.errors, st.report()

        # -- remote start and stop -------------------------------------------------------------------
        mark = st.mark()
        await cmd.send("POST", "/remote-start", {"id_token": remote_tag, "evse_id": 1},
                       action="RemoteStartTransaction" if v16 else "RequestStartTransaction", status="Accepted")
        started = await st.wait_event("tx_started", idTag=remote_tag, since=mark)

        async def active() -> list[dict[str, Any]]:
            return (await server.api.get(f"/stations/{sid}")).json()["active_sessions"]

        sessions = await eventually(active)
        assert [str(x["transaction_id"]) for x in sessions] == [str(started["transactionId"])]
        if not v16:
            mark = st.mark()
            await cmd.send("POST", "/trigger", {"message": "TransactionEvent", "evse_id": 1}, action="TriggerMessage",
                           status="Accepted")
            await st.wait_event("triggered", message="TransactionEvent", since=mark)
        await asyncio.sleep(1.2)  # a periodic meter value or two while charging
        mark = st.mark()
        await cmd.send("POST", "/remote-stop", {}, action="RemoteStopTransaction" if v16 else "RequestStopTransaction",
                       status="Accepted")
        remote = await st.wait_event("tx_stopped", reason="Remote", since=mark)
        async def evidence() -> str:
            return (f"active sessions: {await active()}\nsessions: {await sessions_of(server, sid)}\n"
                    + st.report(last=25))

        await eventually(lambda: _when(active(), lambda a: a == []), what="no active session after remote stop",
                         context=evidence)

        # -- reset: the station reboots (closes, reconnects, boots again) --------------------------
        mark = st.mark()
        await cmd.send("POST", "/reset", {"kind": "soft"}, action="Reset", status="Accepted")
        await st.wait_event("rebooted", since=mark, timeout=30)
        mark = st.mark()
        await cmd.send("POST", "/trigger", {"message": "Heartbeat"}, action="TriggerMessage", status="Accepted")
        await st.wait_event("triggered", message="Heartbeat", since=mark)

        rc = await st.quit()
        st.assert_clean_exit(rc)

    # -- what the CSMS stored -------------------------------------------------------------------------
    rows = {str(r["transaction_id"]): r for r in await sessions_of(server, sid)}
    assert set(rows) == {str(walk["transactionId"]), str(remote["transactionId"])}, rows
    for ev, token in ((walk, tag), (remote, remote_tag)):
        row = rows[str(ev["transactionId"])]
        assert row["state"] == "completed", row
        assert row["id_token"] == token, row
        assert row["energy_wh"] == ev["energyWh"] > 0, (row, ev)
        assert row["meter_stop_wh"] == ev["meterStop"], (row, ev)
    assert rows[str(remote["transactionId"])]["stop_reason"] == "Remote"


async def _when(awaitable: Any, pred: Callable[[Any], bool]) -> Any:
    """For :func:`eventually`: the awaited value when ``pred`` holds (``True`` if that value is falsy)."""
    value = await awaitable
    if not pred(value):
        return None
    return value or True


@pytest.mark.parametrize("protocol", WITH_21)
async def test_strict_station_bad_frames(server, node_station, protocol):
    """Broken frames get the CALLERROR the spec names; the connection and the station survive."""
    sid = f"BAD{SIDS[protocol]}"
    async with strict_station(node_station, server, sid, protocol, extra=["--bad"]) as st:
        rc = await st.wait_exit(120)
        cases = st.find_all(lambda e: e.get("event") == "bad_case")
        failed = [c for c in cases if not c["ok"]]
        assert not failed, "\n".join(json.dumps(c) for c in failed)
        assert len(cases) >= 15
        st.assert_clean_exit(rc)
    detail = (await server.api.get(f"/stations/{sid}")).json()
    assert detail["registration_status"] == "Accepted"


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_strict_station_pending_then_approved_with_password(server, node_station, protocol):
    """Security profile 1 (Basic auth) and a Pending registration the operator approves."""
    sid = "PEND16" if protocol == "ocpp1.6" else "PEND201"
    password = "strict-password-0123"
    tag = f"{sid}-TAG"
    await create_token(server, tag)
    r = await server.api.post("/stations", json={"station_id": sid, "password": password,
                                                 "registration_status": "Pending"})
    assert r.status_code == 201, r.text

    # the wrong password is refused at the handshake
    async with strict_station(node_station, server, sid, protocol, password="not-the-password-xyz") as bad:
        assert await bad.wait_exit(30) == 2
        refused = bad.find(lambda e: e.get("kind") == "connect_failed")
        assert refused and refused["error"]["code"] == 401, bad.report()

    async with strict_station(node_station, server, sid, protocol, token=tag, password=password,
                              extra=["--allow-pending"]) as st:
        await st.wait_event("boot", status="Pending")
        mark = st.mark()
        r = await server.api.post(f"/stations/{sid}/approve")
        assert r.status_code == 201, r.text
        # approving a connected station makes the CSMS trigger its BootNotification itself (a
        # trigger of ours as well would race it: an Accepted station rejects a boot trigger)
        await st.wait_event("boot", status="Accepted", since=mark)
        assert st.find(lambda e: e.get("event") == "reply" and e.get("action") == "TriggerMessage", since=mark)
        await st.wait_event("walk_done", timeout=60)
        rc = await st.wait_exit(30)
        st.assert_clean_exit(rc)
    rows = await sessions_of(server, sid)
    assert len(rows) == 1 and rows[0]["state"] == "completed" and rows[0]["energy_wh"] > 0, rows


# ---------------------------------------------------------------------------------------------
# --edge: valid but unusual traffic (replays, unknown transactions, offsets in timestamps,
# offline transactions, late and reordered transaction messages)


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def run_edge(cmd: list[str], server: Any, station_id: str, protocol: str, scenario: str, token: str
                   ) -> tuple[StrictStation, dict[str, Any]]:
    await create_token(server, token)
    async with strict_station(cmd, server, station_id, protocol, token=token, extra=["--edge", scenario]) as st:
        rc = await st.wait_exit(60)
        done = st.find(lambda e: e.get("event") == "edge_done")
        assert done is not None, st.report()
        st.assert_clean_exit(rc)
    return st, done


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_strict_station_edge_traffic(server, node_station, protocol):
    """Every valid message gets a CALLRESULT; replays are idempotent; timestamp offsets are honoured."""
    v16 = protocol == "ocpp1.6"
    sid = "EDGE16" if v16 else "EDGE201"
    _, done = await run_edge(node_station, server, sid, protocol, "basic", f"{sid}-TAG")
    rows = await sessions_of(server, sid)
    mine = [r for r in rows if str(r["transaction_id"]) == str(done["transactionId"])]
    assert len(mine) == 1, f"a replayed start must not create a second session: {mine}"
    s = mine[0]
    assert s["state"] == "completed", s
    assert _instant(s["started_at"]) == _instant(done["startedAt"]), s
    assert _instant(s["stopped_at"]) == _instant(done["stoppedAt"]), s
    assert s["meter_start_wh"] == done["meterStart"] and s["meter_stop_wh"] == done["meterStop"], s
    assert s["energy_wh"] == done["meterStop"] - done["meterStart"], s
    assert s["stop_reason"] == "EVDisconnected", s
    refused = [r for r in rows if str(r["transaction_id"]) == str(done["unknownTransactionId"])]
    assert len(refused) == 1 and refused[0]["state"] == "completed", refused
    assert refused[0]["id_token"] == "EDGE-UNKNOWN-0001" and refused[0]["stop_reason"] == "DeAuthorized", refused


async def test_ocpp16_transaction_ids_are_never_reused(server, node_station):
    """A 1.6 transactionId the CSMS allocates must be unique for the station, also against ids the
    station reported itself (a StopTransaction for a transaction the CSMS never allocated)."""
    st, done = await run_edge(node_station, server, "TXID16", "ocpp1.6", "txid-reuse", "TXID16-TAG")
    rows = await sessions_of(server, "TXID16")
    ids = [str(r["transaction_id"]) for r in rows]
    assert len(ids) == len(set(ids)), f"sessions sharing a transaction id: {sorted(ids)}"
    assert str(done["foreignTransactionId"]) not in {str(t) for t in done["transactionIds"]}


async def test_ocpp201_late_ended_overrides_supersede(server, node_station):
    """Transaction A's Ended arriving after B's Started on the same EVSE: the station's Ended wins
    over the CSMS's guess (A closed as superseded when B started)."""
    _, done = await run_edge(node_station, server, "LATE201", "ocpp2.0.1", "late-ended", "LATE201-TAG")
    rows = {r["transaction_id"]: r for r in await sessions_of(server, "LATE201")}
    a, b = rows[done["a"]], rows[done["b"]]
    assert b["state"] == "completed" and b["energy_wh"] == done["bMeterStop"] - done["bMeterStart"], b
    assert a["state"] == "completed", a
    assert _instant(a["stopped_at"]) == _instant(done["aStoppedAt"]), a
    assert a["meter_stop_wh"] == done["aMeterStop"], a
    assert a["energy_wh"] == done["aMeterStop"] - done["aMeterStart"], a
    assert a["stop_reason"] == "EVDisconnected", a


async def test_ocpp201_out_of_order_seqno_is_not_a_duplicate(server, node_station):
    """seqNo 2 before seqNo 1: both are new; the meter values of both are stored."""
    _, done = await run_edge(node_station, server, "SEQ201", "ocpp2.0.1", "seq-reorder", "SEQ201-TAG")
    (row,) = [r for r in await sessions_of(server, "SEQ201") if r["transaction_id"] == done["transactionId"]]
    r = await server.api.get(f"/sessions/{row['id']}/meter-values",
                             params={"measurand": "Energy.Active.Import.Register"})
    assert r.status_code == 200, r.text
    registers = sorted(v["value"] for v in r.json()["items"])
    assert registers == done["registers"], registers


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_transaction_lost_in_a_reboot_is_closed(server, node_station, protocol):
    """The station reboots in a transaction and forgets it: after its BootNotification the CSMS
    closes it (2.0.1: GetTransactionStatus answered not ongoing; 1.6: the connector reports
    Available) at the last stored meter reading, with ``session.stopped`` once."""
    sid = "LOST16" if protocol == "ocpp1.6" else "LOST201"
    stopped: list[int] = []
    server.core.events.listen(lambda e: stopped.append(e.session_id) if e.name == "session.stopped" else None)
    st, done = await run_edge(node_station, server, sid, protocol, "lost-tx", f"{sid}-TAG")

    async def closed() -> dict[str, Any] | None:
        (row,) = [r for r in await sessions_of(server, sid) if str(r["transaction_id"]) == str(done["transactionId"])]
        return row if row["state"] == "completed" else None

    row = await eventually(closed, what="the lost transaction closed")
    assert row["stop_reason"] == "Reboot" and "closed_after_reboot" in row["flags"], row
    assert row["meter_stop_wh"] == done["meterLast"] and row["energy_wh"] == done["meterLast"] - 1000, row
    # the row is read right after its commit; the close emits session.stopped when it resumes
    await server.core.reconciliation.drain()
    await server.core.events.drain()
    assert stopped == [row["id"]]
    if protocol == "ocpp2.0.1":
        asked = st.find_all(lambda e: e.get("event") == "call" and e.get("action") == "GetTransactionStatus")
        assert [e["params"] for e in asked] == [{"transactionId": done["transactionId"]}], st.report()


# ---------------------------------------------------------------------------------------------
# the harness itself: a CSMS that breaks the schema must make the station fail


@pytest.mark.parametrize("protocol", WITH_21)
async def test_strict_station_fails_on_a_violating_csms(node_station, protocol):
    """Guard against a harness that passes silently: a fake CSMS (websockets) answers the boot with
    a timestamp that is not an RFC 3339 date-time and sends a Reset with an invalid type."""
    from websockets.asyncio.server import serve

    async def fake_csms(ws: Any) -> None:
        async for raw in ws:
            msg = json.loads(raw)
            if msg[0] == 2 and msg[2] == "BootNotification":
                await ws.send(json.dumps([2, "csms-1", "Reset", {"type": "Sideways"}]))
                await asyncio.sleep(0.2)
                await ws.send(json.dumps([3, msg[1], {"status": "Accepted", "currentTime": "2024-01-01 10:00:00",
                                                      "interval": 300}]))

    async with serve(fake_csms, "127.0.0.1", 0, subprotocols=[protocol]) as srv:
        port = srv.sockets[0].getsockname()[1]

        class Fake:
            pass

        fake = Fake()
        fake.port = port  # type: ignore[attr-defined]
        async with strict_station(node_station, fake, "FAKE1", protocol, extra=["--call-timeout", "2"]) as st:
            rc = await st.wait_exit(30)
    assert rc == 1, st.report()
    kinds = {(e["kind"], e.get("action"), e.get("isCall")) for e in st.errors}
    assert ("strict", "BootNotification", False) in kinds, st.report()  # no time zone, a space for the T
    assert ("strict", "Reset", True) in kinds, st.report()
    assert any(e["kind"] == "timestamp_form" for e in st.errors), st.report()
