"""Customer information (OCPP 2.0.1 N09/N10; OCPP 1.6 has none): ask a station to report
and/or clear what it holds about one customer, named by exactly one of an id token, a customer
identifier or a customer certificate; the station's NotifyCustomerInformation parts (``seqNo``,
``tbc``) are kept in the station event log as they come and assembled per request id.

The request is logged there too (category ``customer_information_request``), so a request still
waiting for its data shows; the command itself is audited as every command is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from csms.core.ocpp.outbound.v201 import ID_TOKEN_LENGTH, TOKEN_TYPES
from csms.core.services.commands import UnknownStation
from csms.core.services.operations import OperationError, live_calls_with
from csms.core.tables import Station, StationEvent
from csms.i18n import N_

if TYPE_CHECKING:
    from csms.core.services.commands import CommandService
    from csms.core.services.stations import StationService

REQUEST, PART = "customer_information_request", "customer_information"
HASH_ALGORITHMS = ("SHA256", "SHA384", "SHA512")
IDENTIFIER_LENGTH = 64  # CustomerInformationRequest.customerIdentifier
# The station's answers in words, in English (the REST API's ``words``); a page shows them
# translated (``gettext(words)``).
STATUS_WORDS = {"Accepted": N_("accepted: the station sends what it has"), "Rejected": N_("rejected by the station"),
                "Invalid": N_("the station finds the request invalid (no such customer, or bad identification)")}


def certificate_hash(value: dict[str, Any]) -> dict[str, Any]:
    """A CertificateHashDataType from ``hash_algorithm``, ``issuer_name_hash``,
    ``issuer_key_hash`` and ``serial_number``."""
    allowed = {"hash_algorithm", "issuer_name_hash", "issuer_key_hash", "serial_number"}
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise OperationError(N_("customer_certificate has %(allowed)s, not %(unknown)s"),
                             allowed=", ".join(sorted(allowed)), unknown=", ".join(unknown))
    algorithm = value.get("hash_algorithm")
    if algorithm not in HASH_ALGORITHMS:
        raise OperationError(N_("customer_certificate.hash_algorithm must be one of %(algorithms)s"),
                             algorithms=", ".join(HASH_ALGORITHMS))
    out = {"hashAlgorithm": algorithm}
    for key, name, limit in (("issuer_name_hash", "issuerNameHash", 128), ("issuer_key_hash", "issuerKeyHash", 128),
                             ("serial_number", "serialNumber", 40)):
        text = value.get(key)
        if not isinstance(text, str) or not 1 <= len(text.strip()) <= limit:
            raise OperationError(N_("customer_certificate.%(key)s must be 1 to %(maximum)s characters"), key=key,
                                 maximum=limit)
        out[name] = text.strip()
    return out


def _assembled(request_id: int, asked: dict[str, Any] | None, parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One request with its parts in ``seqNo`` order: ``complete`` once the part without
    ``tbc`` came and none before it is missing; ``data`` the parts' data joined."""
    by_seq: dict[int, dict[str, Any]] = {}
    for part in parts:
        by_seq.setdefault(int(part["details"].get("seqNo", 0)), part)
    ordered = [by_seq[n] for n in sorted(by_seq)]
    last = next((n for n, p in sorted(by_seq.items()) if not p["details"].get("tbc", False)), None)
    complete = last is not None and all(n in by_seq for n in range(last + 1))
    details = (asked or {}).get("details") or {}
    status: str | None = details.get("status")
    if complete:
        state = "complete"
    elif ordered:
        state = "receiving"
    elif status is not None and status != "Accepted":
        state = "refused"
    else:
        state = "waiting"
    times = [p["timestamp"] for p in ordered]
    return {"request_id": request_id, "state": state, "complete": complete,
            "status": status, "words": STATUS_WORDS.get(status or "", status or ""),
            "customer": details.get("customer", ""), "report": details.get("report"), "clear": details.get("clear"),
            "requested_by": details.get("by", ""), "requested_at": asked["timestamp"] if asked else None,
            "received_at": max(times) if times else None, "parts": len(ordered),
            "data": "".join(str(p["details"].get("data", "")) for p in ordered)}


class CustomerInformationService:
    def __init__(self, commands: CommandService, stations: StationService) -> None:
        self.commands = commands
        self.stations = stations

    async def _known(self, station_id: str) -> None:
        if not await Station.exists().where(Station.station_id == station_id):
            raise UnknownStation(station_id)

    async def request(self, station_id: str, *, report: bool = True, clear: bool = False,
                      id_token: str | None = None, token_type: str = "ISO14443",
                      customer_identifier: str | None = None, customer_certificate: dict[str, Any] | None = None,
                      by: str = "") -> dict[str, Any]:
        """CustomerInformation: report and/or clear what the station holds about one customer.
        Every check before anything is sent (``OperationError``); 1.6 is ``NotSupported``."""
        await self._known(station_id)
        if not report and not clear:
            raise OperationError(N_("ask for a report, a clear, or both"))
        given = [name for name, v in (("id_token", id_token), ("customer_identifier", customer_identifier),
                                      ("customer_certificate", customer_certificate)) if v not in (None, "", {})]
        if len(given) != 1:
            raise OperationError(N_("name the customer by exactly one of id_token, customer_identifier, "
                                    "customer_certificate (got %(given)s)"), given=", ".join(given) or "none")
        token: dict[str, Any] | None = None
        identifier: str | None = None
        certificate: dict[str, Any] | None = None
        if id_token:
            if len(id_token) > ID_TOKEN_LENGTH:
                raise OperationError(N_("id_token is at most %(maximum)s characters"), maximum=ID_TOKEN_LENGTH)
            if token_type not in TOKEN_TYPES:
                raise OperationError(N_("token_type must be one of %(types)s"), types=", ".join(sorted(TOKEN_TYPES)))
            token = {"idToken": id_token, "type": token_type}
            customer = f"id token {id_token} ({token_type})"
        elif customer_identifier:
            if len(customer_identifier) > IDENTIFIER_LENGTH:
                raise OperationError(N_("customer_identifier is at most %(maximum)s characters"), maximum=IDENTIFIER_LENGTH)
            identifier = customer_identifier
            customer = f"customer {customer_identifier}"
        else:
            if not isinstance(customer_certificate, dict):
                raise OperationError(N_("customer_certificate is an object"))
            certificate = certificate_hash(customer_certificate)
            customer = f"certificate serial {certificate['serialNumber']}"
        calls = live_calls_with(self.commands, station_id, "supports_customer_information",
                                "customer information (OCPP 2.0.1 has)")
        call = calls.customer_information(report=report, clear=clear, id_token=token, customer_identifier=identifier,
                                          customer_certificate=certificate)
        outcome = call.outcome(await self.commands.send(station_id, call.action, call.payload, requested_by=by))
        await self._log_request(station_id, outcome, customer=customer, report=report, clear=clear, by=by)
        return {**outcome, "words": STATUS_WORDS.get(outcome["status"], outcome["status"])}

    async def _log_request(self, station_id: str, outcome: dict[str, Any], *, customer: str, report: bool,
                           clear: bool, by: str) -> None:
        what = " and ".join(w for w, on in (("report", report), ("clear", clear)) if on)
        done = self.stations.record(
            station_id, REQUEST, str(outcome["request_id"]), summary=f"{what} of {customer}: {outcome['status']}",
            details={"request_id": outcome["request_id"], "customer": customer, "report": report, "clear": clear,
                     "by": by, "status": outcome["status"]}, wait=True)
        assert done is not None  # wait=True always gives a commit future
        await done

    async def _rows(self, station_id: str, *, request_id: int | None = None, scan: int = 1000) -> list[dict[str, Any]]:
        where = (StationEvent.station_id == station_id) & StationEvent.category.is_in([REQUEST, PART])
        if request_id is not None:
            where = where & (StationEvent.kind == str(request_id))
        return await StationEvent.select(StationEvent.category, StationEvent.kind, StationEvent.details,
                                         StationEvent.timestamp).where(where).order_by(
            StationEvent.timestamp, ascending=False).limit(scan).output(load_json=True)

    @staticmethod
    def _group(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        asked: dict[int, dict[str, Any]] = {}
        parts: dict[int, list[dict[str, Any]]] = {}
        order: list[int] = []
        for row in rows:
            try:
                request_id = int(row["kind"])
            except ValueError:
                continue
            if request_id not in asked and request_id not in parts:
                order.append(request_id)
            if row["category"] == REQUEST:
                asked.setdefault(request_id, row)
            else:
                parts.setdefault(request_id, []).append(row)
        return [_assembled(r, asked.get(r), parts.get(r, [])) for r in order]

    async def listing(self, station_id: str, *, limit: int = 20) -> list[dict[str, Any]]:
        """The newest requests to the station (and reports it sent unasked), newest first."""
        await self._known(station_id)
        return self._group(await self._rows(station_id))[:limit]

    async def result(self, station_id: str, request_id: int) -> dict[str, Any] | None:
        """One request assembled; None when the station neither was asked nor reported it."""
        await self._known(station_id)
        found = self._group(await self._rows(station_id, request_id=request_id))
        return found[0] if found else None
