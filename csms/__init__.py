"""An open, self-hosted Charging Station Management System (OCPP 1.6J and 2.0.1).

Plugin authors import from here: ``from csms import hookimpl``.
"""

from csms.core.domain import (
    AuthorizationResult,
    CapacityPeriod,
    CapacitySchedule,
    CostLine,
    Load,
    NavItem,
    SessionCost,
)
from csms.plugin_routes import public_route
from csms.plugins import hookimpl

__version__ = "0.1.0"

__all__ = [
    "AuthorizationResult",
    "CapacityPeriod",
    "CapacitySchedule",
    "CostLine",
    "Load",
    "NavItem",
    "SessionCost",
    "hookimpl",
    "public_route",
    "__version__",
]
