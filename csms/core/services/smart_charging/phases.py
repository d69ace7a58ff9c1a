"""Phases and currents: which grid phases a car draws on, and amps per phase as OCPP takes them."""

from __future__ import annotations

import logging
import math

log = logging.getLogger("csms.smart_charging")

INF = math.inf
PHASES = (1, 2, 3)
EPSILON_A = 1e-6

Triple = tuple[float, float, float]  # amps on L1, L2, L3


def rotation_map(rotation: str | None) -> dict[int, int]:
    """Station phase (1-3) → grid phase (1-3) for a rotation such as "RST", "STR" or "TRS"."""
    letters = (rotation or "RST").upper()
    if sorted(letters) != ["R", "S", "T"]:
        log.warning("phase rotation %r is not a permutation of RST; taken as RST", rotation)
        letters = "RST"
    return {i + 1: "RST".index(letter) + 1 for i, letter in enumerate(letters)}


def grid_phases(rotation: str | None, station_phases: tuple[int, ...]) -> tuple[int, ...]:
    mapping = rotation_map(rotation)
    return tuple(sorted(mapping[p] for p in station_phases))


def phases_in_use(current_a: dict[str, float], threshold_a: float) -> tuple[int, ...]:
    """Station phases drawing at least ``threshold_a`` (all three when nothing is known)."""
    drawing = sorted(int(k[1]) for k, v in current_a.items()
                     if k in ("L1", "L2", "L3") and v is not None and v >= threshold_a)
    return tuple(drawing) or PHASES


def floor_tenth(amps: float) -> float:
    """Round down to 0.1 A (the 1.6 schema's multipleOf 0.1), never below 0."""
    if amps <= 0 or math.isnan(amps):
        return 0.0
    if math.isinf(amps):
        return amps
    return round(math.floor(amps * 10 + 1e-6) / 10, 1)


def finite_a(values: Triple) -> list[float | None]:
    """Per-phase limits for JSON: rounded, None where there is no limit."""
    return [None if math.isinf(v) else round(v, 3) for v in values]


def limits_of(l1: float | None, l2: float | None, l3: float | None) -> Triple:
    """Per-phase limits from three nullable columns (None: no limit)."""
    return tuple(INF if v is None else max(0.0, float(v)) for v in (l1, l2, l3))  # type: ignore[return-value]
