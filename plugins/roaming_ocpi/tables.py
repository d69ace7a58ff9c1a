"""The roaming plugin's tables (Piccolo app ``roaming_ocpi``, every table prefixed ``ocpi_``).

Core rows are referred to by id (sessions) or ident (stations). Credentials tokens a partner
uses to call us are stored as SHA-256 digests; the token we use to call a partner is stored as
given, since it must be sent. OCPI objects are kept as the JSON that was exchanged.
"""

from __future__ import annotations

from piccolo.columns import JSON, BigInt, Boolean, ForeignKey, Integer, Real, Text, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

from csms.plugin_api import Organization


class Partner(Table, tablename="ocpi_partner"):
    """A roaming partner (one OCPI connection): its roles, endpoints and credentials tokens.

    With ``organization`` set it is that organization's: it gets the Locations, Tariffs and
    cards of that organization's tree only, and its tokens charge at that tree's stations only;
    its users manage it. Without, it is the installation's (every station, every card). Deleting
    the organization deletes its partners."""

    name = Varchar(length=200, default="")
    status = Varchar(length=16, default="invited", index=True)  # invited|registered|unregistered
    country_code = Varchar(length=2, default="")  # of the partner's first role
    party_id = Varchar(length=3, default="")
    roles = JSON(default=[])  # the partner's CredentialsRole list
    versions_url = Varchar(length=255, default="")
    version = Varchar(length=8, default="")  # negotiated: 2.2.1 or 2.1.1
    role_211 = Varchar(length=8, default="")  # CPO or EMSP: a 2.1.1 partner's role (empty: v211.partner_role)
    endpoints = JSON(default=[])  # the partner's Endpoint list for ``version``
    incoming_token_hash = Varchar(length=64, default="", index=True)  # sha256 of token A or C
    incoming_token_kind = Varchar(length=1, default="A")  # A (registration only) or C
    outgoing_token = Varchar(length=255, default="")  # token B or C we send to the partner
    raw_tokens = Boolean(default=False)  # partner sends (and expects) tokens without Base64
    last_error = Text(default="")
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())
    registered_at = Timestamptz(null=True, default=None)
    organization = ForeignKey(references=Organization, null=True, on_delete=OnDelete.cascade, index=True)


class Snapshot(Table, tablename="ocpi_snapshot"):
    """The last published form of one of our objects (location, evse, tariff, token) and when it
    last changed: gives ``last_updated`` and tells the sync what to push."""

    kind = Varchar(length=16, index=True)
    key = Varchar(length=255, index=True)
    parent = Varchar(length=255, default="")  # the location of an EVSE
    digest = Varchar(length=64, default="")
    payload = JSON(default={})
    removed = Boolean(default=False)
    last_updated = Timestamptz(default=TimestamptzNow())
    # whose object it is (a site's, a tariff's, a card's organization; an EVSE's and a connector's:
    # their Location's): which partners get it. None: of no organization.
    organization = Integer(null=True, default=None, index=True)


class RemoteObject(Table, tablename="ocpi_object"):
    """An object a partner pushed to us: tokens (we are CPO), locations, sessions, CDRs, tariffs
    (we are eMSP). ``object_id`` is the OCPI id (uid for tokens, with ``object_type``)."""

    partner = Integer(index=True)
    module = Varchar(length=16, index=True)
    country_code = Varchar(length=2, default="")
    party_id = Varchar(length=3, default="")
    object_id = Varchar(length=39, index=True)
    object_type = Varchar(length=16, default="")  # Token.type
    token_uid = Varchar(length=36, default="", index=True)  # the driver's token of a session/CDR
    payload = JSON(default={})
    last_updated = Timestamptz(default=TimestamptzNow(), index=True)
    created_at = Timestamptz(default=TimestamptzNow())


class SessionLink(Table, tablename="ocpi_session"):
    """A session at our stations charged with a partner's token (we are CPO): to whom it is
    reported, with what token and authorization, and what was pushed so far."""

    session_id = BigInt(unique=True, index=True)
    partner = Integer(index=True)
    cdr_token = JSON(default={})
    auth_method = Varchar(length=16, default="WHITELIST")
    authorization_reference = Varchar(length=36, default="")
    location_id = Varchar(length=36, default="")
    evse_uid = Varchar(length=36, default="")
    connector_id = Varchar(length=36, default="")
    status = Varchar(length=16, default="ACTIVE")
    periods = JSON(default=[])
    period_start = Timestamptz(null=True, default=None)
    period_energy_wh = BigInt(default=0)
    last_pushed_at = Timestamptz(null=True, default=None)
    cdr_id = Varchar(length=39, default="")
    last_updated = Timestamptz(default=TimestamptzNow(), index=True)


class Cdr(Table, tablename="ocpi_cdr"):
    """A CDR we issued (we are CPO) for a session of a partner's token."""

    cdr_id = Varchar(length=39, unique=True, index=True)
    session_id = BigInt(index=True)
    partner = Integer(index=True)
    payload = JSON(default={})
    location_url = Varchar(length=255, default="")  # where the partner keeps it (POST answer)
    last_updated = Timestamptz(default=TimestamptzNow(), index=True)


class CommandRecord(Table, tablename="ocpi_command"):
    """A command received from an eMSP (direction ``in``) or sent to a CPO (``out``)."""

    direction = Varchar(length=3, index=True)  # in|out
    partner = Integer(index=True)
    command = Varchar(length=24)
    uid = Varchar(length=36, index=True)  # the id in our response_url (out)
    request = JSON(default={})
    response = JSON(null=True, default=None)  # CommandResponse
    result = JSON(null=True, default=None)  # CommandResult
    station_id = Varchar(length=64, default="")
    evse_id = Integer(null=True, default=None)
    token_uid = Varchar(length=36, default="", index=True)
    authorization_reference = Varchar(length=36, default="")
    reservation_id = Varchar(length=36, default="")  # the eMSP's reservation id
    ocpp_reservation_id = BigInt(null=True, default=None)
    status = Varchar(length=16, default="pending")  # pending|answered|done
    requested_by = Varchar(length=100, default="")
    created_at = Timestamptz(default=TimestamptzNow(), index=True)
    result_at = Timestamptz(null=True, default=None)
    # the requesting party of a command received (its OCPI-from-*, a party behind a hub): the
    # CommandResult goes back to it; "" for the partner itself
    from_country_code = Varchar(length=2, default="")
    from_party_id = Varchar(length=3, default="")


class Authorization(Table, tablename="ocpi_authorization"):
    """A real-time authorization: asked of an eMSP (``out``) or answered for our token (``in``)."""

    direction = Varchar(length=3)
    partner = Integer(index=True)
    token_uid = Varchar(length=36, index=True)
    station_id = Varchar(length=64, default="")
    location_id = Varchar(length=36, default="")
    allowed = Varchar(length=16, default="")
    authorization_reference = Varchar(length=36, default="")
    created_at = Timestamptz(default=TimestamptzNow(), index=True)


class Outbox(Table, tablename="ocpi_outbox"):
    """A push to a partner (see ``outbox.py``): retried with backoff until the partner takes it,
    parked as ``failed`` when refused; pushes of the same object (``object_key``) go out in the
    order they were queued."""

    partner = Integer(index=True)
    module = Varchar(length=16, default="")  # the partner endpoint's identifier, or "" for ``url``
    interface_role = Varchar(length=8, default="RECEIVER")
    path = Varchar(length=255, default="")  # appended to the endpoint URL
    url = Varchar(length=255, default="")  # absolute URL (command results)
    method = Varchar(length=8)
    body = JSON(null=True, default=None)
    object_key = Varchar(length=100, index=True)
    # the party the push is for (OCPI-to-* headers): a party behind a hub; "" for the partner itself
    to_country_code = Varchar(length=2, default="")
    to_party_id = Varchar(length=3, default="")
    status = Varchar(length=16, default="pending", index=True)  # pending|sending|done|failed (older: rejected)
    attempts = Integer(default=0)
    next_attempt_at = Timestamptz(default=TimestamptzNow(), index=True)
    last_error = Text(default="")
    created_at = Timestamptz(default=TimestamptzNow())
    done_at = Timestamptz(null=True, default=None)


class RequestLog(Table, tablename="ocpi_request_log"):
    """Every OCPI request we answered or made, per partner (pruned after the retention period)."""

    partner = Integer(null=True, default=None, index=True)
    direction = Varchar(length=3)  # in|out
    method = Varchar(length=8)
    url = Varchar(length=500)
    http_status = Integer(null=True, default=None)
    ocpi_status = Integer(null=True, default=None)
    request_id = Varchar(length=64, default="")
    correlation_id = Varchar(length=64, default="")
    duration_ms = Integer(default=0)
    error = Text(default="")
    created_at = Timestamptz(default=TimestamptzNow(), index=True)


class SessionProfile(Table, tablename="ocpi_charging_profile"):
    """The ChargingProfile a partner set on one of our sessions (we are CPO): how it is enforced
    (``loop``: through the smart-charging loop's ``session_limit`` hook; ``station``: sent to the
    station as a TxProfile) and whether it is still in force."""

    session_id = BigInt(unique=True, index=True)
    partner = Integer(index=True)
    station_id = Varchar(length=64, default="")
    evse_id = Integer(default=0)
    site_id = Integer(null=True, default=None)
    profile = JSON(default={})  # the OCPI ChargingProfile as received
    start_at = Timestamptz(default=TimestamptzNow())  # start_date_time, else when it was received
    voltage_v = Real(default=230.0)  # the site's, for W -> A
    mode = Varchar(length=8, default="station")  # loop|station
    status = Varchar(length=8, default="set", index=True)  # set|cleared
    ocpp_profile_id = Integer(null=True, default=None)
    updated_at = Timestamptz(default=TimestamptzNow())


class SiteDetails(Table, tablename="ocpi_site_details"):
    """What a Location says beyond the core's site: opening times and facilities (set by the operator)."""

    site_id = Integer(unique=True, index=True)
    opening_times = JSON(null=True, default=None)  # OCPI Hours; None: 24/7
    facilities = JSON(default=[])  # OCPI Facility values
    charging_when_closed = Boolean(null=True, default=None)
    updated_at = Timestamptz(default=TimestamptzNow())


class ClientInfo(Table, tablename="ocpi_client_info"):
    """A party connected to a hub partner, as the hub told us (Hub Client Info module): its role
    and connection status; requests are routed to it through the hub only while CONNECTED."""

    partner = Integer(index=True)  # the hub
    country_code = Varchar(length=2, index=True)
    party_id = Varchar(length=3, index=True)
    role = Varchar(length=8, default="")
    status = Varchar(length=16, default="")  # CONNECTED|OFFLINE|PLANNED|SUSPENDED
    last_updated = Timestamptz(default=TimestamptzNow())  # the hub's
    received_at = Timestamptz(default=TimestamptzNow())


OCPI_TABLES: list[type[Table]] = [
    Partner,
    Snapshot,
    RemoteObject,
    SessionLink,
    Cdr,
    CommandRecord,
    Authorization,
    Outbox,
    RequestLog,
    SessionProfile,
    SiteDetails,
    ClientInfo,
]
