"""The notifications plugin's settings: ``CSMS_NOTIFICATIONS_*`` (``[notifications]``), as
variables or in the config file. E-mail goes through the core's SMTP settings (``CSMS_SMTP_*``,
``[smtp]``; ``smtp_settings`` is re-exported here for the plugin's tests)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from csms.plugin_api import CsmsSettings, SmtpSettings, smtp_settings

__all__ = ["NotificationSettings", "notification_settings", "SmtpSettings", "smtp_settings"]


class NotificationSettings(CsmsSettings):
    """Options of the notifications plugin."""

    model_config = SettingsConfigDict(env_prefix="CSMS_NOTIFICATIONS_", extra="ignore")

    retry_delays: str = Field("10,60,300,1800,7200,21600", description="Seconds to wait before each retry of a failed delivery (comma separated); a delivery is given up after the last.")
    send_interval: float = Field(5.0, description="Seconds between two looks for deliveries that are due (new notifications wake the sender at once).")
    webhook_timeout: float = Field(10.0, description="Seconds a webhook receiver has to answer.")
    browser_events: str = Field("alert.*,station.offline,station.online,firmware.*,session.stopped,diagnostics.received", description="Events shown live in the admin (comma-separated patterns; `*` for all).")
    admin_url: str = Field("", description="Public URL of the admin, used for links in e-mails (and the drivers' subscription page); empty: no links.")

    def delays(self) -> list[float]:
        return [float(x) for x in self.retry_delays.split(",") if x.strip()]


@lru_cache(maxsize=1)
def notification_settings() -> NotificationSettings:
    """Read once; tests call ``notification_settings.cache_clear()`` after changing the environment."""
    return NotificationSettings()
