"""The REST API: CRUD of the directory, tokens, roles, clear errors."""

from __future__ import annotations

import httpx

from csms.core.security import new_api_key
from csms.core.tables import ApiKey


async def test_directory_crud(any_server):
    api = any_server.api
    org = (await api.post("/organizations", json={"name": "Acme Leasing", "kind": "leasing_partner"})).json()
    driver = (await api.post("/drivers", json={"name": "Ada", "kind": "leasing", "organization": org["id"],
                                               "email": "ada@example.org"})).json()
    site = await api.post("/sites", json={"name": "HQ", "latitude": 52.37, "longitude": 4.89, "country": "NLD",
                                          "grid_limit_l1_a": 63, "grid_limit_l2_a": 63, "grid_limit_l3_a": 63,
                                          "timezone": "Europe/Amsterdam"})
    assert site.status_code == 201, site.text
    site = site.json()
    hub = (await api.post("/hubs", json={"name": "Garage", "site": site["id"], "limit_l1_a": 32})).json()
    r = await api.post("/stations/", json={"station_id": "DIR-1", "site": site["id"], "hub": hub["id"]})
    assert r.status_code == 201
    assert (await api.get("/drivers", params={"organization": org["id"]})).json()["total"] == 1
    r = await api.patch(f"/sites/{site['id']}", json={"grid_limit_l1_a": 80})
    assert r.json()["grid_limit_l1_a"] == 80 and r.json()["name"] == "HQ"
    r = await api.patch("/stations/DIR-1", json={"phase_rotation": "STR", "max_current_a": 32})
    assert r.json()["phase_rotation"] == "STR"
    assert (await api.get("/stations/", params={"site": site["id"]})).json()["total"] == 1
    # null clears: out of the hub (still on the site), a current limit gone; an absent field stays
    r = await api.patch("/stations/DIR-1", json={"hub": None, "max_current_a": None})
    assert r.status_code == 200, r.text
    row = (await api.get("/stations/DIR-1")).json()
    assert (row["hub"], row["site"], row["max_current_a"], row["phase_rotation"]) == (None, site["id"], None, "STR")
    await api.patch("/stations/DIR-1", json={"hub": hub["id"]})
    r = await api.patch("/stations/DIR-1", json={"site": None})  # off the site takes it out of the hub too
    row = (await api.get("/stations/DIR-1")).json()
    assert (row["hub"], row["site"]) == (None, None)
    await api.patch("/stations/DIR-1", json={"site": site["id"]})
    # deleting a site keeps its stations (unassigned)
    assert (await api.delete(f"/sites/{site['id']}")).status_code == 204
    assert (await api.get("/stations/DIR-1")).json()["site"] is None
    assert (await api.get(f"/sites/{site['id']}")).status_code == 404
    r = await api.post("/tokens", json={"id_token": "RFID-1", "driver": driver["id"], "expires_at": "2030-01-01T00:00:00Z"})
    assert r.status_code == 201
    r = await api.patch("/tokens/RFID-1", json={"status": "Blocked"})
    assert r.json()["status"] == "Blocked"
    assert (await api.get("/tokens", params={"status": "Blocked"})).json()["total"] == 1
    assert (await api.delete("/tokens/RFID-1")).status_code == 204


async def test_bad_input_gets_clear_errors(server):
    api = server.api
    r = await api.post("/sites", json={"name": "X", "latitude": "north"})
    assert r.status_code == 400 and r.json()["extra"][0]["field"] == "latitude"
    r = await api.post("/sites", json={"name": "X", "colour": "red"})
    assert r.status_code == 400 and "colour" in r.json()["detail"]
    r = await api.post("/tokens", json={"id_token": "T", "type": "Magic"})
    assert r.status_code == 400 and "type must be one of" in r.json()["detail"]
    await api.post("/tokens", json={"id_token": "DUP"})
    assert (await api.post("/tokens", json={"id_token": "DUP"})).status_code == 409
    r = await api.post("/stations/", json={"station_id": "S" * 49})
    assert r.status_code == 400
    r = await api.put("/stations/NOPE/password", json={"password": "x" * 20})
    assert r.status_code == 404
    await api.post("/stations/", json={"station_id": "PW"})
    r = await api.put("/stations/PW/password", json={"password": "short"})
    assert r.status_code == 400 and "16 to 40" in r.json()["detail"]
    assert (await api.get("/sessions", params={"limit": 0})).status_code == 400
    assert (await api.get("/sessions/999")).status_code == 404
    r = await api.post("/stations/PW/reset", json={"kind": "gentle"})
    assert r.status_code == 400
    r = await api.post("/stations/PW/reset", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400


async def test_roles_and_keys(server):
    key, prefix, digest = new_api_key()
    await ApiKey(name="reader", prefix=prefix, key_hash=digest, role="viewer").save()
    async with httpx.AsyncClient(base_url=server.base_url + "/api/v1",
                                 headers={"Authorization": f"Bearer {key}"}) as viewer:
        assert (await viewer.get("/stations/")).status_code == 200
        r = await viewer.post("/tokens", json={"id_token": "V1"})
        assert r.status_code == 403 and "operator" in r.json()["detail"]
    async with httpx.AsyncClient(base_url=server.base_url + "/api/v1",
                                 headers={"Authorization": "Bearer csms_00000000_forged"}) as forged:
        assert (await forged.get("/stations/")).status_code == 401
    await ApiKey.update({ApiKey.revoked: True}).where(ApiKey.prefix == prefix)
    from csms.api.auth import forget_cached_keys

    forget_cached_keys()
    async with httpx.AsyncClient(base_url=server.base_url + "/api/v1",
                                 headers={"Authorization": f"Bearer {key}"}) as revoked:
        assert (await revoked.get("/stations/")).status_code == 401


def test_apikey_cli_prints_key_alone(tmp_path, monkeypatch, capsys):
    from csms import settings as settings_mod
    from csms.cli import main
    from csms.db import make_engine, use_engine

    monkeypatch.setenv("CSMS_DATA_DIR", str(tmp_path))
    settings_mod.get_settings.cache_clear()
    use_engine(make_engine(f"sqlite:///{tmp_path / 'csms.sqlite'}"))
    main(["apikey", "create", "--name", "ci"])
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("csms_")
    settings_mod.get_settings.cache_clear()


# a body each station endpoint accepts, by the last part of its path (a new endpoint must be added)
STATION_BODIES = {
    "{station_id:str}": {}, "approve": None, "reject": None, "password": {"password": "x" * 20},
    "configuration": {"key": "K", "value": "V"},
    "refresh": {}, "remote-start": {"id_token": "T"}, "remote-stop": {}, "reset": {"kind": "soft"},
    "unlock": {"evse_id": 1}, "availability": {"operative": True}, "trigger": {"message": "Heartbeat"},
    "clear-cache": None, "firmware": {"location": "https://example.org/fw.bin"},
    "logs": {"location": "https://example.org/upload"}, "{action:str}": {},
    "sync": {},  # local-list/sync
    "display-messages": {"content": "Hello"}, "{message_id:int}": None,  # refresh: above
    "rotate-password": None,
    "certificates": {"certificate_type": "CSMSRootCertificate", "certificate": "x"}, "renew": None,
    "monitoring": {"monitors": [{"component": "EVSE", "variable": "Power", "type": "Delta", "value": 1,
                                 "severity": 5}]},
    "clear": {"monitor_ids": [1]}, "report": {}, "base": {"base": "All"}, "level": {"severity": 5},  # monitoring/...
    "customer-information": {"customer_identifier": "C"},
    "default": {}, "tariffs/clear": {}, "transaction": {"transaction_id": "T"}, "fallback": {}, "adjust": {"interval": 5},  # tariffs/... (2.1; fallback 2.0.1 too)
    "charging-profiles": {"evse_id": 0, "purpose": "station_max", "periods": [{"limit": 16}]},
    "der-controls": {"control_id": "c1", "control_type": "FreqDroop", "control": {}},  # 2.1
    "der-controls/clear": {"is_default": True}, "battery-swap": {"id_token": "T"},
    "publish": {"location": "https://example.org/fw.bin", "checksum": "0" * 32},  # firmware/... (local controller)
    "unpublish": {"checksum": "0" * 32},
    "afrr-signal": {"signal": 1}, "schedule-update": {"limit": 1}, "priority-charging": {"transaction_id": "T"},
    "allowed-energy-transfer": {"transaction_id": "T", "modes": ["DC"]},
    "web-payment-started": {"evse_id": 1, "timeout": 60},  # 2.1
    "data-transfer": {"vendor_id": "com.example"},
    "configuration/report": {"criteria": ["Active"]},
    "variables/get": {"variables": [{"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval"}]},
    "variables/set": {"variables": [{"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval", "value": "60"}]},
    "charging-profiles/report": {}, "charging-profiles/clear": {"profile_id": 1}, "{profile_id:int}": None,
    "network-profiles": {"slot": 1, "url": "wss://example.org/ocpp", "security_profile": 2},
    "network-profiles/switch": {"slot": 1, "url": "wss://example.org/ocpp", "security_profile": 2},
}


async def test_every_station_command_answers_404_for_an_unknown_station(server):
    """Every command and change (the logs, keyed by the id a station sent, stay readable): an
    unknown station is not merely offline (409)."""
    from litestar.routes import HTTPRoute

    prefix = "/api/v1/stations/{station_id:str}"
    checked = []
    for route in server.app.routes:
        if not isinstance(route, HTTPRoute) or not (route.path + "/").startswith(prefix + "/"):
            continue
        path = route.path.replace("{station_id:str}", "NOPE").replace("{action:str}", "Reset")
        path = path.replace("{message_id:int}", "1").replace("{profile_id:int}", "1")[len("/api/v1"):]
        for method in sorted(route.methods - {"GET", "HEAD", "OPTIONS"}):
            last_two = "/".join(route.path.rsplit("/", 2)[-2:])
            body = STATION_BODIES[last_two] if last_two in STATION_BODIES else STATION_BODIES[route.path.rsplit("/", 1)[-1]]
            r = await server.api.request(method, path, json=body if method != "DELETE" else None)
            assert r.status_code == 404, f"{method} {path}: {r.status_code} {r.text}"
            checked.append(f"{method} {path}")
    assert "POST /stations/NOPE/reset" in checked and "POST /stations/NOPE/ocpp/Reset" in checked
    assert len(checked) >= 17
