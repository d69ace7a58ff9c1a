"""Times in the viewer's zone (issue 15): the filters in summer and winter (DST), a user's choice
on the account page changing what the pages show, the installation's default, and Chromium
showing a session's start in the chosen zone on the sessions page and in live-updated elements."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import expect

from csms.admin.templating import fmt_dt, fmt_site_dt, time_zone_names, use_zone, zone_named
from csms.core.tables import ChargingSession, Site, Station
from csms.testing import admin_client, running_server
from tests.admin.conftest import screenshot
from tests.admin.station import online_station

SUMMER = datetime(2026, 7, 1, 12, 0, 5, tzinfo=timezone.utc)
WINTER = datetime(2026, 1, 15, 12, 0, 5, tzinfo=timezone.utc)


@pytest.mark.parametrize(("zone", "summer", "winter"), [
    ("UTC", "2026-07-01 12:00:05", "2026-01-15 12:00:05"),
    ("Europe/Berlin", "2026-07-01 14:00:05", "2026-01-15 13:00:05"),  # CEST +2, CET +1
    ("America/New_York", "2026-07-01 08:00:05", "2026-01-15 07:00:05"),  # EDT -4, EST -5
])
def test_the_dt_filter_in_summer_and_winter(zone, summer, winter):
    tz = ZoneInfo(zone)
    assert fmt_dt(SUMMER, tz=tz) == summer and fmt_dt(WINTER, tz=tz) == winter
    assert fmt_dt(SUMMER.isoformat().replace("+00:00", "Z"), tz=tz) == summer  # stored text too
    assert fmt_dt(SUMMER.replace(tzinfo=None), tz=tz) == summer  # naive values are UTC
    assert fmt_dt(SUMMER, False, tz) == summer[:-3]
    assert fmt_dt(None, tz=tz) == "—"


def test_the_dst_changes_in_berlin_and_new_york():
    berlin, new_york = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")
    # Berlin springs forward at 01:00 UTC on 29 March 2026: 01:59:59 CET, then 03:00:00 CEST
    assert fmt_dt(datetime(2026, 3, 29, 0, 59, 59, tzinfo=timezone.utc), tz=berlin) == "2026-03-29 01:59:59"
    assert fmt_dt(datetime(2026, 3, 29, 1, 0, 0, tzinfo=timezone.utc), tz=berlin) == "2026-03-29 03:00:00"
    # and falls back at 01:00 UTC on 25 October 2026: 02:30 is shown twice, an hour apart
    assert fmt_dt(datetime(2026, 10, 25, 0, 30, tzinfo=timezone.utc), tz=berlin) == "2026-10-25 02:30:00"
    assert fmt_dt(datetime(2026, 10, 25, 1, 30, tzinfo=timezone.utc), tz=berlin) == "2026-10-25 02:30:00"
    # New York: 8 March 2026 07:00 UTC (02:00 EST becomes 03:00 EDT), 1 November 06:00 UTC back
    assert fmt_dt(datetime(2026, 3, 8, 6, 59, tzinfo=timezone.utc), tz=new_york) == "2026-03-08 01:59:00"
    assert fmt_dt(datetime(2026, 3, 8, 7, 0, tzinfo=timezone.utc), tz=new_york) == "2026-03-08 03:00:00"
    assert fmt_dt(datetime(2026, 11, 1, 5, 30, tzinfo=timezone.utc), tz=new_york) == "2026-11-01 01:30:00"
    assert fmt_dt(datetime(2026, 11, 1, 6, 30, tzinfo=timezone.utc), tz=new_york) == "2026-11-01 01:30:00"


def test_the_site_time_is_shown_only_where_it_reads_differently():
    berlin = ZoneInfo("Europe/Berlin")
    assert fmt_site_dt(SUMMER, "America/New_York", berlin) == "2026-07-01 08:00:05 EDT"
    assert fmt_site_dt(WINTER, "America/New_York", berlin) == "2026-01-15 07:00:05 EST"
    assert fmt_site_dt(SUMMER, "Europe/Berlin", berlin) == ""  # the same zone
    assert fmt_site_dt(SUMMER, "Europe/Paris", berlin) == ""  # another name, the same clock
    assert fmt_site_dt(SUMMER, "Nowhere/Atlantis", berlin) == ""  # no valid zone: nothing to add
    assert fmt_site_dt(None, "America/New_York", berlin) == ""


def test_the_request_zone_is_the_default_of_the_filters():
    assert zone_named("Europe/Berlin") == ZoneInfo("Europe/Berlin")
    assert zone_named("Mars/Olympus") is None and zone_named("") is None and zone_named(None) is None
    assert "Europe/Berlin" in time_zone_names() and "UTC" in time_zone_names()
    use_zone("America/New_York")
    try:
        assert fmt_dt(SUMMER) == "2026-07-01 08:00:05"
    finally:
        use_zone("UTC")
    assert fmt_dt(SUMMER) == "2026-07-01 12:00:05"


async def _session(station_id: str, started: datetime, *, site_zone: str | None = None) -> int:
    site = None
    if site_zone:
        site = Site(name=f"Site in {site_zone}", timezone=site_zone)
        await site.save()
    station = Station(station_id=station_id, site=site.id if site else None)
    await station.save()
    row = ChargingSession(station=station.id, transaction_id=f"tx-{station_id}", id_token="TZ-CARD", state="completed",
                          started_at=started, stopped_at=started + timedelta(hours=1), energy_wh=1000.0)
    await row.save()
    return row.id


async def test_a_users_time_zone_changes_what_the_pages_show(server):
    session_id = await _session("TZ-1", WINTER, site_zone="America/New_York")
    client = await admin_client(server, "operator")
    other = await admin_client(server, "viewer")
    try:
        page = (await client.get("/admin/sessions")).text
        assert "2026-01-15 12:00:05" in page and "Times in UTC" in page and 'data-time-zone="UTC"' in page

        account = await client.get("/admin/account")
        assert account.status_code == 200 and 'list="time-zone-names"' in account.text
        assert '<option value="Europe/Berlin">' in account.text
        token = client.cookies.get("csms_csrftoken")
        bad = await client.post("/admin/account/time-zone", data={"time_zone": "Europe/Atlantis", "_csrf_token": token})
        assert bad.status_code == 422 and "is not a time zone" in bad.text
        saved = await client.post("/admin/account/time-zone", data={"time_zone": "Europe/Berlin", "_csrf_token": token})
        assert saved.status_code == 303 and saved.headers["location"] == "/admin/account?saved=time-zone"

        page = (await client.get("/admin/sessions")).text
        assert "2026-01-15 13:00:05" in page and "2026-01-15 12:00:05" not in page
        assert "Times in Europe/Berlin" in page and 'data-time-zone="Europe/Berlin"' in page
        fragment = (await client.get("/admin/sessions", headers={"HX-Request": "true"})).text  # the live refresh
        assert "2026-01-15 13:00:05" in fragment
        detail = (await client.get(f"/admin/sessions/{session_id}")).text
        assert "2026-01-15 13:00:05" in detail and "2026-01-15 07:00:05 EST at the site" in detail

        # the date filter is the viewer's day: 00:30 in Berlin on the 16th is still the 15th in UTC
        await _session("TZ-2", datetime(2026, 1, 15, 23, 30, tzinfo=timezone.utc))
        listed = (await client.get("/admin/sessions?from=2026-01-16&to=2026-01-16")).text
        assert "tx-TZ-2" in listed and "tx-TZ-1" not in listed
        csv = (await client.get("/admin/sessions.csv?from=2026-01-16")).text
        assert "2026-01-15T23:30:00+00:00" in csv  # exports stay UTC, with the offset

        # another user still sees UTC; clearing the choice goes back to the installation's default
        assert "2026-01-15 12:00:05" in (await other.get("/admin/sessions")).text
        await client.post("/admin/account/time-zone", data={"time_zone": "", "_csrf_token": token})
        assert "2026-01-15 12:00:05" in (await client.get("/admin/sessions")).text
    finally:
        await client.aclose()
        await other.aclose()


async def test_the_installation_default_time_zone(tmp_path):
    async with running_server(tmp_path, admin_time_zone="America/New_York") as srv:
        await _session("TZ-D", SUMMER)
        client = await admin_client(srv, "viewer")
        try:
            page = (await client.get("/admin/sessions")).text
            assert "2026-07-01 08:00:05" in page and "Times in America/New_York" in page
            assert "the installation's default, America/New_York" in (await client.get("/admin/account")).text
        finally:
            await client.aclose()


def test_an_unknown_installation_zone_is_refused():
    from pydantic import ValidationError

    from csms.settings import Settings

    with pytest.raises(ValidationError, match="not a known time zone"):
        Settings(admin_time_zone="Europe/Atlantis")
    assert Settings(admin_time_zone="").admin_time_zone == "UTC"


async def test_chromium_shows_times_in_the_zone_chosen_on_the_account_page(page_as, server):
    await _session("TZ-OLD", WINTER)
    for width, height, suffix in ((1280, 900, ""), (390, 844, "-phone")):
        page = await page_as("operator", width=width, height=height)
        if not suffix:
            await page.goto("/admin/account")
            await page.get_by_label("Your time zone").fill("America/New_York")
            await page.get_by_role("button", name="Save time zone").click()
            await expect(page.locator("#time-zone-saved")).to_contain_text("America/New_York")
            await expect(page.locator("footer")).to_contain_text("Times in America/New_York")
            await screenshot(page, "account-time-zone")
        await page.goto("/admin/sessions")
        await expect(page.locator("body")).to_have_attribute("data-time-zone", "America/New_York")
        await expect(page.locator("#sessions tbody")).to_contain_text("2026-01-15 07:00:05")  # 12:00:05 UTC, EST
        assert await page.evaluate("window.csmsFormatTime(new Date('2026-07-01T12:00:05Z'))") == "2026-07-01 08:00:05"
        if suffix:
            await screenshot(page, "sessions-time-zone-phone")
            await page.context.close()
            continue

        async with online_station(server.ws_url("TZ-LIVE"), "TZ-LIVE") as station:
            # a session starts while the page is open: its row arrives live, in New York time
            station.transaction_id = "tx-live-1"
            await station.start_charging(id_token={"id_token": "LIVE-CARD", "type": "ISO14443"}, remote_start_id=1)
            rows = page.locator("#sessions tbody tr", has_text="LIVE-CARD")
            await expect(rows).to_have_count(1)
            row = await ChargingSession.select(ChargingSession.started_at).where(
                ChargingSession.transaction_id == "tx-live-1").first()
            started = row["started_at"].astimezone(ZoneInfo("America/New_York")).strftime("%Y-%m-%d %H:%M:%S")
            await expect(rows).to_contain_text(started)
            await screenshot(page, "sessions-time-zone")

            # the station list's "last seen" moves on live; its exact time (the tooltip) is in the zone
            await page.goto("/admin/stations")
            seen = page.locator("time[data-seen='TZ-LIVE']")
            before = await seen.get_attribute("datetime")
            await station.status("Occupied")
            await expect(seen).not_to_have_attribute("datetime", before or "")
            iso = await seen.get_attribute("datetime")
            expected = datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(
                ZoneInfo("America/New_York")).strftime("%Y-%m-%d %H:%M:%S")
            await expect(seen).to_have_attribute("title", expected)
            assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", expected)
        await page.context.close()
