"""Collecting statements through Stripe, against the local stand-in of Stripe's API: the customer
and the setup link, a successful payment, a declined card with retries and dunning e-mails,
webhooks with good and bad signatures, refunds."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta

import httpx
import pytest

from csms.testing import driver_client
from plugins.billing.tests.helpers import Session, closed_day, create, default_tariff, minutes_ago, settled, station
from plugins.payments_stripe.config import stripe_settings
from plugins.payments_stripe.tests.fake_stripe import sign


async def charged_driver(srv, name: str, station_id: str) -> dict:
    """A customer driver with an e-mail address and a card, and one settled 10 kWh session
    (4.84 EUR with the default tariff)."""
    driver = await create(srv, "/drivers", {"name": name, "email": f"{name.lower()}@example.org", "kind": "customer"})
    await create(srv, "/tokens", {"id_token": name.upper(), "driver": driver["id"]})
    started = minutes_ago(50)
    async with station(srv, station_id, "1.6") as cp:
        s = Session(cp, "1.6", name.upper(), tx=f"tx-{station_id}")
        await s.start(started, 1000)
        await s.stop(started + timedelta(minutes=30), 11000)
    items = (await srv.api.get("/sessions", params={"station": station_id, "token": name.upper()})).json()["items"]
    await settled(srv, items[0]["id"])
    return driver


async def issue(srv, driver: dict) -> dict:
    return await create(srv, "/billing/statements", {"party_kind": "driver", "party_id": driver["id"], **closed_day()})


async def payment_status(srv, statement_id: int, wanted: str, timeout: float = 15.0) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        row = (await srv.api.get(f"/billing/statements/{statement_id}")).json()
        if row["payment_status"] == wanted:
            return row
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"statement {statement_id} payment is {row['payment_status']}, not {wanted}")
        await asyncio.sleep(0.05)


async def portal_setup_link(srv, driver_id: int) -> str:
    """The driver opens the portal's Payment page and asks to save a payment method."""
    async with await driver_client(srv, driver_id) as client:
        page = await client.get("/driver/payment")
        assert page.status_code == 200, page.text
        assert 'href="/driver/payment"' in page.text  # the portal's menu has the page
        assert 'href="/driver/payment/setup"' in page.text
        r = await client.get("/driver/payment/setup", follow_redirects=False)
        assert r.status_code == 303, r.text
        return r.headers["location"]


async def webhook(srv, payload: bytes, signature: str | None) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if signature is not None:
        headers["stripe-signature"] = signature
    async with httpx.AsyncClient(base_url=srv.base_url) as client:  # no login: Stripe calls it
        return await client.post("/api/v1/payments/stripe/webhook", content=payload, headers=headers)


async def save_card(srv, fake, driver_id: int, card: str) -> str:
    """The driver saves ``card`` through the Checkout link; Stripe tells the CSMS by webhook."""
    link = await portal_setup_link(srv, driver_id)
    session = fake.complete_setup(link.rsplit("/", 1)[1], card)
    payload = fake.event("checkout.session.completed", session)
    r = await webhook(srv, payload, sign(payload))
    assert r.status_code == 200 and r.json()["result"] == "payment method saved", r.text
    return session["customer"]


async def test_customer_setup_link_payment_and_refunds(any_server, fake_stripe):
    srv, fake = any_server, fake_stripe
    await default_tariff(srv)
    driver = await charged_driver(srv, "Paula", "CP-PAY")

    # the setup link: a Checkout Session in setup mode for the driver's own Stripe customer
    link = await portal_setup_link(srv, driver["id"])
    assert link.startswith(f"{fake.url}/pay/cs_test_")
    [made] = fake.of("POST", "/v1/customers")
    assert made["params"]["email"] == "paula@example.org" and made["params"]["name"] == "Paula"
    assert made["params"]["metadata"] == {"csms_party": f"driver:{driver['id']}"}
    [checkout] = fake.of("POST", "/v1/checkout/sessions")
    assert checkout["params"]["mode"] == "setup"
    assert checkout["params"]["success_url"] == "https://csms.example.org/driver/payment?setup=done"
    assert checkout["params"]["customer"] == fake.objects[link.rsplit("/", 1)[1]]["customer"]
    # asked again, the customer is reused
    customer = await save_card(srv, fake, driver["id"], "pm_card_visa")
    assert len(fake.of("POST", "/v1/customers")) == 1
    assert fake.objects[customer]["invoice_settings"]["default_payment_method"].startswith("pm_card_visa")

    # the statement is issued: paid off-session with the saved card
    statement = await issue(srv, driver)
    row = await payment_status(srv, statement["id"], "paid")
    intent = fake.objects[row["payment_reference"]]
    assert (row["payment_provider"], intent["status"], intent["amount"], intent["currency"]) == (
        "stripe", "succeeded", 484, "eur")
    assert intent["customer"] == customer and intent["metadata"]["csms_statement_id"] == str(statement["id"])
    assert [r["idempotency_key"] for r in fake.of("POST", r"/v1/payment_intents(/\w+/confirm)?")] == [
        f"csms-statement-{statement['id']}", f"csms-statement-{statement['id']}-attempt-1"]
    assert fake.of("POST", r"/v1/payment_intents/\w+/confirm")[0]["params"]["off_session"] == "true"
    payment = (await srv.api.get(f"/payments/stripe/statements/{statement['id']}")).json()
    assert (payment["status"], payment["attempts"], payment["payment_intent"]) == ("paid", 1, intent["id"])

    # a partial refund, then the rest; each audited
    r = await srv.api.post(f"/payments/stripe/statements/{statement['id']}/refund",
                           json={"amount_minor": 100, "reason": "station fault"})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["refunded_minor"]) == ("partially_refunded", 100)
    await payment_status(srv, statement["id"], "partially_refunded")
    viewer = (await srv.api.post("/api-keys", json={"name": "reader", "role": "viewer"})).json()["key"]
    r = await srv.api.post(f"/payments/stripe/statements/{statement['id']}/refund", json={},
                           headers={"authorization": f"Bearer {viewer}"})
    assert r.status_code == 403, r.text  # refunds are the operator's
    r = await srv.api.get(f"/payments/stripe/statements/{statement['id']}", headers={"authorization": f"Bearer {viewer}"})
    assert r.status_code == 200 and r.json()["status"] == "partially_refunded"
    r = await srv.api.post(f"/payments/stripe/statements/{statement['id']}/refund", json={"amount_minor": 500})
    assert r.status_code == 400 and "between 1 and 384" in r.json()["detail"]
    r = await srv.api.post(f"/payments/stripe/statements/{statement['id']}/refund", json={})
    assert r.status_code == 200 and r.json()["status"] == "refunded", r.text
    await payment_status(srv, statement["id"], "refunded")
    refunds = fake.of("POST", "/v1/refunds")
    assert [(x["params"]["amount"], x["params"]["payment_intent"]) for x in refunds] == [
        ("100", intent["id"]), ("384", intent["id"])]
    charge = fake.objects[intent["latest_charge"]]
    assert (charge["amount_refunded"], charge["refunded"]) == (484, True)
    r = await srv.api.post(f"/payments/stripe/statements/{statement['id']}/refund", json={})
    assert r.status_code == 409
    audit = (await srv.api.get("/audit", params={"object_type": "stripe_payment",
                                                 "object_id": str(statement["id"])})).json()
    entries = audit["items"] if isinstance(audit, dict) else audit
    assert len(entries) == 2 and "station fault" in json.dumps(entries)

    # Stripe's own charge.refunded webhook agrees: nothing changes
    payload = fake.event("charge.refunded", charge)
    r = await webhook(srv, payload, sign(payload))
    assert r.status_code == 200 and r.json()["result"] == "refunded"
    await payment_status(srv, statement["id"], "refunded")


async def test_declined_card_is_retried_then_failed_with_dunning_mails(server, fake_stripe, mailbox):
    srv, fake = server, fake_stripe
    await default_tariff(srv)
    driver = await charged_driver(srv, "Dora", "CP-DECL")
    await save_card(srv, fake, driver["id"], "pm_card_chargeDeclined")

    statement = await issue(srv, driver)
    row = await payment_status(srv, statement["id"], "failed")
    keys = [r["idempotency_key"] for r in fake.of("POST", r"/v1/payment_intents/\w+/confirm")]
    assert keys == [f"csms-statement-{statement['id']}-attempt-{n}" for n in (1, 2, 3)]  # 1 + 2 retries
    assert len(fake.of("POST", "/v1/payment_intents")) == 1  # one PaymentIntent per statement
    payment = (await srv.api.get(f"/payments/stripe/statements/{statement['id']}")).json()
    assert (payment["status"], payment["attempts"], payment["last_error"]) == ("failed", 3, "Your card was declined.")
    assert row["payment_reference"] == payment["payment_intent"]

    for _ in range(100):
        if len(mailbox.to("dora@example.org")) == 3:
            break
        await asyncio.sleep(0.05)
    number = statement["number"]
    assert mailbox.subjects("dora@example.org") == [
        f"Payment of statement {number} did not go through", f"Payment of statement {number} did not go through",
        f"Payment failed: statement {number}"]
    first = mailbox.to("dora@example.org")[0].get_content()
    assert "4.84 EUR" in first and "Your card was declined." in first and "We will try again" in first
    assert re.search(rf"{re.escape(fake.url)}/pay/cs_test_\w+", first)  # a link to save another method
    last = mailbox.to("dora@example.org")[2].get_content()
    assert "will not try again" in last
    # a failed payment is not refunded
    r = await srv.api.post(f"/payments/stripe/statements/{statement['id']}/refund", json={})
    assert r.status_code == 409


async def test_webhook_signatures_and_a_method_saved_after_dunning(server, fake_stripe, mailbox, monkeypatch):
    srv, fake = server, fake_stripe
    monkeypatch.setenv("CSMS_PAYMENTS_STRIPE_RETRY_DELAYS", "3600")  # no retry on its own in this test
    stripe_settings.cache_clear()
    await default_tariff(srv)
    driver = await charged_driver(srv, "Cem", "CP-HOOK")

    statement = await issue(srv, driver)  # no payment method saved yet: the first attempt fails
    await mailbox.wait_for("cem@example.org")
    payment = (await srv.api.get(f"/payments/stripe/statements/{statement['id']}")).json()
    assert (payment["status"], payment["attempts"]) == ("pending", 1)
    assert payment["last_error"] == "no payment method is saved for the payer"
    await payment_status(srv, statement["id"], "pending")

    # the payer saves a card through the e-mail's link; the webhook that says so is checked
    link = re.search(r"http://\S+/pay/(cs_test_\w+)", mailbox.to("cem@example.org")[0].get_content()).group(1)
    session = fake.complete_setup(link, "pm_card_visa")
    payload = fake.event("checkout.session.completed", session)
    for signature in (None, "t=1,v1=00", sign(payload, "whsec_other"), sign(payload + b" ")[:-1] + "0",
                      sign(payload, at=1_600_000_000)):  # none, junk, wrong secret, wrong MAC, too old
        r = await webhook(srv, payload, signature)
        assert r.status_code == 400, (signature, r.text)
    r = await webhook(srv, b"not json", sign(b"not json"))
    assert r.status_code == 400
    # nothing changed: no default method, no new attempt
    assert fake.objects[session["customer"]]["invoice_settings"]["default_payment_method"] is None
    assert len(fake.of("POST", r"/v1/payment_intents/\w+/confirm")) == 0
    assert (await srv.api.get(f"/payments/stripe/statements/{statement['id']}")).json()["attempts"] == 1

    # signed: the method becomes the default and the waiting payment is tried at once
    r = await webhook(srv, payload, sign(payload))
    assert r.status_code == 200, r.text
    row = await payment_status(srv, statement["id"], "paid")
    payment = (await srv.api.get(f"/payments/stripe/statements/{statement['id']}")).json()
    assert (payment["status"], payment["attempts"]) == ("paid", 2)

    # payment_intent.payment_failed after the payment succeeded changes nothing; a forged
    # refund event is refused
    intent = fake.objects[row["payment_reference"]]
    payload = fake.event("payment_intent.payment_failed", intent)
    assert (await webhook(srv, payload, sign(payload))).json()["result"] == "ignored"
    charge = dict(fake.objects[intent["latest_charge"]], amount_refunded=484, refunded=True)
    payload = fake.event("charge.refunded", charge)
    assert (await webhook(srv, payload, sign(payload, "whsec_forged"))).status_code == 400
    await payment_status(srv, statement["id"], "paid")


async def test_processing_payment_ends_by_webhook(server, fake_stripe):
    """A debit Stripe settles later: the confirmation answers "processing", the webhook ends it."""
    srv, fake = server, fake_stripe
    await default_tariff(srv)
    driver = await charged_driver(srv, "Ida", "CP-LATE")
    await save_card(srv, fake, driver["id"], "pm_sepa_debit")
    statement = await issue(srv, driver)
    await payment_status(srv, statement["id"], "pending")
    payment = (await srv.api.get(f"/payments/stripe/statements/{statement['id']}")).json()
    assert (payment["status"], payment["attempts"]) == ("processing", 1)
    intent = fake.objects[payment["payment_intent"]]
    payload = fake.event("payment_intent.succeeded", dict(intent, status="succeeded"))
    bad = await webhook(srv, payload, sign(payload, "whsec_forged"))
    assert bad.status_code == 400
    assert (await srv.api.get(f"/payments/stripe/statements/{statement['id']}")).json()["status"] == "processing"
    r = await webhook(srv, payload, sign(payload))
    assert r.status_code == 200 and r.json()["result"] == "paid"
    await payment_status(srv, statement["id"], "paid")
    r = await webhook(srv, payload, sign(payload))  # Stripe delivers an event more than once
    assert r.status_code == 200 and r.json()["result"] == "ignored"


async def test_processing_payment_that_fails_is_retried(server, fake_stripe, mailbox):
    srv, fake = server, fake_stripe
    await default_tariff(srv)
    driver = await charged_driver(srv, "Ole", "CP-SEPA")
    await save_card(srv, fake, driver["id"], "pm_sepa_debit")
    statement = await issue(srv, driver)
    await payment_status(srv, statement["id"], "pending")
    payment = (await srv.api.get(f"/payments/stripe/statements/{statement['id']}")).json()
    assert payment["status"] == "processing"
    error = {"type": "card_error", "code": "insufficient_funds", "message": "The account has insufficient funds."}
    payload = fake.event("payment_intent.payment_failed", dict(fake.objects[payment["payment_intent"]],
                                                               status="requires_payment_method",
                                                               last_payment_error=error))
    r = await webhook(srv, payload, sign(payload))
    assert r.status_code == 200 and r.json()["result"] == "failed"
    mail = await mailbox.wait_for("ole@example.org")
    assert "The account has insufficient funds." in mail.get_content()
    # the retry confirms again (attempt 2), and goes to processing again
    for _ in range(200):
        if len(fake.of("POST", r"/v1/payment_intents/\w+/confirm")) == 2:
            break
        await asyncio.sleep(0.05)
    keys = [r["idempotency_key"] for r in fake.of("POST", r"/v1/payment_intents/\w+/confirm")]
    assert keys == [f"csms-statement-{statement['id']}-attempt-1", f"csms-statement-{statement['id']}-attempt-2"]


@pytest.mark.parametrize("body", [{"party_kind": "driver"}, {"party_kind": "robot", "party_id": 1}, [1]])
async def test_setup_link_input_is_checked(server, body):
    r = await server.api.post("/payments/stripe/setup-links", json=body)
    assert r.status_code == 400, r.text


async def test_setup_link_for_an_organization(server, fake_stripe):
    org = await create(server, "/organizations", {"name": "Fleet Co", "kind": "customer", "email": "ap@fleet.example"})
    r = await server.api.post("/payments/stripe/setup-links", json={"party_kind": "organization", "party_id": org["id"]})
    assert r.status_code == 200 and r.json()["url"].startswith(f"{fake_stripe.url}/pay/"), r.text
    assert fake_stripe.of("POST", "/v1/customers")[0]["params"]["email"] == "ap@fleet.example"
    r = await server.api.post("/payments/stripe/setup-links", json={"party_kind": "organization", "party_id": 999})
    assert r.status_code == 404


async def test_driver_export_and_erasure(server, fake_stripe):
    srv, fake = server, fake_stripe
    await default_tariff(srv)
    driver = await charged_driver(srv, "Gina", "CP-GDPR")
    customer = await save_card(srv, fake, driver["id"], "pm_card_visa")
    statement = await issue(srv, driver)
    row = await payment_status(srv, statement["id"], "paid")
    exported = (await srv.api.get(f"/drivers/{driver['id']}/export")).json()["plugins"]["payments_stripe"]
    assert exported["stripe_customer"] == customer
    assert [(p["number"], p["amount_minor"], p["status"], p["payment_intent"]) for p in exported["payments"]] == [
        (statement["number"], 484, "paid", row["payment_reference"])]

    erased = await srv.api.post(f"/drivers/{driver['id']}/erase")
    assert erased.status_code == 200 and erased.json()["failed_plugins"] == [], erased.text
    exported = (await srv.api.get(f"/drivers/{driver['id']}/export")).json()["plugins"]["payments_stripe"]
    assert exported["stripe_customer"] is None and len(exported["payments"]) == 1  # accounting records stay
    assert (await srv.api.post(f"/drivers/{driver['id']}/erase")).status_code == 200


def test_amounts_in_mails_keep_the_currency_decimals():
    from plugins.payments_stripe.payments import decimal_amount

    assert [decimal_amount(484, "EUR"), decimal_amount(484, "jpy"), decimal_amount(4840, "KWD")] == [
        "4.84", "484", "4.840"]


async def paid_statement(srv, fake, name: str, station_id: str) -> tuple[dict, dict]:
    """A driver who charged at ``station_id`` and saved a card; the statement issued and paid
    through Stripe. The statement and its payment."""
    await default_tariff(srv)
    driver = await charged_driver(srv, name, station_id)
    await save_card(srv, fake, driver["id"], "pm_card_visa")
    statement = await issue(srv, driver)
    return statement, await payment_status(srv, statement["id"], "paid")


async def test_a_refund_webhook_is_not_lost_to_a_refund_stored_meanwhile(any_server, fake_stripe, monkeypatch):
    """Stripe's charge.refunded (300 refunded in all: 200 from the dashboard, 100 through the CSMS)
    is read against the payment (nothing refunded yet); the CSMS's refund route stores its 100
    before the webhook writes. The webhook's total must still go in (not: 100 stored for good)."""
    from plugins.payments_stripe import payments

    srv, fake = any_server, fake_stripe
    statement, row = await paid_statement(srv, fake, "Rita", "CP-RACE")
    charge = dict(fake.objects[fake.objects[row["payment_reference"]]["latest_charge"]])
    payload = fake.event("charge.refunded", {**charge, "amount_refunded": 300, "refunded": False})
    real = payments._by_intent
    raced: list[dict] = []

    async def read_then_refund(intent):
        found = await real(intent)
        if not raced:  # the webhook has read the row: the refund route stores its 100 now
            raced.append(await payments.refund(statement["id"], 100))
        return found

    monkeypatch.setattr(payments, "_by_intent", read_then_refund)
    r = await webhook(srv, payload, sign(payload))
    assert r.status_code == 200, r.text
    assert raced and raced[0]["refunded_minor"] == 100
    payment = (await srv.api.get(f"/payments/stripe/statements/{statement['id']}")).json()
    assert (payment["status"], payment["refunded_minor"]) == ("partially_refunded", 300)
    # and Stripe's earlier event (the 100 alone), arriving late, takes nothing back
    monkeypatch.setattr(payments, "_by_intent", real)
    late = fake.event("charge.refunded", {**charge, "amount_refunded": 100, "refunded": False})
    assert (await webhook(srv, late, sign(late))).status_code == 200
    payment = (await srv.api.get(f"/payments/stripe/statements/{statement['id']}")).json()
    assert (payment["status"], payment["refunded_minor"]) == ("partially_refunded", 300)


async def test_two_refunds_at_once_both_count_in_the_stored_total(any_server, fake_stripe, monkeypatch):
    """Two operators refund parts of one payment at the same moment (100 and 200): both read the
    payment before either stored, both go to Stripe. The stored total is 300 at once (not one
    request's amount until the webhook comes), and the answer that comes last says so."""
    from plugins.payments_stripe import provider

    srv, fake = any_server, fake_stripe
    statement, _ = await paid_statement(srv, fake, "Olga", "CP-TWO")
    real, entered, both = provider.refund, [], asyncio.Event()

    async def refund_together(*args, **kwargs):
        entered.append(kwargs["key"])
        if len(entered) == 2:
            both.set()
        await asyncio.wait_for(both.wait(), 10)  # each has read the payment before either stores
        return await real(*args, **kwargs)

    monkeypatch.setattr(provider, "refund", refund_together)
    url = f"/payments/stripe/statements/{statement['id']}/refund"
    answers = await asyncio.gather(*(srv.api.post(url, json={"amount_minor": amount}) for amount in (100, 200)))
    assert [r.status_code for r in answers] == [200, 200], [r.text for r in answers]
    assert max(r.json()["refunded_minor"] for r in answers) == 300, [r.json() for r in answers]
    payment = (await srv.api.get(f"/payments/stripe/statements/{statement['id']}")).json()
    assert (payment["status"], payment["refunded_minor"]) == ("partially_refunded", 300)
    assert sorted(x["params"]["amount"] for x in fake.of("POST", "/v1/refunds")) == ["100", "200"]
