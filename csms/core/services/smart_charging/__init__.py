"""Smart charging: each site's capacity shared among its sessions, sent as charging profiles.

The core decides no strategy. For every site it builds the tree of limits (grid connection →
hubs → stations), gathers the active sessions as :class:`~csms.core.domain.Load` objects (phases
in use from the per-phase ``Current.Import`` samples, mapped onto the grid through the station's
phase rotation), asks the ``site_capacity`` hooks (the minimum of all answers and the grid limit
counts) and the ``allocate_capacity`` hook (first answer wins), checks the answer against every
limit of the tree, and turns it into charging profiles in each station's protocol version.

Rules that keep a site within its fuses (``plugins/loadbalancing/README.md`` has the operator's view):

* **Every connector has a known worst case.** A connector with a transaction is limited by its
  ``TxProfile``; every connector, idle or not, falls back to the station's ``TxDefaultProfile``
  (on EVSE 0) once its transaction ends. The default ``D`` is the largest value such that, at
  every node and phase, ``sum(max(allocation, D)) + D × idle connectors`` fits, and it is never
  above the station's *safe share* (each node's limit divided by the connectors below it).
  Below the station's minimum current it is 0: a car that plugs in waits for its allocation.
  So the profiles the stations hold add up within every limit at all times, and a station
  that loses its connection keeps charging within what was reserved for it.
* **Stations that cannot be reached keep what they hold.** An offline (or not yet booted, or
  failing) station's connectors are reserved at the limits last acknowledged (its station
  maximum when nothing is known) and subtracted from the limits the others share.
* **Decreases first.** Every round sends all decreases (and profiles for stations whose state
  is unknown, such as just after a boot), waits for them, then sends the increases. Increases
  smaller than ``min_change_a`` are not sent (the station keeps a lower limit, which is safe);
  decreases are always sent.
* **Time-varying capacity** (peak shaving) is written into the profiles: where the capacity
  falls later, the allocation is scaled by the ratio of the later capacity to today's, so a
  station that goes offline still follows the schedule.

A round runs on session start/stop, on station boot/connect/disconnect, on meter values (at
most once per ``meter_interval_s`` per site), at the next change of capacity, and every
``interval_s``; always off the stations' request path (events arrive after the answer).
Configuration: ``CSMS_SMART_CHARGING_*`` or ``[smart_charging]`` (:class:`~csms.settings.SmartChargingSettings`).

The modules: :mod:`~.service` (the loop), :mod:`~.allocation` (sharing the capacity and the
safety net), :mod:`~.phases` and :mod:`~.schedules` (amps per phase and over time),
:mod:`~.profiles` (payloads per version), :mod:`~.station_caps`, :mod:`~.rounds` (what a round
sees and decides), :mod:`~.view` (what the admin shows), :mod:`~.dryrun` and :mod:`~.targets`
(a session's departure time and energy), :mod:`~.departures` (departures learned from the
site's past sessions, setting ``learned_departures``).
"""

from csms.core.services.smart_charging.allocation import enforce_limits
from csms.core.services.smart_charging.phases import floor_tenth, grid_phases, phases_in_use
from csms.core.services.smart_charging.profiles import TX, Planned, build_profile
from csms.core.services.smart_charging.rounds import SiteRound
from csms.core.services.smart_charging.schedules import scaled_periods
from csms.core.services.smart_charging.service import SmartChargingService
from csms.settings import SmartChargingSettings

__all__ = [
    "TX",
    "Planned",
    "SiteRound",
    "SmartChargingService",
    "SmartChargingSettings",
    "build_profile",
    "enforce_limits",
    "floor_tenth",
    "grid_phases",
    "phases_in_use",
    "scaled_periods",
]
