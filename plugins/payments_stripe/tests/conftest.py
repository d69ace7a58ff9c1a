"""Fixtures of the Stripe plugin's tests: the local stand-in of Stripe's API (an ASGI app under
uvicorn on a free loopback port, so no call leaves the machine), a real SMTP server (aiosmtpd)
for the dunning e-mails, and a CSMS with the plugin pointed at both."""

from __future__ import annotations

import os

import pytest

from csms.testing import asgi_server, free_port, running_server
from csms.testing.mail import smtp_server
from plugins.payments_stripe.config import stripe_settings
from plugins.payments_stripe.tests.fake_stripe import API_KEY, WEBHOOK_SECRET, FakeStripe

os.environ.setdefault("CSMS_DATA_DIR", "/tmp/csms-test-default")


@pytest.fixture
async def fake_stripe():
    fake = FakeStripe(free_port())
    async with asgi_server(fake, fake.port):
        yield fake


@pytest.fixture
def mailbox(monkeypatch):
    with smtp_server(monkeypatch) as box:
        yield box


@pytest.fixture(autouse=True)
def stripe_env(monkeypatch, fake_stripe):
    """The plugin configured for the stand-in; retries 0.3 s apart, looked for every 0.1 s (the
    servers' public URL, where Checkout sends the payer back, is ``https://csms.example.org``)."""
    monkeypatch.setenv("CSMS_PAYMENTS_STRIPE_API_KEY", API_KEY)
    monkeypatch.setenv("CSMS_PAYMENTS_STRIPE_API_BASE", fake_stripe.url)
    monkeypatch.setenv("CSMS_PAYMENTS_STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("CSMS_PAYMENTS_STRIPE_RETRY_DELAYS", "0.3,0.3")
    monkeypatch.setenv("CSMS_PAYMENTS_STRIPE_RETRY_INTERVAL", "0.1")
    stripe_settings.cache_clear()
    yield
    stripe_settings.cache_clear()


@pytest.fixture(params=["sqlite", "postgres"])
async def any_server(request, tmp_path):
    """A CSMS on the embedded SQLite and on the real PostgreSQL, unknown stations accepted."""
    async with running_server(tmp_path, backend=request.param, unknown_stations="accept",
                              public_url="https://csms.example.org") as srv:
        yield srv


@pytest.fixture
async def server(tmp_path):
    async with running_server(tmp_path, unknown_stations="accept", public_url="https://csms.example.org") as srv:
        yield srv
