"""QR labels to print: a sheet per station and per site, one SVG QR code per EVSE with the
station id, the EVSE number and the start URL (from ``public_url``) underneath; viewers may open
it, an organization's users only for their own stations and sites; in Chromium the codes decode
to the URL (OpenCV's detector, when installed) and the print layout leaves only the labels.
Screenshots qr-labels-*.png."""

from __future__ import annotations

import re

from csms.admin.qr_labels import start_path
from csms.core.tables import Connector, Organization, Site, Station
from csms.testing import admin_browser, admin_client, running_server, screenshot

BASE = "https://charge.example.com"


async def world() -> dict[str, int]:
    org = Organization(name="Harbour GmbH")
    other = Organization(name="Other AG")
    await org.save()
    await other.save()
    site = Site(name="Harbour depot", organization=org.id, latitude=53.5, longitude=9.9, publish=True)
    hidden = Site(name="Yard", organization=org.id, publish=False)
    foreign = Site(name="Other site", organization=other.id, latitude=50.0, longitude=8.0)
    for s in (site, hidden, foreign):
        await s.save()
    a = Station(station_id="CP-LABEL-A", organization=org.id, site=site.id, connected=True)
    b = Station(station_id="CP-LABEL-B", organization=org.id, site=site.id)
    c = Station(station_id="CP-YARD", organization=org.id, site=hidden.id)
    x = Station(station_id="CP-FOREIGN", organization=other.id, site=site.id)  # another's, on this site
    for s in (a, b, c, x):
        await s.save()
    await Connector.insert(*[Connector(station=a.id, evse_id=e, connector_id=1, status="Available") for e in (1, 2)],
                           Connector(station=a.id, evse_id=0, connector_id=0, status="Available"),
                           Connector(station=b.id, evse_id=1, connector_id=1), Connector(station=b.id, evse_id=1,
                                                                                         connector_id=2),
                           Connector(station=c.id, evse_id=1, connector_id=1),
                           Connector(station=x.id, evse_id=1, connector_id=1))
    return {"org": org.id, "other": other.id, "site": site.id, "hidden": hidden.id, "foreign": foreign.id}


def labels(html: str) -> list[str]:
    return re.findall(r'<li class="qr-label" data-url="([^"]+)"', html)


async def test_label_sheets_per_station_and_site_with_the_public_url(tmp_path):
    async with running_server(tmp_path, public_url=BASE + "/") as srv:
        ids = await world()
        viewer = await admin_client(srv, "viewer", organization=ids["org"])
        one = await viewer.get("/admin/stations/CP-LABEL-A/qr", headers={"Host": "evil.example"})
        assert one.status_code == 200
        assert labels(one.text) == [BASE + start_path("CP-LABEL-A", 1), BASE + start_path("CP-LABEL-A", 2)]
        assert one.text.count('<svg viewBox=') == 2 and "evil.example" not in one.text
        assert ">EVSE 2<" in one.text and ">CP-LABEL-A<" in one.text and f">{BASE}/driver/start/CP-LABEL-A/1<" in one.text
        assert "Not public" not in one.text

        sheet = await viewer.get(f"/admin/sites/{ids['site']}/qr")
        assert sheet.status_code == 200
        assert labels(sheet.text) == [BASE + start_path("CP-LABEL-A", 1), BASE + start_path("CP-LABEL-A", 2),
                                      BASE + start_path("CP-LABEL-B", 1)]  # B: one EVSE with two connectors
        assert "CP-FOREIGN" not in sheet.text  # another organization's station on the site

        yard = await viewer.get("/admin/stations/CP-YARD/qr")
        assert yard.status_code == 200 and "Not public" in yard.text
        for path in ("/admin/stations/CP-FOREIGN/qr", f"/admin/sites/{ids['foreign']}/qr", "/admin/stations/NOPE/qr",
                     "/admin/sites/999999/qr"):
            assert (await viewer.get(path)).status_code == 404, path

        detail = await viewer.get("/admin/stations/CP-LABEL-A")
        assert 'href="/admin/stations/CP-LABEL-A/qr"' in detail.text  # the panel's link
        site_page = await viewer.get(f"/admin/sites/{ids['site']}")
        assert f'href="/admin/sites/{ids["site"]}/qr"' in site_page.text

        installation_admin = await admin_client(srv, "admin")
        theirs = await installation_admin.get("/admin/stations/CP-FOREIGN/qr")
        assert theirs.status_code == 200 and len(labels(theirs.text)) == 1  # the probe above was real
        await installation_admin.aclose()
        await viewer.aclose()


async def test_the_label_sheet_in_chromium_decodes_and_prints(tmp_path):
    async with running_server(tmp_path, unknown_stations="accept") as srv:
        ids = await world()
        async with admin_browser(srv, "viewer", organization=ids["org"]) as page:
            await page.goto(f"/admin/sites/{ids['site']}/qr")
            cards = page.locator(".qr-label")
            assert await cards.count() == 3
            first = cards.first
            url = f"{srv.base_url}{start_path('CP-LABEL-A', 1)}"
            assert await first.locator(".qr-url").inner_text() == url
            assert await first.locator("svg.qr-code").count() == 1
            await screenshot(page, "qr-labels-desktop")
            image = await first.locator("svg.qr-code").screenshot()
            # a real decoder (opencv-python-headless, in the test extra): the code as printed is the URL
            import cv2
            import numpy

            # OpenCV's detector misses about 1 code in 75 at one size (which ones depends on the
            # URL, and the port in it changes every run): the same screenshot is tried enlarged too
            printed = cv2.imdecode(numpy.frombuffer(image, numpy.uint8), cv2.IMREAD_GRAYSCALE)
            decoded = ""
            for factor in (1, 2, 3, 4):
                enlarged = cv2.resize(printed, None, fx=factor, fy=factor, interpolation=cv2.INTER_NEAREST)
                decoded = cv2.QRCodeDetector().detectAndDecode(enlarged)[0]
                if decoded:
                    break
            assert decoded == url

            await page.set_viewport_size({"width": 794, "height": 1123})  # A4 at 96 dpi
            await page.emulate_media(media="print")
            assert not await page.locator(".site-header").is_visible()
            assert not await page.get_by_role("button", name="Print").is_visible()
            assert await cards.nth(2).is_visible()
            await screenshot(page, "qr-labels-print")
            pdf = await page.pdf(format="A4", print_background=True)
            assert pdf.startswith(b"%PDF")
            (tmp_path / "labels.pdf").write_bytes(pdf)
