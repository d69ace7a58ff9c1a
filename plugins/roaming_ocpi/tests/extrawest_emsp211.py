"""An OCPI 2.1.1 eMSP made with the independent ``extrawest-ocpi`` package (``py_ocpi``), run in a
virtualenv of its own (it pins pydantic 1, FastAPI 0.101 and httpx 0.24, which cannot live next
to this project): ``python extrawest_emsp211.py PORT TOKEN_A``. Everything our CSMS pushes goes
through py_ocpi's 2.1.1 routers and pydantic models (a body they cannot parse is refused); what
they parsed is kept in memory and shown at ``GET /store`` for the test to read.

It is a Sender too: py_ocpi's own push (``http_push``: ``POST /push/2.1.1`` names a module, an
object id and the receivers' version URLs and tokens) PUTs one of its Tokens (put in its store
by the test at ``PUT /store/tokens/{uid}``) to our Tokens Receiver. py_ocpi joins the receiver's
module URL and ``{country_code}/{party_id}/{id}`` without a slash (it expects endpoint URLs that
end in one, which OCPI does not ask for): :func:`client_url` is replaced by one that puts it in."""

from __future__ import annotations

import os
import sys
from typing import Any

PORT, TOKEN_A = int(sys.argv[1]), sys.argv[2]
os.environ.update({"OCPI_HOST": f"127.0.0.1:{PORT}", "PROTOCOL": "http", "COUNTRY_CODE": "DE", "PARTY_ID": "XWE",
                   "TRAILING_SLASH": "False"})

import uvicorn  # noqa: E402
from py_ocpi import get_application  # noqa: E402
from py_ocpi.core import push  # noqa: E402
from py_ocpi.core.authentication.authenticator import Authenticator  # noqa: E402
from py_ocpi.core.crud import Crud  # noqa: E402
from py_ocpi.core.enums import ModuleID, RoleEnum  # noqa: E402
from py_ocpi.modules.versions.enums import VersionNumber  # noqa: E402

STORE: dict[str, Any] = {"credentials": None, "endpoints": None, "locations": {}, "sessions": {}, "cdrs": {},
                         "tariffs": {}, "tokens": {}, "tokens_c": []}


class Auth(Authenticator):
    @classmethod
    async def get_valid_token_c(cls) -> list[str]:
        return STORE["tokens_c"]

    @classmethod
    async def get_valid_token_a(cls) -> list[str]:
        return [TOKEN_A]


def _key(module: Any) -> str:
    return {ModuleID.locations: "locations", ModuleID.sessions: "sessions", ModuleID.cdrs: "cdrs",
            ModuleID.tariffs: "tariffs", ModuleID.tokens: "tokens"}.get(module, str(module))


def _plain(value: Any) -> Any:
    """py_ocpi's parsed models (enums, decimals) as JSON values."""
    import json

    return json.loads(json.dumps(value, default=lambda v: getattr(v, "value", None) or str(v)))


class Store(Crud):
    @classmethod
    async def get(cls, module, role, id, *args, **kwargs):
        if module == ModuleID.credentials_and_registration:
            return STORE["credentials"]
        return STORE.get(_key(module), {}).get(str(id))

    @classmethod
    async def list(cls, module, role, filters, *args, **kwargs):
        items = list(STORE.get(_key(module), {}).values())
        return items, len(items), True

    @classmethod
    async def create(cls, module, role, data, *args, **kwargs):
        if module == ModuleID.credentials_and_registration:
            STORE["credentials"], STORE["endpoints"] = _plain(data["credentials"]), data["endpoints"]
            STORE["tokens_c"].append("xw-token-c")
            return {"token": "xw-token-c", "url": f"http://127.0.0.1:{PORT}/ocpi/versions", "party_id": "XWE",
                    "country_code": "DE", "business_details": {"name": "extrawest eMSP"}}
        STORE[_key(module)][str(data["id"])] = _plain(data)
        return data

    @classmethod
    async def update(cls, module, role, data, id, *args, **kwargs):
        if module == ModuleID.locations and str(id) not in STORE["locations"]:  # an EVSE or connector PUT
            return data
        merged = {**(STORE[_key(module)].get(str(id)) or {}), **_plain(data)}
        STORE[_key(module)][str(id)] = merged
        return merged

    @classmethod
    async def delete(cls, module, role, id, *args, **kwargs):
        STORE.get(_key(module), {}).pop(str(id), None)

    @classmethod
    async def do(cls, module, role, action, *args, data=None, **kwargs):
        return None


def _client_url(module_id: Any, object_id: str, base_url: str) -> str:
    """py_ocpi's push URL with the slash it leaves out (``{base_url}{country_code}/...``)."""
    if module_id == ModuleID.cdrs:
        return base_url
    return f"{base_url.rstrip('/')}/{push.settings.COUNTRY_CODE}/{push.settings.PARTY_ID}/{object_id}"


push.client_url = _client_url

app = get_application(version_numbers=[VersionNumber.v_2_1_1], roles=[RoleEnum.emsp], crud=Store,
                      modules=[ModuleID.credentials_and_registration, ModuleID.locations, ModuleID.sessions,
                               ModuleID.cdrs, ModuleID.tariffs, ModuleID.tokens, ModuleID.commands],
                      authenticator=Auth, http_push=True)


@app.get("/store")
async def store() -> dict[str, Any]:
    return STORE


@app.put("/store/tokens/{uid}")
async def store_token(uid: str, token: dict[str, Any]) -> dict[str, Any]:
    """One of this eMSP's Tokens (2.1.1 shape), for its push to send."""
    STORE["tokens"][uid] = token
    return token


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=PORT, log_level="warning")
