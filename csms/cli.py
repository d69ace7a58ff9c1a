"""The ``csms`` command: serve, migrate, apikey, user, plugins, config, simulate, bench."""

from __future__ import annotations

import argparse
import asyncio
import inspect
import secrets
import sys
from typing import Any, Coroutine, cast

from csms.settings import get_settings, settings_reference_markdown


def _setup_logging(level: str, fmt: str = "text") -> None:
    from csms.core.logs import setup_logging

    setup_logging(level, fmt)


async def _with_db(fn: Any) -> Any:
    from csms.db import close_engine, migrate, open_engine

    await open_engine()
    try:
        await migrate()
        return await fn()
    finally:
        await close_engine()


async def ensure_first_admin() -> str | None:
    """Create the ``admin`` user with a random password when no admin exists; return the password."""
    from piccolo.apps.user.tables import BaseUser

    if await BaseUser.exists().where(BaseUser.admin == True):  # noqa: E712
        return None
    password = secrets.token_urlsafe(12)
    try:
        await BaseUser.create_user(username="admin", password=password, admin=True, superuser=True, active=True)
    except Exception:
        # a second server started at the same moment on the same new database created it first
        if await BaseUser.exists().where(BaseUser.admin == True):  # noqa: E712
            return None
        raise
    return password


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    from csms.app import create_app
    from csms.db import database_name
    from csms.server import TLSConfigError, make_server, tls_listener_context, uvicorn_options

    overrides = {"tls_port": args.tls_port} if args.tls_port is not None else {}
    settings = get_settings().model_copy(update=overrides) if overrides else get_settings()
    host = args.host or settings.host
    port = args.port or settings.port
    settings = settings.model_copy(update={"port": port}) if port != settings.port else settings
    workers = args.workers or settings.workers
    if workers > 1 and not (settings.redis_url and settings.is_postgres):
        sys.exit("csms serve: --workers above 1 needs redis_url (each worker is a node of the cluster) "
                 "and a PostgreSQL database_url")
    if workers > 1 and settings.tls_port:
        sys.exit("csms serve: tls_port (a second, TLS listener) needs one worker; with several, run "
                 "the TLS nodes and the plain nodes apart (or one TLS port behind a proxy)")
    try:
        options = uvicorn_options(settings)
        tls_listener_context(settings)
    except TLSConfigError as exc:  # a missing certificate file or a bad pair: the reason, no traceback
        sys.exit(f"csms serve: {exc}")
    _setup_logging(settings.log_level, settings.log_format)
    password = asyncio.run(_with_db(ensure_first_admin))
    scheme = "https" if settings.port_is_tls else "http"
    ws = "wss" if settings.port_is_tls else "ws"
    print(f"CSMS on {scheme}://{host}:{port}/  database {database_name(settings.effective_database_url)}")
    print(f"  stations connect to {ws}://{host}:{port}/ocpp/<station_id>  (ocpp2.1, ocpp2.0.1, ocpp1.6)")
    if settings.tls_port:
        print(f"  and over TLS (security profiles 2 and 3) to wss://{host}:{settings.tls_port}/ocpp/<station_id>"
              f"  (https://{host}:{settings.tls_port}/ as well)")
    if password:
        print(f"  first start: admin user created -- log in as 'admin' with password '{password}'")
    print("  REST API: create a key with `csms apikey create --name NAME`, docs at /api/v1/schema/swagger")
    if workers > 1:
        print(f"  {workers} worker processes on one port, each a node of the cluster")
    sys.stdout.flush()
    # JSON logs: uvicorn's own loggers keep no handlers of theirs and reach the root's JSON handler
    logging_config: dict[str, Any] = {"log_config": None} if settings.log_format == "json" else {}
    if workers > 1:  # each worker process builds its app itself (csms.app.worker_app)
        uvicorn.run("csms.app:worker_app", factory=True, workers=workers, host=host, port=port,
                    log_level=settings.log_level, **logging_config, **options)
        return
    server = make_server(create_app(settings), settings, host=host, port=port, log_level=settings.log_level,
                         **logging_config)
    try:
        server.run()
    except KeyboardInterrupt:  # a second Ctrl-C (uvicorn.run swallows it as well)
        pass
    if server.failed or not server.started:
        sys.exit(3)  # uvicorn's STARTUP_FAILURE: a port that could not be bound (logged)


def cmd_migrate(args: argparse.Namespace) -> None:
    async def noop() -> None:
        return None

    asyncio.run(_with_db(noop))
    print("migrations applied")


def cmd_apikey_create(args: argparse.Namespace) -> None:
    from csms.api.auth import create_api_key
    from csms.core.services import plans

    if args.role not in ("admin", "operator", "viewer"):
        sys.exit("role must be admin, operator or viewer")

    async def create() -> str:
        from csms.core import audit

        organization = await _organization_arg(args.organization)
        key, key_id = await create_api_key(args.name, args.role, organization)
        await audit.record(actor="cli", action="create", object_type="api_key", object_id=key_id,
                           after={"name": args.name, "role": args.role, "organization": organization},
                           organization=organization)
        return key

    try:
        print(asyncio.run(_with_db(create)))
    except _UnknownOrganization as exc:
        sys.exit(f"key not created: {exc}")
    except plans.PlanLimitReached as exc:
        sys.exit(f"key not created: {exc}")


class _UnknownOrganization(Exception):
    pass


async def _organization_arg(ref: str | None) -> int | None:
    """``--organization`` (an id or a name) as an organization id; None when not given."""
    from csms.core.organizations import find_organization

    if ref is None or not ref.strip():
        return None
    found = await find_organization(ref)
    if found is None:
        raise _UnknownOrganization(f"no organization {ref!r} (give its id or its exact name)")
    return found


def cmd_apikey_list(args: argparse.Namespace) -> None:
    from csms.core.tables import ApiKey

    async def rows() -> list[dict[str, Any]]:
        return await ApiKey.select(ApiKey.id, ApiKey.name, ApiKey.prefix, ApiKey.role, ApiKey.revoked,
                                   ApiKey.last_used_at, ApiKey.organization.name.as_alias("organization"))

    for r in asyncio.run(_with_db(rows)):
        print(f"{r['id']:>4}  {r['name']:<24} csms_{r['prefix']}_…  {r['role']:<8} "
              f"{r['organization'] or '(global)':<20} "
              f"{'revoked' if r['revoked'] else 'active'}  last used {r['last_used_at'] or 'never'}")


def cmd_apikey_revoke(args: argparse.Namespace) -> None:
    """A running server stops accepting the key within ``csms.api.auth.CACHE_SECONDS``."""
    from csms.api.auth import revoke_api_key

    async def revoke() -> bool:
        from csms.core import audit
        from csms.core.tables import ApiKey

        row = await ApiKey.select(ApiKey.organization).where(ApiKey.id == args.id).first()
        if not await revoke_api_key(args.id):
            return False
        await audit.record(actor="cli", action="update", object_type="api_key", object_id=args.id,
                           summary="revoked", organization=row["organization"] if row else None)
        return True

    if not asyncio.run(_with_db(revoke)):
        sys.exit(f"no API key {args.id}")
    print(f"API key {args.id} revoked")


def cmd_user_create(args: argparse.Namespace) -> None:
    from piccolo.apps.user.tables import BaseUser

    from csms.roles import ROLE_NAMES, set_role

    if args.role not in ROLE_NAMES:
        sys.exit(f"role must be one of {', '.join(ROLE_NAMES)}")
    password = args.password or secrets.token_urlsafe(12)

    # piccolo's user table wants a unique e-mail; without one, an address of the reserved
    # ".invalid" domain (RFC 2606) that can never receive mail keeps each user distinct.
    email = args.email or f"{args.username}@users.invalid"

    async def create() -> str | None:
        organization = await _organization_arg(args.organization)
        if await BaseUser.exists().where(BaseUser.username == args.username):
            return f"a user named {args.username!r} exists already"
        if await BaseUser.exists().where(BaseUser.email == email):
            return f"another user has the e-mail address {email!r}"
        from csms.core.services import plans

        try:
            # the raw database admin is for global admins only
            superuser = args.role == "admin" and organization is None
            async with plans.within_limits(organization, "users"):  # no room in the plan: no user
                user = await BaseUser.create_user(username=args.username, password=password, email=email,
                                                  admin=superuser, superuser=superuser, active=True)
                await set_role(user.id, args.role, organization)
        except ValueError as exc:  # piccolo's checks (password length, username), in its words
            return str(exc)
        except plans.PlanLimitReached as exc:
            return str(exc)
        from csms.core import audit

        await audit.record(actor="cli", action="create", object_type="user", object_id=user.id,
                           after={"username": args.username, "email": email, "role": args.role,
                                  "organization": organization}, organization=organization)
        return None

    try:
        problem = asyncio.run(_with_db(create))
    except _UnknownOrganization as exc:
        problem = str(exc)
    if problem:
        sys.exit(f"user not created: {problem}")
    print(f"user {args.username} ({args.role}) created" + ("" if args.password else f"; password: {password}"))


def cmd_plugins(args: argparse.Namespace) -> None:
    from csms.plugin_routes import plugin_public_routes, public_summary
    from csms.plugins import plugins_info

    public = plugin_public_routes(get_settings())
    for p in plugins_info():
        print(f"{p['name']}\n    hooks: {', '.join(p['hooks']) or '-'}")
        for paths, reason in public_summary(public.get(p["name"], [])):
            print(f"    public: {paths}: {reason}")


def cmd_config(args: argparse.Namespace) -> None:
    from csms.settings import config_file_problems, effective_settings, settings_registry

    if args.markdown:
        if args.markdown not in ("all", *settings_registry()):
            sys.exit(f"no settings of {args.markdown!r}: choose core or one of {', '.join(list(settings_registry())[1:])}")
        print(settings_reference_markdown(None if args.markdown == "all" else args.markdown))
        return
    for problem in config_file_problems():
        print(f"warning: {problem}; it is ignored", file=sys.stderr)
    print("\n".join(effective_settings()))


def cmd_ca(args: argparse.Namespace) -> None:
    """``csms ca show`` makes the CA when there is none; ``csms ca rotate`` replaces it (the old
    certificate keeps verifying, in trust.pem, until it expires)."""
    from cryptography.hazmat.primitives import hashes

    from csms.core.certificates import CertificateAuthority

    authority = CertificateAuthority.of_installation()
    if args.ca_cmd == "rotate":
        if not args.yes:
            sys.exit("csms ca rotate: stations renew their certificates with the new CA; the old CA keeps "
                     "verifying until it expires. Run again with --yes, then restart the server.")
        authority.rotate()
        print("new CA made; the previous one stays in the trust bundle until it expires")
    for index, cert in enumerate(authority.trusted()):
        label = "current" if index == 0 else "previous"
        print(f"{label:<8} {cert.subject.rfc4514_string()}  serial {cert.serial_number:X}  "
              f"valid until {cert.not_valid_after_utc:%Y-%m-%d}  sha256 {cert.fingerprint(hashes.SHA256()).hex()}")
    print(f"certificate: {authority.cert_path}\ntrust bundle (CSMS_TLS_CA): {authority.trust_path}")


def build_parser() -> argparse.ArgumentParser:
    from csms.plugins import call_sync, load_plugins

    parser = argparse.ArgumentParser(prog="csms", description="Open Charging Station Management System")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the server (OCPP, REST, admin) on the configured database")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--tls-port", type=int, help="a second listener speaking TLS on this port, plain ws/http "
                                                "staying on --port (default: the tls_port setting)")
    p.add_argument("--workers", type=int, help="processes on one port, each a node of the cluster "
                                               "(needs redis_url and PostgreSQL; default: the workers setting)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("migrate", help="apply database migrations and exit")
    p.set_defaults(func=cmd_migrate)

    apikey = sub.add_parser("apikey", help="manage REST API keys").add_subparsers(dest="apikey_cmd", required=True)
    p = apikey.add_parser("create", help="create a key and print it alone on stdout")
    p.add_argument("--name", required=True)
    p.add_argument("--role", default="admin", help="admin, operator or viewer")
    p.add_argument("--organization", metavar="ORG",
                   help="the organization (id or name) the key acts for; without it the key is global")
    p.set_defaults(func=cmd_apikey_create)
    p = apikey.add_parser("list", help="list keys (never the keys themselves)")
    p.set_defaults(func=cmd_apikey_list)
    p = apikey.add_parser("revoke", help="revoke a key by id")
    p.add_argument("id", type=int)
    p.set_defaults(func=cmd_apikey_revoke)

    user = sub.add_parser("user", help="manage admin users").add_subparsers(dest="user_cmd", required=True)
    p = user.add_parser("create", help="create a user of the web admin")
    p.add_argument("--username", required=True)
    p.add_argument("--password")
    p.add_argument("--email", help="the user's address (default: <username>@users.invalid, which receives no mail)")
    p.add_argument("--role", default="operator", help="admin, operator or viewer")
    p.add_argument("--organization", metavar="ORG",
                   help="the organization (id or name) the user belongs to; without it the user is global")
    p.set_defaults(func=cmd_user_create)

    p = sub.add_parser("plugins", help="list loaded plugins and the hooks each implements")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("config", help="print the effective value of every setting (secrets masked)")
    p.add_argument("--markdown", nargs="?", const="all", metavar="OWNER",
                   help="print the configuration reference: every table, or that of core or one plugin")
    p.set_defaults(func=cmd_config)

    ca = sub.add_parser("ca", help="the built-in CA that signs station certificates").add_subparsers(
        dest="ca_cmd", required=True)
    p = ca.add_parser("show", help="print the CA (made on first use) and the trust bundle's path")
    p.set_defaults(func=cmd_ca)
    p = ca.add_parser("rotate", help="make a new CA; the old one keeps verifying until it expires")
    p.add_argument("--yes", action="store_true", help="really rotate")
    p.set_defaults(func=cmd_ca)

    from csms_tools.simulator import add_simulate_parser
    add_simulate_parser(sub)
    from csms_tools.bench import add_bench_parser
    add_bench_parser(sub)

    load_plugins()
    call_sync("register_commands", subparsers=sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    result = args.func(args)
    if inspect.isawaitable(result):
        asyncio.run(cast("Coroutine[Any, Any, Any]", result))  # commands are `async def` or plain functions


if __name__ == "__main__":
    main()
