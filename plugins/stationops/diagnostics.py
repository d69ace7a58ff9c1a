"""Diagnostics and logs: ask a station to upload them, receive the upload over HTTP.

Each request gets a one-off upload URL ``<public url>/diagnostics/upload/<token>``; the station
uploads there with ``POST`` or ``PUT``, as a multipart form or a raw body, optionally with its
file name appended (``.../upload/<token>/<file name>``). Files are kept under
``data_dir/diagnostics/<station>`` and listed per station.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from litestar import Request, route
from litestar.exceptions import HTTPException, NotFoundException
from litestar.response import File

from csms.plugin_api import N_, events as ev, get_core, jsonable, owner_by_station, register_kind, utcnow
from plugins.stationops.config import stationops_settings
from plugins.stationops.events import DiagnosticsReceived
from plugins.stationops.firmware import OpsError
from plugins.stationops.storage import CHUNK, TooLarge, chunks_of, diagnostics_dir, safe_name, write_stream
from plugins.stationops.tables import DiagnosticsFile, DiagnosticsRequest

# 1.6 DiagnosticsStatus and 2.0.1 UploadLogStatus
# Route rules name requests and files: those of another organization's station are a 404.
register_kind("diagnostics_request", owner_by_station(DiagnosticsRequest.station_id))
register_kind("diagnostics_file", owner_by_station(DiagnosticsFile.station_id))

_FAILED = {"UploadFailed", "UploadFailure", "BadMessage", "NotSupportedOperation", "PermissionDenied"}


async def request_diagnostics(station_id: str, *, base_url: str, by: str = "") -> dict[str, Any]:
    """Create an upload URL and send GetDiagnostics (1.6) / GetLog (2.0.1) with it.

    Raises the command service's exceptions (offline, timeout, CALLERROR) to the caller.
    """
    token = secrets.token_urlsafe(24)
    now = utcnow()
    row = DiagnosticsRequest(station_id=station_id, token=token, requested_by=by, requested_at=now,
                             expires_at=now + timedelta(hours=stationops_settings().upload_token_hours))
    await row.save()
    location = f"{base_url.rstrip('/')}/diagnostics/upload/{token}"
    try:
        result = await get_core().operations.get_logs(station_id, location=location, by=by)
    except Exception as exc:
        await DiagnosticsRequest.update({DiagnosticsRequest.status: "failed",
                                         DiagnosticsRequest.detail: f"not sent: {type(exc).__name__}"}).where(
            DiagnosticsRequest.id == row.id)
        raise
    response = result.get("response") or {}
    file_name = response.get("fileName") or response.get("filename") or ""
    status = "accepted" if result["status"] in ("Accepted", "AcceptedCanceled") else "rejected"
    if file_name:  # also when the upload already arrived (a quick station uploads before we get here)
        await DiagnosticsRequest.update({DiagnosticsRequest.station_file_name: file_name[:255]}).where(
            DiagnosticsRequest.id == row.id)
    await DiagnosticsRequest.update({
        DiagnosticsRequest.status: status,
        DiagnosticsRequest.detail: "" if status == "accepted" else f"the station answered {result['status']}",
    }).where((DiagnosticsRequest.id == row.id) & (DiagnosticsRequest.status == "requested"))
    return {**await request_json(row.id), "location": location}


async def request_json(request_id: int) -> dict[str, Any]:
    row = await DiagnosticsRequest.select(DiagnosticsRequest.all_columns(exclude=[DiagnosticsRequest.token])).where(
        DiagnosticsRequest.id == request_id).first()
    if row is None:
        raise OpsError(N_("no diagnostics request %(request)s"), 404, request=request_id)
    files = await DiagnosticsFile.select().where(DiagnosticsFile.request == request_id).order_by(DiagnosticsFile.id)
    return {**jsonable(row), "files": [file_json(f) for f in files]}


def file_json(row: dict[str, Any]) -> dict[str, Any]:
    out = jsonable({k: v for k, v in row.items() if k != "stored_name"})
    out["download"] = f"/api/v1/diagnostics/files/{row['id']}/download"
    return out


async def on_event(event: ev.Event) -> None:
    """Follow the station's DiagnosticsStatusNotification / LogStatusNotification."""
    if not (isinstance(event, ev.StationReported) and event.category in ("diagnostics", "log")):
        return
    row = await DiagnosticsRequest.select().where(
        (DiagnosticsRequest.station_id == event.station_id)
        & DiagnosticsRequest.status.is_in(["requested", "accepted", "uploading", "received"])
    ).order_by(DiagnosticsRequest.id, ascending=False).first()
    if row is None:
        return
    values: dict[Any, Any] = {DiagnosticsRequest.station_status: event.kind}
    if row["status"] != "received":
        if event.kind == "Uploading":
            values[DiagnosticsRequest.status] = "uploading"
        elif event.kind in _FAILED:
            values[DiagnosticsRequest.status] = "failed"
            values[DiagnosticsRequest.detail] = f"the station reported {event.kind}"
    await DiagnosticsRequest.update(values).where(DiagnosticsRequest.id == row["id"])


async def file_row(file_id: int) -> dict[str, Any]:
    row = await DiagnosticsFile.select().where(DiagnosticsFile.id == file_id).first()
    if row is None:
        raise NotFoundException(f"no diagnostics file {file_id}")
    return row


def file_response(row: dict[str, Any]) -> File:
    path = diagnostics_dir(row["station_id"]) / row["stored_name"]
    if not path.exists():
        raise NotFoundException("the file is gone from the data directory")
    return File(path=path, filename=row["file_name"], media_type=row["content_type"] or "application/octet-stream")


# -- the upload endpoint (stations, no login: the token is the credential) ------------------------


async def _receive(request: Request, token: str, name: str | None) -> dict[str, Any]:
    row = await DiagnosticsRequest.select().where(DiagnosticsRequest.token == token).first()
    if row is None or row["expires_at"] < utcnow():
        raise NotFoundException("unknown or expired upload URL")
    max_bytes = stationops_settings().upload_max_mb * CHUNK
    directory = diagnostics_dir(row["station_id"])
    content_type = request.headers.get("content-type", "")
    try:
        if content_type.startswith("multipart/form-data"):
            form = await request.form()
            upload = next((v for v in form.values() if hasattr(v, "filename") and hasattr(v, "read")), None)
            if upload is None:
                raise HTTPException(status_code=400, detail="the form holds no file")
            name = upload.filename or name
            media = getattr(upload, "content_type", "") or "application/octet-stream"
            stored, size, sha = await write_stream(chunks_of(upload), directory, name or "diagnostics",
                                                   max_bytes=max_bytes)
        else:
            media = content_type.split(";")[0].strip() or "application/octet-stream"
            stored, size, sha = await write_stream(request.stream(), directory,
                                                   name or row["station_file_name"] or "diagnostics",
                                                   max_bytes=max_bytes)
    except TooLarge as exc:
        raise HTTPException(status_code=413, detail=f"the upload is {exc}") from None
    file_name = safe_name(name or row["station_file_name"] or stored, "diagnostics")
    saved = DiagnosticsFile(request=row["id"], station_id=row["station_id"], file_name=file_name,
                            stored_name=stored, content_type=media[:100], size=size, sha256=sha)
    await saved.save()
    await DiagnosticsRequest.update({DiagnosticsRequest.status: "received", DiagnosticsRequest.detail: ""}).where(
        DiagnosticsRequest.id == row["id"])
    get_core().events.emit(DiagnosticsReceived(row["station_id"], request_id=row["id"], file_id=saved.id,
                                               file_name=file_name, size=size))
    return {"status": "received", "file": file_name, "size": size, "sha256": sha}


def _upload_limit() -> int:
    return stationops_settings().upload_max_mb * CHUNK + 64 * 1024


def upload_handlers() -> list[Any]:
    """``POST``/``PUT`` ``/diagnostics/upload/{token}[/{file name}]``, outside CSRF and login."""
    opts = {"exclude_from_csrf": True}
    limit = _upload_limit()

    @route("/diagnostics/upload/{token:str}", http_method=["POST", "PUT"], opt=opts, include_in_schema=False,
           request_max_body_size=limit, status_code=201)
    async def upload(request: Request, token: str) -> dict[str, Any]:
        return await _receive(request, token, None)

    @route("/diagnostics/upload/{token:str}/{file_name:str}", http_method=["POST", "PUT"], opt=opts,
           include_in_schema=False, request_max_body_size=limit, status_code=201)
    async def upload_named(request: Request, token: str, file_name: str) -> dict[str, Any]:
        return await _receive(request, token, file_name)

    return [upload, upload_named]
