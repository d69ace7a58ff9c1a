"""The billing plugin's tables (Piccolo app ``billing``, every table prefixed ``billing_``).

Core rows (sessions, drivers, organizations, sites, stations) are referred to by id (stations
by their ident), as the core's tables ask of plugins; the owning ``organization`` of a tariff,
an assignment or a statement (the tenant, see the README's "Organizations") is a foreign key, set
to null (the installation's) when that organization is deleted. Money is stored as integer minor units of
the row's currency (cents for EUR); prices per unit, which carry up to 4 decimals, as decimal
text. Energy is Wh.
"""

from __future__ import annotations

from piccolo.columns import (
    BigInt,
    Boolean,
    DoublePrecision,
    ForeignKey,
    Integer,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.columns.base import OnDelete
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

from csms.plugin_api import Organization


class Tariff(Table, tablename="billing_tariff"):
    """A named tariff. Its prices live in versions: a change adds a version, never edits one.

    With ``organization`` set it is that organization's (its tree reads and changes it);
    without, the installation's: every organization may read and assign it, only global users
    change it."""

    code = Varchar(length=36, unique=True, index=True)  # the OCPI tariff id
    name = Varchar(length=200, default="")
    currency = Varchar(length=3, default="EUR")
    current_version = Integer(default=1)
    archived = Boolean(default=False)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())
    organization = ForeignKey(references=Organization, null=True, on_delete=OnDelete.set_null, index=True)


class TariffVersion(Table, tablename="billing_tariff_version"):
    """One immutable version of a tariff: the OCPI 2.2.1 Tariff JSON as it was saved.

    A session is priced with the version in force when it started (the latest version created
    at or before its start; the first version for sessions older than the tariff)."""

    tariff = ForeignKey(references=Tariff, index=True, on_delete=OnDelete.restrict)
    version = Integer(default=1)
    ocpi = Text(default="{}")
    currency = Varchar(length=3, default="EUR")
    created_at = Timestamptz(default=TimestamptzNow())
    created_by = Varchar(length=100, default="")


class Assignment(Table, tablename="billing_assignment"):
    """Which tariff applies to whom (audience) where (location) and when (validity).

    Audience: ``organization_id`` (a named organization) or ``driver_group`` (employee, guest,
    customer, leasing, public) or neither (everyone). Location: ``station_id`` + ``evse_id``,
    ``station_id``, ``site_id`` or none (everywhere). See ``plugins.billing.assignments``.

    ``organization`` is its owner (the tenant that made it; None: the installation's), not its
    audience."""

    tariff = ForeignKey(references=Tariff, index=True, on_delete=OnDelete.restrict)
    organization_id = Integer(null=True, default=None)
    driver_group = Varchar(length=16, default="")
    site_id = Integer(null=True, default=None)
    station_id = Varchar(length=64, default="")
    evse_id = Integer(null=True, default=None)
    valid_from = Timestamptz(null=True, default=None)
    valid_to = Timestamptz(null=True, default=None)
    note = Varchar(length=200, default="")
    created_at = Timestamptz(default=TimestamptzNow())
    organization = ForeignKey(references=Organization, null=True, on_delete=OnDelete.set_null, index=True)


class HomeStation(Table, tablename="billing_home_station"):
    """A station at an employee's home: sessions there are reimbursed by the employer, at
    ``rate_per_kwh`` (mode ``fixed_rate``) or at a tariff (mode ``tariff``)."""

    station_id = Varchar(length=64, index=True)
    driver_id = Integer()
    organization_id = Integer(null=True, default=None)  # the employer; default the driver's organization
    mode = Varchar(length=16, default="fixed_rate")  # fixed_rate|tariff
    rate_per_kwh = Varchar(length=32, default="0")  # decimal text, no VAT
    currency = Varchar(length=3, default="EUR")
    tariff = ForeignKey(references=Tariff, null=True, default=None, on_delete=OnDelete.restrict)
    valid_from = Timestamptz(null=True, default=None)
    valid_to = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())


class Settlement(Table, tablename="billing_settlement"):
    """The settlement of one finished session (unique per session: settling is idempotent).

    ``kind``: customer (the driver or their customer organization pays the operator),
    home_reimbursement (the employer pays the employee), leasing (the leasing partner pays the
    operator), staff_free (nothing is due; the employer is recorded with the value). ``due_minor``
    is what the payer owes the payee, incl. VAT; ``cost_*`` is the session's priced value."""

    session_id = BigInt(unique=True, index=True)
    status = Varchar(length=16, default="settled")  # settled|void
    kind = Varchar(length=24, default="customer")
    revision = Integer(default=1)
    station_id = Varchar(length=64, default="", index=True)
    evse_id = Integer(default=0)
    transaction_id = Varchar(length=64, default="")
    id_token = Varchar(length=255, default="")
    driver_id = Integer(null=True, default=None)
    started_at = Timestamptz(null=True, default=None)
    stopped_at = Timestamptz(null=True, default=None, index=True)
    energy_wh = DoublePrecision(default=0.0)
    tariff_version = ForeignKey(references=TariffVersion, null=True, default=None, on_delete=OnDelete.restrict)
    tariff_code = Varchar(length=64, default="")
    currency = Varchar(length=3, default="EUR")
    cost_excl_minor = BigInt(default=0)
    cost_vat_minor = BigInt(default=0)
    cost_incl_minor = BigInt(default=0)
    due_minor = BigInt(default=0)
    payer_kind = Varchar(length=16, default="none")  # driver|organization|token|none
    payer_id = Integer(null=True, default=None)
    payer_ref = Varchar(length=255, default="")
    payee_kind = Varchar(length=16, default="operator")  # operator|driver
    payee_id = Integer(null=True, default=None)
    cost = Text(default="null")  # the SessionCost as JSON (Decimals as strings)
    breakdown = Text(default="null")  # the engine's CostBreakdown.to_dict()
    flags = Text(default="[]")
    history = Text(default="[]")  # earlier, voided revisions
    void_reason = Varchar(length=200, default="")
    voided_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())


class Statement(Table, tablename="billing_statement"):
    """A statement for one party and period: an immutable snapshot of settlement lines once issued.

    Amounts are from the party's point of view: charges (the party owes) positive, credits
    (the party is owed, e.g. a home-charging reimbursement) negative. ``organization`` is whose
    it is: an organization party's own, a driver's organization when it was issued.

    ``status``: ``draft`` (no number, lines regenerated on demand), ``issued`` (numbered, never
    changed), ``void``. ``kind``: ``invoice`` or ``credit_note`` (``corrects`` is the id of the
    invoice it cancels; its lines are that invoice's, negated). ``number`` is allocated from the
    seller's series (:class:`InvoiceSeries`) in the issuing transaction; null for drafts (and
    for statements issued before numbered series existed, which print as ``ST-000042``).
    ``scheduled_end`` is the period's planned end when it was closed early (``period_end`` is
    then the moment it was closed; later sessions go to the next period)."""

    party_kind = Varchar(length=24)  # driver|organization|leasing_partner
    party_id = Integer()
    party_name = Varchar(length=200, default="")
    period_start = Timestamptz()
    period_end = Timestamptz()
    currency = Varchar(length=3, default="EUR")
    status = Varchar(length=16, default="issued")  # draft|issued|void
    line_count = Integer(default=0)
    total_excl_minor = BigInt(default=0)
    total_vat_minor = BigInt(default=0)
    total_incl_minor = BigInt(default=0)
    charges_incl_minor = BigInt(default=0)
    credits_incl_minor = BigInt(default=0)
    payment_status = Varchar(length=24, default="statement_only")
    payment_provider = Varchar(length=64, default="")
    payment_reference = Varchar(length=200, default="")
    created_by = Varchar(length=100, default="")
    created_at = Timestamptz(default=TimestamptzNow())
    voided_at = Timestamptz(null=True, default=None)
    organization = ForeignKey(references=Organization, null=True, on_delete=OnDelete.set_null, index=True)
    kind = Varchar(length=16, default="invoice")  # invoice|credit_note
    number = Varchar(length=64, null=True, default=None)  # unique index billing_statement_number_key
    seller = Varchar(length=64, default="operator")  # whose series the number is from
    issued_at = Timestamptz(null=True, default=None)
    corrects = Integer(null=True, default=None, index=True)  # a credit note: the invoice it cancels
    reason = Varchar(length=200, default="")  # a credit note: why
    scheduled_end = Timestamptz(null=True, default=None)  # closed early: the period's planned end


class InvoiceSeries(Table, tablename="billing_invoice_series"):
    """The number series of one seller and year: ``last_number`` is the last number given.

    Incremented with ``UPDATE ... RETURNING`` in the transaction that issues the invoice or credit
    note (a row lock on PostgreSQL, the single writer of an immediate transaction on SQLite), so
    two issues never get the same number and a failed issue, rolled back, uses none."""

    series = Varchar(length=100, unique=True)  # "<seller>:<year>"
    seller = Varchar(length=64, default="operator")
    year = Integer(default=0)
    prefix = Varchar(length=32, default="")
    last_number = Integer(default=0)


class StatementLine(Table, tablename="billing_statement_line"):
    """One settled session on a statement, amounts signed from the party's point of view."""

    statement = ForeignKey(references=Statement, index=True, on_delete=OnDelete.cascade)
    position = Integer(default=0)
    session_id = BigInt()
    kind = Varchar(length=24, default="")
    direction = Varchar(length=8, default="charge")  # charge|credit
    started_at = Timestamptz(null=True, default=None)
    stopped_at = Timestamptz(null=True, default=None)
    station_id = Varchar(length=64, default="")
    id_token = Varchar(length=255, default="")
    description = Varchar(length=300, default="")
    energy_wh = DoublePrecision(default=0.0)
    excl_minor = BigInt(default=0)
    vat_minor = BigInt(default=0)
    incl_minor = BigInt(default=0)


BILLING_TABLES: list[type[Table]] = [
    Tariff,
    TariffVersion,
    Assignment,
    HomeStation,
    Settlement,
    Statement,
    StatementLine,
    InvoiceSeries,
]
