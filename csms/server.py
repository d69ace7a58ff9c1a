"""How the app is served: uvicorn options derived from the settings (used by ``csms serve`` and tests)."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from dataclasses import dataclass
from typing import Any, Callable, cast

import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState

from csms.core.ocpp.connection import FRAMES_EXTENSION
from csms.settings import Settings

logger = logging.getLogger("uvicorn.error")

# Frames waiting for the app at which WebSocketProtocol stops reading a socket.
INBOX_PAUSE = 4


class _Inbox:
    """What uvicorn's WebSocket protocol uses of ``asyncio.Queue`` (``put_nowait``, ``get``,
    ``empty``) for the frames waiting for the app, without the Queue's four deques (about 3 KB
    per connection, most of what an idle station's socket costs beyond the kernel's buffers).
    One reader at a time, as ASGI's ``receive`` is awaited by one task."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Any:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.pop(0)

    def empty(self) -> bool:
        return not self._items


class _Writable:
    """``asyncio.Event`` as uvicorn uses it for write back-pressure (set, clear, wait), with its
    waiters' list made only when a send really has to wait."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = True
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiters, self._waiters = self._waiters, None
        for fut in waiters or ():
            if not fut.done():
                fut.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        fut = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(fut)
        await fut
        return True


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol plus the ASGI TLS extension, lighter per connection.

    With client certificates (security profile 3) the scope gets ``extensions["tls"]`` with the
    verified peer certificate (``client_cert_chain``, PEM) and its subject as a dict
    (``client_cert_subject``, e.g. ``{"commonName": "CP-1"}``), so the OCPP endpoint can match
    the certificate to the station id.

    Memory per connection (tens of thousands of mostly idle stations per node): the receive
    queue and the back-pressure flag are the small classes above, and the handshake's request
    and response objects are dropped once the handshake is answered.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = _Inbox()  # type: ignore[assignment]
        self.writable = _Writable()  # type: ignore[assignment]

    def send_receive_event_to_app(self) -> None:
        # uvicorn pauses reading after every frame and resumes when the app takes it: two changes
        # of the socket's epoll registration per message, whose answer the station awaits anyway.
        # Reading pauses here only once INBOX_PAUSE frames wait (what a station may send
        # beyond that is still bounded by one pause per read, as before).
        paused = self.read_paused
        self.read_paused = True  # tells uvicorn's method not to pause
        try:
            super().send_receive_event_to_app()
        finally:
            self.read_paused = paused
        if not paused and len(self.queue._items) >= INBOX_PAUSE:  # type: ignore[attr-defined]
            self.read_paused = True
            self.transport.pause_reading()

    def shutdown(self) -> None:
        # uvicorn sends close 1012 to every open connection at shutdown; one whose peer's close
        # came first is already closing, and websockets refuses a second close (InvalidState),
        # which would abort the server's shutdown and leave the process running: close it as is.
        try:
            super().shutdown()
        except InvalidState:
            self.transport.close()

    def start_keepalive(self) -> None:
        # called once the handshake's answer is written: its request and response are done with
        self.request = None  # type: ignore[assignment]
        self.response = None  # type: ignore[assignment]
        super().start_keepalive()

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)  # builds self.scope; the app task has not run yet
        # The OCPP connection reads and writes its frames here once the handshake is accepted,
        # not through Litestar's and the middlewares' wrappers of receive and send (see
        # FRAMES_EXTENSION).
        cast("dict[str, Any]", self.scope["extensions"])[FRAMES_EXTENSION] = self
        ssl_object = self.transport.get_extra_info("ssl_object")
        if ssl_object is None:
            return
        der = ssl_object.getpeercert(binary_form=True)
        if not der:
            return
        subject: dict[str, str] = {}
        for rdn in (ssl_object.getpeercert() or {}).get("subject", ()):
            for key, value in rdn:
                subject[key] = value
        self.scope["extensions"]["tls"] = {
            "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)],
            "client_cert_subject": subject,
            "tls_version": None, "cipher_suite": None, "server_cert": None,
        }


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "ws": WebSocketProtocol,
        # a larger frame is never buffered: the transport closes the socket with 1009
        "ws_max_size": settings.max_frame_bytes,
        "ws_per_message_deflate": settings.ws_compression,
        "ws_ping_interval": settings.ping_interval or None,
        "ws_ping_timeout": settings.ping_timeout or None,
        "lifespan": "on",
        "access_log": False,
        # open admin pages hold live-update streams; do not let them hold up a shutdown
        "timeout_graceful_shutdown": 5,
    }
    if settings.port_is_tls:
        build_ssl_context(settings)  # a missing file or a bad pair stops `csms serve` here, with the reason
        options["ssl_context_factory"] = SSLContextFactory(settings)
    return options


def tls_listener_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of the second listener (``tls_port``), None without one."""
    if not settings.tls_port:
        return None
    if not settings.tls_enabled:
        raise TLSConfigError("tls_port is set but there is no server certificate (tls_cert/tls_key or tls_certs)")
    if settings.tls_port == settings.port:
        raise TLSConfigError(f"tls_port {settings.tls_port} is the same as port")
    return build_ssl_context(settings)


class Server(uvicorn.Server):
    """uvicorn's server, plus a second listener when ``tls_port`` is set.

    The second listener is one more socket of the same server: its connections are made by the
    same protocol factory (same app, same lifespan state, same connection set), so a graceful
    shutdown closes both, and the app sees ``wss``/``https`` on it (uvicorn takes the scheme from
    the transport) and ``ws``/``http`` on ``port``. Security profiles 2 and 3 stations connect to
    ``tls_port``, profile 1 stations to ``port``; each station is still held to its stored
    profile. ``failed`` is set when the TLS port cannot be bound (the server then shuts down).
    """

    def __init__(self, config: uvicorn.Config, tls_context: ssl.SSLContext | None = None,
                 tls_port: int = 0) -> None:
        super().__init__(config)
        self.tls_context = tls_context
        self.tls_port = tls_port
        self.failed = False

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.tls_context is None or self.should_exit:
            return
        self.started = False  # until the TLS port listens too
        config = self.config

        def create_protocol(_loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Protocol:
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=self.server_state, app_state=self.lifespan.state, _loop=_loop)

        try:
            listener = await asyncio.get_running_loop().create_server(
                create_protocol, host=config.host, port=self.tls_port, ssl=self.tls_context,
                backlog=config.backlog)
        except OSError as exc:
            logger.error("tls_port %s: %s", self.tls_port, exc)
            self.failed = self.should_exit = self.started = True  # started: the app's shutdown runs
            return
        self.servers.append(listener)
        self.started = True
        logger.info("TLS listener on %s:%s", config.host, self.tls_port)


def make_server(app: Any, settings: Settings, *, host: str, port: int, **config: Any) -> Server:
    """The server ``csms serve`` runs (one process): ``port`` and, with ``tls_port``, the TLS
    listener. Raises TLSConfigError for certificate settings that cannot be served."""
    tls_context = tls_listener_context(settings)
    options = uvicorn_options(settings)
    options.update(config)
    return Server(uvicorn.Config(app, host=host, port=port, **options), tls_context, settings.tls_port)


# -- TLS: the server certificates (RSA and ECDSA, several names) and client certificates -----------


class TLSConfigError(ValueError):
    """A certificate setting that cannot be served (the message says which file and why)."""


@dataclass(frozen=True)
class ServerCertificate:
    cert: str  # PEM file: the certificate, then its intermediates
    key: str
    key_type: str  # "RSA", "EC", "Ed25519", ...
    names: tuple[str, ...]  # lower-case DNS names of its subjectAltName (else its commonName)


def certificate_pairs(settings: Settings) -> list[tuple[str, str]]:
    """The configured (certificate, key) files: ``tls_cert``/``tls_key`` first, then ``tls_certs``."""
    pairs = []
    if settings.tls_cert:
        if not settings.tls_key:
            raise TLSConfigError("tls_cert is set but tls_key is empty")
        pairs.append((settings.tls_cert, settings.tls_key))
    for item in settings.tls_certs.split(","):
        item = item.strip()
        if not item:
            continue
        cert, sep, key = item.rpartition(":")
        if not sep or not cert or not key:
            raise TLSConfigError(f"tls_certs: {item!r} is not a cert.pem:key.pem pair")
        pairs.append((cert.strip(), key.strip()))
    return pairs


def describe_certificate(cert: str, key: str) -> ServerCertificate:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID

    try:
        with open(cert, "rb") as f:
            first = x509.load_pem_x509_certificates(f.read())[0]
    except (OSError, ValueError, IndexError) as exc:
        raise TLSConfigError(f"server certificate {cert}: {exc}") from None
    public = first.public_key()
    key_type = "RSA" if isinstance(public, rsa.RSAPublicKey) else \
        "EC" if isinstance(public, ec.EllipticCurvePublicKey) else type(public).__name__
    try:
        san = first.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [n.lower() for n in san.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        names = [str(a.value).lower() for a in first.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return ServerCertificate(cert, key, key_type, tuple(names))


def _matches(pattern: str, name: str) -> bool:
    """RFC 6125 host matching: exact, or a wildcard ``*.`` standing for one left-most label."""
    if pattern == name:
        return True
    return pattern.startswith("*.") and "." in name and name.split(".", 1)[1] == pattern[2:]


def _one_per_key_type(certificates: list[ServerCertificate]) -> list[ServerCertificate]:
    """OpenSSL keeps one chain per key type in a context: the first certificate of each type."""
    chosen: dict[str, ServerCertificate] = {}
    for c in certificates:
        chosen.setdefault(c.key_type, c)
    return list(chosen.values())


# Python's default server suites, then the two of OCPP 2.0.1 A00.FR.318 (A00.FR.421) it leaves out:
# TLS_RSA_WITH_AES_128/256_GCM (RSA key exchange, no forward secrecy). The server's order counts
# (OP_CIPHER_SERVER_PREFERENCE), so they are chosen only by a station that offers nothing better.
CIPHERS = ("@SECLEVEL=2:ECDH+AESGCM:ECDH+CHACHA20:ECDH+AES:DHE+AES:!aNULL:!eNULL:!aDSS:!SHA1:!AESCCM"
           ":AES128-GCM-SHA256:AES256-GCM-SHA384")


def _context(settings: Settings, certificates: list[ServerCertificate]) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # OCPP security profiles 2 and 3: TLS 1.2 or newer
    ctx.set_ciphers(CIPHERS)
    for c in certificates:
        try:
            ctx.load_cert_chain(c.cert, c.key)
        except (OSError, ssl.SSLError) as exc:
            raise TLSConfigError(f"server certificate {c.cert} with key {c.key}: {exc}") from None
    if settings.tls_ca:  # security profile 3: stations may (or must) present client certificates
        try:
            ctx.load_verify_locations(cafile=settings.tls_ca)
        except (OSError, ssl.SSLError) as exc:
            raise TLSConfigError(f"tls_ca {settings.tls_ca}: {exc}") from None
        ctx.verify_mode = ssl.CERT_REQUIRED if settings.tls_client_cert == "required" else ssl.CERT_OPTIONAL
    return ctx


def build_ssl_context(settings: Settings) -> ssl.SSLContext:
    """The listener's SSLContext.

    All configured server certificates are loaded, the first of each key type into one context,
    so OpenSSL hands an RSA-only client the RSA chain and an ECDSA-only client the ECDSA chain.
    When certificates name different hosts, each SNI server name gets a context with the first
    certificate of each key type that covers it (``sni_callback``); a client without SNI, or
    naming no configured host, gets the first certificate's context.
    """
    certificates = [describe_certificate(cert, key) for cert, key in certificate_pairs(settings)]
    if not certificates:
        raise TLSConfigError("no server certificate: set tls_cert/tls_key or tls_certs")
    default_set = _one_per_key_type(certificates)
    contexts: dict[tuple[ServerCertificate, ...], ssl.SSLContext] = {}

    def context_for(chosen: list[ServerCertificate]) -> ssl.SSLContext:
        key = tuple(chosen)
        if key not in contexts:
            contexts[key] = _context(settings, chosen)
        return contexts[key]

    default = context_for(default_set)
    by_name: list[tuple[str, ssl.SSLContext]] = []
    for name in dict.fromkeys(n for c in certificates for n in c.names):
        chosen = _one_per_key_type([c for c in certificates if name in c.names])
        by_name.append((name, context_for(chosen)))
    if len(contexts) > 1:
        default.sni_callback = _sni_callback(by_name, default)
    return default


def _sni_callback(by_name: list[tuple[str, ssl.SSLContext]],
                  default: ssl.SSLContext) -> Callable[[ssl.SSLObject, str | None, ssl.SSLContext], None]:
    exact = {name: ctx for name, ctx in by_name if not name.startswith("*.")}
    wildcards = [(name, ctx) for name, ctx in by_name if name.startswith("*.")]

    def choose(sock: ssl.SSLObject, server_name: str | None, _ctx: ssl.SSLContext) -> None:
        if not server_name:
            return
        name = server_name.lower().rstrip(".")
        ctx = exact.get(name) or next((c for pattern, c in wildcards if _matches(pattern, name)), None)
        if ctx is not None and ctx is not default:
            sock.context = ctx

    return choose


@dataclass(frozen=True)
class SSLContextFactory:
    """uvicorn's ``ssl_context_factory``: the context from the settings (a picklable object, so
    each worker process of ``csms serve --workers N`` builds its own)."""

    settings: Settings

    def __call__(self, config: Any, default_factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        return build_ssl_context(self.settings)
