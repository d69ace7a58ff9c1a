"""Issue 12: API keys over REST; a revoked key is refused at once; the key cache stays bounded."""

from __future__ import annotations

import secrets

import httpx

from csms.api import auth


def client(server, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.base_url + "/api/v1", headers={"Authorization": f"Bearer {key}"})


async def test_key_revoked_over_rest_is_refused_at_once(server, monkeypatch):
    monkeypatch.setattr(auth, "CACHE_SECONDS", 3600.0)  # only the revocation itself can refuse the key
    r = await server.api.post("/api-keys", json={"name": "robot", "role": "operator"})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["key"].startswith("csms_") and created["role"] == "operator" and not created["revoked"]
    async with client(server, created["key"]) as robot:
        assert (await robot.get("/stations/")).status_code == 200  # now cached as valid
        assert (await robot.get("/api-keys")).status_code == 403  # keys are for admins
        assert (await server.api.delete(f"/api-keys/{created['id']}")).status_code == 204
        r = await robot.get("/stations/")
        assert r.status_code == 401, r.text
    listed = {k["id"]: k for k in (await server.api.get("/api-keys")).json()["items"]}
    assert listed[created["id"]]["revoked"] is True and "key" not in listed[created["id"]]
    assert (await server.api.delete("/api-keys/999999")).status_code == 404
    r = await server.api.post("/api-keys", json={"name": "x", "role": "root"})
    assert r.status_code == 400 and "role" in r.json()["detail"]


async def test_many_unknown_keys_keep_the_cache_bounded(server, monkeypatch):
    monkeypatch.setattr(auth, "CACHE_SIZE", 50)
    for i in range(200):  # well-formed (a database lookup) and random bearer values
        key = f"csms_{secrets.token_hex(4)}_{secrets.token_urlsafe(32)}" if i % 2 else secrets.token_urlsafe(40)
        async with client(server, key) as stranger:
            assert (await stranger.get("/stations/")).status_code == 401
        assert len(auth._cache) <= 50
    # the server's own key was pushed out of the cache and is simply looked up again
    assert (await server.api.get("/stations/")).status_code == 200
    assert len(auth._cache) <= 50
