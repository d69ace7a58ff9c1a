"""How many items one message may carry: a 2.0.1 station's ``ItemsPerMessage[<message>]`` and
``BytesPerMessage[<message>]`` (DeviceDataCtrlr for GetVariables, SetVariables, GetReport;
MonitoringCtrlr for SetVariableMonitoring, ClearVariableMonitoring), and splitting a list of
items into messages that keep to both (B06.FR.05, B05.FR.06, N04.FR.08, N06).

The limits come from the variables the station reported (a base report, an earlier GetVariables),
else from a GetVariables of ``ItemsPerMessage[<message>]`` (one item, which any station takes; its
answer is stored, and a positive one is not asked again); ``None`` when the station does not say
(or says something that is no positive number, asked again next time): no limit then.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from csms.core.ocpp.outbound.calls import positive_int
from csms.core.tables import DeviceVariable

T = TypeVar("T")

# a CALL frame around a payload: [2,"<message id of up to 36 characters>","<action>",payload]
FRAME_OVERHEAD = 64


@dataclass(frozen=True)
class Limits:
    items: int | None  # ItemsPerMessage[message]
    bytes: int | None  # BytesPerMessage[message]


async def stored_limits(station_pk: int, component: str, message: str) -> Limits:
    """``component``'s ItemsPerMessage and BytesPerMessage of ``message`` as the station reported
    them (its stored device model, Actual values); None for what it did not report."""
    rows = await DeviceVariable.select(DeviceVariable.variable, DeviceVariable.value).where(
        (DeviceVariable.station == station_pk) & (DeviceVariable.component == component)
        & DeviceVariable.variable.is_in(["ItemsPerMessage", "BytesPerMessage"])
        & (DeviceVariable.variable_instance == message) & (DeviceVariable.attribute_type == "Actual"))
    values = {r["variable"]: positive_int(r["value"]) for r in rows}
    return Limits(values.get("ItemsPerMessage"), values.get("BytesPerMessage"))


def frame_size(action: str, payload: dict[str, Any]) -> int:
    """Bytes of the CALL frame carrying ``payload`` (as the CSMS writes JSON, at most)."""
    return len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()) + len(action) + FRAME_OVERHEAD


def split(items: list[T], limits: Limits, payload: Callable[[list[T]], tuple[str, dict[str, Any]]]) -> list[list[T]]:
    """``items`` in order, in as few messages as keep to ``limits``: at most ``limits.items`` per
    message and frames (``payload(chunk)`` gives the action and payload) of at most
    ``limits.bytes``. An item that alone is larger than the byte limit goes alone."""
    chunks: list[list[T]] = []
    current: list[T] = []
    for item in items:
        candidate = current + [item]
        too_many = limits.items is not None and len(candidate) > limits.items
        too_big = limits.bytes is not None and len(current) > 0 and frame_size(*payload(candidate)) > limits.bytes
        if current and (too_many or too_big):
            chunks.append(current)
            current = [item]
        else:
            current = candidate
    if current:
        chunks.append(current)
    return chunks
