"""Drivers signing in to the driver portal: one-time e-mail links, an optional password, sessions.

A driver is known by the e-mail address of their :class:`~csms.core.tables.Driver` row. A link's
secret and a session's secret are random (256 bits), mailed or set as a cookie once; only their
SHA-256 is stored (:class:`~csms.core.tables.DriverSecret`). A link works once, for
:data:`LINK_LIFETIME`; a session lasts :data:`SESSION_LIFETIME` unless the driver signs out or
sets a new password (which ends every session: ``generation`` moves on). Passwords are argon2
(:mod:`csms.core.security`), hashed in the CPU pool.

Nothing here tells a caller whether an address belongs to a driver: the portal answers the same
either way, and :func:`check_password` costs one argon2 verification either way.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from piccolo.query.functions.string import Lower

from csms.core.offload import run_cpu
from csms.core.security import hash_password, verify_password
from csms.core.tables import Driver, DriverAccount, DriverSecret
from csms.core.timeutil import utcnow

LINK_LIFETIME = timedelta(minutes=20)
SESSION_LIFETIME = timedelta(days=30)
MIN_PASSWORD = 10
MAX_PASSWORD = 128
_UNKNOWN_HASH = hash_password(secrets.token_urlsafe(24))  # verified when there is no account: same cost


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def normal_address(email: str) -> str:
    return email.strip().lower()


async def drivers_with_address(email: str) -> list[dict[str, Any]]:
    """The drivers whose e-mail address is ``email`` (compared without case), oldest first."""
    address = normal_address(email)
    if not address or "@" not in address or len(address) > 200:
        return []
    return await Driver.select(Driver.id, Driver.name, Driver.email).where(
        Lower(Driver.email) == address).order_by(Driver.id).limit(10)


async def _account(driver_id: int) -> dict[str, Any]:
    row = await DriverAccount.select().where(DriverAccount.driver == driver_id).first()
    if row is None:
        try:
            await DriverAccount(driver=driver_id).save()
        except Exception:  # another request made it at the same moment (unique driver): use that one
            pass
        row = await DriverAccount.select().where(DriverAccount.driver == driver_id).first()
        if row is None:
            raise LookupError(f"no account could be made for driver {driver_id}")
    return row


async def _new_secret(driver_id: int, kind: str, lifetime: timedelta) -> str:
    account = await _account(driver_id)
    secret = secrets.token_urlsafe(32)
    await DriverSecret(driver=driver_id, kind=kind, secret_hash=_digest(secret), generation=account["generation"],
                       expires_at=utcnow() + lifetime).save()
    return secret


async def new_link(driver_id: int) -> str:
    """A fresh one-time sign-in secret for ``driver_id``."""
    return await _new_secret(driver_id, "link", LINK_LIFETIME)


async def use_link(secret: str) -> int | None:
    """Spend a sign-in link: the driver it is for, or None when it is unknown, used or expired."""
    if not secret or len(secret) > 100:
        return None
    now = utcnow()
    spent = await DriverSecret.update({DriverSecret.used_at: now}).where(
        (DriverSecret.secret_hash == _digest(secret)) & (DriverSecret.kind == "link")
        & DriverSecret.used_at.is_null() & (DriverSecret.expires_at > now)).returning(DriverSecret.driver)
    return spent[0]["driver"] if spent else None


async def new_session(driver_id: int) -> str:
    """A session secret for the driver's browser cookie."""
    await DriverSecret.delete().where(DriverSecret.expires_at < utcnow())  # tidy up old links and sessions
    return await _new_secret(driver_id, "session", SESSION_LIFETIME)


async def session_driver(secret: str | None) -> dict[str, Any] | None:
    """The driver a session cookie is for (id, name, email, organization), or None when it is not valid."""
    if not secret or len(secret) > 100:
        return None
    row = await DriverSecret.select(DriverSecret.driver, DriverSecret.generation, DriverSecret.expires_at).where(
        (DriverSecret.secret_hash == _digest(secret)) & (DriverSecret.kind == "session")).first()
    if row is None or row["expires_at"] < utcnow():
        return None
    account = await DriverAccount.select(DriverAccount.generation).where(DriverAccount.driver == row["driver"]).first()
    if account is None or account["generation"] != row["generation"]:
        return None
    return await Driver.select(Driver.id, Driver.name, Driver.email, Driver.organization).where(
        Driver.id == row["driver"]).first()


async def end_session(secret: str | None) -> None:
    if secret:
        await DriverSecret.delete().where((DriverSecret.secret_hash == _digest(secret))
                                          & (DriverSecret.kind == "session"))


def password_problem(password: str, repeated: str) -> str | None:
    if len(password) < MIN_PASSWORD:
        return f"Use at least {MIN_PASSWORD} characters."
    if len(password) > MAX_PASSWORD:
        return f"Use at most {MAX_PASSWORD} characters."
    if repeated != password:
        return "The two passwords differ."
    return None


async def has_password(driver_id: int) -> bool:
    row = await DriverAccount.select(DriverAccount.password_hash).where(DriverAccount.driver == driver_id).first()
    return bool(row and row["password_hash"])


async def set_password(driver_id: int, password: str) -> None:
    """Store a new password and end every session of the driver (the caller starts a new one)."""
    account = await _account(driver_id)
    hashed = await run_cpu(hash_password, password)
    await DriverAccount.update({DriverAccount.password_hash: hashed, DriverAccount.generation: account["generation"] + 1,
                                DriverAccount.updated_at: utcnow()}).where(DriverAccount.driver == driver_id)
    await DriverSecret.delete().where(DriverSecret.driver == driver_id)


async def check_password(email: str, password: str) -> int | None:
    """The driver whose address and password these are, else None (the same work either way)."""
    if not password or len(password) > MAX_PASSWORD:
        return None
    ids = [d["id"] for d in await drivers_with_address(email)]
    rows = await DriverAccount.select(DriverAccount.driver, DriverAccount.password_hash).where(
        DriverAccount.driver.is_in(ids) & (DriverAccount.password_hash != "")) if ids else []
    for row in rows or [{"driver": None, "password_hash": _UNKNOWN_HASH}]:
        if await run_cpu(verify_password, row["password_hash"], password) and row["driver"] is not None:
            return row["driver"]
    return None
