"""The core's Piccolo tables: version-neutral, written only by the core services.

Timestamps are UTC (``Timestamptz``); energy is Wh; currents A; power W. Plugins keep their
own tables in their own Piccolo apps and refer to these by id.

Each table declares ``id: Serial`` as an annotation only: Piccolo adds that primary key itself
(``Table.__init_subclass__``); the annotation only tells type checkers it is there.
"""

from __future__ import annotations

from piccolo.columns import (
    JSON,
    BigInt,
    Boolean,
    DoublePrecision,
    ForeignKey,
    Integer,
    Secret,
    Serial,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.columns.base import OnDelete
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table


class Plan(Table, tablename="plan"):
    """What an organization's subscription allows (:mod:`csms.core.services.plans`): the features
    it may use (known keys: the core's and those plugins declare) and at most how many stations,
    hubs, users and API keys it may have (null: no limit). HOME, BUSINESS and PUBLIC are shipped;
    the installation's admins edit them. An organization without a plan (and none above it) is
    not restricted."""

    id: Serial

    name = Varchar(length=50, unique=True)
    description = Varchar(length=300, default="")
    features = JSON(default=[])  # the feature keys it includes
    max_stations = Integer(null=True, default=None)
    max_hubs = Integer(null=True, default=None)
    max_users = Integer(null=True, default=None)
    max_api_keys = Integer(null=True, default=None)


class Organization(Table, tablename="organization"):
    """A company or body: the operator itself, an employer, a leasing partner, a customer.

    Organizations are the tenants (:mod:`csms.tenancy`): a user or API key of an organization
    sees its objects and those of the organizations below it (``parent``), nothing else.
    """

    id: Serial

    name = Varchar(length=200, unique=True)
    parent: ForeignKey["Organization"] = ForeignKey(references="self", null=True, on_delete=OnDelete.restrict)
    kind = Varchar(length=32, default="customer")  # operator|employer|leasing_partner|customer
    vat_id = Varchar(length=64, null=True)
    email = Varchar(length=200, null=True)
    address = Text(default="")
    created_at = Timestamptz(default=TimestamptzNow())
    publish = Boolean(default=True)  # off: none of its sites is shown on maps or to roaming partners
    plan = ForeignKey(references=Plan, null=True, on_delete=OnDelete.restrict)  # None: its parent's (or none)


class Driver(Table, tablename="driver"):
    """A person who charges: owner of id tokens (employee, guest, customer, leasing driver)."""

    id: Serial

    name = Varchar(length=200)
    email = Varchar(length=200, null=True)
    phone = Varchar(length=64, null=True)
    kind = Varchar(length=32, default="guest")  # employee|guest|customer|leasing|public
    organization = ForeignKey(references=Organization, null=True, on_delete=OnDelete.set_null)
    notes = Text(default="")
    created_at = Timestamptz(default=TimestamptzNow())


class Site(Table, tablename="site"):
    """A location with a grid connection: address, coordinates, capacity per phase."""

    id: Serial

    name = Varchar(length=200)
    organization = ForeignKey(references=Organization, null=True, on_delete=OnDelete.set_null)
    address = Varchar(length=300, default="")
    city = Varchar(length=100, default="")
    postal_code = Varchar(length=20, default="")
    country = Varchar(length=3, default="")  # ISO 3166-1 alpha-3, as OCPI wants it
    latitude = DoublePrecision(null=True, default=None)
    longitude = DoublePrecision(null=True, default=None)
    timezone = Varchar(length=64, default="UTC")
    grid_limit_l1_a = DoublePrecision(null=True, default=None)
    grid_limit_l2_a = DoublePrecision(null=True, default=None)
    grid_limit_l3_a = DoublePrecision(null=True, default=None)
    voltage_v = DoublePrecision(default=230.0)
    publish = Boolean(default=True)  # shown on maps and to roaming partners
    created_at = Timestamptz(default=TimestamptzNow())


class Hub(Table, tablename="hub"):
    """A group of stations behind one communication device and one plan (a node of the site tree)."""

    id: Serial

    name = Varchar(length=200)
    site = ForeignKey(references=Site, null=True, on_delete=OnDelete.set_null)
    device_id = Varchar(length=100, default="")
    # the station id of the hub's OCPP local controller (one of its stations; "" none): the loop
    # sends it the hub's limit and leaves the hub's other stations to it (local smart charging)
    local_controller = Varchar(length=64, default="")
    max_stations = Integer(default=20)
    limit_l1_a = DoublePrecision(null=True, default=None)
    limit_l2_a = DoublePrecision(null=True, default=None)
    limit_l3_a = DoublePrecision(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())


class Station(Table, tablename="station"):
    """A charging station as it identifies itself on the OCPP endpoint, with its boot info."""

    id: Serial

    station_id = Varchar(length=64, unique=True, index=True)
    organization = ForeignKey(references=Organization, null=True, on_delete=OnDelete.set_null)
    description = Varchar(length=200, default="")
    password_hash = Varchar(length=200, null=True)
    # a new password sent to the station whose acceptance the CSMS has not heard (the answer is
    # still to come, or was lost with the connection): a handshake with it is accepted and makes it
    # the password (csms.core.services.stations.StationService.admit)
    pending_password_hash = Varchar(length=200, null=True)
    # OCPP security profile the station has connected with (1 ws + Basic, 2 wss + Basic, 3 mutual
    # TLS; 0 not yet connected): raised automatically, never lowered by a connection
    security_profile = Integer(default=0)
    registration_status = Varchar(length=16, default="Accepted")  # Accepted|Pending|Rejected
    ocpp_version = Varchar(length=8, default="")
    vendor = Varchar(length=50, default="")
    model = Varchar(length=50, default="")
    serial_number = Varchar(length=50, default="")
    firmware_version = Varchar(length=50, default="")
    iccid = Varchar(length=20, default="")
    imsi = Varchar(length=20, default="")
    meter_type = Varchar(length=25, default="")
    meter_serial_number = Varchar(length=25, default="")
    boot_reason = Varchar(length=32, default="")
    last_boot_at = Timestamptz(null=True, default=None)
    last_heartbeat_at = Timestamptz(null=True, default=None)
    connected = Boolean(default=False)
    connected_since = Timestamptz(null=True, default=None)
    last_seen_at = Timestamptz(null=True, default=None)
    connected_node = Varchar(length=100, default="")
    status = Varchar(length=24, default="Unknown")  # station-level status (1.6 connector 0)
    error_code = Varchar(length=50, default="")
    firmware_status = Varchar(length=40, default="")
    firmware_status_at = Timestamptz(null=True, default=None)
    log_status = Varchar(length=40, default="")
    log_status_at = Timestamptz(null=True, default=None)
    site = ForeignKey(references=Site, null=True, on_delete=OnDelete.set_null)
    hub = ForeignKey(references=Hub, null=True, on_delete=OnDelete.set_null)
    phase_rotation = Varchar(length=3, default="RST")
    max_current_a = DoublePrecision(null=True, default=None)
    min_current_a = DoublePrecision(default=6.0)
    created_at = Timestamptz(default=TimestamptzNow())


class Evse(Table, tablename="evse"):
    """An EVSE of a station (1.6: one per connector id; 2.0.1: as the station reports)."""

    id: Serial

    station = ForeignKey(references=Station, index=True)
    evse_id = Integer()
    status = Varchar(length=24, default="Unknown")
    updated_at = Timestamptz(default=TimestamptzNow())


class Connector(Table, tablename="connector"):
    """A connector of an EVSE with its live status and last error."""

    id: Serial

    station = ForeignKey(references=Station, index=True)
    evse_id = Integer()
    connector_id = Integer(default=1)
    status = Varchar(length=24, default="Unknown")
    error_code = Varchar(length=50, default="NoError")
    info = Varchar(length=100, default="")
    vendor_error_code = Varchar(length=100, default="")
    standard = Varchar(length=40, default="")  # OCPI ConnectorType, set by the operator
    power_type = Varchar(length=16, default="")
    max_power_w = DoublePrecision(null=True, default=None)
    updated_at = Timestamptz(default=TimestamptzNow())


class IdToken(Table, tablename="id_token"):
    """An RFID card, key fob or central/app token, with its owner, group, expiry and status."""

    id: Serial

    id_token = Varchar(length=255, unique=True, index=True)
    type = Varchar(length=24, default="ISO14443")
    status = Varchar(length=16, default="Accepted")  # Accepted|Blocked|Expired|Invalid
    expires_at = Timestamptz(null=True, default=None)
    group_id = Varchar(length=255, null=True)  # 1.6 parentIdTag / 2.0.1 groupIdToken
    label = Varchar(length=200, default="")
    driver = ForeignKey(references=Driver, null=True, on_delete=OnDelete.set_null)
    organization = ForeignKey(references=Organization, null=True, on_delete=OnDelete.set_null)
    created_at = Timestamptz(default=TimestamptzNow())


class ChargingSession(Table, tablename="charging_session"):
    """One transaction of either protocol version. In 1.6 the row id is the transaction id."""

    id: Serial

    station = ForeignKey(references=Station, index=True, on_delete=OnDelete.restrict)
    evse_id = Integer(default=0)
    connector_id = Integer(default=0)
    transaction_id = Varchar(length=64, index=True)
    id_token = Varchar(length=255, default="", index=True)
    token_type = Varchar(length=24, default="")
    driver = ForeignKey(references=Driver, null=True, on_delete=OnDelete.set_null)
    state = Varchar(length=16, default="active", index=True)  # active|completed
    charging_state = Varchar(length=24, default="")
    started_at = Timestamptz(index=True)
    stopped_at = Timestamptz(null=True, default=None)
    meter_start_wh = DoublePrecision(null=True, default=None)
    meter_stop_wh = DoublePrecision(null=True, default=None)
    meter_last_wh = DoublePrecision(null=True, default=None)
    energy_wh = DoublePrecision(default=0.0)
    power_w = DoublePrecision(null=True, default=None)
    stop_reason = Varchar(length=40, default="")
    last_seq_no = Integer(default=-1)
    reservation_id = Integer(null=True, default=None)
    remote_start_id = Integer(null=True, default=None)
    flags = JSON(default=[])  # e.g. "stop_without_start", "replayed_offline"
    settled_at = Timestamptz(null=True, default=None)  # when every settle_session hook succeeded
    departure_at = Timestamptz(null=True, default=None)  # when the driver leaves (smart charging)
    energy_target_wh = DoublePrecision(null=True, default=None)  # energy the driver wants in this session
    v2x = JSON(null=True, default=None)  # the EV's bidirectional (V2X) parameters, from 2.1 NotifyEVChargingNeeds
    # 2.1: priority charging of the transaction (UsePriorityCharging accepted, NotifyPriorityCharging); None: never asked
    priority_charging = Boolean(null=True, default=None)
    # 2.1: the energy transfer modes the CSMS allows (NotifyAllowedEnergyTransfer accepted); None: not restricted
    allowed_energy_transfer = JSON(null=True, default=None)
    updated_at = Timestamptz(default=TimestamptzNow())


class MeterValue(Table, tablename="meter_value"):
    """One sampled value (measurand, phase, unit, context) written in batches; a session's
    replayed reading is stored once (``SessionService.meter_values``)."""

    id: Serial

    session = BigInt(null=True, default=None, index=True)
    station_id = Varchar(length=64, index=True)
    evse_id = Integer(default=0)
    transaction_id = Varchar(length=64, default="")
    timestamp = Timestamptz()
    measurand = Varchar(length=64, default="Energy.Active.Import.Register")
    phase = Varchar(length=8, default="")
    unit = Varchar(length=20, default="")
    context = Varchar(length=32, default="")
    location = Varchar(length=16, default="")
    value = DoublePrecision()


class TransactionSeqNo(Table, tablename="transaction_seq_no"):
    """A 2.0.1 TransactionEvent seqNo stored for a session: how a replay is known after a restart.

    Unique per (session, seq_no) (index ``transaction_seq_no_unique``, made by a migration).
    """

    id: Serial

    session = BigInt()
    seq_no = Integer()


class MessageLog(Table, tablename="message_log"):
    """The raw OCPP frame log, written in batches and pruned after the retention period."""

    id: Serial

    station_id = Varchar(length=64, index=True)
    direction = Varchar(length=3)  # in|out
    message_type = Integer()
    unique_id = Varchar(length=64)
    action = Varchar(length=64, default="", index=True)
    payload = Text()
    created_at = Timestamptz(index=True)


class StationEvent(Table, tablename="station_event"):
    """Everything a station tells that is not a session: status, faults, events, security, firmware."""

    id: Serial

    station_id = Varchar(length=64, index=True)
    category = Varchar(length=32, index=True)
    kind = Varchar(length=64, default="")
    evse_id = Integer(null=True, default=None)
    connector_id = Integer(null=True, default=None)
    severity = Integer(null=True, default=None)
    summary = Varchar(length=255, default="")
    details = JSON(default={})
    timestamp = Timestamptz(index=True)


class RefusedAuthorization(Table, tablename="refused_authorization"):
    """An id token a station was refused (unknown, blocked, expired ...), one row per refusal,
    written in batches; pruned with the frame log's retention and to the newest rows of each
    station (``RetentionService``)."""

    id: Serial

    station_id = Varchar(length=64, index=True)
    id_token = Varchar(length=255, index=True)
    token_type = Varchar(length=24, default="")
    status = Varchar(length=24)  # the AuthorizationStatus answered (2.0.1 names)
    purpose = Varchar(length=16, default="")  # authorize|start|stop
    evse_id = Integer(null=True, default=None)
    source = Varchar(length=64, default="")  # which plugin decided
    timestamp = Timestamptz(index=True)


class ConfigurationKey(Table, tablename="configuration_key"):
    """A 1.6 station configuration key, as last read from the station or set through the CSMS."""

    id: Serial

    station = ForeignKey(references=Station, index=True)
    key = Varchar(length=100)
    value = Text(null=True, default=None)
    readonly = Boolean(default=False)
    updated_at = Timestamptz(default=TimestamptzNow())


class DeviceVariable(Table, tablename="device_variable"):
    """A 2.0.1 device-model variable attribute, reported by NotifyReport or read with GetVariables."""

    id: Serial

    station = ForeignKey(references=Station, index=True)
    component = Varchar(length=50)
    component_instance = Varchar(length=50, default="")
    evse_id = Integer(null=True, default=None)
    connector_id = Integer(null=True, default=None)
    variable = Varchar(length=50)
    variable_instance = Varchar(length=50, default="")
    attribute_type = Varchar(length=8, default="Actual")
    value = Text(null=True, default=None)
    mutability = Varchar(length=10, default="")
    data_type = Varchar(length=20, default="")
    unit = Varchar(length=16, default="")
    min_limit = DoublePrecision(null=True, default=None)
    max_limit = DoublePrecision(null=True, default=None)
    values_list = Text(default="")
    updated_at = Timestamptz(default=TimestamptzNow())


class ChargingProfile(Table, tablename="charging_profile"):
    """A charging profile the CSMS sent (or a station reported), with the station's answer."""

    id: Serial

    station = ForeignKey(references=Station, index=True)
    evse_id = Integer(default=0)
    profile_id = Integer()
    stack_level = Integer(default=0)
    purpose = Varchar(length=40)
    kind = Varchar(length=16, default="Absolute")
    transaction_id = Varchar(length=64, null=True, default=None)
    payload = JSON(default={})
    source = Varchar(length=16, default="csms")  # csms|station
    status = Varchar(length=16, default="")
    sent_at = Timestamptz(default=TimestamptzNow())
    cleared_at = Timestamptz(null=True, default=None)
    # 2.1: the last UpdateDynamicSchedule the station accepted for this profile (a ChargingScheduleUpdateType)
    schedule_update = JSON(null=True, default=None)
    schedule_updated_at = Timestamptz(null=True, default=None)


class Reservation(Table, tablename="reservation"):
    """A reservation of an EVSE (1.6: a connector; none: the whole station) for an id token (or
    its group) until ``expires_at``. ``reservation_id`` is the number the station knows, unique in
    the installation. Written only by :mod:`csms.core.services.reservations`."""

    id: Serial

    station = ForeignKey(references=Station, index=True)
    reservation_id = Integer(unique=True)
    evse_id = Integer(null=True, default=None)
    connector_id = Integer(null=True, default=None)
    connector_type = Varchar(length=32, null=True, default=None)  # 2.0.1 only
    id_token = Varchar(length=255)
    token_type = Varchar(length=24, default="Central")
    group_id_token = Varchar(length=255, null=True, default=None)  # 1.6 parentIdTag / 2.0.1 groupIdToken
    expires_at = Timestamptz()
    status = Varchar(length=24, default="requested")  # see csms.core.services.reservations
    detail = Text(default="")
    session_id = Integer(null=True, default=None)  # the session that used it
    created_by = Varchar(length=255, default="")
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())


class LocalAuthList(Table, tablename="local_auth_list"):
    """The local authorization list of a station as the CSMS knows it: the version and entries the
    station last acknowledged (changed only after it accepted a SendLocalList and we committed),
    whether it supports lists, and the outcome of the last synchronisation.
    Written only by :mod:`csms.core.services.local_lists`."""

    id: Serial

    station = ForeignKey(references=Station, unique=True, index=True, on_delete=OnDelete.cascade)
    version = Integer(default=0)  # list version the station acknowledged (0: none)
    entries = JSON(default={})  # id token → {"status", "expires_at", "group", "type"} as acknowledged
    content_hash = Varchar(length=64, default="")  # sha256 of the acknowledged entries
    station_version = Integer(null=True, default=None)  # what GetLocalListVersion answered last
    supported = Varchar(length=8, default="")  # ""(unknown)|yes|no
    last_result = Varchar(length=32, default="")  # Accepted|Failed|VersionMismatch|NotSupported|InSync|Offline|...
    last_detail = Text(default="")
    last_sync_at = Timestamptz(null=True, default=None)
    last_full_at = Timestamptz(null=True, default=None)


class StationDataClear(Table, tablename="station_data_clear"):
    """A driver's card whose data a station is to clear (OCPP 2.0.1 N10, CustomerInformation with
    ``clear``) after the driver was erased: queued in the erasure's transaction, sent when the
    station is connected, kept with the station's answer as the record that it was done.
    Written only by :mod:`csms.core.services.station_data_clear`."""

    id: Serial

    station_id = Varchar(length=64, index=True)
    driver_id = Integer(index=True)
    id_token = Varchar(length=255)
    token_type = Varchar(length=24, default="")
    status = Varchar(length=24, default="Pending", index=True)  # Pending|Accepted|Rejected|Invalid|NotSupported|Error
    detail = Text(default="")
    attempts = Integer(default=0)
    request_id = Integer(null=True, default=None)
    created_at = Timestamptz()
    done_at = Timestamptz(null=True, default=None)


class Command(Table, tablename="command"):
    """A command sent to a station through the command service, with its answer."""

    id: Serial

    station_id = Varchar(length=64, index=True)
    action = Varchar(length=64)
    payload = JSON(default={})
    response = JSON(null=True, default=None)
    status = Varchar(length=16, default="pending")  # pending|answered|error|invalid|timeout|offline
    error_code = Varchar(length=64, default="")
    error_description = Text(default="")
    requested_by = Varchar(length=100, default="")
    created_at = Timestamptz(default=TimestamptzNow(), index=True)
    answered_at = Timestamptz(null=True, default=None)


class ApiKey(Table, tablename="api_key"):
    """A bearer API key for machines; only a hash of the key is stored."""

    id: Serial

    name = Varchar(length=100)
    prefix = Varchar(length=12, index=True)
    key_hash = Varchar(length=200)
    role = Varchar(length=16, default="admin")  # admin|operator|viewer
    organization = ForeignKey(references=Organization, null=True, on_delete=OnDelete.restrict)  # None: global
    revoked = Boolean(default=False)
    created_at = Timestamptz(default=TimestamptzNow())
    last_used_at = Timestamptz(null=True, default=None)


class UserLink(Table, tablename="user_link"):
    """A one-time link for a user to set a password: an invitation or a reset. Only a hash of
    the link's secret is stored; the link works once, until ``expires_at``."""

    id: Serial

    user_id = Integer(index=True)
    purpose = Varchar(length=16, default="invite")  # invite|reset
    secret_hash = Varchar(length=64, unique=True)
    expires_at = Timestamptz()
    used_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())


class DriverAccount(Table, tablename="driver_account"):
    """A driver's sign-in to the driver portal (``/driver``): the password they may set after
    signing in by e-mail link (argon2), and ``generation``, raised to end every open session."""

    id: Serial

    driver = ForeignKey(references=Driver, unique=True, index=True, on_delete=OnDelete.cascade)
    password_hash = Varchar(length=255, default="")  # "" = no password: e-mail links only
    generation = Integer(default=0)
    updated_at = Timestamptz(default=TimestamptzNow())


class DriverSecret(Table, tablename="driver_secret"):
    """A driver portal secret: a one-time sign-in link (``link``) or a signed-in browser
    (``session``). Only the SHA-256 of the secret is stored; a link works once, until
    ``expires_at``; a session ends at ``expires_at``, at sign-out or when ``generation`` moves."""

    id: Serial

    driver = ForeignKey(references=Driver, index=True, on_delete=OnDelete.cascade)
    kind = Varchar(length=16, default="link")  # link|session
    secret_hash = Varchar(length=64, unique=True)
    generation = Integer(default=0)
    expires_at = Timestamptz()
    used_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())


class OrganizationOidc(Table, tablename="organization_oidc"):
    """An organization's OpenID Connect provider, for its drivers to sign in to the driver portal
    (:mod:`csms.driver.oidc`): the issuer (discovery at ``<issuer>/.well-known/openid-configuration``),
    this installation's client id and secret there, the only e-mail domain accepted (``""``: any)
    and the button's label. The secret is written by admins and never shown back (a ``Secret``
    column: the raw database page leaves it out too); ``secret_changed_at`` tells the audit log
    that it changed."""

    id: Serial

    organization = ForeignKey(references=Organization, unique=True, index=True, on_delete=OnDelete.cascade)
    issuer = Varchar(length=300)
    client_id = Varchar(length=200)
    client_secret = Secret(length=500, default="")
    email_domain = Varchar(length=200, default="")
    label = Varchar(length=100, default="")
    secret_changed_at = Timestamptz(null=True, default=None)


class AuditEntry(Table, tablename="audit_entry"):
    """One change made by a person, an API key, the CLI or a plugin, or a command it sent to a
    station: who, when, what object, and its fields before and after. Written only by
    :mod:`csms.core.audit`; no page or route edits or deletes an entry."""

    id: Serial

    at = Timestamptz(default=TimestamptzNow(), index=True)
    actor = Varchar(length=120, default="", index=True)  # user:NAME, api_key:NAME, cli, ocpi:partner:N, plugin:NAME
    actor_organization = Integer(null=True, default=None)  # the actor's organization (None: global)
    organization = Integer(null=True, default=None, index=True)  # the object's organization: who may read the entry
    action = Varchar(length=40)  # create|update|delete|command|...
    object_type = Varchar(length=40, index=True)
    object_id = Varchar(length=100, default="", index=True)
    summary = Varchar(length=255, default="")
    before = JSON(null=True, default=None)
    after = JSON(null=True, default=None)


class UserRole(Table, tablename="user_role"):
    """The admin role (admin, operator, viewer) of a Piccolo user (``piccolo_user.id``), the
    organization it holds it in (None: global, the installation's owner), the user's time zone and
    language."""

    id: Serial

    user_id = Integer(unique=True, index=True)
    role = Varchar(length=16, default="viewer")
    organization = ForeignKey(references=Organization, null=True, on_delete=OnDelete.restrict)
    time_zone = Varchar(length=64, default="")  # IANA name the admin shows times in; "": the installation's
    language = Varchar(length=8, default="")  # en, de, nl, fr; "": the browser's, else the installation's


class DisplayMessage(Table, tablename="display_message"):
    """A message on a station's display (OCPP 2.0.1 MessageInfo): those the station reported
    (NotifyDisplayMessages) and those the CSMS set and the station accepted; one per
    (station, message id). Written only by :mod:`csms.core.services.display_messages`."""

    id: Serial

    station = ForeignKey(references=Station, index=True, on_delete=OnDelete.cascade)
    message_id = Integer()
    priority = Varchar(length=16)  # AlwaysFront, InFront, NormalCycle
    state = Varchar(length=16, null=True, default=None)  # shown only in this state of the station
    content = Text()
    format = Varchar(length=8, default="UTF8")  # ASCII, HTML, URI, UTF8
    language = Varchar(length=8, default="")
    evse_id = Integer(null=True, default=None)  # the display of this EVSE; None: the station's
    starts_at = Timestamptz(null=True, default=None)
    ends_at = Timestamptz(null=True, default=None)
    transaction_id = Varchar(length=36, null=True, default=None)
    source = Varchar(length=8, default="station")  # station: reported by it; csms: set through the CSMS
    info = JSON(default={})  # the MessageInfo as sent or reported
    updated_at = Timestamptz(default=TimestamptzNow())



class VariableMonitor(Table, tablename="variable_monitor"):
    """A monitor on a station's device-model variable (OCPP 2.0.1 VariableMonitoringType): those
    the CSMS set and the station accepted (SetVariableMonitoring) and those the station reported
    (NotifyMonitoringReport); one per (station, monitor id). Written only by
    :mod:`csms.core.services.monitoring`."""

    id: Serial

    station = ForeignKey(references=Station, index=True, on_delete=OnDelete.cascade)
    monitor_id = Integer()
    component = Varchar(length=50)
    component_instance = Varchar(length=50, default="")
    evse_id = Integer(null=True, default=None)
    connector_id = Integer(null=True, default=None)
    variable = Varchar(length=50)
    variable_instance = Varchar(length=50, default="")
    type = Varchar(length=24)  # MonitorEnumType: UpperThreshold, LowerThreshold, Delta, Periodic, PeriodicClockAligned
    value = DoublePrecision()
    severity = Integer()  # 0 (Danger) .. 9 (Debug)
    transaction = Boolean(default=False)  # only during a transaction
    source = Varchar(length=8, default="station")  # station: reported by it; csms: set through the CSMS
    reported_in = Integer(null=True, default=None)  # the GetMonitoringReport request that last reported it
    updated_at = Timestamptz(default=TimestamptzNow())


class IssuedCertificate(Table, tablename="issued_certificate"):
    """A certificate the CSMS had signed for a station (SignCertificate; the built-in CA or an
    ``issue_certificate`` plugin), with what the station answered to its CertificateSigned."""

    id: Serial

    station = ForeignKey(references=Station, index=True, on_delete=OnDelete.cascade)
    certificate_type = Varchar(length=32, default="ChargingStationCertificate")
    serial = Varchar(length=64, index=True)  # hex, upper case
    subject = Varchar(length=255, default="")
    issuer = Varchar(length=255, default="")
    not_before = Timestamptz(null=True, default=None)
    not_after = Timestamptz(null=True, default=None, index=True)
    # Pending (being sent), Accepted / Rejected (the station's answer), Failed (not delivered)
    status = Varchar(length=16, default="Pending")
    issued_by = Varchar(length=64, default="")  # the plugin that signed it (csms.core.certificates: the built-in CA)
    certificate = Text(default="")  # the chain sent, PEM
    created_at = Timestamptz(default=TimestamptzNow())

CORE_TABLES: list[type[Table]] = [
    Plan,
    Organization,
    Driver,
    Site,
    Hub,
    Station,
    Evse,
    Connector,
    IdToken,
    ChargingSession,
    MeterValue,
    TransactionSeqNo,
    MessageLog,
    StationEvent,
    RefusedAuthorization,
    ConfigurationKey,
    DeviceVariable,
    ChargingProfile,
    Reservation,
    LocalAuthList,
    StationDataClear,
    DisplayMessage,
    VariableMonitor,
    IssuedCertificate,
    Command,
    ApiKey,
    UserRole,
    UserLink,
    DriverAccount,
    DriverSecret,
    OrganizationOidc,
    AuditEntry,
]
