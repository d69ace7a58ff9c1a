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
    vapid_private_key: str = Field("", description="The VAPID private key push notifications are signed with (PEM, or the base64url P-256 key `web-push generate-vapid-keys` prints); empty: a key pair is generated once for the installation and kept in the database.", json_schema_extra={"secret": True})
    vapid_subject: str = Field("", description="Contact the push services may reach the operator at (`mailto:ops@example.org` or an `https://` URL), sent in every push request's VAPID token; empty: `mailto:` the SMTP sender, else the public URL.")
    push_timeout: float = Field(10.0, description="Seconds a push service has to answer one push notification.")
    push_ttl: int = Field(3600, description="Seconds a push service keeps a notification for a phone that is offline before dropping it.")
    push_insecure_endpoints: bool = Field(False, description="Accept `http://` push endpoints (a local push service in tests); browsers' push services are `https://`.")

    def delays(self) -> list[float]:
        return [float(x) for x in self.retry_delays.split(",") if x.strip()]


@lru_cache(maxsize=1)
def notification_settings() -> NotificationSettings:
    """Read once; tests call ``notification_settings.cache_clear()`` after changing the environment."""
    return NotificationSettings()
