"""The Stripe plugin's settings: ``CSMS_PAYMENTS_STRIPE_*`` variables or the ``[payments_stripe]``
table of the config file. Dunning e-mail goes through the core's SMTP settings (``CSMS_SMTP_*``); links
to the driver portal and Stripe Checkout's way back start with the core's ``CSMS_PUBLIC_URL``."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from csms.plugin_api import CsmsSettings


class StripeSettings(CsmsSettings):
    """Options of the Stripe payment plugin."""

    model_config = SettingsConfigDict(env_prefix="CSMS_PAYMENTS_STRIPE_", extra="ignore")

    api_key: str = Field("", description="Stripe secret API key (`sk_live_...` or `sk_test_...`); empty: the plugin collects nothing and statements stay `statement_only`.", json_schema_extra={"secret": True})
    api_base: str = Field("https://api.stripe.com", description="Base URL of the Stripe API the `stripe` library calls (a test stand-in or proxy; Stripe's own by default).")
    webhook_secret: str = Field("", description="Signing secret of the Stripe webhook endpoint (`whsec_...`) that `/api/v1/payments/stripe/webhook` checks the `Stripe-Signature` header with; empty: every webhook is refused.", json_schema_extra={"secret": True})
    payment_method_types: str = Field("card", description="Payment method types the payer may save through Stripe Checkout (comma separated, as `card,sepa_debit`).")
    retry_delays: str = Field("86400,259200,604800", description="Seconds to wait before each retry of a failed payment (comma separated); the payment is given up as `failed` after the last. A dunning e-mail goes to the payer after every failed attempt.")
    retry_interval: float = Field(60.0, description="Seconds between two looks for payments whose retry is due.")

    def method_types(self) -> list[str]:
        return [x.strip() for x in self.payment_method_types.split(",") if x.strip()]

    def delays(self) -> list[float]:
        return [float(x) for x in self.retry_delays.split(",") if x.strip()]


@lru_cache(maxsize=1)
def stripe_settings() -> StripeSettings:
    """Read once; tests call ``stripe_settings.cache_clear()`` after changing the environment."""
    return StripeSettings()
