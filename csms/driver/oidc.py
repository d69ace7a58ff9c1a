"""Drivers signing in to the portal at their organization's OpenID Connect provider.

An organization may name a provider (:mod:`csms.core.services.oidc_settings`, set by an admin on
the organization's form); the sign-in page then shows "Sign in with <label>". The flow is the
Authorization Code flow with PKCE (S256), ``state`` and ``nonce``, done with Authlib over httpx
(async: nothing waits on the provider on the event loop): discovery at
``<issuer>/.well-known/openid-configuration`` (its ``issuer`` must be the configured one), the code
exchanged at the token endpoint, the ID token's signature checked against the provider's JWKS
and its ``iss``, ``aud``, ``exp``, ``iat``, ``nonce`` and ``at_hash`` claims validated.

What the flow needs between leaving and coming back (organization, state, nonce, PKCE verifier,
where to go next) travels in a cookie of its own (:data:`FLOW_COOKIE`, path ``/driver/oidc``,
ten minutes), signed with the installation's session secret: a browser that comes back with
another ``state`` than the one it left with, or with no cookie, is refused.

The driver is found by the ID token's e-mail address, which the provider must have verified
(``email_verified``), among the drivers of that organization only (and within its e-mail domain,
when one is set); nobody is created. Then the same portal session starts as after a password or
an e-mail link. Every refusal is a readable page (and a log line), never a traceback.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
import warnings
from typing import Any

import httpx
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.base_client import BaseApp
from authlib.integrations.base_client.async_app import AsyncOAuth2Mixin
from authlib.integrations.base_client.async_openid import AsyncOpenIDMixin

with warnings.catch_warnings():
    # Authlib (1.9) prefers the httpx2 fork and says so when httpx is used (as here, on purpose:
    # the one HTTP client of the project); not an operator's concern at `csms serve`
    warnings.filterwarnings("ignore", message="The httpx module is deprecated")
    from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc.errors import JoseError
from litestar import Request, get
from litestar.response import Redirect, Template
from piccolo.query.functions.string import Lower

from csms.api.links import public_base_url
from csms.core.services import oidc_settings
from csms.core.tables import Driver
from csms.driver.portal import _sign_in, render, safe_next
from csms.i18n import N_, gettext

log = logging.getLogger("csms.driver.oidc")

FLOW_COOKIE = "csms_driver_oidc"
FLOW_PATH = "/driver/oidc"
FLOW_LIFETIME_S = 600
PROVIDER_TIMEOUT_S = 10.0
CALLBACK = "/driver/oidc/callback"


class _Client(AsyncOAuth2Mixin, AsyncOpenIDMixin, BaseApp):
    """Authlib's OpenID Connect client (discovery, PKCE, code exchange, ID token checks) over
    httpx's async client, without a web framework's session: the flow cookie holds its state."""

    client_cls = AsyncOAuth2Client


def _client(provider: oidc_settings.Provider) -> _Client:
    kwargs: dict[str, Any] = {"scope": "openid email", "code_challenge_method": "S256", "timeout": PROVIDER_TIMEOUT_S}
    if not provider.client_secret:
        kwargs["token_endpoint_auth_method"] = "none"  # a public client: PKCE alone
    return _Client(None, name=f"organization-{provider.organization}", client_id=provider.client_id,
                   client_secret=provider.client_secret or None, client_kwargs=kwargs,
                   server_metadata_url=f"{provider.issuer}/.well-known/openid-configuration")


async def _discovered(client: _Client, provider: oidc_settings.Provider) -> dict[str, Any]:
    metadata: dict[str, Any] = await client.load_server_metadata()
    if str(metadata.get("issuer", "")).rstrip("/") != provider.issuer:
        raise SignInRefused("provider", f"discovery names issuer {metadata.get('issuer')!r}, not {provider.issuer!r}")
    return metadata


# -- the flow cookie -----------------------------------------------------------------------------


def _key(request: Request) -> bytes:
    secret = str(request.app.state.admin_settings.secret).encode()
    return hmac.new(secret, b"csms driver oidc flow", hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _seal(request: Request, flow: dict[str, Any]) -> str:
    body = _b64(json.dumps({**flow, "exp": int(time.time()) + FLOW_LIFETIME_S}, separators=(",", ":")).encode())
    return f"{body}.{_b64(hmac.new(_key(request), body.encode(), hashlib.sha256).digest())}"


def _unseal(request: Request, value: str | None) -> dict[str, Any] | None:
    """The flow this browser started, if the cookie is ours, whole and not expired."""
    try:
        body, mac = (value or "").split(".")
        if not hmac.compare_digest(_unb64(mac), hmac.new(_key(request), body.encode(), hashlib.sha256).digest()):
            return None
        flow = json.loads(_unb64(body))
    except ValueError:  # no cookie, not two parts, not base64, not JSON
        return None
    return flow if isinstance(flow, dict) and int(flow.get("exp", 0)) >= time.time() else None


# -- refusals ------------------------------------------------------------------------------------


class SignInRefused(Exception):
    """The sign-in cannot go on: ``reason`` picks what the driver reads; ``detail`` is for the log."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


# What the driver reads for each reason (the log gets the details).
MESSAGES = {
    "failed": N_("The sign-in failed here. Try again later, or sign in with an e-mail link or your password."),
    "not_configured": N_("This organization offers no sign-in of its own (any more)."),
    "provider": N_("The sign-in service of your organization cannot be reached or gave an answer that cannot be used. "
                   "Try again later, or sign in with an e-mail link or your password."),
    "expired": N_("This sign-in was not started here or took too long. Start it again."),
    "state": N_("This sign-in answer does not belong to the sign-in this browser started. Start it again."),
    "denied": N_("The sign-in was cancelled or refused at your organization's sign-in service."),
    "token": N_("The answer of your organization's sign-in service could not be verified. Start it again."),
    "unverified": N_("Your organization's sign-in service has not confirmed your e-mail address, so it cannot "
                     "sign you in here."),
    "domain": N_("Only addresses of %(domain)s can sign in this way."),
    "unknown": N_("No driver of %(organization)s has the address %(email)s. Ask your organization to add you, "
                  "or sign in with the address you charge with."),
    "several": N_("Several drivers share the address %(email)s: sign in with an e-mail link instead."),
}


def _refusal(request: Request, exc: SignInRefused, *, status_code: int, **words: Any) -> Template:
    log.warning("driver OpenID Connect sign-in refused (%s): %s", exc.reason, exc.detail)
    return render(request, "oidc_refused.html", status_code=status_code, title=N_("Sign-in not possible"),
                  message=gettext(MESSAGES[exc.reason], **words))


def _failed(request: Request, provider: oidc_settings.Provider) -> Template:
    """An unexpected failure (called in an ``except``): logged with its traceback, never shown."""
    log.exception("driver OpenID Connect sign-in failed (organization %s)", provider.organization)
    return render(request, "oidc_refused.html", status_code=500, title=N_("Sign-in not possible"),
                  message=gettext(MESSAGES["failed"]))


def _clear(response: Template | Redirect) -> Template | Redirect:
    response.delete_cookie(FLOW_COOKIE, path=FLOW_PATH)
    return response


# -- the routes ----------------------------------------------------------------------------------


@get("/driver/oidc/{organization:int}/start")
async def oidc_start(request: Request, organization: int) -> Template | Redirect:
    """Leave for the organization's provider (a link on the sign-in page: a form's redirect to
    another site would be stopped by the Content-Security-Policy's ``form-action 'self'``)."""
    provider = await oidc_settings.provider(organization)
    if provider is None:
        return _refusal(request, SignInRefused("not_configured", f"organization {organization}"), status_code=404)
    client = _client(provider)
    redirect_uri = f"{public_base_url(request)}{CALLBACK}"
    try:
        await _discovered(client, provider)
        started = await client.create_authorization_url(redirect_uri, state=secrets.token_urlsafe(32),
                                                        nonce=secrets.token_urlsafe(32))
    except SignInRefused as exc:
        return _refusal(request, exc, status_code=502)
    except (httpx.HTTPError, ValueError, KeyError, RuntimeError, AuthlibBaseError) as exc:
        return _refusal(request, SignInRefused("provider", f"{provider.issuer}: {exc!r}"), status_code=502)
    except Exception:  # anything else: logged with its traceback, the driver reads a page
        return _failed(request, provider)
    flow = {"organization": organization, "state": started["state"], "nonce": started["nonce"],
            "verifier": started["code_verifier"], "redirect_uri": redirect_uri,
            "next": safe_next(request.query_params.get("next"))}
    response = Redirect(started["url"], status_code=303)
    response.set_cookie(FLOW_COOKIE, _seal(request, flow), httponly=True, samesite="lax", path=FLOW_PATH,
                        secure=request.app.state.admin_settings.secure_cookies, max_age=FLOW_LIFETIME_S)
    return response


def _verified(claims: dict[str, Any]) -> bool:
    value = claims.get("email_verified")
    return value is True or str(value).lower() == "true"


async def _driver_of(provider: oidc_settings.Provider, claims: dict[str, Any]) -> int:
    """The driver of the provider's organization with the token's verified address (the log
    names the provider's subject, not the address)."""
    email, sub = str(claims.get("email") or "").strip().lower(), str(claims.get("sub"))[:100]
    if not email or "@" not in email or not _verified(claims):
        raise SignInRefused("unverified", f"sub {sub!r}: email {'given' if email else 'missing'}, "
                                          f"email_verified {claims.get('email_verified')!r}")
    if provider.email_domain and email.rsplit("@", 1)[1] != provider.email_domain:
        raise SignInRefused("domain", f"sub {sub!r}: the address is not of {provider.email_domain}")
    rows = await Driver.select(Driver.id).where(Lower(Driver.email) == email).where(
        Driver.organization == provider.organization).limit(2)
    if not rows:
        raise SignInRefused("unknown", f"sub {sub!r}: no driver of organization {provider.organization} has the address")
    if len(rows) > 1:
        raise SignInRefused("several", f"sub {sub!r}: several drivers of organization {provider.organization} have "
                                       "the address")
    return int(rows[0]["id"])


@get(CALLBACK)
async def oidc_callback(request: Request) -> Template | Redirect:
    """Back from the provider: check the answer, find the driver, start their session."""
    flow = _unseal(request, request.cookies.get(FLOW_COOKIE))
    params = request.query_params
    if flow is None:
        return _clear(_refusal(request, SignInRefused("expired", "no valid flow cookie"), status_code=400))
    if params.get("error") and not params.get("state"):  # some providers leave it out of a refusal: it grants nothing
        exc = SignInRefused("denied", f"{params.get('error')}: {params.get('error_description', '')}"[:300])
        return _clear(_refusal(request, exc, status_code=403))
    if not hmac.compare_digest(str(params.get("state", "")).encode(), str(flow["state"]).encode()):
        return _clear(_refusal(request, SignInRefused("state", "state differs from the flow cookie's"), status_code=400))
    provider = await oidc_settings.provider(int(flow["organization"]))
    if provider is None:
        return _clear(_refusal(request, SignInRefused("not_configured", f"organization {flow['organization']}"),
                               status_code=404))
    if params.get("error") or not params.get("code"):
        exc = SignInRefused("denied", f"{params.get('error')}: {params.get('error_description', '')}"[:300])
        return _clear(_refusal(request, exc, status_code=403))
    client, claims = _client(provider), {}
    try:
        await _discovered(client, provider)
        token = await client.fetch_access_token(redirect_uri=flow["redirect_uri"], code=params["code"],
                                                code_verifier=flow["verifier"])
        if "id_token" not in token:
            raise SignInRefused("token", "the token answer has no id_token")
        claims = dict(await client.parse_id_token(token, nonce=flow["nonce"]))
        driver_id = await _driver_of(provider, claims)
    except SignInRefused as exc:
        status = {"provider": 502, "token": 502, "unknown": 403, "several": 409}.get(exc.reason, 403)
        return _clear(_refusal(request, exc, status_code=status, email=str(claims.get("email", "")),
                               domain=provider.email_domain, organization=provider.label))
    except (JoseError, AuthlibBaseError) as exc:  # bad signature, wrong iss/aud/nonce, expired; an OAuth error
        return _clear(_refusal(request, SignInRefused("token", f"{provider.issuer}: {exc!r}"), status_code=502))
    except (httpx.HTTPError, ValueError, KeyError, RuntimeError) as exc:
        return _clear(_refusal(request, SignInRefused("provider", f"{provider.issuer}: {exc!r}"), status_code=502))
    except Exception:  # anything else: logged with its traceback, the driver reads a page
        return _clear(_failed(request, provider))
    log.info("driver %s signed in through the OpenID provider of organization %s", driver_id, provider.organization)
    return _clear(await _sign_in(request, driver_id, flow.get("next") or "/driver/cards"))


OIDC_ROUTES = [oidc_start, oidc_callback]
