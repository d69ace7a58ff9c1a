"""Markup planted in every free-text field never runs, and every HTML page carries a
Content-Security-Policy that forbids inline script (issue 15)."""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

from csms.core.tables import Driver, IdToken, Organization, Site, Station
from csms.security_headers import content_security_policy, tile_origin
from tests.admin.conftest import http_login

PLANT = '<img src=x onerror="window.__xss=1"><script>window.__xss=1</script>"\'><svg onload="window.__xss=1">'
WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__csp.push(e.violatedDirective + " " + e.blockedURI);
});
"""
MAX_PAGES = 80


async def plant() -> None:
    org = Organization(name="Org " + PLANT, kind="employer")
    await org.save()
    await Site(name="Site " + PLANT, address=PLANT, city=PLANT, latitude=52.5, longitude=13.4, publish=True).save()
    await Station(station_id="XSS-1", vendor="V" + PLANT, model="M" + PLANT, serial_number="S" + PLANT,
                  description=PLANT).save()
    driver = Driver(name="Driver " + PLANT, notes=PLANT)
    await driver.save()
    await IdToken(id_token="XSSCARD1", label="Card " + PLANT, driver=driver.id).save()
    try:  # the plugins' own free-text fields, when those plugins are installed
        from plugins.billing.tables import Tariff

        await Tariff(code="xss-tariff", name="Tariff " + PLANT).save()
    except ImportError:
        pass
    try:
        from plugins.roaming_ocpi.tables import Partner

        await Partner(name="Partner " + PLANT, country_code="DE", party_id="XSS").save()
    except ImportError:
        pass


def test_policy_allows_the_tile_host_and_no_inline_script() -> None:
    policy = content_security_policy("https://{s}.tile.example.org/{z}/{x}/{y}.png")
    assert "img-src 'self' data: blob: https://*.tile.example.org;" in policy
    assert "script-src 'self';" in policy and "unsafe-inline'; connect" in policy  # inline styles only
    assert "unsafe-eval" not in policy
    assert tile_origin("/tiles/{z}/{x}/{y}.png") is None


async def test_planted_markup_never_runs_and_every_page_has_the_policy(page_as, server):
    await plant()
    page = await page_as("admin")
    context = page.context
    await context.add_init_script(WATCH)
    console: list[str] = []
    missing: list[str] = []

    def on_response(response) -> None:
        if response.request.resource_type == "document" and \
                (response.headers.get("content-type") or "").startswith("text/html"):
            policy = response.headers.get("content-security-policy") or ""
            if "script-src 'self'" not in policy or response.headers.get("x-content-type-options") != "nosniff":
                missing.append(response.url)

    context.on("response", on_response)
    context.on("console", lambda m: console.append(m.text) if "Content Security Policy" in m.text
               or "Refused to" in m.text else None)

    origin = server.base_url.rstrip("/")
    queue = ["/admin", "/admin/stations/XSS-1", "/map", "/driver"]
    seen: set[str] = set()
    visited = 0
    while queue and visited < MAX_PAGES:
        path = queue.pop(0)
        if path in seen:
            continue
        seen.add(path)
        response = await page.goto(path)
        visited += 1
        if response is None or not (response.headers.get("content-type") or "").startswith("text/html"):
            continue
        await page.wait_for_load_state("load")
        state = await page.evaluate("[window.__xss || 0, window.__csp || []]")
        assert state[0] == 0, f"planted script ran on {path}"
        assert state[1] == [], f"CSP violation on {path}: {state[1]}"
        for href in await page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))"):
            url = urlsplit(urljoin(origin + path, href))
            target = url.path + (f"?{url.query}" if url.query else "")
            if f"{url.scheme}://{url.netloc}" != origin or not url.path.startswith(("/admin", "/map", "/driver")) \
                    or url.path.startswith("/admin/db"):  # Piccolo Admin's vendored SPA: exempt
                continue
            if any(word in url.path for word in ("logout", "export", ".csv", ".pdf", "stream", "delete")):
                continue
            if target not in seen:
                queue.append(target)
    assert visited >= 10, seen
    print(f"visited {visited} pages:", sorted(seen))
    assert not missing, missing
    assert not console, console

    async with http_login(server.base_url, "admin") as client:  # plugin pages and core pages, over HTTP
        for path in ("/admin/billing", "/admin/roaming", "/admin/notifications", "/admin/stations", "/driver", "/map"):
            response = await client.get(path)
            assert response.status_code == 200, path
            policy = response.headers["content-security-policy"]
            assert "script-src 'self';" in policy and "frame-ancestors 'none'" in policy, path
            assert response.headers["x-content-type-options"] == "nosniff", path
            assert response.headers["referrer-policy"] == "same-origin", path
