"""The interface every version's outbound adapter implements, and the pieces they share.

An operation asks for something version-neutral ("reset hard", "unlock EVSE 1 connector 1");
the station's adapter answers with a :class:`Call`: the action and payload of its protocol
version, how the station's answer reads as the neutral result, and what of the answer to store.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable

if TYPE_CHECKING:
    from datetime import datetime

    from csms.core.services.reports import ReportService
    from csms.core.services.stations import StationState

Outcome = Callable[[dict[str, Any]], dict[str, Any]]
Recorder = Callable[["ReportService", "StationState", dict[str, Any]], Awaitable[Any]]


class OperationError(ValueError):
    """The operation cannot be expressed for this station (bad arguments or state)."""


def answered(response: dict[str, Any]) -> dict[str, Any]:
    """The result of an answer that carries the outcome in its ``status``."""
    return {"status": response.get("status", "Accepted"), "response": response}


def accepted(response: dict[str, Any]) -> dict[str, Any]:
    """The result of an answer without a status of its own: the station took the call."""
    return {"status": "Accepted", "response": response}


def answered_for(request_id: int) -> Outcome:
    """``answered`` with the ``request_id`` the station's later notifications will carry."""
    return lambda response: {**answered(response), "request_id": request_id}


async def nothing_to_record(reports: ReportService, state: StationState, response: dict[str, Any]) -> None:
    """The answer carries nothing the CSMS keeps."""


def new_request_id() -> int:
    return random.randint(1, 2**31 - 1)


@dataclass(frozen=True)
class Call:
    """One CSMS-initiated call in the station's protocol version."""

    action: str
    payload: dict[str, Any]
    outcome: Outcome = answered
    record: Recorder = nothing_to_record


class StationCalls(ABC):
    """The calls of one protocol version, built from version-neutral requests.

    EVSE numbers are 2.0.1's; a 1.6 adapter reads EVSE N as connector N (0: the station).
    """

    version: str

    @abstractmethod
    def fit_id_token(self, id_token: str) -> str:
        """``id_token`` cut to what the version's id tokens hold."""

    @abstractmethod
    def remote_start(self, *, id_token: str, evse_id: int | None, token_type: str) -> Call: ...

    @abstractmethod
    def remote_stop(self, *, transaction_id: str) -> Call: ...

    @abstractmethod
    def reset(self, *, kind: str, evse_id: int | None) -> Call:
        """``kind``: soft or on_idle, hard or immediate."""

    @abstractmethod
    def unlock(self, *, evse_id: int, connector_id: int) -> Call: ...

    @abstractmethod
    def change_availability(self, *, operative: bool, evse_id: int, connector_id: int | None) -> Call: ...

    def clear_cache(self) -> Call:
        return Call("ClearCache", {})

    @abstractmethod
    def trigger(self, *, message: str, evse_id: int | None) -> Call: ...

    @abstractmethod
    def get_configuration(self, *, keys: list[str] | None) -> Call:
        """Read ``keys`` (all without); ``record`` stores what the answer reports."""

    @abstractmethod
    def set_configuration(self, *, key: str, value: str) -> Call:
        """Set ``key``; ``record`` stores the new value (once the station took it)."""

    @abstractmethod
    def rotate_password(self, *, password: str) -> Call:
        """Give the station the Basic-auth ``password``."""

    @abstractmethod
    def update_firmware(self, *, location: str, retrieve_at: datetime, signing_certificate: str | None,
                        signature: str | None, retries: int | None) -> Call:
        """The outcome has the ``request_id`` of the update (None when the call has none)."""

    @abstractmethod
    def get_logs(self, *, location: str) -> Call:
        """Upload diagnostics to ``location``; the outcome has the ``request_id`` (None when the call has none)."""

    @abstractmethod
    def set_charging_profile(self, *, evse_id: int, profile: dict[str, Any]) -> Call:
        """Send ``profile``, already shaped for the version."""

    @abstractmethod
    def profile_id(self, profile: dict[str, Any]) -> int:
        """The id of a ``profile`` shaped for the version."""

    @abstractmethod
    def reservation_refusal(self, *, id_token: str, group_id_token: str | None,
                            connector_type: str | None) -> str | None:
        """Why the version cannot express this reservation; None when it can."""

    @abstractmethod
    def reserve_now(self, *, reservation_id: int, id_token: str, token_type: str, group_id_token: str | None,
                    expires_at: datetime, evse_id: int | None, connector_type: str | None) -> Call:
        """Reserve EVSE ``evse_id`` (None or 0: any) for ``id_token`` or its group until ``expires_at``."""
