"""Every hook a plugin can implement. Each is documented in ``docs/hooks.md`` (a test checks).

Rules of the contract:

* Hooks are called with keyword arguments. An implementation may accept any subset of the
  arguments listed; arguments may be added in later versions, never renamed.
* pluggy never awaits. An implementation may return a value, an awaitable, or an async callable;
  the core awaits whatever it gets ("await me maybe").
* Every spec states its :class:`Rule` (``@hookspec(Rule.FIRST_ANSWER)``): how the core calls the
  implementations and uses their answers. ``csms.plugins.call_hook`` / ``call_sync`` apply it,
  so a call site cannot pick another one.
* A plugin that raises is logged and skipped; it never breaks a station's answer.
* Event hooks run after the station got its answer, off the request path.
"""

from __future__ import annotations

import enum
from typing import Any, Callable

import pluggy

_marker = pluggy.HookspecMarker("csms")


class Rule(enum.Enum):
    """How the core calls a hook's implementations and uses their answers."""

    #: Called in order (``tryfirst`` first, ``trylast`` last), each answer awaited before the
    #: next one counts; the first answer that is not ``None`` decides.
    FIRST_ANSWER = "First answer wins"
    #: Every implementation answers (awaited concurrently); the core takes the minimum.
    MINIMUM = "Minimum of all answers"
    #: Every implementation answers (awaited concurrently); the core uses every answer.
    EVERY_ANSWER = "Every answer"
    #: Every implementation runs for its side effects, awaited one after the other; one that
    #: fails does not stop the others.
    EVERY_IMPLEMENTATION = "Every implementation"
    #: Called synchronously, nothing awaited; the lists returned are concatenated.
    WIRING = "Lists concatenated"


def hookspec(rule: Rule) -> Callable[[Any], Any]:
    """Declare a hook with its rule: ``@hookspec(Rule.FIRST_ANSWER)``. Plugins declaring hooks of
    their own use it too (and ``csms.plugins.add_hookspecs``)."""
    if not isinstance(rule, Rule):
        raise TypeError("a hook spec states its rule: @hookspec(Rule.FIRST_ANSWER)")

    def declare(function: Any) -> Any:
        function.csms_rule = rule
        return _marker(function)

    return declare


# ---------------------------------------------------------------------------------------------
# Lifecycle and wiring
# ---------------------------------------------------------------------------------------------


@hookspec(Rule.EVERY_IMPLEMENTATION)
def startup(app, settings):
    """Called once when the server has started (database migrated, services running)."""


@hookspec(Rule.EVERY_IMPLEMENTATION)
def shutdown(app):
    """Called once when the server stops, before the database is closed."""


@hookspec(Rule.WIRING)
def register_routes(settings):
    """Return a list of Litestar route handlers or routers to mount in the app."""


@hookspec(Rule.WIRING)
def piccolo_apps():
    """Return a list of dotted paths to Piccolo ``piccolo_app`` modules holding the plugin's
    tables and migrations (``"plugins.billing.piccolo_app"``)."""


@hookspec(Rule.WIRING)
def template_dirs():
    """Return a list of directories with Jinja2 templates; they take precedence over the core's,
    so a plugin can override or extend (``{% extends %}``) a core template."""


@hookspec(Rule.WIRING)
def locale_dirs():
    """Return a list of directories with gettext catalogs (``<lang>/LC_MESSAGES/messages.po``);
    they are merged with the core's, so the plugin's templates and labels translate with ``_()``."""


@hookspec(Rule.WIRING)
def plan_features():
    """Return a list of ``PlanFeature(key, label)``: the feature keys this plugin gates with
    ``feature_enabled(organization_id, key)``, offered on the Plans page (label marked ``N_``)."""


@hookspec(Rule.WIRING)
def admin_nav(request):
    """Return a list of ``NavItem(label, href, order=...)`` for the admin's navigation."""


@hookspec(Rule.WIRING)
def driver_nav(request):
    """Return a list of ``NavItem(label, href, order=...)`` for the driver portal's menu (the
    portal's own pages: My cards 10, My sessions 20, Account 90); ``href`` is a page under
    ``/driver/`` that the plugin registers (guarded by the driver's sign-in)."""


@hookspec(Rule.EVERY_ANSWER)
def admin_panels(page, request, context):
    """Return a list of HTML fragments (``markupsafe.Markup`` or str of trusted HTML) to show on the
    admin page named ``page`` ("dashboard", "station", "session", "site", or a plugin's page such
    as the billing plugin's "statement"); ``context`` is that page's template context
    (``station``, ``session``, ``site``, ``s`` for a statement ...)."""


@hookspec(Rule.WIRING)
def register_commands(subparsers):
    """Add sub-commands to the ``csms`` CLI: ``subparsers`` is argparse's; set
    ``func=`` (a function taking the parsed args; may be async) on each new parser."""


# ---------------------------------------------------------------------------------------------
# Authorization
# ---------------------------------------------------------------------------------------------


@hookspec(Rule.FIRST_ANSWER)
def authorize_token(station_id, id_token, token_type, evse_id, purpose):
    """First answer wins. Decide whether ``id_token`` (of OCPP ``token_type``) may charge at
    ``station_id``; ``purpose`` is "authorize" (an Authorize request, or a token shown during a
    transaction), "start" (a transaction starts) or "stop" (OCPP 1.6 StopTransaction). Return an
    ``AuthorizationResult`` or ``None`` to let the next plugin decide. Built-in: local lookup in
    the id_token table, then "unknown is rejected" last."""


# ---------------------------------------------------------------------------------------------
# Vendor data
# ---------------------------------------------------------------------------------------------


@hookspec(Rule.FIRST_ANSWER)
def data_transfer(station_id, vendor_id, message_id, data, ocpp_version):
    """First answer wins. Answer a station's DataTransfer (OCPP 2.0.1/2.1 P02, 1.6 DataTransfer
    CP→CS) of ``vendor_id`` and ``message_id`` (None when the station sent none) with its ``data``
    (any JSON value in 2.0.1/2.1, a string or None in 1.6; ``ocpp_version`` says which). Return
    ``{"status": "Accepted" | "Rejected" | "UnknownMessageId" | "UnknownVendorId", "data": ...}``
    (``data`` optional; to a 1.6 station a value that is not a string goes as its JSON text), a
    status str, or ``None`` for a vendor that is not yours. Without an answer: UnknownVendorId."""


# ---------------------------------------------------------------------------------------------
# Certificates (PKI)
# ---------------------------------------------------------------------------------------------


@hookspec(Rule.FIRST_ANSWER)
def issue_certificate(station_id, csr_pem, certificate_type):
    """First answer wins. Sign the certificate signing request ``csr_pem`` (PEM) of
    ``station_id``; ``certificate_type`` is "ChargingStationCertificate" or "V2GCertificate".
    Called after the station's SignCertificate was answered Accepted (its CSR checked). Return
    the signed certificate chain as PEM (the leaf first, then the sub-CAs), or ``None`` to let the
    next plugin answer. Built-in (``trylast``): the installation's CA signs station certificates."""


@hookspec(Rule.WIRING)
def signed_certificate_types():
    """The certificate types (``"ChargingStationCertificate"``, ``"V2GCertificate"``) this plugin's
    ``issue_certificate`` signs as it is configured now; asked at each SignCertificate, whose CSR
    is Rejected when nobody signs its type. A plugin that implements ``issue_certificate`` without
    this hook is taken to sign every type."""


@hookspec(Rule.FIRST_ANSWER)
def check_certificate_status(station_id, ocsp_request):
    """First answer wins. Answer a 2.0.1 GetCertificateStatus: ``ocsp_request`` is its
    ``ocspRequestData`` (hashAlgorithm, issuerNameHash, issuerKeyHash, serialNumber,
    responderURL). Return the DER OCSP response base64-encoded (str), ``{"status": "Accepted" |
    "Failed", "ocspResult": ...}``, or ``None``. Without an answer: Failed (NoOCSPResponder)."""


@hookspec(Rule.FIRST_ANSWER)
def certificate_chain_status(station_id, certificate_hash_data, source, urls):
    """First answer wins. The revocation status of one certificate of a 2.1
    GetCertificateChainStatus: ``certificate_hash_data`` (hashAlgorithm, issuerNameHash,
    issuerKeyHash, serialNumber), ``source`` "OCSP" or "CRL" and its ``urls``. Return "Good",
    "Revoked", "Unknown" or "Failed", or ``{"status": ..., "nextUpdate": datetime}``, or ``None``.
    Built-in (``trylast``): the certificates of the installation's CA (its own and those it
    signed for stations) are Good, a serial it never signed Unknown. Without an answer: Failed."""


@hookspec(Rule.FIRST_ANSWER)
def contract_certificate_status(station_id, id_token, certificate, hash_data):
    """First answer wins. The status of the ISO 15118 contract certificate an EV presented with
    an Authorize (OCPP 2.0.1/2.1 C07), asked only when the request carries one: ``certificate``
    is the contract certificate chain as PEM (leaf first) or ``None``, ``hash_data`` the list of
    its ``iso15118CertificateHashData`` (hashAlgorithm, issuerNameHash, issuerKeyHash,
    serialNumber, responderURL; empty when absent), ``id_token`` the eMAID. Return "Accepted",
    "SignatureError", "CertificateExpired", "CertificateRevoked", "NoCertificateAvailable",
    "CertChainError" or "ContractCancelled" (or ``{"status": ...}``), or ``None``. The answer
    goes to the station as ``certificateStatus``; any but Accepted turns an accepted token
    Invalid. Without an answer the token alone decides and no certificateStatus is sent."""


@hookspec(Rule.FIRST_ANSWER)
def get_15118_ev_certificate(station_id, iso15118_schema_version, action, exi_request):
    """First answer wins. Answer a 2.0.1 Get15118EVCertificate (``action`` "Install" or "Update",
    ``exi_request`` the EV's base64 EXI request): return ``{"status": "Accepted" | "Failed",
    "exiResponse": <base64 EXI>}`` or ``None``. Without an answer: Failed (NoProvider)."""


# ---------------------------------------------------------------------------------------------
# Pricing and billing
# ---------------------------------------------------------------------------------------------


@hookspec(Rule.FIRST_ANSWER)
def select_tariff(session):
    """First answer wins. Return the tariff (any object the pricing plugin understands) that
    applies to ``session`` (a ``ChargingSession`` row as a dict)."""


@hookspec(Rule.FIRST_ANSWER)
def price_session(session, final):
    """First answer wins. Return a ``SessionCost`` for ``session``: so far when ``final`` is
    False (live cost of a running session), the final cost when True."""


@hookspec(Rule.FIRST_ANSWER)
def station_tariff(station_id, evse_id):
    """First answer wins. The tariff for an OCPP 2.1 station to calculate costs with at EVSE
    ``evse_id`` (0: the station as a whole), as a 2.1 TariffType (dict: ``tariffId``,
    ``currency``, ``energy``, ``chargingTime``, ``idleTime``, ``fixedFee``, ...), or ``None``.
    Used for SetDefaultTariff and ChangeTransactionTariff when the operator gives no tariff."""


@hookspec(Rule.FIRST_ANSWER)
def tariff_message(station_id, evse_id, id_token, transaction_id, languages):
    """First answer wins. The tariff text to show the driver of ``id_token`` at ``station_id``
    (EVSE ``evse_id``, 0 when not known yet): OCPP 2.0.1/2.1 ``personalMessage`` in the
    ``idTokenInfo`` of an accepted Authorize or TransactionEvent (I01), and during transaction
    ``transaction_id`` (None at Authorize) ``updatedPersonalMessage`` when the text differs from
    the one last given for it (I06). ``id_token`` "" (no driver known, EVSE 0): the text of the
    tariff a driver without a contract pays, set on the station after its boot as its
    ``TariffFallbackMessage`` (I04). ``languages``: the languages the station's display speaks as
    far as the core knows (its ``DisplayMessageCtrlr.Language``), best first, maybe empty. Return
    a str, ``{"content": str, "language": str, "format": "UTF8" | "ASCII" | "HTML" | "URI"}``
    or ``None`` (nothing to show)."""


@hookspec(Rule.FIRST_ANSWER)
def vat_number_validation(station_id, vat_number, evse_id):
    """First answer wins. Whether ``vat_number`` (a 2.1 VatNumberValidation from a station's
    payment terminal, for a company invoice) is valid: return ``{"status": "Accepted" |
    "Rejected", "company": {name, address1, city, country, ...} (optional), "statusInfo": ...}``
    or ``None``. Built-in (``trylast``): a well-formed number of one of the CSMS's organizations
    is Accepted; a malformed one Rejected (InvalidFormat); any other Rejected (NotValidated), as
    only a registry plugin (such as one asking VIES) can vouch for it."""


@hookspec(Rule.EVERY_ANSWER)
def published_tariffs():
    """Return a list of the tariffs to publish (to roaming partners and on maps) as OCPI 2.2.1
    Tariff objects (dicts). ``id`` is the tariff's stable code; the publisher sets
    ``country_code``, ``party_id`` and ``last_updated``. An ``organization`` key (an organization
    id; absent or None: the installation's) says whose tariff it is: the publisher removes it and
    gives an organization's tariff only to that organization tree's roaming partners. Every
    answer is used."""


@hookspec(Rule.EVERY_ANSWER)
def public_site_facts(site_ids):
    """Return what the public map may show of the published sites ``site_ids`` beyond the core's
    site fields: a dict of site id to a dict with ``opening_times`` (an OCPI 2.2.1 Hours object).
    Every answer is used; for a site, a later key never replaces one already given."""


@hookspec(Rule.EVERY_IMPLEMENTATION)
def settle_session(session, cost):
    """Called once for each finished session with its final ``SessionCost`` (or ``None`` when no
    pricing plugin answered). All implementations run; settlement must be idempotent per session
    id, and the core retries an implementation that raised."""


# ---------------------------------------------------------------------------------------------
# Smart charging
# ---------------------------------------------------------------------------------------------


@hookspec(Rule.MINIMUM)
def site_capacity(site, now):
    """Return the site's available capacity as a ``CapacitySchedule`` (per-phase amps over
    time) or ``None``. All answers count; the core takes the minimum at every moment."""


@hookspec(Rule.FIRST_ANSWER)
def allocate_capacity(site, topology, loads, capacity, now):
    """First answer wins. Share ``capacity`` (a ``CapacitySchedule``) over ``loads`` (active
    connectors with measured draw) in ``topology`` (the site's tree of limits). Return a dict of
    load id to amps per phase (0 pauses the load). A load whose EV may discharge (an OCPP 2.1
    V2X EV: ``load.discharge_max_a`` above 0) may get a value below 0, down to
    ``-discharge_max_a``: it is asked to feed that back (a central setpoint), which counts
    against the import of the fuses above it (setting ``discharge_frees_capacity``); the core
    keeps every fuse in both directions whatever the answer."""


@hookspec(Rule.MINIMUM)
def session_limit(load, now):
    """Return an upper limit in amps per phase for this load (a ``csms.core.domain.Load``, an
    active session on a connector) at ``now``, or ``None``. All answers count; the core takes
    the minimum."""


# ---------------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------------


@hookspec(Rule.EVERY_ANSWER)
def event(event):
    """Called for every domain event (``csms.core.events``: StationConnected, SessionStarted,
    MeterValuesReceived, CommandAnswered ...) after the station got its answer. The plugins'
    handlers of one event are awaited concurrently, the next event after all of them."""


@hookspec(Rule.EVERY_ANSWER)
def event_batch(events):
    """Called with the domain events queued since the previous call (a list of one or more, in
    the order they were emitted), after the stations got their answers: what ``event`` gets one
    by one, for a plugin that handles many at once (one call per batch, not per event). The
    plugins' handlers of one batch are awaited concurrently, the next batch after all of them
    (and after every ``event`` handler of this batch's events)."""


# ---------------------------------------------------------------------------------------------
# Drivers' personal data (GDPR)
# ---------------------------------------------------------------------------------------------


@hookspec(Rule.EVERY_ANSWER)
def driver_data_export(driver):
    """Return what the plugin holds about ``driver`` (the ``Driver`` row as a dict) as a
    JSON-ready dict, or ``None`` for nothing; it goes into the driver's data export under the
    plugin's name. Every answer is used."""


@hookspec(Rule.EVERY_IMPLEMENTATION)
def driver_erased(driver):
    """Called when the personal data of ``driver`` (the ``Driver`` row as a dict, as it was
    before the erasure) has been erased in the core: erase or anonymise the plugin's own copies,
    keeping what accounting needs. Must be idempotent: an erasure asked for again calls it again
    (then with the anonymised row)."""
