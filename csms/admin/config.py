"""The admin's own settings: the map tile server, the default time zone and the secret that signs CSRF tokens.

The map settings are the core's ``map_tile_url`` and ``map_attribution``; the secret is ``CSMS_SESSION_SECRET`` or a random one kept in
the data directory, so tokens survive a restart. Nodes of a cluster must share the secret
(set ``CSMS_SESSION_SECRET``), or a form rendered by one node is refused by another.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from csms.settings import Settings

OSM_TILES = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
OSM_ATTRIBUTION = '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors'


@dataclass(frozen=True)
class AdminSettings:
    map_tile_url: str
    """Leaflet tile URL template; empty draws the sites on a blank map."""
    map_attribution: str
    secret: str
    secure_cookies: bool
    """Mark the session cookie ``Secure`` (the server speaks HTTPS)."""
    time_zone: str = "UTC"
    """The installation's ``admin_time_zone``: times for users who chose none of their own."""
    language: str = "en"
    """The installation's ``admin_language``: for people who chose none and whose browser asks for none we have."""


def stored_secret(data_dir: Path) -> str:
    """The secret kept in ``data_dir/session_secret``, created on first use (mode 0600)."""
    path = data_dir / "session_secret"
    try:
        value = path.read_text().strip()
        if value:
            return value
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value


def admin_settings(settings: Settings) -> AdminSettings:
    tiles = settings.map_tile_url
    if tiles is None:
        tiles = OSM_TILES
    attribution = settings.map_attribution
    if attribution is None:
        attribution = OSM_ATTRIBUTION if tiles == OSM_TILES else ""
    return AdminSettings(
        map_tile_url=tiles.strip(),
        map_attribution=attribution,
        secret=settings.session_secret or stored_secret(Path(settings.data_dir)),
        secure_cookies=settings.port_is_tls,
        time_zone=settings.admin_time_zone,
        language=settings.admin_language,
    )
