"""A stand-in of the two Google services Chromium asks when a page calls
``pushManager.subscribe`` (there is no network in the tests): the GCM check-in (a protobuf
``AndroidCheckinResponse`` with a device id and security token) and the registration, which
answers ``token=<id>``. Chromium is pointed at it with ``--gcm-checkin-url`` and
``--gcm-registration-url``; the subscription it then makes is a real one: the browser's own P-256
key pair and auth secret, an endpoint ``https://jmt17.google.com/fcm/send/<token>`` (the staging
push service Chromium names when its registration URL is overridden)."""

from __future__ import annotations

import secrets
import struct
import time
from typing import Any

from csms.testing import free_port


def _varint(n: int) -> bytes:
    out = b""
    while True:
        low, n = n & 0x7F, n >> 7
        out += bytes([low | 0x80]) if n else bytes([low])
        if not n:
            return out


def checkin_response(android_id: int, security_token: int) -> bytes:
    """``AndroidCheckinResponse``: stats_ok (1), time_msec (3), android_id (7), security_token (8)."""
    return (b"\x08\x01" + b"\x18" + _varint(int(time.time() * 1000))
            + b"\x39" + struct.pack("<Q", android_id) + b"\x41" + struct.pack("<Q", security_token))


class FakeGcm:
    def __init__(self) -> None:
        self.port = free_port()
        self.closed_port = free_port()  # the MCS connection (receiving pushes) goes nowhere
        self.tokens: list[str] = []
        self.registrations: list[dict[str, str]] = []

    def chromium_args(self) -> list[str]:
        base = f"http://127.0.0.1:{self.port}"
        return [f"--gcm-checkin-url={base}/checkin", f"--gcm-registration-url={base}/register",
                f"--gcm-mcs-endpoint=https://127.0.0.1:{self.closed_port}"]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if scope["path"] == "/checkin":
            out, kind = checkin_response(4_000_000_000_000_001, 7_000_000_000_000_001), b"application/x-protobuf"
        else:
            form = dict(p.split("=", 1) for p in body.decode().split("&") if "=" in p)
            self.registrations.append(form)
            token = f"fake{secrets.token_hex(8)}:APA91b{secrets.token_urlsafe(24)}"
            self.tokens.append(token)
            out, kind = f"token={token}".encode(), b"text/plain"
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", kind)]})
        await send({"type": "http.response.body", "body": out})
