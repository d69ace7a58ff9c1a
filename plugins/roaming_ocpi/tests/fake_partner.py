"""A scripted OCPI partner at the edge of the world: a small ASGI app on a real loopback port
that offers versions and endpoints, accepts every push with the envelope (or fails on demand) and
records each request, so tests can check exactly what the CSMS sent."""

from __future__ import annotations

import asyncio
import base64
import json
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, AsyncIterator, Callable


from csms.testing import asgi_server, free_port


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Recorded:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any
    status: int = 0  # the HTTP status we answered


@dataclass
class FakePartner:
    port: int
    country_code: str = "DE"
    party_id: str = "FAK"
    role: str = "EMSP"
    # more CredentialsRoles (role, country code, party id) after the first (a platform or a hub)
    more_roles: list[tuple[str, str, str]] = field(default_factory=list)
    token_b: str = "fake-token-b"  # what the CSMS must send us
    token_c: str | None = None  # what we send the CSMS (after registering)
    accepted: set[str] = field(default_factory=lambda: {"fake-token-b"})  # tokens we take from the CSMS
    issued: list[str] = field(default_factory=list)  # tokens we handed out in credentials answers
    their_token: str | None = None  # the token the CSMS gave us in its credentials
    requests: list[Recorded] = field(default_factory=list)
    down: bool = False
    answers: dict[str, Any] = field(default_factory=dict)  # path suffix -> (http status, envelope)
    slash: bool = False  # advertise endpoint URLs with a trailing slash (``.../cdrs/``)
    # ``await script(record)`` before the usual answer (may sleep, i.e. stall): None for the usual
    # answer, else (http status, envelope, extra headers)
    script: Any = None
    version: str = "2.2.1"  # "2.1.1": a 2.1.1 party (credentials without roles, unencoded tokens)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def versions_url(self) -> str:
        return f"{self.base}/ocpi/versions"

    def credentials(self) -> dict[str, Any]:
        if self.version == "2.1.1":
            return {"token": self.token_b, "url": self.versions_url, "party_id": self.party_id,
                    "country_code": self.country_code, "business_details": {"name": f"Fake {self.role.lower()}"}}
        roles = [(self.role, self.country_code, self.party_id), *self.more_roles]
        return {"token": self.token_b, "url": self.versions_url, "roles": [{
            "role": role, "business_details": {"name": f"Fake {role.lower()}", "website": "https://fake.example.org"},
            "party_id": pid, "country_code": cc} for role, cc, pid in roles]}

    def endpoints(self) -> list[dict[str, str]]:
        found = self._endpoints()
        if self.version == "2.1.1":  # no interface roles, one endpoint per module
            found = [{"identifier": e["identifier"], "url": e["url"].replace("/2.2.1/", "/2.1.1/")} for e in found]
        if self.slash:
            found = [{**e, "url": e["url"] + "/"} if e["identifier"] != "credentials" else e for e in found]
        return found

    def _endpoints(self) -> list[dict[str, str]]:
        b = f"{self.base}/ocpi/2.2.1"
        if self.role == "HUB":  # both sides (Senders for a GET All via the hub), and its Hub Client Info Sender
            return [{"identifier": m, "role": r, "url": f"{b}/{m}"} for m, r in (
                ("credentials", "SENDER"), ("locations", "SENDER"), ("locations", "RECEIVER"), ("sessions", "RECEIVER"), ("cdrs", "RECEIVER"),
                ("tariffs", "RECEIVER"), ("tokens", "SENDER"), ("tokens", "RECEIVER"), ("commands", "SENDER"),
                ("commands", "RECEIVER"), ("hubclientinfo", "SENDER"))]
        if self.role == "EMSP":
            return [{"identifier": "credentials", "role": "SENDER", "url": f"{b}/credentials"},
                    {"identifier": "locations", "role": "RECEIVER", "url": f"{b}/locations"},
                    {"identifier": "sessions", "role": "RECEIVER", "url": f"{b}/sessions"},
                    {"identifier": "cdrs", "role": "RECEIVER", "url": f"{b}/cdrs"},
                    {"identifier": "tariffs", "role": "RECEIVER", "url": f"{b}/tariffs"},
                    {"identifier": "tokens", "role": "SENDER", "url": f"{b}/tokens"},
                    {"identifier": "commands", "role": "SENDER", "url": f"{b}/commands"}]
        return [{"identifier": "credentials", "role": "SENDER", "url": f"{b}/credentials"},
                {"identifier": "locations", "role": "SENDER", "url": f"{b}/locations"},
                {"identifier": "tokens", "role": "RECEIVER", "url": f"{b}/tokens"},
                {"identifier": "commands", "role": "RECEIVER", "url": f"{b}/commands"}]

    def pushes(self, method: str | None = None, prefix: str = "", *, failed: bool = False) -> list[Recorded]:
        """Requests received (those we answered successfully, unless ``failed``)."""
        return [r for r in self.requests if (method is None or r.method == method)
                and r.path.startswith(f"/ocpi/{self.version}/{prefix}") and (failed or r.status < 400)]

    async def wait_for(self, method: str, prefix: str, count: int = 1, timeout: float = 15.0,
                       match: Callable[[Recorded], bool] | None = None) -> list[Recorded]:
        """Wait for ``count`` requests (those ``match`` accepts, if given); returns them all."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            found = [r for r in self.pushes(method, prefix) if match is None or match(r)]
            if len(found) >= count:
                return found
            await asyncio.sleep(0.05)
        raise AssertionError(f"no {count} x {method} {prefix} within {timeout}s; got "
                             f"{[(r.method, r.path) for r in self.requests]}")

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        body = json.loads(raw) if raw else None
        record = Recorded(scope["method"], scope["path"], scope["query_string"].decode(), headers, body)
        self.requests.append(record)
        status, envelope, extra = 200, {"status_code": 1000, "timestamp": now()}, []
        accepted = {"Token " + base64.b64encode(t.encode()).decode() for t in self.accepted}
        if self.version == "2.1.1":
            accepted = {f"Token {t}" for t in self.accepted}
        path = scope["path"].replace("/2.1.1", "/2.2.1") if self.version == "2.1.1" else scope["path"]
        scripted = await self.script(record) if self.script is not None else None
        if scripted is not None:
            status, envelope, extra = scripted
        elif self.down:
            status, envelope = 503, {"status_code": 3000, "timestamp": now()}
        elif headers.get("authorization") not in accepted:
            status, envelope = 401, {"status_code": 2000, "status_message": "bad token", "timestamp": now()}
        elif path == "/ocpi/versions":
            envelope["data"] = [{"version": self.version, "url": f"{self.base}/ocpi/{self.version}"}]
        elif path == "/ocpi/2.2.1":
            envelope["data"] = {"version": self.version, "endpoints": self.endpoints()}
        elif path == "/ocpi/2.2.1/credentials" and scope["method"] in ("POST", "PUT"):
            self.their_token = body["token"]
            new = f"fake-token-c{len(self.issued) + 1}"
            self.issued.append(new)
            self.accepted.add(new)
            envelope["data"] = {**self.credentials(), "token": new}
        elif path.rstrip("/") == "/ocpi/2.2.1/cdrs" and scope["method"] == "POST":
            status = 201
            extra = [(b"location", f"{self.base}/ocpi/2.2.1/cdrs/{len(self.requests)}".encode())]
        for suffix, answer in self.answers.items():
            if path.endswith(suffix) and scripted is None:
                status, envelope = answer
        record.status = status
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), *extra,
                                (b"x-request-id", headers.get("x-request-id", "").encode()),
                                (b"x-correlation-id", headers.get("x-correlation-id", "").encode())]})
        await send({"type": "http.response.body", "body": json.dumps(envelope).encode()})


@asynccontextmanager
async def fake_partner(**kwargs: Any) -> AsyncIterator[FakePartner]:
    partner = FakePartner(free_port(), **kwargs)
    async with asgi_server(partner.app, partner.port, lifespan="on"):
        yield partner
