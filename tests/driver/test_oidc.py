"""Drivers sign in to the portal at their organization's OpenID Connect provider: a real provider
(oidc-provider-mock, Authlib's server in a thread on a free port) set up on the admin's
organization form, the flow in headless Chromium on a phone, and each refusal over HTTP."""

from __future__ import annotations

import re
import shutil
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import oidc_provider_mock
import pytest
from playwright.async_api import async_playwright, expect

from csms.core.services import oidc_settings
from csms.core.tables import AuditEntry, OrganizationOidc
from csms.testing import CHROMIUM_ARGS, admin_client, free_port, screenshot
from tests.driver.conftest import csrf_of

PHONE = {"width": 390, "height": 844}
SECRET = "s3cret-of-the-acme-client"


@pytest.fixture
def provider():
    """The provider's issuer URL; any client id and secret are accepted there."""
    with oidc_provider_mock.run_server_in_thread() as server:
        yield f"http://localhost:{server.server_port}"


async def add_user(issuer: str, sub: str, **claims) -> None:
    async with httpx.AsyncClient() as client:
        answer = await client.put(f"{issuer}/users/{quote(sub, safe='')}", json=claims)
        assert answer.status_code == 204, answer.text


async def organization(srv, name: str) -> int:
    answer = await srv.api.post("/organizations", json={"name": name})
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


async def driver(srv, name: str, email: str, org: int) -> int:
    answer = await srv.api.post("/drivers", json={"name": name, "email": email, "organization": org})
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


async def configure(org: int, issuer: str, **extra) -> None:
    await oidc_settings.save(org, {"issuer": issuer, "client_id": "csms-test", "client_secret": SECRET,
                                   "label": "Acme", **extra}, actor="test", actor_organization=None)


async def back_from_provider(client: httpx.AsyncClient, org: int, form: dict[str, str]) -> str:
    """Start the sign-in, answer the provider's authorization form with ``form``; the URL the
    provider sends the browser back to (our callback)."""
    start = await client.get(f"/driver/oidc/{org}/start")
    assert start.status_code == 303, start.text
    to = urlsplit(start.headers["location"])
    query = parse_qs(to.query)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"][0]
    assert query["nonce"][0] and query["state"][0] and "openid" in query["scope"][0].split()
    async with httpx.AsyncClient() as browser_at_provider:
        answer = await browser_at_provider.post(start.headers["location"], data=form)
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


async def test_a_driver_signs_in_with_the_organizations_provider_on_a_phone(server, provider):
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    acme = await organization(server, "Acme Fleet")
    await driver(server, "Ada Acme", "Ada@Acme.example", acme)
    await add_user(provider, "ada", email="ada@acme.example", email_verified=True)

    # an admin sets the provider up on the organization's form; the secret is never shown back
    admin = await admin_client(server, "admin", csrf_header=True)
    form = (await admin.get(f"/admin/organizations/{acme}/edit")).text
    assert 'name="oidc_issuer"' in form and 'name="oidc_client_secret"' in form
    saved = await admin.post(f"/admin/organizations/{acme}/edit", data={
        "name": "Acme Fleet", "kind": "customer", "publish": "on", "oidc_issuer": provider + "/",
        "oidc_client_id": "csms-test", "oidc_client_secret": SECRET, "oidc_email_domain": "@Acme.example",
        "oidc_label": "Acme Login"})
    assert saved.status_code == 303, saved.text
    row = await OrganizationOidc.select().where(OrganizationOidc.organization == acme).first()
    assert row["issuer"] == provider and row["client_secret"] == SECRET and row["email_domain"] == "acme.example"
    form = (await admin.get(f"/admin/organizations/{acme}/edit")).text
    assert SECRET not in form and "A secret is stored" in form and f'value="{provider}"' in form
    # saved again with the secret left empty: the stored one stays
    again = await admin.post(f"/admin/organizations/{acme}/edit", data={
        "name": "Acme Fleet", "kind": "customer", "publish": "on", "oidc_issuer": provider,
        "oidc_client_id": "csms-test", "oidc_client_secret": "", "oidc_email_domain": "acme.example",
        "oidc_label": "Acme Login"})
    assert again.status_code == 303, again.text
    assert (await oidc_settings.provider(acme)).client_secret == SECRET
    entries = await AuditEntry.select().where((AuditEntry.object_type == "organization")
                                              & (AuditEntry.object_id == str(acme))).output(load_json=True)
    oidc_entries = [e for e in entries if "oidc_issuer" in (e["after"] or {})]
    assert len(oidc_entries) == 1 and oidc_entries[0]["actor"] == "user:admin"
    assert oidc_entries[0]["after"]["oidc_client_secret"] == "***" and SECRET not in str(entries)
    await admin.aclose()

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(base_url=server.base_url, viewport=PHONE)
            page = await context.new_page()
            page.set_default_timeout(15_000)
            await page.goto("/driver")
            await screenshot(page, "driver-oidc-sign-in-phone")
            await page.get_by_role("button", name="Sign in with Acme Login").click()
            await expect(page.get_by_role("heading", name="Authorize Client")).to_be_visible()  # at the provider
            await page.get_by_placeholder("sub").fill("ada")
            await page.get_by_role("button", name="Authorize").click()
            await page.wait_for_url(f"{server.base_url}/driver/cards")
            await expect(page.get_by_role("heading", name="My cards")).to_be_visible()
            await expect(page.get_by_text("Signed in as Ada Acme")).to_be_visible()
            await screenshot(page, "driver-oidc-signed-in-phone")
            cookies = {c["name"] for c in await context.cookies()}
            assert "csms_driver" in cookies and "csms_driver_oidc" not in cookies
        finally:
            await browser.close()


async def refused(server, url: str, client: httpx.AsyncClient) -> httpx.Response:
    answer = await client.get(url)
    assert answer.status_code in (400, 403, 404, 409, 502), answer.text
    assert "Traceback" not in answer.text and "csms_driver=" not in answer.headers.get("set-cookie", "")
    assert (await client.get("/driver/cards", follow_redirects=False)).status_code in (302, 303, 401)
    return answer


def message(answer: httpx.Response) -> str:
    match = re.search(r'<p role="alert" id="oidc-refused">([^<]*)</p>', answer.text)
    assert match, answer.text
    return match.group(1)


async def test_unknown_other_organizations_and_unverified_addresses_are_refused(any_server, provider, caplog):
    server = any_server
    acme, other = await organization(server, "Acme Fleet"), await organization(server, "Other Ltd")
    await driver(server, "Olga Other", "olga@other.example", other)
    await driver(server, "Vic Acme", "vic@acme.example", acme)
    await configure(acme, provider)
    await add_user(provider, "nobody", email="nobody@acme.example", email_verified=True)
    await add_user(provider, "olga", email="olga@other.example", email_verified=True)
    await add_user(provider, "vic", email="vic@acme.example", email_verified=False)
    drivers_before = await server.api.get("/drivers")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        answer = await refused(server, await back_from_provider(client, acme, {"sub": "nobody"}), client)
        assert answer.status_code == 403
        assert message(answer) == ("No driver of Acme has the address nobody@acme.example. Ask your organization to "
                                   "add you, or sign in with the address you charge with.")
        answer = await refused(server, await back_from_provider(client, acme, {"sub": "olga"}), client)
        assert answer.status_code == 403 and "No driver of Acme has the address olga@other.example" in message(answer)
        answer = await refused(server, await back_from_provider(client, acme, {"sub": "vic"}), client)
        assert answer.status_code == 403 and "has not confirmed your e-mail address" in message(answer)
        answer = await refused(server, await back_from_provider(client, acme, {"action": "deny"}), client)
        assert answer.status_code == 403 and "cancelled or refused" in message(answer)
    assert (await server.api.get("/drivers")).json() == drivers_before.json()  # nobody was created
    assert "sign-in refused (unknown)" in caplog.text and "sign-in refused (unverified)" in caplog.text


async def test_an_address_outside_the_allowed_domain_is_refused(server, provider):
    acme = await organization(server, "Acme Fleet")
    await driver(server, "Pat Private", "pat@home.example", acme)
    await configure(acme, provider, email_domain="acme.example")
    await add_user(provider, "pat", email="pat@home.example", email_verified=True)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        answer = await refused(server, await back_from_provider(client, acme, {"sub": "pat"}), client)
        assert message(answer) == "Only addresses of acme.example can sign in this way."


async def test_a_tampered_state_or_a_missing_flow_is_refused(server, provider):
    acme = await organization(server, "Acme Fleet")
    await driver(server, "Ada Acme", "ada@acme.example", acme)
    await configure(acme, provider)
    await add_user(provider, "ada", email="ada@acme.example", email_verified=True)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        back = await back_from_provider(client, acme, {"sub": "ada"})
        state = parse_qs(urlsplit(back).query)["state"][0]
        answer = await refused(server, back.replace(f"state={state}", "state=forged"), client)
        assert answer.status_code == 400 and "does not belong to the sign-in this browser started" in message(answer)
        # the flow cookie is gone with the refusal: the untouched answer is refused too now
        answer = await refused(server, back, client)
        assert answer.status_code == 400 and "was not started here or took too long" in message(answer)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        back = await back_from_provider(client, acme, {"sub": "ada"})
        flow = client.cookies.get("csms_driver_oidc")
        client.cookies.set("csms_driver_oidc", flow.replace(flow[-6:], "AAAAAA"), path="/driver/oidc")
        answer = await refused(server, back, client)
        assert answer.status_code == 400
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:  # the same answer, honestly
        back = await back_from_provider(client, acme, {"sub": "ada"})
        done = await client.get(back)
        assert done.status_code == 303 and done.headers["location"] == "/driver/cards", done.text
        assert (await client.get("/driver/cards")).status_code == 200


async def test_an_unreachable_provider_gives_a_readable_page(server, caplog):
    acme = await organization(server, "Acme Fleet")
    await configure(acme, f"http://127.0.0.1:{free_port()}")  # nothing listens there
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        page = await client.get("/driver")
        assert "Sign in with Acme" in page.text
        answer = await refused(server, f"/driver/oidc/{acme}/start", client)
        assert answer.status_code == 502 and "cannot be reached" in message(answer)
        assert (await refused(server, "/driver/oidc/999999/start", client)).status_code == 404
    assert "sign-in refused (provider)" in caplog.text


async def test_only_admins_set_a_provider_and_bad_settings_are_explained(server, provider):
    acme = await organization(server, "Acme Fleet")
    operator = await admin_client(server, "operator", csrf_header=True)
    assert 'name="oidc_issuer"' not in (await operator.get(f"/admin/organizations/{acme}/edit")).text
    await operator.post(f"/admin/organizations/{acme}/edit", data={
        "name": "Acme Fleet", "kind": "customer", "oidc_issuer": provider, "oidc_client_id": "x"})
    assert await oidc_settings.provider(acme) is None
    await operator.aclose()
    admin = await admin_client(server, "admin", csrf_header=True)
    answer = await admin.post(f"/admin/organizations/{acme}/edit", data={
        "name": "Acme Fleet", "kind": "customer", "oidc_issuer": "http://login.example.org",
        "oidc_client_id": "", "oidc_client_secret": SECRET, "oidc_email_domain": "not a domain"})
    assert answer.status_code == 422
    assert "must start with https://" in answer.text and "Client id is required" in answer.text
    assert "is not a domain name" in answer.text and SECRET not in answer.text
    assert await oidc_settings.provider(acme) is None
    await configure(acme, provider)
    answer = await admin.post(f"/admin/organizations/{acme}/edit", data={
        "name": "Acme Fleet", "kind": "customer", "oidc_issuer": "", "_csrf_token": csrf_of(
            (await admin.get(f"/admin/organizations/{acme}/edit")).text)})
    assert answer.status_code == 303 and await oidc_settings.provider(acme) is None  # emptied: no provider
    await admin.aclose()


async def test_an_answer_the_provider_does_not_honour_is_refused(server, provider, caplog):
    """The provider is changed between leaving and coming back: the new one knows neither the code
    nor the key that would sign its ID token, and the driver reads why, nothing is signed in."""
    acme = await organization(server, "Acme Fleet")
    await driver(server, "Ada Acme", "ada@acme.example", acme)
    await configure(acme, provider)
    await add_user(provider, "ada", email="ada@acme.example", email_verified=True)
    with oidc_provider_mock.run_server_in_thread() as other:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            back = await back_from_provider(client, acme, {"sub": "ada"})
            await configure(acme, f"http://localhost:{other.server_port}")
            answer = await refused(server, back, client)
            assert answer.status_code == 502 and "could not be verified" in message(answer)
    assert "sign-in refused (token)" in caplog.text
