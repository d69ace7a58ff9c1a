"""OpenID Connect sign-in of an organization's drivers to the driver portal (organization_oidc)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.base import OnDelete
from piccolo.columns.base import OnUpdate
from piccolo.columns.column_types import ForeignKey
from piccolo.columns.column_types import Secret
from piccolo.columns.column_types import Serial
from piccolo.columns.column_types import Timestamptz
from piccolo.columns.column_types import Varchar
from piccolo.columns.indexes import IndexMethod
from piccolo.table import Table


class Organization(Table, tablename="organization", schema=None):
    id = Serial(
        null=False,
        primary_key=True,
        unique=False,
        index=False,
        index_method=IndexMethod.btree,
        choices=None,
        db_column_name="id",
        secret=False,
    )


ID = "2026-12-06T19:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "organization_oidc"

_COLUMNS = (
    ("issuer", Varchar, {"length": 300, "default": "", "null": False, "index": False, "secret": False}),
    ("client_id", Varchar, {"length": 200, "default": "", "null": False, "index": False, "secret": False}),
    ("client_secret", Secret, {"length": 500, "default": "", "null": False, "index": False, "secret": True}),
    ("email_domain", Varchar, {"length": 200, "default": "", "null": False, "index": False, "secret": False}),
    ("label", Varchar, {"length": 100, "default": "", "null": False, "index": False, "secret": False}),
    ("secret_changed_at", Timestamptz, {"default": None, "null": True, "index": False, "secret": False}),
)


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="core", description=DESCRIPTION
    )

    manager.add_table(
        class_name="OrganizationOidc",
        tablename="organization_oidc",
        schema=None,
        columns=None,
    )

    manager.add_column(
        table_class_name="OrganizationOidc",
        tablename="organization_oidc",
        column_name="organization",
        db_column_name="organization",
        column_class_name="ForeignKey",
        column_class=ForeignKey,
        params={
            "references": Organization,
            "on_delete": OnDelete.cascade,
            "on_update": OnUpdate.cascade,
            "target_column": None,
            "null": True,
            "primary_key": False,
            "unique": True,
            "index": True,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )

    for name, column_class, params in _COLUMNS:
        manager.add_column(
            table_class_name="OrganizationOidc",
            tablename="organization_oidc",
            column_name=name,
            db_column_name=name,
            column_class_name=column_class.__name__,
            column_class=column_class,
            params={
                **params,
                "primary_key": False,
                "unique": False,
                "index_method": IndexMethod.btree,
                "choices": None,
                "db_column_name": None,
            },
            schema=None,
        )

    return manager
