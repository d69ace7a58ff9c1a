"""The firmware catalogue: versions, what they apply to, where stations download them.

Images can live anywhere (an external ``url``) or be uploaded to the CSMS, which stores them
under ``data_dir/firmware`` and serves them at ``GET /firmware/<file name>``: a stable URL
(the name starts with the image's hash) that needs no credentials, as stations expect.
"""

from __future__ import annotations

from typing import Any, AsyncIterator

from litestar import get
from litestar.exceptions import NotFoundException
from litestar.response import File

from csms.plugin_api import N_, TranslatedError, jsonable
from plugins.stationops.config import stationops_settings
from plugins.stationops.storage import CHUNK, TooLarge, firmware_dir, write_stream
from plugins.stationops.tables import Campaign, Firmware


class OpsError(TranslatedError, ValueError):
    """A request the plugin refuses; ``status`` is the HTTP status to answer with. The message is
    worded when read, in the reader's language (see ``TranslatedError``)."""

    def __init__(self, text: str, status: int = 400, **params: Any) -> None:
        super().__init__(text, **params)
        self.status = status


def firmware_json(row: dict[str, Any], base_url: str | None = None) -> dict[str, Any]:
    out = jsonable(row)
    out["download_url"] = download_url(row, base_url) if base_url or row["url"] else ""
    out["signed"] = bool(row["signature"] and row["signing_certificate"])
    return out


def download_url(row: dict[str, Any], base_url: str | None) -> str:
    """Where a station fetches the image: its external URL, or our own ``/firmware/<name>``."""
    if row["url"]:
        return row["url"]
    return f"{(base_url or '').rstrip('/')}/firmware/{row['file_name']}"


def applies_to(row: dict[str, Any], vendor: str, model: str) -> bool:
    return (not row["vendor"] or row["vendor"] == vendor) and (not row["model"] or row["model"] == model)


async def firmware_row(firmware_id: int) -> dict[str, Any]:
    row = await Firmware.select().where(Firmware.id == firmware_id).first()
    if row is None:
        raise OpsError(N_("no firmware with id %(firmware)s"), 404, firmware=firmware_id)
    return row


async def create_firmware(*, version: str, vendor: str = "", model: str = "", url: str = "",
                          upload_name: str | None = None, upload: AsyncIterator[bytes] | None = None,
                          signature: str = "", signing_certificate: str = "", release_notes: str = "",
                          ) -> dict[str, Any]:
    """Add a version to the catalogue, from an external URL or an uploaded file."""
    version, url = version.strip(), url.strip()
    if not version or len(version) > 50:
        raise OpsError(N_("version must be 1-50 characters (as the station reports it in BootNotification)"))
    if bool(url) == (upload is not None):
        raise OpsError(N_("give either a download url or a file"))
    if url and not url.lower().startswith(("http://", "https://", "ftp://", "ftps://")):
        raise OpsError(N_("the url must be http(s) or ftp(s)"))
    if bool(signature.strip()) != bool(signing_certificate.strip()):
        raise OpsError(N_("a secure update needs both the signature and the signing certificate"))
    values: dict[str, Any] = {"version": version, "vendor": vendor.strip()[:50], "model": model.strip()[:50],
                              "url": url, "signature": signature.strip(),
                              "signing_certificate": signing_certificate.strip(), "release_notes": release_notes}
    if upload is not None:
        try:
            stored, size, sha = await write_stream(upload, firmware_dir(), upload_name or f"firmware-{version}",
                                                   max_bytes=stationops_settings().firmware_max_mb * CHUNK)
        except TooLarge as exc:
            raise OpsError(N_("the firmware file is %(problem)s"), 413, problem=str(exc)) from None
        if size == 0:
            (firmware_dir() / stored).unlink(missing_ok=True)
            raise OpsError(N_("the firmware file is empty"))
        values.update(file_name=stored, size=size, sha256=sha)
    row = Firmware(**values)
    await row.save()
    return await firmware_row(row.id)


async def delete_firmware(firmware_id: int) -> None:
    row = await firmware_row(firmware_id)
    if await Campaign.exists().where(Campaign.firmware == firmware_id):
        raise OpsError(N_("campaigns use this firmware; it stays in the catalogue"), 409)
    await Firmware.delete().where(Firmware.id == firmware_id)
    if row["file_name"] and not await Firmware.exists().where(Firmware.file_name == row["file_name"]):
        (firmware_dir() / row["file_name"]).unlink(missing_ok=True)


@get("/firmware/{file_name:str}", include_in_schema=False)
async def firmware_file(file_name: str) -> File:
    """A firmware image of the catalogue, for stations (no credentials; the name holds its hash)."""
    if not await Firmware.exists().where(Firmware.file_name == file_name):
        raise NotFoundException("no such firmware file")
    path = firmware_dir() / file_name
    if not path.exists():
        raise NotFoundException("the firmware file is gone from the data directory")
    return File(path=path, filename=file_name, media_type="application/octet-stream")
