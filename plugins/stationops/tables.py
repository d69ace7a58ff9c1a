"""The stationops plugin's tables: firmware catalogue and campaigns, diagnostics files, alerts.

Stations are referred to by their OCPP identity (``station_id``), as the core's event log does;
timestamps are UTC.
"""

from __future__ import annotations

from piccolo.columns import (
    JSON,
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


class Firmware(Table, tablename="stationops_firmware"):
    """A firmware image of the catalogue: what it applies to, where stations fetch it, its signature."""

    version = Varchar(length=50)
    vendor = Varchar(length=50, default="")  # empty: any vendor
    model = Varchar(length=50, default="")  # empty: any model
    url = Varchar(length=512, default="")  # external download URL; empty when the CSMS serves the file
    file_name = Varchar(length=255, default="", index=True)  # under data_dir/firmware, served at /firmware/<name>
    size = BigInt(default=0)
    sha256 = Varchar(length=64, default="")
    signature = Text(default="")  # base64, for secure firmware updates
    signing_certificate = Text(default="")  # PEM
    release_notes = Text(default="")
    created_at = Timestamptz(default=TimestamptzNow())


class Campaign(Table, tablename="stationops_campaign"):
    """A roll-out of one firmware version to a selection of stations, in waves."""

    name = Varchar(length=200)
    firmware = ForeignKey(references=Firmware, on_delete=OnDelete.restrict)
    status = Varchar(length=16, default="draft", index=True)  # draft|running|paused|cancelled|completed
    selection = JSON(default={})
    wave_size = Integer(default=0)  # stations per wave; 0: one wave
    concurrency = Integer(default=5)  # stations updating at once
    window_start = Varchar(length=5, default="")  # "HH:MM" local time; empty: any time
    window_end = Varchar(length=5, default="")
    timezone = Varchar(length=64, default="")  # empty: each station's site time zone (else UTC)
    force = Boolean(default=False)  # update stations with a running session too
    require_signed = Boolean(default=False)  # never fall back to an unsigned update
    max_retries = Integer(default=2)
    retry_delay_s = Integer(default=300)
    progress_timeout_s = Integer(default=3600)  # no news from a station for this long fails the attempt
    base_url = Varchar(length=300, default="")
    created_by = Varchar(length=100, default="")
    created_at = Timestamptz(default=TimestamptzNow())
    started_at = Timestamptz(null=True, default=None)
    finished_at = Timestamptz(null=True, default=None)
    # whose campaign it is: it reaches that organization's stations (and those below) only;
    # None: the installation's, any station
    organization = ForeignKey(references=Organization, null=True, on_delete=OnDelete.set_null, index=True)


class CampaignTarget(Table, tablename="stationops_campaign_target"):
    """One station of a campaign, with its progress and the history of its statuses."""

    campaign = ForeignKey(references=Campaign, on_delete=OnDelete.cascade, index=True)
    station_id = Varchar(length=64, index=True)
    wave = Integer(default=0)
    # pending|sent|downloading|downloaded|installing|installed|succeeded|failed|cancelled
    status = Varchar(length=16, default="pending", index=True)
    station_status = Varchar(length=40, default="")  # the last FirmwareStatusNotification status
    attempts = Integer(default=0)
    request_id = BigInt(null=True, default=None)
    signed = Boolean(default=False)
    from_version = Varchar(length=50, default="")
    detail = Varchar(length=255, default="")
    history = JSON(default=[])
    next_attempt_at = Timestamptz(null=True, default=None)
    sent_at = Timestamptz(null=True, default=None)
    updated_at = Timestamptz(default=TimestamptzNow())
    finished_at = Timestamptz(null=True, default=None)


class DiagnosticsRequest(Table, tablename="stationops_diagnostics_request"):
    """A diagnostics/log request sent to a station, with the one-off upload URL it was given."""

    station_id = Varchar(length=64, index=True)
    token = Varchar(length=64, unique=True, index=True)
    status = Varchar(length=24, default="requested")  # requested|accepted|rejected|uploading|received|failed
    station_status = Varchar(length=40, default="")
    station_file_name = Varchar(length=255, default="")
    detail = Varchar(length=255, default="")
    requested_by = Varchar(length=100, default="")
    requested_at = Timestamptz(default=TimestamptzNow())
    expires_at = Timestamptz()


class DiagnosticsFile(Table, tablename="stationops_diagnostics_file"):
    """A file a station uploaded for a diagnostics request (stored under data_dir/diagnostics)."""

    request = ForeignKey(references=DiagnosticsRequest, on_delete=OnDelete.cascade, index=True)
    station_id = Varchar(length=64, index=True)
    file_name = Varchar(length=255)
    stored_name = Varchar(length=300)
    content_type = Varchar(length=100, default="application/octet-stream")
    size = BigInt(default=0)
    sha256 = Varchar(length=64, default="")
    received_at = Timestamptz(default=TimestamptzNow())


class AlertRule(Table, tablename="stationops_alert_rule"):
    """A configurable alert condition (see ``plugins.stationops.alerts.RULE_KINDS``)."""

    name = Varchar(length=200)
    kind = Varchar(length=40)
    enabled = Boolean(default=True)
    minutes = DoublePrecision(default=0.0)
    occurrences = Integer(default=0)
    severity = Varchar(length=16, default="warning")  # info|warning|critical
    site = Integer(null=True, default=None)  # limit to one site's stations
    station_id = Varchar(length=64, default="")  # limit to one station
    created_at = Timestamptz(default=TimestamptzNow())


class Alert(Table, tablename="stationops_alert"):
    """An alert: opened when a rule's condition holds, closed when it clears; acknowledged by a person."""

    rule = ForeignKey(references=AlertRule, null=True, on_delete=OnDelete.set_null)
    kind = Varchar(length=40)
    key = Varchar(length=200, index=True)
    station_id = Varchar(length=64, default="", index=True)
    evse_id = Integer(null=True, default=None)
    connector_id = Integer(null=True, default=None)
    session_id = BigInt(null=True, default=None)
    severity = Varchar(length=16, default="warning")
    summary = Varchar(length=255, default="")
    details = JSON(default={})
    status = Varchar(length=16, default="open", index=True)  # open|closed
    opened_at = Timestamptz(default=TimestamptzNow())
    acknowledged_at = Timestamptz(null=True, default=None)
    acknowledged_by = Varchar(length=100, default="")
    closed_at = Timestamptz(null=True, default=None)


STATIONOPS_TABLES: list[type[Table]] = [
    Firmware,
    Campaign,
    CampaignTarget,
    DiagnosticsRequest,
    DiagnosticsFile,
    AlertRule,
    Alert,
]
