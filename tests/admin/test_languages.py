"""Languages and the viewer's days (issue 15), against one real server: the account page's language
choice changes the admin (German navigation), Accept-Language chooses for those who chose none and
for the driver portal and the public map, the audit filter and the dashboard count the viewer's
days, Chromium shows the German dashboard on a desktop and a phone (screenshots saved), the
station, sessions, cards and sites pages speak German too (the station page on a desktop and a
phone, screenshots saved), and so do the plugins' page bodies, refusals and notices (firmware,
notifications, a billing error, a roaming notice)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import httpx
from playwright.async_api import expect

from csms.core.tables import AuditEntry, ChargingSession, IdToken, Site, Station
from csms.testing import admin_client
from tests.admin.conftest import screenshot


async def test_language_choice_accept_language_and_the_viewers_days(page_as, server):
    berlin = ZoneInfo("Europe/Berlin")
    client = await admin_client(server, "operator")
    viewer = await admin_client(server, "viewer")
    try:
        english = (await client.get("/")).text
        assert '<html lang="en">' in english and ">Stations</a>" in english and ">Sessions</a>" in english

        account = await client.get("/admin/account")
        assert 'name="language"' in account.text and '<option value="de" lang="de">Deutsch</option>' in account.text
        token = client.cookies.get("csms_csrftoken")
        bad = await client.post("/admin/account/language", data={"language": "tlh", "_csrf_token": token})
        assert bad.status_code == 422 and "Choose a language from the list." in bad.text
        saved = await client.post("/admin/account/language", data={"language": "de", "_csrf_token": token})
        assert saved.status_code == 303 and saved.headers["location"] == "/admin/account?saved=language"
        await client.post("/admin/account/time-zone", data={"time_zone": "Europe/Berlin", "_csrf_token": token})

        german = (await client.get("/", headers={"Accept-Language": "fr"})).text  # one's own choice wins
        assert '<html lang="de">' in german and 'data-language="de"' in german
        assert ">Ladestationen</a>" in german and ">Ladevorgänge</a>" in german and "Energie heute" in german
        assert "Zeiten in Europe/Berlin" in german and ">Stations</a>" not in german
        assert "Gespeichert: Die Verwaltung spricht jetzt Deutsch." in (await client.get("/admin/account?saved=language")).text
        missing = await client.get("/admin/stations/NO-SUCH-STATION")
        assert missing.status_code == 404 and "Nicht gefunden" in missing.text  # error pages too

        # who chose nothing: the browser's language, else the installation's (en)
        assert ">Bornes</a>" in (await viewer.get("/", headers={"Accept-Language": "fr-BE,fr;q=0.9"})).text
        assert ">Laadpalen</a>" in (await viewer.get("/admin/stations", headers={"Accept-Language": "nl"})).text
        assert ">Stations</a>" in (await viewer.get("/", headers={"Accept-Language": "es"})).text

        # the audit log's day filter is the viewer's day: 23:30 UTC on the 15th is the 16th in Berlin
        await AuditEntry(at=datetime(2026, 1, 15, 23, 30, tzinfo=timezone.utc), actor="cli", action="update",
                         object_type="site", object_id="late", summary="late evening in UTC").save()
        await AuditEntry(at=datetime(2026, 1, 15, 22, 30, tzinfo=timezone.utc), actor="cli", action="update",
                         object_type="site", object_id="early", summary="before midnight in Berlin").save()
        await client.post("/admin/account/language", data={"language": "", "_csrf_token": token})
        admin = await admin_client(server, "admin")
        try:
            await admin.post("/admin/account/time-zone", data={"time_zone": "Europe/Berlin",
                                                               "_csrf_token": admin.cookies.get("csms_csrftoken")})
            listed = (await admin.get("/admin/audit?from=2026-01-16&to=2026-01-16")).text
            assert "late evening in UTC" in listed and "before midnight in Berlin" not in listed
            assert "Days are those of your time zone, Europe/Berlin." in listed
        finally:
            await admin.aclose()

        # the dashboard's "energy today" is the viewer's today: a session a minute after midnight in
        # Berlin (still yesterday in UTC) counts for the Berlin user, not for a UTC one
        today_start = datetime.combine(datetime.now(berlin).date(), datetime.min.time(), tzinfo=berlin)
        station = Station(station_id="LANG-1")
        await station.save()
        await ChargingSession(station=station.id, transaction_id="tx-lang", id_token="LANG", state="completed",
                              started_at=today_start + timedelta(minutes=1), stopped_at=today_start + timedelta(minutes=30),
                              energy_wh=4321.0).save()
        berlin_stats = (await client.get("/admin/dashboard/stats")).text
        assert 'id="energy-today">4.32 kWh' in berlin_stats
        if today_start.astimezone(timezone.utc).date() != datetime.now(timezone.utc).date():
            assert 'id="energy-today">0.00 kWh' in (await viewer.get("/admin/dashboard/stats")).text

        # the driver portal and the public map speak the browser's language
        async with httpx.AsyncClient(base_url=server.base_url) as anonymous:
            portal = await anonymous.get("/driver", headers={"Accept-Language": "nl-NL,nl;q=0.9,en;q=0.5"})
            assert '<html lang="nl">' in portal.text and "Aanmelden met wachtwoord" in portal.text
            portal = await anonymous.get("/driver", headers={"Accept-Language": "de"})
            assert "Mit Passwort anmelden" in portal.text
            assert "Sign in with a password" in (await anonymous.get("/driver")).text
            link = (await anonymous.get("/driver/link/not-a-secret", headers={"Accept-Language": "de"})).text
            assert "<h1>Anmelden</h1>" in link and "Melden Sie sich an, um Ihre Ladekarten und Ladevorgänge zu sehen." in link
            public = await anonymous.get("/map", headers={"Accept-Language": "fr"})
            assert "<h1>Bornes de recharge</h1>" in public.text and public.headers["vary"] == "Accept-Language"
    finally:
        await client.aclose()
        await viewer.aclose()

    # Chromium: a German user's dashboard on a desktop and a phone, without a horizontal scrollbar
    await client_with_language(server, "viewer", "de")
    for width, height, suffix in ((1280, 900, ""), (390, 844, "-phone")):
        page = await page_as("viewer", width=width, height=height)
        await page.goto("/")
        await expect(page.locator("h1")).to_have_text("Übersicht")
        await expect(page.locator("#energy-today")).to_be_visible()
        if suffix:
            await page.get_by_role("button", name="Menü").click()
        await expect(page.get_by_role("link", name="Änderungsprotokoll")).to_have_count(0)  # viewer: no audit log
        await expect(page.get_by_role("link", name="Ladestationen", exact=True)).to_be_visible()
        overflow = await page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"the German dashboard is {overflow}px wider than a {width}px screen"
        await screenshot(page, f"dashboard-de{suffix}")
        await page.context.close()


async def test_station_sessions_cards_and_sites_pages_in_german(page_as, server):
    site = Site(name="Hafen", city="Hamburg", grid_limit_l1_a=63, grid_limit_l2_a=63, grid_limit_l3_a=63)
    await site.save()
    station = Station(station_id="DE-LANG-1", site=site.id, vendor="Acme", model="Wallbox")
    await station.save()
    await ChargingSession(station=station.id, transaction_id="tx-de", id_token="KARTE-1", state="completed",
                          started_at=datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc),
                          stopped_at=datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc), energy_wh=7500.0).save()
    session = await ChargingSession.select(ChargingSession.id).where(ChargingSession.transaction_id == "tx-de").first()
    await IdToken(id_token="KARTE-1", label="Flotte").save()
    await client_with_language(server, "operator", "de")

    for width, height, suffix in ((1280, 900, ""), (390, 844, "-phone")):
        page = await page_as("operator", width=width, height=height)
        await page.goto("/admin/stations/DE-LANG-1")
        await expect(page.get_by_role("heading", name="Registrierung und Ort")).to_be_visible()
        await expect(page.get_by_role("heading", name="Aktionen")).to_be_visible()
        await expect(page.get_by_role("heading", name="Verbindung")).to_be_visible()
        await expect(page.get_by_role("link", name="Konfiguration")).to_be_visible()
        await expect(page.get_by_role("heading", name="Sicherheitsprofil")).to_be_visible()
        await page.get_by_text("Ladestation neu starten").first.wait_for(state="attached")
        overflow = await page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"the German station page is {overflow}px wider than a {width}px screen"
        await screenshot(page, f"station-de{suffix}")
        await page.context.close()

    page = await page_as("operator")
    await page.goto("/admin/stations/DE-LANG-1?tab=configuration")
    await expect(page.get_by_role("button", name="Von der Ladestation lesen")).to_be_visible()
    await page.goto("/admin/stations/DE-LANG-1?tab=messages")
    await expect(page.get_by_label("Richtung")).to_be_visible()

    await page.goto("/admin/sessions")
    await expect(page.locator("h1")).to_have_text("Ladevorgänge")
    await expect(page.locator("#sessions thead")).to_contain_text("Token / Fahrer")
    await expect(page.get_by_label("Begonnen ab")).to_be_visible()
    await page.goto(f"/admin/sessions/{session['id']}")
    await expect(page.locator("h1")).to_have_text(f"Ladevorgang Nr. {session['id']}")
    await expect(page.get_by_role("heading", name="Messwerte")).to_be_visible()
    await expect(page.get_by_role("heading", name="Kosten")).to_be_visible()

    await page.goto("/admin/tokens")
    await expect(page.locator("h1")).to_have_text("Ladekarten und Token")
    await expect(page.get_by_role("button", name="KARTE-1 sperren")).to_be_visible()
    await page.goto("/admin/tokens/refused")
    await expect(page.locator("h1")).to_have_text("Abgelehnte unbekannte Token")

    await page.goto("/admin/sites")
    await expect(page.locator("h1")).to_have_text("Standorte und Hubs")
    await expect(page.get_by_role("columnheader", name="Netzgrenze je Phase")).to_be_visible()
    await page.goto(f"/admin/sites/{site.id}")
    await expect(page.get_by_role("heading", name="Netzanschluss")).to_be_visible()
    await expect(page.get_by_role("heading", name="Ladestationen (1)")).to_be_visible()
    assert await page.title() == "Standort Hafen · CSMS"

    # a form: German labels and legends, and the checks answer in German (nothing stored)
    await page.goto("/admin/sites/new")
    await expect(page.locator("legend").nth(2)).to_have_text("Koordinaten")
    await page.get_by_label("Name").fill("Werk 2")
    await page.get_by_label("Breitengrad").fill("123.4")
    await page.get_by_label("Spannung Phase gegen Neutralleiter (V)").fill("230")
    await page.get_by_role("button", name="Standort speichern").click()
    summary = page.get_by_role("alert")
    await expect(summary).to_contain_text("Nichts wurde gespeichert")
    await expect(summary).to_contain_text("Breitengrad muss zwischen -90 und 90 liegen; „123.4“ liegt außerhalb.")
    assert await Site.count().where(Site.name == "Werk 2") == 0
    await page.context.close()


async def test_plugin_pages_in_german(page_as, server):
    """The plugins' own catalogs: their navigation entries, headings and tables speak German (the
    stationops health and alerts pages, the roaming pages, the billing plugin's tariff form)."""
    await Station(station_id="DE-HEALTH-1").save()
    await client_with_language(server, "operator", "de")
    page = await page_as("operator")
    await page.goto("/admin/health")
    nav = page.get_by_role("navigation", name="Hauptmenü")
    for label in ("Zustand", "Warnungen", "Benachrichtigungen", "Roaming", "Abrechnung"):
        await expect(nav.get_by_role("link", name=label, exact=True)).to_be_visible()
    await expect(nav.get_by_role("link", name="Health", exact=True)).to_have_count(0)
    await expect(page.locator("h1")).to_have_text("Zustand")
    await expect(page.get_by_role("heading", name="Standorte")).to_be_visible()
    await expect(page.get_by_role("heading", name="Ladestationen")).to_be_visible()
    await expect(page.get_by_role("navigation", name="Zeitraum").get_by_role("link", name="letzte 7d")).to_be_visible()
    await expect(page.get_by_role("link", name="DE-HEALTH-1")).to_be_visible()
    await expect(page.locator("thead").last).to_contain_text("Verpasste Heartbeats")
    assert await page.title() == "Zustand · CSMS"
    await page.goto("/admin/alerts")
    await expect(page.locator("h1")).to_have_text("Warnungen")
    await expect(page.get_by_role("navigation", name="Status der Warnungen").get_by_role("link", name="Offen")).to_have_attribute(
        "aria-current", "page")
    await expect(page.get_by_text("Keine offenen Warnungen.")).to_be_visible()

    await page.goto("/admin/roaming")
    await expect(page.get_by_role("heading", name="Partner", exact=True)).to_be_visible()
    await expect(page.get_by_text("Noch keine Roaming-Partner.")).to_be_visible()
    subnav = page.get_by_role("navigation", name="Roaming")
    await expect(subnav.get_by_role("link", name="Partner")).to_have_attribute("aria-current", "page")
    await subnav.get_by_role("link", name="Zustellungen").click()
    await expect(page.locator("h1")).to_have_text("Roaming-Zustellungen")
    await expect(page.get_by_role("heading", name="Fehlgeschlagen")).to_be_visible()
    await expect(page.get_by_text("Keine fehlgeschlagenen Übertragungen.")).to_be_visible()
    await screenshot(page, "roaming-deliveries-de")

    await page.goto("/admin/billing/tariffs/new")  # the billing plugin's tariff form
    await expect(page.locator("h1")).to_have_text("Neuer Tarif")
    await expect(page.get_by_label("Tarif-ID (OCPI)")).to_be_visible()
    await expect(page.get_by_label("USt. %")).to_be_visible()
    await expect(page.get_by_label("Zeile 1 Energiepreis")).to_be_visible()
    await expect(page.locator(".restriction-rows tbody tr").first.locator("td.days")).to_contain_text("MoDiMiDoFrSaSo")
    await page.context.close()


async def test_plugin_bodies_errors_and_notices_in_german(page_as, server):
    """What was still English: the stationops firmware page and its refusals, the notifications page
    and its notices, a billing error on the tariff form (``BillingError``, worded in the viewer's
    language when shown), a roaming notice (the redirect names it by key and the page words it:
    the same link reads English for an English viewer), a new station without a password, the QR
    panel and the users page's roles. Screenshots saved (desktop and phone for the firmware page)."""
    from plugins.roaming_ocpi.tables import Partner

    await Station(station_id="DE-PLUGIN-1", model="Wallbox").save()
    await client_with_language(server, "operator", "de")
    await client_with_language(server, "admin", "de")

    for width, height, suffix in ((1280, 900, ""), (390, 844, "-phone")):
        page = await page_as("operator", width=width, height=height)
        await page.goto("/admin/firmware")
        await expect(page.locator("h1")).to_have_text("Firmware")
        await expect(page.get_by_role("heading", name="Kampagnen")).to_be_visible()
        await expect(page.get_by_text("Noch keine Kampagnen.")).to_be_visible()
        await expect(page.get_by_text("Der Katalog ist leer.")).to_be_visible()
        await expect(page.get_by_role("heading", name="Firmware-Version hinzufügen")).to_be_visible()
        await expect(page.get_by_text("Fügen Sie zuerst eine Firmware-Version hinzu.")).to_be_visible()
        overflow = await page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"the German firmware page is {overflow}px wider than a {width}px screen"
        await screenshot(page, f"firmware-de{suffix}")
        await page.context.close()

    page = await page_as("operator")
    # a refused firmware (neither a file nor a URL): the plugin's refusal in German
    await page.goto("/admin/firmware")
    await page.get_by_label("Version (wie die Ladestation sie meldet)").fill("9.9")
    await page.get_by_role("button", name="Hinzufügen", exact=True).click()
    await expect(page.get_by_role("alert")).to_contain_text("geben Sie entweder eine Download-URL oder eine Datei an")
    await page.get_by_label("…oder eine Download-URL").fill("https://fw.example.org/9.9.bin")
    await page.get_by_label("Version (wie die Ladestation sie meldet)").fill("9.9")
    await page.get_by_role("button", name="Hinzufügen", exact=True).click()
    await expect(page.get_by_role("status")).to_contain_text("Firmware 9.9 hinzugefügt.")
    assert "m=firmware_added" in page.url
    await expect(page.get_by_role("cell", name="jeder Hersteller / jedes Modell")).to_be_visible()
    await page.get_by_label("Name", exact=True).fill("Frühling")
    await page.get_by_label("Ladestations-Kennungen").fill("DE-PLUGIN-1")
    await page.get_by_role("button", name="Kampagne anlegen").click()
    await expect(page.get_by_role("status")).to_contain_text("Kampagne angelegt.")
    await expect(page.locator("hgroup p")).to_contain_text("Firmware 9.9")
    await expect(page.get_by_text("Zeitfenster: jederzeit")).to_be_visible()
    await expect(page.get_by_role("columnheader", name="Ladestation meldet")).to_be_visible()
    await screenshot(page, "firmware-campaign-de")

    # the notifications page, a refused subscription and the notice of an added one
    await page.goto("/admin/notifications")
    await expect(page.locator("h1")).to_have_text("Benachrichtigungen")
    await expect(page.get_by_text("Noch keine Abonnements.")).to_be_visible()
    await page.get_by_label("URL oder E-Mail-Adresse").fill("not a url")
    await page.get_by_role("button", name="Hinzufügen", exact=True).click()
    await expect(page.get_by_role("alert")).to_contain_text("ein Webhook-Ziel ist eine http(s)-URL")
    await page.get_by_label("URL oder E-Mail-Adresse").fill("https://hooks.example.org/csms")
    await page.get_by_role("button", name="Hinzufügen", exact=True).click()
    await expect(page.get_by_role("status")).to_contain_text("Abonnement hinzugefügt.")
    await expect(page.get_by_role("cell", name="alles", exact=True)).to_be_visible()
    await expect(page.get_by_role("button", name="Deaktivieren")).to_be_visible()
    await screenshot(page, "notifications-de")

    # a billing error: the tariff in the JSON editor is no object; then an OCPI id taken twice
    await page.goto("/admin/billing/tariffs/new?editor=json")
    await page.get_by_label("OCPI-2.2.1-Tarif (JSON)").fill("[1, 2]")
    await page.get_by_role("button", name="Speichern").click()
    await expect(page.locator("#f-ocpi")).to_have_attribute("aria-invalid", "true")
    await expect(page.get_by_text("Der Tarif muss ein JSON-Objekt sein (ein OCPI-2.2.1-Tarif).").first).to_be_visible()
    await screenshot(page, "billing-error-de")
    for _ in range(2):
        await page.goto("/admin/billing/tariffs/new?editor=json")
        await page.get_by_role("button", name="Speichern").click()
    await expect(page.get_by_text("Ein Tarif mit der OCPI-Kennung 'STANDARD' existiert bereits").first).to_be_visible()
    await page.context.close()

    # a roaming notice: worded where the page is shown, in the viewer's language
    partner = Partner(name="Hafenpartner", status="registered")
    await partner.save()
    page = await page_as("admin")
    await page.goto(f"/admin/roaming/partners/{partner.id}")
    await page.get_by_role("button", name="Token-Kodierung wechseln").click()
    await expect(page.get_by_role("status")).to_have_text("Token-Kodierung umgeschaltet.")
    assert page.url.endswith(f"/admin/roaming/partners/{partner.id}?m=raw")
    await screenshot(page, "roaming-notice-de")
    await page.context.close()
    viewer = await admin_client(server, "viewer")
    try:
        english = (await viewer.get(f"/admin/roaming/partners/{partner.id}?m=raw")).text
        assert "Token encoding switched." in english
        assert "Token-Kodierung" not in (await viewer.get(f"/admin/roaming/partners/{partner.id}?m=Hacked")).text
    finally:
        await viewer.aclose()

    # core: a station made without a password has none; the QR panel; the users page's roles
    page = await page_as("admin")
    await page.goto("/admin/stations/DE-PLUGIN-1")
    await expect(page.get_by_text("Kein Passwort gesetzt.")).to_be_visible()
    await expect(page.get_by_role("heading", name="QR-Etiketten")).to_be_visible()
    await expect(page.get_by_role("link", name="QR-Etiketten drucken →")).to_be_visible()
    await page.goto("/admin/users/new")
    await expect(page.locator("h1")).to_have_text("Benutzer einladen")
    await expect(page.get_by_label("Rolle")).to_contain_text("Betrachter")
    await expect(page.get_by_text("Betrachter lesen; Bediener handeln auch")).to_be_visible()
    await page.context.close()


async def client_with_language(server, role: str, language: str) -> None:
    """``role``'s own language set on the account page (their browser sessions follow it)."""
    client = await admin_client(server, role)
    try:
        done = await client.post("/admin/account/language",
                                 data={"language": language, "_csrf_token": client.cookies.get("csms_csrftoken")})
        assert done.status_code == 303
    finally:
        await client.aclose()
