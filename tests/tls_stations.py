"""What the TLS tests share: server certificates from a trustme CA, client TLS contexts, a
booted 2.0.1 station (the ``ocpp`` library's ChargePoint) at a ws/wss URL, and the HTTP status
of a refused handshake."""

from __future__ import annotations

import asyncio
import ssl
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

import pytest
import trustme
import websockets
from cryptography import x509
from ocpp.v201 import call

from tests.stations import Station201, basic_auth

LOCAL = ("localhost", "127.0.0.1")


def server_certificates(ca: trustme.CA, directory: Path, *,
                        more: tuple[tuple[str, tuple[str, ...], trustme.KeyType], ...] = ()) -> dict:
    """Certificate files signed by ``ca``: ``"rsa"`` and ``"ec"`` (cert, key) pairs for
    localhost and 127.0.0.1, one per ``(name, hosts, key type)`` in ``more``, and ``"ca"``."""
    files: dict = {}
    for name, hosts, key_type in (("rsa", LOCAL, trustme.KeyType.RSA), ("ec", LOCAL, trustme.KeyType.ECDSA), *more):
        cert = ca.issue_cert(*hosts, key_type=key_type)
        cert.cert_chain_pems[0].write_to_path(str(directory / f"{name}.pem"))
        cert.private_key_pem.write_to_path(str(directory / f"{name}.key"))
        files[name] = (str(directory / f"{name}.pem"), str(directory / f"{name}.key"))
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    files["ca"] = str(directory / "ca.pem")
    return files


def client_context(ca: trustme.CA, *, ciphers: str | None = None, station: str | None = None) -> ssl.SSLContext:
    """A client context trusting ``ca``; with ``ciphers`` TLS 1.2 with those suites only (the
    server must pick the matching chain), with ``station`` a client certificate for it."""
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    if ciphers:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(ciphers)
    if station:
        ca.issue_cert(station, common_name=station).configure_cert(ctx)
    return ctx


@asynccontextmanager
async def booted(url: str, station_id: str, *, ctx: ssl.SSLContext | None = None, password: str | None = None,
                 server_hostname: str | None = None,
                 ) -> AsyncIterator[tuple[Station201, websockets.ClientConnection]]:
    """A 2.0.1 station at ``url``, booted and Accepted, and its connection."""
    headers = basic_auth(station_id, password) if password else None
    async with websockets.connect(url, subprotocols=["ocpp2.0.1"], ssl=ctx, additional_headers=headers,
                                  server_hostname=server_hostname) as ws:
        cp = Station201(station_id, ws)
        task = asyncio.create_task(cp.start())
        try:
            boot = await cp.call(call.BootNotification(
                charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp"))
            assert boot.status == "Accepted"
            yield cp, ws
        finally:
            task.cancel()


def server_certificate(ws: websockets.ClientConnection) -> x509.Certificate:
    """The certificate the server gave on a wss connection."""
    der = ws.transport.get_extra_info("ssl_object").getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der)


async def refused(url: str, station_id: str, *, ctx: ssl.SSLContext | None = None,
                  password: str | None = None) -> int:
    """The HTTP status of a handshake at ``url`` that the server refuses."""
    headers = basic_auth(station_id, password) if password else None
    with pytest.raises(websockets.exceptions.InvalidStatus) as refusal:
        async with websockets.connect(url, subprotocols=["ocpp2.0.1"], ssl=ctx, additional_headers=headers):
            pass
    return refusal.value.response.status_code


async def profile_of(srv, station_id: str) -> int:
    """The security profile stored for the station."""
    return (await srv.api.get(f"/stations/{station_id}")).json()["security_profile"]
