"""A local stand-in of the parts of Stripe's HTTP API this plugin calls, for its tests.

An ASGI app (served by uvicorn on a free loopback port) that speaks like Stripe: form-encoded
requests (``metadata[key]=...``), JSON objects with ``id`` and ``object``, the error envelope with
HTTP 402 for a declined card, and idempotency keys that replay the first answer. Payment methods
named ``pm_card_visa`` succeed; ``pm_card_chargeDeclined`` is declined; ``pm_sepa_debit`` stays
``processing`` (a debit Stripe settles later and reports by webhook). A test plays the payer
with :meth:`FakeStripe.complete_setup` and Stripe's webhooks with :meth:`FakeStripe.event` and
:func:`sign`; or a browser opens the Checkout link: ``GET /pay/<session>`` is a page with a
*Save card* button that completes the setup, sends the signed ``checkout.session.completed`` to
:attr:`FakeStripe.webhook_url` and sends the browser back to the session's ``success_url``.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import time
from typing import Any
from urllib.parse import parse_qsl

import httpx

API_KEY = "sk_test_csms"
WEBHOOK_SECRET = "whsec_csms_test"


def sign(payload: bytes, secret: str = WEBHOOK_SECRET, *, at: int | None = None) -> str:
    """A ``Stripe-Signature`` header for ``payload``, as Stripe makes it."""
    timestamp = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def nested(form: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding (``a[b]=1``, ``a[0]=x``) back into dicts and lists."""
    out: dict[str, Any] = {}
    for key, value in form:
        parts = re.findall(r"[^\[\]]+", key)
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


class StripeError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status, self.body = status, body


class FakeStripe:
    """The stand-in's state: every object by id, the requests it got, replayed idempotency keys."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.objects: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.answers: dict[str, tuple[int, dict[str, Any]]] = {}  # idempotency key -> first answer
        self._ids = itertools.count(1)
        self.webhook_url = ""  # where the Checkout page reports a completed setup

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):06d}"

    def of(self, method: str, pattern: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == method and re.fullmatch(pattern, r["path"])]

    # -- the payer and Stripe's own doings, played by the test ----------------------------------

    def complete_setup(self, session_id: str, card: str = "pm_card_visa") -> dict[str, Any]:
        """The payer saved ``card`` on the Checkout page of ``session_id``: the method is attached
        to the customer and the session's SetupIntent succeeded. Returns the session."""
        session = self.objects[session_id]
        method = {"id": f"{card}_{next(self._ids)}", "object": "payment_method", "type": "card",
                  "customer": session["customer"], "card": {"brand": "visa", "last4": "4242"}}
        self.objects[method["id"]] = method
        intent = self.objects[session["setup_intent"]]
        intent.update(status="succeeded", payment_method=method["id"])
        session.update(status="complete")
        return session

    def event(self, kind: str, obj: dict[str, Any]) -> bytes:
        return json.dumps({"id": self.new_id("evt"), "object": "event", "type": kind, "api_version": "2024-06-20",
                           "created": int(time.time()), "livemode": False, "data": {"object": obj}}).encode()

    # -- the API --------------------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        method, path = scope["method"], scope["path"]
        query = scope.get("query_string", b"").decode()
        params = nested(parse_qsl(body.decode() if method == "POST" else query, keep_blank_values=True))
        if m := re.fullmatch(r"/pay/(\w+)", path):
            await self.checkout_page(m.group(1), method, send)
            return
        key = headers.get("idempotency-key")
        self.requests.append({"method": method, "path": path, "params": params, "idempotency_key": key})
        if headers.get("authorization") != f"Bearer {API_KEY}":
            status, answer = 401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}}
        elif key and key in self.answers:
            status, answer = self.answers[key]
        else:
            try:
                status, answer = 200, self.route(method, path, params)
            except StripeError as exc:
                status, answer = exc.status, exc.body
            if key:
                self.answers[key] = (status, answer)
        data = json.dumps(answer).encode()
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"), (b"request-id", f"req_{next(self._ids)}".encode())]})
        await send({"type": "http.response.body", "body": data})

    async def checkout_page(self, session_id: str, method: str, send: Any) -> None:
        """The hosted Checkout page of a setup session, as the payer sees it (much simplified)."""
        session = self.objects.get(session_id)
        if session is None:
            status, headers, body = 404, [(b"content-type", b"text/plain")], b"no such session"
        elif method == "GET":
            status, headers = 200, [(b"content-type", b"text/html")]
            body = (f'<!doctype html><title>Stripe Checkout</title><h1>Save a card</h1>'
                    f'<form method="post"><button>Save card</button></form>').encode()
        else:
            self.complete_setup(session_id)
            payload = self.event("checkout.session.completed", session)
            async with httpx.AsyncClient() as client:
                await client.post(self.webhook_url, content=payload, headers={
                    "stripe-signature": sign(payload), "content-type": "application/json"})
            status, headers, body = 303, [(b"location", session["success_url"].encode())], b""
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def get(self, object_id: str, kind: str) -> dict[str, Any]:
        obj = self.objects.get(object_id)
        if obj is None or obj["object"] != kind:
            raise StripeError(404, {"error": {"type": "invalid_request_error", "code": "resource_missing",
                                              "message": f"No such {kind}: '{object_id}'"}})
        return obj

    def route(self, method: str, path: str, p: dict[str, Any]) -> dict[str, Any]:
        if (method, path) == ("POST", "/v1/customers"):
            customer = {"id": self.new_id("cus"), "object": "customer", "name": p.get("name"),
                        "email": p.get("email"), "metadata": p.get("metadata", {}),
                        "invoice_settings": {"default_payment_method": None}}
            self.objects[customer["id"]] = customer
            return customer
        if m := re.fullmatch(r"/v1/customers/(\w+)", path):
            customer = self.get(m.group(1), "customer")
            if method == "POST":
                for name, value in p.get("invoice_settings", {}).items():
                    customer["invoice_settings"][name] = value
            return customer
        if method == "GET" and (m := re.fullmatch(r"/v1/customers/(\w+)/payment_methods", path)):
            self.get(m.group(1), "customer")
            methods = [o for o in self.objects.values() if o["object"] == "payment_method"
                       and o["customer"] == m.group(1)][::-1][:int(p.get("limit", 10))]
            return {"object": "list", "data": methods, "has_more": False, "url": path}
        if (method, path) == ("POST", "/v1/checkout/sessions"):
            if p.get("mode") != "setup" or "success_url" not in p:
                raise StripeError(400, {"error": {"type": "invalid_request_error", "message": "mode setup only"}})
            customer = self.get(p["customer"], "customer")
            intent = {"id": self.new_id("seti"), "object": "setup_intent", "customer": customer["id"],
                      "status": "requires_payment_method", "payment_method": None}
            self.objects[intent["id"]] = intent
            sid = self.new_id("cs_test")
            session = {"id": sid, "object": "checkout.session", "mode": "setup", "customer": customer["id"],
                       "setup_intent": intent["id"], "status": "open", "success_url": p["success_url"],
                       "cancel_url": p.get("cancel_url"), "payment_method_types": list(
                           p.get("payment_method_types", {}).values()), "url": f"{self.url}/pay/{sid}"}
            self.objects[sid] = session
            return session
        if method == "GET" and (m := re.fullmatch(r"/v1/setup_intents/(\w+)", path)):
            return self.get(m.group(1), "setup_intent")
        if (method, path) == ("POST", "/v1/payment_intents"):
            self.get(p["customer"], "customer")
            intent = {"id": self.new_id("pi"), "object": "payment_intent", "amount": int(p["amount"]),
                      "currency": p["currency"], "customer": p["customer"], "description": p.get("description"),
                      "metadata": p.get("metadata", {}), "status": "requires_payment_method",
                      "payment_method": None, "last_payment_error": None, "latest_charge": None,
                      "amount_received": 0}
            self.objects[intent["id"]] = intent
            return intent
        if method == "POST" and (m := re.fullmatch(r"/v1/payment_intents/(\w+)/confirm", path)):
            return self.confirm(self.get(m.group(1), "payment_intent"), p)
        if method == "GET" and (m := re.fullmatch(r"/v1/charges/(\w+)", path)):
            return self.get(m.group(1), "charge")
        if (method, path) == ("POST", "/v1/refunds"):
            return self.refund(p)
        raise StripeError(404, {"error": {"type": "invalid_request_error",
                                          "message": f"Unrecognized request URL ({method}: {path})"}})

    def confirm(self, intent: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
        if intent["status"] == "succeeded":
            raise StripeError(400, {"error": {"type": "invalid_request_error", "code": "payment_intent_unexpected_state",
                                              "message": "This PaymentIntent has already succeeded."}})
        method = self.get(p["payment_method"], "payment_method")
        if method["customer"] != intent["customer"] or p.get("off_session") != "true":
            raise StripeError(400, {"error": {"type": "invalid_request_error", "message": "bad confirmation"}})
        intent["payment_method"] = method["id"]
        if method["id"].startswith("pm_card_chargeDeclined"):
            error = {"type": "card_error", "code": "card_declined", "decline_code": "generic_decline",
                     "message": "Your card was declined.", "payment_method": method}
            intent.update(status="requires_payment_method", last_payment_error=error)
            raise StripeError(402, {"error": {**error, "payment_intent": dict(intent)}})
        if method["id"].startswith("pm_sepa_debit"):
            intent.update(status="processing")
            return intent
        charge = {"id": self.new_id("ch"), "object": "charge", "amount": intent["amount"], "amount_refunded": 0,
                  "refunded": False, "currency": intent["currency"], "payment_intent": intent["id"],
                  "customer": intent["customer"], "status": "succeeded"}
        self.objects[charge["id"]] = charge
        intent.update(status="succeeded", latest_charge=charge["id"], amount_received=intent["amount"],
                      last_payment_error=None)
        return intent

    def refund(self, p: dict[str, Any]) -> dict[str, Any]:
        intent = self.get(p["payment_intent"], "payment_intent")
        charge = self.objects.get(intent["latest_charge"] or "")
        amount = int(p.get("amount", intent["amount"]))
        if charge is None or amount > charge["amount"] - charge["amount_refunded"]:
            raise StripeError(400, {"error": {"type": "invalid_request_error", "code": "charge_already_refunded",
                                              "message": "Refund amount is greater than what is left"}})
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        refund = {"id": self.new_id("re"), "object": "refund", "amount": amount, "charge": charge["id"],
                  "payment_intent": intent["id"], "status": "succeeded", "metadata": p.get("metadata", {})}
        self.objects[refund["id"]] = refund
        return refund
