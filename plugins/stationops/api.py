"""REST endpoints of the stationops plugin (under ``/api/v1``): firmware catalogue, campaigns,
diagnostics, health and alerts. Same roles as the core: viewer reads, operator changes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import msgspec
from litestar import Controller, Request, Response, Router, delete, get, patch, post
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import Parameter
from litestar.response import File

from csms.plugin_api import (
    GLOBAL_ONLY, SCOPED, Int32, Station, audited, caller, page_params, require, restrict_station_ids, run_command, station_row,
    tenant_scope, utcnow, visible_station_ids,
)
from plugins.stationops import alerts as al
from plugins.stationops import campaigns as cp
from plugins.stationops import diagnostics as dg
from plugins.stationops import firmware as fw
from plugins.stationops import health as hl
from plugins.stationops.config import stationops_settings
from plugins.stationops.storage import CHUNK, chunks_of, public_base_url
from plugins.stationops.tables import Alert, AlertRule, DiagnosticsFile, DiagnosticsRequest, Firmware


class FirmwareIn(msgspec.Struct, forbid_unknown_fields=True):
    version: str
    url: str
    vendor: str = ""
    model: str = ""
    signature: str = ""
    signing_certificate: str = ""
    release_notes: str = ""


class CampaignIn(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    firmware_id: Int32
    selection: dict[str, Any] = {}
    wave_size: Int32 = 0
    concurrency: Int32 = 5
    window_start: str = ""
    window_end: str = ""
    timezone: str = ""
    force: bool = False
    require_signed: bool = False
    max_retries: Int32 = 2
    retry_delay_s: Int32 = 300
    progress_timeout_s: Int32 = 3600
    start: bool = False
    organization: Int32 | None = None


class CampaignPatch(msgspec.Struct, forbid_unknown_fields=True):
    name: str | None = None
    concurrency: Int32 | None = None
    window_start: str | None = None
    window_end: str | None = None
    timezone: str | None = None
    force: bool | None = None
    max_retries: Int32 | None = None
    retry_delay_s: Int32 | None = None
    progress_timeout_s: Int32 | None = None


class PreviewIn(msgspec.Struct, forbid_unknown_fields=True):
    firmware_id: Int32
    selection: dict[str, Any] = {}


class DiagnosticsIn(msgspec.Struct, forbid_unknown_fields=True):
    station_id: str


class RuleIn(msgspec.Struct, forbid_unknown_fields=True):
    kind: str
    name: str = ""
    minutes: float = 0.0
    occurrences: Int32 = 0
    severity: str = "warning"
    enabled: bool = True
    site: Int32 | None = None
    station_id: str = ""


class RulePatch(msgspec.Struct, forbid_unknown_fields=True):
    name: str | None = None
    minutes: float | None = None
    occurrences: Int32 | None = None
    severity: str | None = None
    enabled: bool | None = None
    site: Int32 | None = None
    station_id: str | None = None


def ops_error(request: Request, exc: fw.OpsError) -> Response:
    return Response({"status_code": exc.status, "detail": exc.message}, status_code=exc.status)


def period(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """``from``/``to`` of a health query; default: the last ``health_default_hours``."""
    end = end or utcnow()
    start = start or end - timedelta(hours=stationops_settings().health_default_hours)
    if start.tzinfo is None or end.tzinfo is None:
        raise ValidationException("from and to need a time zone (e.g. 2024-05-01T00:00:00Z)")
    if start >= end:
        raise ValidationException("from must be before to")
    return start, end


async def visible_station(request: Request, station_id: str) -> None:
    """404 for a station that does not exist or that the caller does not see."""
    scope = await tenant_scope(request)
    row = await Station.select(Station.organization).where(Station.station_id == station_id).first()
    if row is None or not scope.sees(row["organization"]):
        raise NotFoundException(f"no station {station_id!r}")


def base_url(request: Request) -> str:
    try:
        return public_base_url(request)
    except ValueError as exc:
        raise fw.OpsError(str(exc)) from None


CAMPAIGN = {"campaign_id": "campaign"}  # another organization's campaign: 404


class FirmwareController(Controller):
    """The firmware catalogue: the installation's; readable by everyone (an organization's
    campaigns use it), changed by global operators."""

    path = "/firmware"
    tags = ["firmware"]

    @get("/", guards=[require("viewer")], opt={"tenant": SCOPED})
    async def list_firmware(self, request: Request) -> dict[str, Any]:
        rows = await Firmware.select().order_by(Firmware.id, ascending=False)
        url = base_url(request)
        return {"items": [fw.firmware_json(r, url) for r in rows]}

    @post("/", guards=[require("operator")], request_max_body_size=stationops_settings().firmware_max_mb * CHUNK + CHUNK,
          opt={"tenant": GLOBAL_ONLY})
    async def add_firmware(self, request: Request) -> dict[str, Any]:
        """JSON (an external ``url``) or a multipart form with a ``file`` and the same fields."""
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            form = await request.form()
            upload = form.get("file")
            if upload is None or not hasattr(upload, "read"):
                raise ValidationException("the form needs a file field named 'file'")
            fields = {k: str(form.get(k) or "") for k in ("version", "vendor", "model", "signature",
                                                          "signing_certificate", "release_notes")}
            row = await fw.create_firmware(**fields, upload_name=upload.filename, upload=chunks_of(upload))
        else:
            try:
                data = msgspec.json.decode(await request.body(), type=FirmwareIn)
            except msgspec.DecodeError as exc:  # not JSON, or not a FirmwareIn
                raise ValidationException(str(exc)) from None
            row = await fw.create_firmware(**msgspec.structs.asdict(data))
        await audited(request, "create", "firmware", row["id"], after=row)
        return fw.firmware_json(row, base_url(request))

    @get("/{firmware_id:int}", guards=[require("viewer")], opt={"tenant": SCOPED})
    async def get_firmware(self, request: Request, firmware_id: int) -> dict[str, Any]:
        return fw.firmware_json(await fw.firmware_row(firmware_id), base_url(request))

    @delete("/{firmware_id:int}", guards=[require("operator")], opt={"tenant": GLOBAL_ONLY})
    async def delete_firmware(self, request: Request, firmware_id: int) -> None:
        before = await fw.firmware_row(firmware_id)
        await fw.delete_firmware(firmware_id)
        await audited(request, "delete", "firmware", firmware_id, before=before)


class CampaignController(Controller):
    path = "/campaigns"
    tags = ["firmware"]

    @get("/", guards=[require("viewer")], opt={"tenant": SCOPED})
    async def list_campaigns(self, request: Request, status: str | None = None) -> dict[str, Any]:
        return {"items": await cp.campaign_list(status, await tenant_scope(request))}

    @post("/", guards=[require("operator")], opt={"tenant": SCOPED})
    async def create(self, request: Request, data: CampaignIn) -> dict[str, Any]:
        values = msgspec.structs.asdict(data)
        detail = await cp.create_campaign(**values, base_url=base_url(request), by=caller(request),
                                          scope=await tenant_scope(request))
        await audited(request, "create", "campaign", detail["id"], after=await cp.campaign_row(detail["id"]))
        return detail

    @post("/preview", guards=[require("viewer")], status_code=200, opt={"tenant": SCOPED})
    async def preview(self, request: Request, data: PreviewIn) -> dict[str, Any]:
        stations = await cp.select_stations(data.selection, await fw.firmware_row(data.firmware_id),
                                            await tenant_scope(request))
        return {"stations": stations, "count": len(stations)}

    @get("/{campaign_id:int}", guards=[require("viewer")], opt={"tenant": CAMPAIGN})
    async def detail(self, campaign_id: int) -> dict[str, Any]:
        return await cp.campaign_detail(campaign_id)

    @patch("/{campaign_id:int}", guards=[require("operator")], opt={"tenant": CAMPAIGN})
    async def update(self, request: Request, campaign_id: int, data: CampaignPatch) -> dict[str, Any]:
        values = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not None}
        before = await cp.campaign_row(campaign_id)
        detail = await cp.update_campaign(campaign_id, values)
        await audited(request, "update", "campaign", campaign_id, before=before,
                      after=await cp.campaign_row(campaign_id))
        return detail

    @post("/{campaign_id:int}/{action:str}", guards=[require("operator")], status_code=200, opt={"tenant": CAMPAIGN})
    async def change(self, request: Request, campaign_id: int, action: str) -> dict[str, Any]:
        """``start``, ``pause``, ``resume`` or ``cancel``."""
        before = await cp.campaign_row(campaign_id)
        detail = await cp.change_campaign(campaign_id, action)
        await audited(request, action, "campaign", campaign_id, before=before,
                      after=await cp.campaign_row(campaign_id))
        return detail

    @post("/{campaign_id:int}/targets/{target_id:int}/retry", guards=[require("operator")], status_code=200,
          opt={"tenant": CAMPAIGN})
    async def retry(self, request: Request, campaign_id: int, target_id: int) -> dict[str, Any]:
        detail = await cp.retry_target(campaign_id, target_id)
        await audited(request, "retry", "campaign", campaign_id, summary=f"target {target_id} sent again")
        return detail


class DiagnosticsController(Controller):
    path = "/diagnostics"
    tags = ["diagnostics"]

    @post("/", guards=[require("operator")], opt={"tenant": SCOPED})
    async def request_upload(self, request: Request, data: DiagnosticsIn) -> dict[str, Any]:
        """Ask the station for its diagnostics (1.6) / log (2.0.1), uploaded to this CSMS."""
        await visible_station(request, data.station_id)
        return await run_command(dg.request_diagnostics(data.station_id, base_url=base_url(request),
                                                        by=caller(request)))

    @get("/", guards=[require("viewer")], opt={"tenant": SCOPED})
    async def list_requests(self, request: Request, station_id: str | None = None, limit: int = 50,
                            offset: int = 0) -> dict[str, Any]:
        limit, offset = page_params(limit, offset)
        query = restrict_station_ids(DiagnosticsRequest.select(DiagnosticsRequest.id), DiagnosticsRequest.station_id,
                                     await visible_station_ids(await tenant_scope(request)))
        if station_id:
            query = query.where(DiagnosticsRequest.station_id == station_id)
        rows = await query.order_by(DiagnosticsRequest.id, ascending=False).limit(limit).offset(offset)
        return {"items": [await dg.request_json(r["id"]) for r in rows], "limit": limit, "offset": offset}

    @get("/{request_id:int}", guards=[require("viewer")], opt={"tenant": {"request_id": "diagnostics_request"}})
    async def get_request(self, request_id: int) -> dict[str, Any]:
        return await dg.request_json(request_id)

    @get("/files", guards=[require("viewer")], opt={"tenant": SCOPED})
    async def list_files(self, request: Request, station_id: str | None = None, limit: int = 100,
                         offset: int = 0) -> dict[str, Any]:
        limit, offset = page_params(limit, offset)
        query = restrict_station_ids(DiagnosticsFile.select(), DiagnosticsFile.station_id,
                                     await visible_station_ids(await tenant_scope(request)))
        if station_id:
            query = query.where(DiagnosticsFile.station_id == station_id)
        rows = await query.order_by(DiagnosticsFile.id, ascending=False).limit(limit).offset(offset)
        return {"items": [dg.file_json(r) for r in rows], "limit": limit, "offset": offset}

    @get("/files/{file_id:int}/download", guards=[require("viewer")], opt={"tenant": {"file_id": "diagnostics_file"}})
    async def download(self, file_id: int) -> File:
        return dg.file_response(await dg.file_row(file_id))


class HealthController(Controller):
    path = "/health"
    tags = ["health"]

    # an organization's users see the health of their own stations and sites (csms.plugin_api tenancy)
    @get("/stations/{station_id:str}", guards=[require("viewer")], opt={"tenant": {"station_id": "station"}})
    async def station(self, station_id: str, start: datetime | None = Parameter(query="from", default=None),
                      end: datetime | None = Parameter(query="to", default=None)) -> dict[str, Any]:
        await station_row(station_id)
        return await hl.station_health(station_id, *period(start, end))

    @get("/sites/{site_id:int}", guards=[require("viewer")], opt={"tenant": {"site_id": "site"}})
    async def site(self, site_id: int, start: datetime | None = Parameter(query="from", default=None),
                   end: datetime | None = Parameter(query="to", default=None)) -> dict[str, Any]:
        report = await hl.site_health(site_id, *period(start, end))
        if report is None:
            raise NotFoundException(f"no site {site_id}")
        return report

    @get("/fleet", guards=[require("viewer")], opt={"tenant": SCOPED})
    async def fleet(self, request: Request, start: datetime | None = Parameter(query="from", default=None),
                    end: datetime | None = Parameter(query="to", default=None)) -> dict[str, Any]:
        return await hl.fleet_health(*period(start, end), await visible_station_ids(await tenant_scope(request)))


class AlertController(Controller):
    path = "/alerts"
    tags = ["alerts"]

    @get("/", guards=[require("viewer")], opt={"tenant": SCOPED})
    async def list_alerts(self, request: Request, status: str | None = None, station_id: str | None = None,
                          limit: int = 100, offset: int = 0) -> dict[str, Any]:
        limit, offset = page_params(limit, offset)
        stations = await visible_station_ids(await tenant_scope(request))
        query = restrict_station_ids(Alert.select(), Alert.station_id, stations)
        count = restrict_station_ids(Alert.count(), Alert.station_id, stations)
        for column, value in ((Alert.status, status), (Alert.station_id, station_id)):
            if value:
                query, count = query.where(column == value), count.where(column == value)
        rows = await query.order_by(Alert.id, ascending=False).limit(limit).offset(offset).output(load_json=True)
        return {"items": [al.alert_json(r) for r in rows], "total": await count, "limit": limit, "offset": offset}

    @post("/{alert_id:int}/acknowledge", guards=[require("operator")], status_code=200,
          opt={"tenant": {"alert_id": "alert"}})
    async def acknowledge(self, request: Request, alert_id: int) -> dict[str, Any]:
        alert = await al.acknowledge(alert_id, caller(request))
        await audited(request, "acknowledge", "alert", alert_id, summary=alert["summary"])
        return alert

    @post("/evaluate", guards=[require("operator")], status_code=200, opt={"tenant": GLOBAL_ONLY})
    async def evaluate(self) -> dict[str, Any]:
        """Evaluate the rules now (the evaluator also runs on events and on a timer)."""
        opened, closed = await al.evaluate()
        return {"opened": opened, "closed": closed}


class AlertRuleController(Controller):
    """The alert rules: the installation's (global operators)."""

    path = "/alert-rules"
    tags = ["alerts"]
    opt = {"tenant": GLOBAL_ONLY}

    @get("/", guards=[require("viewer")])
    async def list_rules(self) -> dict[str, Any]:
        return {"items": [al.rule_json(r) for r in await AlertRule.select().order_by(AlertRule.id)],
                "kinds": al.RULE_KINDS}

    @post("/", guards=[require("operator")])
    async def create_rule(self, request: Request, data: RuleIn) -> dict[str, Any]:
        row = AlertRule(**al.check_rule(msgspec.structs.asdict(data)))
        await row.save()
        after = await al.rule_row(row.id)
        await audited(request, "create", "alert_rule", row.id, after=after)
        return al.rule_json(after)

    @patch("/{rule_id:int}", guards=[require("operator")])
    async def update_rule(self, request: Request, rule_id: int, data: RulePatch) -> dict[str, Any]:
        row = await al.rule_row(rule_id)
        values = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not None}
        merged = al.check_rule({**{k: row[k] for k in ("kind", "name", "minutes", "occurrences", "severity")}, **values})
        values["name"] = merged["name"]
        await AlertRule.update({getattr(AlertRule, k): v for k, v in values.items()}).where(AlertRule.id == rule_id)
        after = await al.rule_row(rule_id)
        await audited(request, "update", "alert_rule", rule_id, before=row, after=after)
        return al.rule_json(after)

    @delete("/{rule_id:int}", guards=[require("operator")])
    async def delete_rule(self, request: Request, rule_id: int) -> None:
        before = await al.rule_row(rule_id)
        await AlertRule.delete().where(AlertRule.id == rule_id)
        await audited(request, "delete", "alert_rule", rule_id, before=before)


def stationops_api_router() -> Router:
    return Router(path="/api/v1", route_handlers=[
        FirmwareController, CampaignController, DiagnosticsController, HealthController, AlertController,
        AlertRuleController,
    ], exception_handlers={fw.OpsError: ops_error})

