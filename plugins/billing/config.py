"""The billing plugin's settings: ``CSMS_BILLING_*`` variables or the ``[billing]`` table of the config file."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from csms.plugin_api import CsmsSettings


class BillingSettings(CsmsSettings):
    """Options of the billing plugin."""

    model_config = SettingsConfigDict(env_prefix="CSMS_BILLING_", extra="ignore")

    cost_updates: bool = Field(False, description="Send the running cost (total incl. VAT) to the station while a session runs: OCPP 2.0.1 and 2.1 `CostUpdated`; OCPP 1.6 a California Pricing `RunningCost` DataTransfer when the core's `CSMS_RUNNING_COST_DATA_TRANSFER` is on.")
    cost_update_interval: float = Field(60.0, description="Least seconds between two running cost messages for one session.")
    statement_timezone: str = Field("UTC", description="Time zone in which statement months are read and dates printed.")
    operator_name: str = Field("", description="Seller's name printed on statements; defaults to the organization of kind `operator`.")
    operator_address: str = Field("", description="Seller's address printed on statements (lines separated by `;` or new lines); defaults to the address of the organization of kind `operator`.")
    operator_vat_id: str = Field("", description="Seller's VAT id printed on statements; defaults to the VAT id of the organization of kind `operator`.")
    invoice_prefix: str = Field("INV", description="Prefix of the installation's invoice numbers: `INV-2026-000123` (prefix, year of issue in the statement time zone, the seller's gap-free sequence of that year). Credit notes take their numbers from the same series.")
    invoice_locale: str = Field("en", description="Locale (as `de_DE`, `nl_NL`, `fr_FR`) in which the statement PDF formats amounts and currencies (Babel).")


@lru_cache(maxsize=1)
def billing_settings() -> BillingSettings:
    """The settings, read once (tests call ``billing_settings.cache_clear()`` after changing them)."""
    return BillingSettings()
