"""Run the outside OCPP 2.0.1 CSMS test suite tzi-OCTT against this CSMS.

tzi-OCTT (github.com/AviranAbady/tzi-OCTT) is a pytest implementation of OCTT's CSMS test cases:
each test is a mock charging station that connects, boots and then either drives the CSMS itself
(Authorize, TransactionEvent, ...) or waits for the CSMS to send something (SetChargingProfile,
ReserveNow, ...). The second kind needs an operator; this script is that operator, the
*conductor*: for each test it watches the station's frames and, once the station has booted
(or whatever the table says to wait for), makes the REST call(s) an operator would.

    python bench/octt/run.py --suite /work/tzi-octt --blocks K,C --out bench/octt/results.md

It starts ``csms serve`` on a temporary data directory (SQLite), provisions the stations, id
tokens and settings the suite's ChargingPointsConfig.md asks for, runs one test file at a time
(``pytest -q`` in the suite's own virtualenv, ``--python``), and writes a Markdown table: pass,
fail or skip per test with the failure's last assertion line. Not part of the CI test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conductor import CLEANUP, PLAN, Step
from contract_pki import TestPki

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PASSWORD = "0123456789123456"
STATIONS = ["CP_1", "CP_A_SP1", "CP_B", "CP_C", "CP_D", "CP_E", "CP_F", "CP_G"]
TLS_STATIONS = {"CP_A_SP2": 2, "CP_A_SP3": 3}  # ChargingPointsConfig.md of block A: over wss on port+1
BLOCK_STATION = {"A": "CP_A_SP1", "B": "CP_B", "C": "CP_C", "D": "CP_D", "E": "CP_E", "F": "CP_F",
                 "G": "CP_G"}
TOKENS = [  # id_token, type, status, group, expires; 100000C02 (type Cash, not a 2.0.1 type) stays unknown
    ("100000C01", "Central", "Accepted", "GROUP001", None),
    ("100000C39B", "Central", "Accepted", "GROUP001", None),
    ("100000C06", "Central", "Blocked", None, None),
    ("100000C07", "Central", "Accepted", None, "2020-01-01T00:00:00Z"),
    ("MASTERC47", "Central", "Accepted", "GROUP001", None),
    ("D001001", "Central", "Accepted", None, None),
    ("D001002", "Central", "Accepted", None, None),
]


SUITE_CA = ""  # the suite's test CA (certs/ca.pem), set in main()
TLS_PORT = 0  # the CSMS's TLS listener (--port + 1), set in main()


class Api:
    """The CSMS's REST API with an admin key."""

    def __init__(self, base: str, key: str) -> None:
        self.base, self.key = base.rstrip("/"), key

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + "/api/v1" + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {self.key}",
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                text = resp.read().decode()
                return resp.status, json.loads(text) if text else None
        except urllib.error.HTTPError as exc:
            text = exc.read().decode()
            try:
                return exc.code, json.loads(text)
            except ValueError:
                return exc.code, text

    def frames(self, station: str, after: int, action: str | None = None) -> list[dict[str, Any]]:
        """Frames of the station logged after frame id ``after``, oldest first."""
        query = f"/stations/{station}/messages?limit=200" + (f"&action={action}" if action else "")
        _, body = self.call("GET", query)
        items = body.get("items", []) if isinstance(body, dict) else []
        return sorted((f for f in items if f["id"] > after), key=lambda f: f["id"])

    def last_frame_id(self, station: str) -> int:
        _, body = self.call("GET", f"/stations/{station}/messages?limit=1")
        items = body.get("items", []) if isinstance(body, dict) else []
        return items[0]["id"] if items else 0


@dataclass
class Outcome:
    test: str
    result: str
    reason: str = ""
    conductor: list[str] = field(default_factory=list)


class Conductor(threading.Thread):
    """Performs one test's operator steps while its pytest runs."""

    def __init__(self, api: Api, station: str, steps: list[Step], stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.api, self.station, self.steps, self.stop = api, station, steps, stop
        self.log: list[str] = []
        self.start_id = api.last_frame_id(station)

    def payload(self, action: str, direction: str = "in") -> dict[str, Any] | None:
        for frame in reversed(self.api.frames(self.station, self.start_id, action)):
            if frame["direction"] == direction:
                try:
                    message = json.loads(frame["payload"])
                except ValueError:
                    continue
                return message[3] if message[0] == 2 else message[2]
        return None

    def wait_for(self, action: str, count: int = 1, timeout: float = 40.0) -> bool:
        deadline = time.monotonic() + timeout
        if action == "connect":  # a station that sends nothing: its WebSocket is open
            time.sleep(1.5)
            while time.monotonic() < deadline and not self.stop.is_set():
                _, body = self.api.call("GET", f"/stations/{self.station}")
                if isinstance(body, dict) and body.get("online"):
                    return True
                time.sleep(0.25)
            return False
        direction = "in"
        if action.startswith("out:"):  # a CALL of the CSMS's, e.g. out:SendLocalList
            direction, action = "out", action[4:]
        while time.monotonic() < deadline and not self.stop.is_set():
            frames = [f for f in self.api.frames(self.station, self.start_id, action)
                      if f["direction"] == direction and f["message_type"] == 2]
            if len(frames) >= count:
                return True
            time.sleep(0.25)
        return False

    def substitute(self, value: Any) -> Any:
        if isinstance(value, str) and "{" in value:
            value = value.replace("{station}", self.station)
            if "{tx}" in value:
                event = self.payload("TransactionEvent") or {}
                value = value.replace("{tx}", event.get("transactionInfo", {}).get("transactionId", ""))
            if "{session}" in value:
                _, body = self.api.call("GET", f"/sessions?station={self.station}&limit=1")
                items = body.get("items", []) if isinstance(body, dict) else []
                value = value.replace("{session}", str(items[0]["id"]) if items else "0")
            if "{reservation}" in value:
                _, body = self.api.call("GET", f"/reservations?station={self.station}&limit=1")
                items = body.get("items", []) if isinstance(body, dict) else []
                value = value.replace("{reservation}", str(items[0]["id"]) if items else "0")
            if "{profile}" in value:
                _, body = self.api.call("GET", f"/stations/{self.station}/charging-profiles")
                ids = [p.get("profile_id") for p in (body or {}).get("items", [])] if isinstance(body, dict) else []
                value = value.replace("{profile}", str(ids[0]) if ids else "1")
            if value.startswith("{int:"):
                return int(value[5:-1])
            if "{now+" in value:
                seconds = int(re.search(r"\{now\+(\d+)\}", value).group(1))
                stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds))
                value = re.sub(r"\{now\+\d+\}", stamp, value)
            if "{tls_port}" in value:
                value = value.replace("{tls_port}", str(TLS_PORT))
            if value == "{suite_ca}":
                return SUITE_CA
            if value == "{installed0}":
                answer = self.payload("GetInstalledCertificateIds", direction="in") or {}
                chain = answer.get("certificateHashDataChain") or [{}]
                return chain[0].get("certificateHashData", {})
            if "{site}" in value:
                _, body = self.api.call("GET", "/sites?limit=1")
                items = body.get("items", []) if isinstance(body, dict) else body or []
                value = value.replace("{site}", str(items[0]["id"]) if items else "0")
            if value.startswith("{site_int}"):
                _, body = self.api.call("GET", "/sites?limit=1")
                items = body.get("items", []) if isinstance(body, dict) else body or []
                return int(items[0]["id"]) if items else None
            if "{now}" in value:
                value = value.replace("{now}", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            if value.startswith("{tx_int}"):
                return int(value[len("{tx_int}"):] or 0)
        if isinstance(value, dict):
            return {k: self.substitute(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.substitute(v) for v in value]
        return value

    def run(self) -> None:
        for step in self.steps:
            if step.after and not self.wait_for(step.after, step.count):
                self.log.append(f"never saw {step.after} x{step.count}")
                return
            if step.delay:
                time.sleep(step.delay)
            if self.stop.is_set():
                return
            path = step.path.replace("{station}", self.station)
            path = self.substitute(path)
            body = self.substitute(step.body)
            status, answer = self.api.call(step.method, path, body)
            text = json.dumps(answer)[:160] if not isinstance(answer, str) else answer[:160]
            self.log.append(f"{step.method} {path} -> {status} {text}")


def wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"server did not answer at {url}")


def start_server(args: argparse.Namespace, data_dir: Path) -> tuple[subprocess.Popen[bytes], Api]:
    csms = str(Path(sys.executable).parent / "csms")
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", args.port)) == 0:
            raise SystemExit(f"port {args.port} is in use (--port)")
    env = dict(os.environ)
    env.update({
        "CSMS_DATA_DIR": str(data_dir), "CSMS_PORT": str(args.port), "CSMS_HOST": "127.0.0.1",
        "CSMS_UNKNOWN_STATIONS": "reject",
        # No SetVariables of tariff texts and no GetTransactionStatus after each boot: messages no
        # test asks for (the local list check after the boot is what block D tests).
        "CSMS_TARIFF_FALLBACK_TEXTS": "false", "CSMS_RECONCILE_TRANSACTIONS": "false",
        # a site's stations get their TxProfiles only (K15-K17 expect the TxProfile first)
        "CSMS_SMART_CHARGING_STATION_MAX_PROFILE": "false",
        "CSMS_BILLING_COST_UPDATES": "true", "CSMS_BILLING_COST_UPDATE_INTERVAL": "1",  # I01: running cost
        "CSMS_LOG_LEVEL": "warning",
        **args.pki_env,  # the test PKI (contract_pki.py): anchors, responder, CPO sub-CA, provider double
        # security profiles 2 and 3 (block A): the suite's server certificates (ECDSA and RSA, for
        # localhost and 127.0.0.1) on a second, TLS listener at port+1; client certificates of
        # the suite's CA and of the CSMS's own CA (the certificates it signs on renewal)
        "CSMS_TLS_CERT": str(args.suite / "certs" / "server.pem"),
        "CSMS_TLS_KEY": str(args.suite / "certs" / "server.key"),
        "CSMS_TLS_CERTS": f"{args.suite / 'certs' / 'server_rsa.pem'}:{args.suite / 'certs' / 'server_rsa.key'}",
        "CSMS_TLS_CA": str(data_dir / "tls_ca.pem"),
    })
    subprocess.run([csms, "migrate"], env=env, check=True, capture_output=True)
    subprocess.run([csms, "ca", "show"], env=env, check=True, capture_output=True)  # the CA, made now
    (data_dir / "tls_ca.pem").write_text((args.suite / "certs" / "ca.pem").read_text()
                                         + (data_dir / "ca" / "trust.pem").read_text())
    key = subprocess.run([csms, "apikey", "create", "--name", "octt", "--role", "admin"], env=env,
                         check=True, capture_output=True, text=True).stdout.strip()
    log = open(data_dir / "serve.log", "wb")
    server = subprocess.Popen([csms, "serve", "--port", str(args.port), "--tls-port", str(args.port + 1)],
                              env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{args.port}"
    wait_http(base + "/api/v1/health")
    return server, Api(base, key)


def provision(api: Api) -> None:
    for station in STATIONS:
        status, body = api.call("POST", "/stations", {"station_id": station, "password": PASSWORD})
        if status not in (200, 201):
            raise SystemExit(f"cannot create {station}: {status} {body}")
        api.call("PATCH", f"/stations/{station}", {"security_profile": 1})
    for station, profile in TLS_STATIONS.items():
        status, body = api.call("POST", "/stations", {"station_id": station, "password": PASSWORD})
        if status not in (200, 201):
            raise SystemExit(f"cannot create {station}: {status} {body}")
        api.call("PATCH", f"/stations/{station}", {"security_profile": profile})
    status, body = api.call("POST", "/sites", {"name": "OCTT site", "grid_limit_l1_a": 32.0,
                                              "grid_limit_l2_a": 32.0, "grid_limit_l3_a": 32.0})
    if status not in (200, 201):
        raise SystemExit(f"cannot create the site: {status} {body}")
    # I: an energy-based tariff for everyone everywhere (billing plugin), for running and final costs
    status, tariff = api.call("POST", "/billing/tariffs", {"id": "OCTT", "currency": "EUR", "elements": [
        {"price_components": [{"type": "ENERGY", "price": 0.30, "vat": 21, "step_size": 1}]}]})
    if status not in (200, 201):
        raise SystemExit(f"cannot create the tariff: {status} {tariff}")
    api.call("POST", "/billing/assignments", {"tariff": tariff["id"]})
    for id_token, type_, status_, group, expires in TOKENS:
        body: dict[str, Any] = {"id_token": id_token, "type": type_, "status": status_}
        if group:
            body["group_id"] = group
        if expires:
            body["expires_at"] = expires
        status, answer = api.call("POST", "/tokens", body)
        if status not in (200, 201):
            raise SystemExit(f"cannot create token {id_token}: {status} {answer}")


def station_of(test_file: Path) -> str:
    text = test_file.read_text()
    block = test_file.parent.name
    if block == "A" and "BASIC_AUTH_CP_A" not in text:  # the TLS cases
        if "SECURITY_PROFILE_3_CP_A" in text:
            return "CP_A_SP3"
        if "SECURITY_PROFILE_2_CP_A" in text:
            return "CP_A_SP2"
    match = re.search(r"os\.environ\['(BASIC_AUTH_CP(?:_[A-G])?)'\]", text)
    if match and match.group(1) != "BASIC_AUTH_CP":
        return {"BASIC_AUTH_CP_" + k: v for k, v in BLOCK_STATION.items()}[match.group(1)]
    if re.search(rf"\bBASIC_AUTH_CP_{block}\b", text):
        return BLOCK_STATION[block]
    return "CP_1"


def write_ini(args: argparse.Namespace, data_dir: Path) -> Path:
    """The suite's pytest.ini with our addresses (pytest-env overrides the environment)."""
    text = (args.suite / "pytest.ini").read_text()
    overrides = {"CSMS_ADDRESS": f"ws://127.0.0.1:{args.port}/ocpp",
                 # the suite's default, Cash, is no IdTokenEnumType of 2.0.1: its messages fail the schema
                 "INVALID_ID_TOKEN_TYPE": "ISO14443",
                 "CSMS_WSS_ADDRESS": f"wss://localhost:{args.port + 1}/ocpp",  # the certificate's CN (A00.FR.510)
                 # the suite's client.pem names CP_1; CP_A_SP3's names CP_A_SP3 (A00.FR.405), same CA
                 "TLS_CLIENT_CERT": str(args.client_cert[0]), "TLS_CLIENT_KEY": str(args.client_cert[1])}
    overrides.update(args.pki_files)
    for key, value in overrides.items():
        text = re.sub(rf"(?m)^(\s*){key}=.*$", rf"\g<1>{key}={value}", text)
    for key in ("TLS_CA_CERT", "TLS_CLIENT_CERT", "TLS_CLIENT_KEY", "TLS_INVALID_CLIENT_CERT",
                "TLS_INVALID_CLIENT_KEY"):
        text = re.sub(rf"(?m)^(\s*){key}=(?!/)(.*)$", rf"\g<1>{key}={args.suite}/\g<2>", text)
    path = data_dir / "pytest.ini"
    path.write_text(text)
    return path


def client_certificate(suite: Path, directory: Path, station: str) -> tuple[Path, Path]:
    """A profile 3 client certificate for ``station`` (commonName = station id), signed by the
    suite's test CA (its certs/ca.key)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_cert = x509.load_pem_x509_certificate((suite / "certs" / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((suite / "certs" / "ca.key").read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, station),
                                     x509.NameAttribute(NameOID.ORGANIZATION_NAME, "TZI Test")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{station}.pem", directory / f"{station}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def failure_reason(output: str) -> str:
    """The assertion or error that failed the test, in one line."""
    errors = [ln[1:].strip() for ln in output.splitlines() if ln.startswith("E ")]
    named = [e for e in errors if re.match(r"(\w+\.)*\w*(Error|Exception)\b", e)
             and not e.startswith(("asyncio.exceptions.CancelledError", "TimeoutError"))]
    if named:
        return named[0][:220]
    if any(e.startswith(("TimeoutError", "asyncio.exceptions.CancelledError")) for e in errors):
        return "timed out waiting for the CSMS (TimeoutError)"
    asserts = [e for e in errors if e.startswith("assert")]
    if asserts:
        return asserts[0][:220]
    tail = [ln.strip() for ln in output.splitlines() if ln.strip()]
    return (tail[-1] if tail else "no output")[:220]


def close_open_sessions(api: Api, log: list[str]) -> None:
    """Force-close what a test left running: the suite's stations close their socket in the middle
    of transactions, and the next test's Authorize of the same card would get ConcurrentTx."""
    _, body = api.call("GET", "/sessions?session_state=active&limit=100")
    for item in (body or {}).get("items", []) if isinstance(body, dict) else []:
        status, _ = api.call("POST", f"/sessions/{item['id']}/close")
        log.append(f"closed session {item['id']} left open -> {status}")


def run_test(args: argparse.Namespace, api: Api, test_file: Path) -> Outcome:
    name = test_file.stem.replace("test_tc_", "TC_").replace("_csms", "").upper()
    station = station_of(test_file)
    steps = PLAN.get(name, [])
    setup = [step for step in steps if not step.after]  # before the station connects
    stop = threading.Event()
    conductor = Conductor(api, station, [step for step in steps if step.after], stop)
    if setup:
        before = Conductor(api, station, setup, threading.Event())
        before.run()
        conductor.log += before.log
    conductor.start()
    try:
        proc = subprocess.run([args.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
                               "-c", str(args.ini), "--rootdir", str(args.suite),
                               str(test_file.relative_to(args.suite))], cwd=args.suite,
                              capture_output=True, text=True, timeout=args.timeout)
        output = proc.stdout + proc.stderr
        code = proc.returncode
    except subprocess.TimeoutExpired as exc:
        output, code = f"timed out after {args.timeout}s {exc.stdout or ''}", 1
    stop.set()
    conductor.join(timeout=5)
    close_open_sessions(api, conductor.log)
    if name in CLEANUP:
        undo = Conductor(api, station, CLEANUP[name], threading.Event())
        undo.run()
        conductor.log += undo.log
    if code == 0 and " passed" in output:
        result, reason = "pass", ""
    elif code == 5 or (" skipped" in output and " passed" not in output and " failed" not in output):
        result, reason = "skip", failure_reason(output)
    else:
        result, reason = "fail", failure_reason(output)
    if args.verbose and result != "pass":
        (args.logs / f"{name}.log").write_text(output + "\n--- conductor\n" + "\n".join(conductor.log))
    return Outcome(name, result, reason, conductor.log)


def read_results(path: Path) -> list[Outcome]:
    """The rows of an earlier results file (for --update)."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) == 4 and cells[0].startswith("TC_"):
            rows.append(Outcome(cells[0], cells[1], cells[2], [cells[3]] if cells[3] else []))
    return rows


def write_results(path: Path, outcomes: list[Outcome]) -> None:
    blocks: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        blocks.setdefault(outcome.test.split("_")[1], []).append(outcome)
    lines = [f"# tzi-OCTT results ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", "",
             "| block | pass | fail | skip |", "|---|---|---|---|"]
    for block, items in sorted(blocks.items()):
        counts = {r: sum(1 for o in items if o.result == r) for r in ("pass", "fail", "skip")}
        lines.append(f"| {block} | {counts['pass']} | {counts['fail']} | {counts['skip']} |")
    lines += ["", "| test | result | reason | conductor |", "|---|---|---|---|"]
    for outcome in outcomes:
        reason = outcome.reason.replace("|", "\\|")
        steps = "; ".join(outcome.conductor).replace("|", "\\|")[:300]
        lines.append(f"| {outcome.test} | {outcome.result} | {reason} | {steps} |")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", type=Path, default=Path("/work/tzi-octt"))
    parser.add_argument("--python", default="/tmp/venv-octt/bin/python",
                        help="Python of a virtualenv with the suite's requirements.txt")
    parser.add_argument("--blocks", default="K,C,E,F,D,H,O,N,B,M,A,G,I,J,L,P")
    parser.add_argument("--tests", default="", help="comma-separated test ids (TC_K_01) or whole blocks (K)")
    parser.add_argument("--port", type=int, default=8191)
    parser.add_argument("--timeout", type=int, default=120, help="seconds per test file")
    parser.add_argument("--out", type=Path, default=HERE / "results.md")
    parser.add_argument("--verbose", action="store_true", help="keep each failing test's output")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    parser.add_argument("--update", action="store_true",
                        help="replace the rows of the tests run in --out, keep the others")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the server on the way out
    args.suite = args.suite.resolve()
    global SUITE_CA, TLS_PORT
    TLS_PORT = args.port + 1
    SUITE_CA = (args.suite / "certs" / "ca.pem").read_text()
    wanted = {t.strip().upper() for t in args.tests.split(",") if t.strip()}
    files: list[Path] = []
    for block in args.blocks.split(","):
        files += sorted((args.suite / "2.0.1" / block.strip()).glob("test_tc_*_csms.py"))
    if wanted:
        files = [f for f in files if f.stem.replace("test_tc_", "TC_").replace("_csms", "").upper() in wanted
                 or f.parent.name in wanted]
    data_dir = Path(tempfile.mkdtemp(prefix="octt-"))
    args.logs = data_dir / "logs"
    args.logs.mkdir()
    args.pki_dir = data_dir / "pki"
    pki = TestPki(args.pki_dir, args.port + 2)
    args.pki_files = pki.write()
    args.pki_env = pki.server_env()
    responder = pki.serve()
    args.client_cert = client_certificate(args.suite, data_dir / "tls", "CP_A_SP3")
    args.ini = write_ini(args, data_dir)
    server, api = start_server(args, data_dir)
    earlier = read_results(args.out) if args.update else []
    outcomes: list[Outcome] = []

    def everything() -> list[Outcome]:
        ran = {o.test for o in outcomes}
        key = lambda o: (o.test.split("_")[1], o.test)  # noqa: E731
        return sorted([o for o in earlier if o.test not in ran] + outcomes, key=key)

    try:
        provision(api)
        for test_file in files:
            outcome = run_test(args, api, test_file)
            outcomes.append(outcome)
            print(f"{outcome.test:10} {outcome.result:4} {outcome.reason[:110]}", flush=True)
            write_results(args.out, everything())
    finally:
        server.terminate()
        server.wait(timeout=20)
        responder.shutdown()
        print(f"data directory {data_dir}" if args.keep or args.verbose else "", flush=True)
        if not (args.keep or args.verbose):
            shutil.rmtree(data_dir, ignore_errors=True)
    write_results(args.out, everything())


if __name__ == "__main__":
    main()
