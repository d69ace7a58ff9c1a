"""The lean OCPP-J dispatcher shared by the version adapters (OCPP-J 1.6, 2.0.1 and 2.1's SEND and
CALLRESULTERROR frames).

It keeps the ``ocpp`` library's schemas, action enums, ``@on`` routing decorator and
``ChargePoint`` base, but parses frames with msgspec, validates with compiled schemas
(``validation.py``), calls handlers with the payload as the station sent it (no case
conversion) and answers without a thread hop. Handlers return the answer payload as a dict.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from time import perf_counter as _clock
from typing import TYPE_CHECKING, Any, Awaitable, Callable, ClassVar, cast

import msgspec
from ocpp.charge_point import ChargePoint

from csms.core import logs, tracing
from csms.core.events import deferred_events
from csms.core.metrics import error as _count_error, message_handled as _message_handled
from csms.core.ocpp.validation import (
    ACTIONS,
    MAX_DEPTH,
    MAX_MESSAGE_ID,
    SEND_ACTIONS,
    call_head,
    OcppError,
    check_domain,
    decode_unbounded,
    error_code,
    validate,
)
from csms.core.services.passwords import redact
from csms.core.timeutil import InvalidTimestamp, utcnow

if TYPE_CHECKING:
    from litestar import WebSocket
    from litestar.types import WebSocketDisconnectEvent, WebSocketReceiveEvent

    from csms.core.runtime import Core
    from csms.core.services.stations import StationState

log = logging.getLogger("csms.ocpp")

_decode = msgspec.json.decode
_encode = msgspec.json.Encoder().encode

_INSERT_FRAME = (
    "INSERT INTO message_log (station_id, direction, message_type, unique_id, action, payload, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)

Handler = Callable[[Any, dict[str, Any]], Awaitable[dict[str, Any]]]

CLOSE_MESSAGE_TOO_BIG = 1009
# The ASGI scope extension under which csms.server.WebSocketProtocol (uvicorn's protocol as
# ``csms serve`` runs it) offers itself: its ``receive()`` and ``send(message)`` are the
# connection's own ASGI callables. Once the handshake is accepted, frames go to and from them
# directly instead of through Litestar's WebSocket and every middleware's wrapper of ``send``,
# which only pass them on (about 4 % of the event loop's time per call). Elsewhere (test
# clients, other servers) the Litestar socket is used.
FRAMES_EXTENSION = "csms.frames"

# Stand-ins routed for binary frames (not OCPP-J): the first gets an RPC error, the second is too big.
_BINARY_FRAME = "\x00binary"
_OVERSIZED_BINARY = "\x00binary-oversized"


class StationConnection(ChargePoint):
    """One station's WebSocket. Subclasses register handlers with ``@on(Action.X)``."""

    version: ClassVar[str]
    subprotocol: ClassVar[str]
    handlers: ClassVar[dict[str, Handler]] = {}
    # Actions a station may send while not Accepted (besides those we triggered).
    allowed_while_pending: ClassVar[frozenset[str]] = frozenset({"BootNotification"})
    # Station-to-CSMS actions of the version this CSMS does not handle: NotImplemented, not NotSupported.
    not_implemented: ClassVar[frozenset[str]] = frozenset()
    # OCPP-J 2.1's CALLRESULTERROR (5) and SEND (6) message types; before 2.1 they are MessageTypeNotSupported.
    rpc_2_1: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.handlers = {}
        for klass in reversed(cls.__mro__):
            for attr in vars(klass).values():
                action = getattr(attr, "_on_action", None)
                if action is not None:
                    cls.handlers[str(getattr(action, "value", action))] = attr

    def __init__(self, core: Core, state: StationState, socket: WebSocket) -> None:
        # ChargePoint.__init__ is not called: it builds a route map per instance and a response
        # queue this dispatcher does not use; the handler table is built once per class.
        self.core = core
        self.state = state
        self.station_id = state.station_id
        self.socket = socket
        self._call_lock = asyncio.Lock()
        self._pending: dict[str, tuple[str, asyncio.Future[dict[str, Any]]]] = {}
        self._triggered: set[str] = set()
        # Whether the CALL being handled is one we asked for with TriggerMessage (a station's
        # CALLs are handled one at a time, so one flag per connection is enough).
        self.answering_trigger = False
        self._closed = False
        self._log_frames = core.settings.message_log
        self._max_frame = core.settings.max_frame_bytes
        frames: Any = (socket.scope.get("extensions") or {}).get(FRAMES_EXTENSION)
        self._receive_event = frames.receive if frames is not None else socket.receive
        self._send_event = frames.send if frames is not None else None

    # ChargePoint compatibility: the library names the station ``id``.
    @property
    def id(self) -> str:
        return self.station_id

    @id.setter
    def id(self, value: str) -> None:
        self.station_id = value

    # -- transport ----------------------------------------------------------------------------

    async def serve(self) -> None:
        """Read frames until the socket closes."""
        # After the accept a websocket only receives these two (typed as any ASGI receive event)
        receive = cast("Callable[[], Awaitable[WebSocketReceiveEvent | WebSocketDisconnectEvent]]",
                       self._receive_event)
        try:
            while True:
                event = await receive()
                if event["type"] == "websocket.disconnect":
                    self.socket.connection_state = "disconnect"  # as Litestar's receive would record
                    break
                text = event.get("text")
                if text is None:  # OCPP-J is text frames only
                    await self.route_message(_BINARY_FRAME if len(event.get("bytes") or b"") <= self._max_frame
                                             else _OVERSIZED_BINARY)
                else:
                    await self.route_message(text)
                if self._closed:
                    break
        finally:
            self._closed = True
            for _, fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("station disconnected"))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self.socket.close(code=code, reason=reason)
        except Exception:  # already gone
            pass

    async def _send(self, frame: list[Any], action: str, logged: list[Any] | None = None) -> None:
        """Send ``frame``; the frame log gets ``logged`` instead when given (a secret masked)."""
        text = _encode(frame).decode()
        if self._log_frames:
            self._log("out", frame[0], frame[1], action, text if logged is None else _encode(logged).decode())
        if self._send_event is not None and not self._closed:
            await self._send_event({"type": "websocket.send", "text": text})
        else:
            await self.socket.send_text(text)

    def _log(self, direction: str, message_type: int, unique_id: str, action: str, text: str) -> None:
        if "\x00" in text:  # only an undecodable frame carries a raw NUL; no database stores one
            text = text.replace("\x00", "\ufffd")
        self.core.writer.add(_INSERT_FRAME, (self.station_id, direction, message_type, str(unique_id)[:64],
                                             action[:64], text, utcnow()))

    # -- incoming -----------------------------------------------------------------------------

    async def route_message(self, raw_msg: str) -> None:
        self.core.stations.seen(self.state)  # any frame, answers and heartbeats included
        version = self.version
        size = len(raw_msg)
        if size * 4 > self._max_frame and (size > self._max_frame or len(raw_msg.encode()) > self._max_frame) \
                or raw_msg is _OVERSIZED_BINARY:
            # Refused before it is parsed or logged: the frame itself is never stored.
            log.warning("%s: frame of %d characters exceeds the limit of %d bytes; closing with 1009",
                        self.station_id, size, self._max_frame)
            await self.close(CLOSE_MESSAGE_TOO_BIG, "frame too large")
            return
        if raw_msg is _BINARY_FRAME:
            await self._send_error("-1", error_code(version, "rpc"), "binary frames are not OCPP-J; send text", "")
            return
        unbounded = False
        try:
            try:
                msg = _decode(raw_msg)
            except msgspec.ValidationError:  # JSON, but a number beyond what msgspec holds
                msg, unbounded = decode_unbounded(raw_msg), True
        except RecursionError:
            head = call_head(raw_msg)
            uid, action = head or ("-1", "")
            self._log_in(2 if head else 0, uid, action, raw_msg)
            await self._send_error(uid, error_code(version, "format" if head else "rpc"),
                                   f"frame nests deeper than {MAX_DEPTH} levels", action)
            return
        except (msgspec.DecodeError, ValueError) as exc:  # an unparsed frame's id is "-1" (OCPP-J)
            self._log_in(0, "-1", "", raw_msg)
            await self._send_error("-1", error_code(version, "rpc"), f"frame is not valid JSON: {exc}", "")
            return
        if not isinstance(msg, list) or len(msg) < 3 or not isinstance(msg[0], int) or not isinstance(msg[1], str):
            uid = msg[1] if isinstance(msg, list) and len(msg) > 1 and isinstance(msg[1], str) else "-1"
            self._log_in(0, uid, "", raw_msg)
            await self._send_error(uid, error_code(version, "rpc"),
                                   "frame must be [MessageTypeId, MessageId, ...] with an integer type and a string id", "")
            return
        mtype, uid = msg[0], msg[1]
        if mtype == 2:
            action = msg[2] if isinstance(msg[2], str) else ""
            self._log_in(2, uid, action, raw_msg)
            if len(msg) != 4:
                await self._send_error(uid, error_code(version, "rpc"), "a CALL has exactly 4 elements", action)
                return
            if len(uid) > MAX_MESSAGE_ID or not uid:
                await self._send_error(uid, error_code(version, "rpc"),
                                       f"a message id has 1 to {MAX_MESSAGE_ID} characters", action)
                return
            token = logs.message_id.set(uid)
            try:
                with tracing.call_span(self.station_id, version, action, uid):
                    await self._handle_call(uid, action, msg[3], raw_msg, unbounded)
            finally:
                logs.message_id.reset(token)
        elif mtype in (3, 4):
            pending = self._pending.get(uid)
            self._log_in(mtype, uid, pending[0] if pending else "", raw_msg)
            if pending is None:
                log.warning("%s: answer to unknown or expired call %s", self.station_id, uid)
                return
            action, fut = pending
            if fut.done():
                return
            if mtype == 3:
                payload = msg[2]
                try:
                    check_domain(version, payload, raw_msg, unbounded_numbers=unbounded)
                    validate(version, action, payload, response=True)
                except OcppError as exc:
                    fut.set_exception(OcppError(exc.code, f"station's answer breaks the schema: {exc.description}",
                                                {"payload": payload, **exc.details}))
                    return
                fut.set_result(payload)
            else:
                code = msg[2] if len(msg) > 2 and isinstance(msg[2], str) else "GenericError"
                desc = msg[3] if len(msg) > 3 and isinstance(msg[3], str) else ""
                details = msg[4] if len(msg) > 4 and isinstance(msg[4], dict) else {}
                fut.set_exception(OcppError(code, desc, details))
        elif mtype == 6 and self.rpc_2_1:
            action = msg[2] if isinstance(msg[2], str) else ""
            self._log_in(6, uid, action, raw_msg)
            token = logs.message_id.set(uid)
            try:
                with tracing.call_span(self.station_id, version, action, uid):
                    await self._handle_send(uid, action, msg, raw_msg, unbounded)
            finally:
                logs.message_id.reset(token)
        elif mtype == 5 and self.rpc_2_1:
            # An error in answer to one of our CALLRESULTs: nothing to answer, nothing to undo.
            self._log_in(5, uid, "", raw_msg)
            code = msg[2] if isinstance(msg[2], str) else "GenericError"
            desc = msg[3] if len(msg) > 3 and isinstance(msg[3], str) else ""
            log.warning("%s: CALLRESULTERROR %s for our answer %s: %s", self.station_id, code[:64], uid, desc[:255])
        else:
            self._log_in(mtype, uid, "", raw_msg)
            await self._send_error(uid, error_code(version, "message_type"),
                                   f"MessageTypeId {mtype} is not supported", "")

    def _log_in(self, mtype: int, uid: str, action: str, raw: str) -> None:
        if self._log_frames:
            self._log("in", mtype, uid, action, raw)

    async def _send_error(self, uid: str, code: str, description: str, action: str,
                          details: dict[str, Any] | None = None) -> None:
        log.info("%s: CALLERROR %s for %s %s: %s", self.station_id, code, action or "frame", uid, description)
        await self._send([4, uid, code, description[:255], details or {}], action)

    async def _handle_send(self, uid: str, action: str, msg: list[Any], raw: str, unbounded: bool) -> None:
        """A SEND (OCPP-J 2.1): handled like a CALL of a SEND action, but never answered, not
        even with a CALLERROR; what is wrong with it is logged."""
        version = self.version
        started = _clock()
        outcome = "handled"
        try:
            if len(msg) != 4:
                raise OcppError(error_code(version, "rpc"), "a SEND has exactly 4 elements")
            if not uid or len(uid) > MAX_MESSAGE_ID:
                raise OcppError(error_code(version, "rpc"), f"a message id has 1 to {MAX_MESSAGE_ID} characters")
            handler = self.handlers.get(action)
            if action not in SEND_ACTIONS[version] or handler is None:
                raise OcppError(error_code(version, "not_supported"), f"{action!r} is not a SEND message of OCPP {version}")
            check_domain(version, msg[3], raw, unbounded_numbers=unbounded)
            validate(version, action, msg[3])
            if self.state.registration_status != "Accepted":
                raise OcppError(error_code(version, "security"), f"station is {self.state.registration_status}")
            token = deferred_events.set([])
            try:
                await handler(self, msg[3])
            finally:
                held = deferred_events.get()
                deferred_events.reset(token)
            if held:
                self.core.events.emit_all(held)
        except (OcppError, InvalidTimestamp) as exc:
            outcome = getattr(exc, "code", error_code(version, "property"))
            log.warning("%s: SEND %s %s dropped (not answered, as OCPP-J 2.1 requires): %s",
                        self.station_id, action or "frame", uid, exc)
        except Exception:
            outcome = error_code(version, "internal")
            log.exception("%s: handler for SEND %s failed", self.station_id, action)
            _count_error("handler")
        _message_handled(action, outcome, _clock() - started)

    async def _handle_call(self, uid: str, action: str, payload: Any, raw: str, unbounded: bool = False) -> None:
        version = self.version
        started = _clock()
        try:
            handler = self.handlers.get(action)
            if handler is None or action in SEND_ACTIONS[version]:
                if action not in ACTIONS[version]:
                    raise OcppError(error_code(version, "not_implemented"), f"unknown action {action!r}")
                if action in SEND_ACTIONS[version]:
                    raise OcppError(error_code(version, "rpc"), f"{action} is a SEND message (MessageTypeId 6), "
                                                                "not a CALL")
                if action in self.not_implemented:
                    raise OcppError(error_code(version, "not_implemented"),
                                    f"this CSMS does not implement {action} (OCPP {version})")
                raise OcppError(error_code(version, "not_supported"),
                                f"{action} is not a message a station sends to the CSMS")
            check_domain(version, payload, raw, unbounded_numbers=unbounded)
            validate(version, action, payload)
            self.answering_trigger = action in self._triggered
            self._triggered.discard(action)
            if self.state.registration_status != "Accepted" and action not in self.allowed_while_pending \
                    and not self.answering_trigger:
                raise OcppError(error_code(version, "security"),
                                f"station is {self.state.registration_status}; only BootNotification is allowed")
            token = deferred_events.set([])
            try:
                result = await handler(self, payload)
                validate(version, action, result, response=True)
            finally:
                held = deferred_events.get()
                deferred_events.reset(token)
        except OcppError as exc:
            await self._send_error(uid, exc.code, exc.description, action, exc.details.get("public"))
            _message_handled(action, exc.code, _clock() - started)
            return
        except InvalidTimestamp as exc:
            await self._send_error(uid, error_code(version, "property"), str(exc), action)
            _message_handled(action, error_code(version, "property"), _clock() - started)
            return
        except Exception:
            log.exception("%s: handler for %s failed", self.station_id, action)
            await self._send_error(uid, error_code(version, "internal"), f"the CSMS failed to process {action}",
                                   action)
            _message_handled(action, error_code(version, "internal"), _clock() - started)
            _count_error("handler")
            return
        await self._send([3, uid, result], action)
        _message_handled(action, "answered", _clock() - started)
        if held:
            self.core.events.emit_all(held)

    # -- outgoing -----------------------------------------------------------------------------

    async def call(self, action: str, payload: dict[str, Any], *, timeout: float | None = None,
                   ) -> dict[str, Any]:
        """Send a CALL and return the station's CALLRESULT payload.

        Raises ``OcppError`` for a CALLERROR (or an invalid payload on either side) and
        ``asyncio.TimeoutError``. One outbound CALL at a time per connection, as OCPP-J requires.
        """
        if action in SEND_ACTIONS[self.version]:
            raise OcppError(error_code(self.version, "not_supported"), f"{action} is a SEND message, not a CALL")
        validate(self.version, action, payload)
        triggered = payload.get("requestedMessage", "") if action in ("TriggerMessage", "ExtendedTriggerMessage") else ""
        if triggered:  # a Pending station may send what we asked for (once), even before the answer
            self._triggered.add(triggered)
        try:
            response = await self._call(action, payload, timeout)
        except BaseException:
            self._triggered.discard(triggered)
            raise
        if triggered and response.get("status") != "Accepted":
            self._triggered.discard(triggered)
        return response

    async def _call(self, action: str, payload: dict[str, Any], timeout: float | None) -> dict[str, Any]:
        async with self._call_lock:
            if self._closed:
                raise ConnectionError("station disconnected")
            uid = str(uuid.uuid4())
            fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self._pending[uid] = (action, fut)
            try:
                masked = redact(action, payload)  # a station password never reaches the frame log
                await self._send([2, uid, action, payload], action,
                                 None if masked is payload else [2, uid, action, masked])
                async with asyncio.timeout(timeout or self.core.settings.call_timeout):
                    return await fut
            finally:
                self._pending.pop(uid, None)
