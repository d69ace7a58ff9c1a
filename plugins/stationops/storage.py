"""Files the plugin keeps under the data directory (firmware images, diagnostics uploads) and
the public base URL stations are given to reach them."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, AsyncIterator

from plugins.stationops.config import stationops_settings

if TYPE_CHECKING:
    from litestar import Request

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
CHUNK = 1024 * 1024


class TooLarge(ValueError):
    """An upload is larger than the configured limit."""


def data_dir() -> Path:
    from csms.plugin_api import get_core

    return Path(get_core().settings.data_dir)


def firmware_dir() -> Path:
    path = data_dir() / "firmware"
    path.mkdir(parents=True, exist_ok=True)
    return path


def diagnostics_dir(station_id: str) -> Path:
    path = data_dir() / "diagnostics" / safe_name(station_id)
    path.mkdir(parents=True, exist_ok=True)
    return path


def safe_name(name: str, default: str = "file") -> str:
    """A file name without directories or characters a URL or a shell would trip over."""
    base = os.path.basename(name.replace("\\", "/")).strip()
    cleaned = _UNSAFE.sub("_", base).strip("._")[:120]
    return cleaned or default


def public_base_url(request: Request | None) -> str:
    """``CSMS_STATIONOPS_PUBLIC_URL``, else the base URL of the operator's request."""
    configured = stationops_settings().public_url.strip()
    if configured:
        return configured.rstrip("/")
    if request is None:
        raise ValueError("set CSMS_STATIONOPS_PUBLIC_URL: stations need a URL to reach this CSMS")
    return str(request.base_url).rstrip("/")


async def write_stream(chunks: AsyncIterator[bytes], directory: Path, name: str, *, max_bytes: int,
                       ) -> tuple[str, int, str]:
    """Write ``chunks`` to ``directory``; return (stored name, size, sha256).

    The stored name starts with a hash prefix, so two uploads of one name never collide and a
    firmware URL changes when the image does.
    """
    tmp = directory / f".upload-{secrets.token_hex(8)}"
    digest = hashlib.sha256()
    size = 0
    try:
        with open(tmp, "wb") as fh:
            async for chunk in chunks:
                if not chunk:
                    continue
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge(f"larger than {max_bytes // CHUNK} MiB")
                digest.update(chunk)
                await asyncio.to_thread(fh.write, chunk)
        sha = digest.hexdigest()
        stored = f"{sha[:12]}-{safe_name(name)}"
        os.replace(tmp, directory / stored)
        return stored, size, sha
    finally:
        if tmp.exists():
            tmp.unlink()


async def chunks_of(upload: object) -> AsyncIterator[bytes]:
    """Read a Litestar ``UploadFile`` in chunks."""
    while True:
        chunk = await upload.read(CHUNK)  # type: ignore[attr-defined]
        if not chunk:
            return
        yield chunk


async def one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data
