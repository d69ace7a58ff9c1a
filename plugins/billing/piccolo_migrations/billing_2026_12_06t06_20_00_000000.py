"""Invoices: drafts, numbered series per seller and credit notes.

``billing_statement`` gets its kind (invoice|credit_note), its number (null for drafts and for the
statements issued before; those keep printing as ``ST-000042``), the seller whose series it is
from, when it was issued, the invoice a credit note corrects and why, and the planned end of a
period closed early. ``billing_invoice_series`` holds the last number given per seller and year.
Existing statements stay issued invoices (read with ``issued_at`` null as issued at ``created_at``)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Integer, Timestamptz, Varchar
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-06T06:20:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "invoice numbers, drafts and credit notes"


def _params(**overrides):
    params = {"null": False, "primary_key": False, "unique": False, "index": False,
              "index_method": IndexMethod.btree, "choices": None, "db_column_name": None, "secret": False}
    params.update(overrides)
    return params


STATEMENT_COLUMNS = (
    ("kind", Varchar, _params(default="invoice", length=16)),
    ("number", Varchar, _params(default=None, length=64, null=True)),  # unique: the next migration
    ("seller", Varchar, _params(default="operator", length=64)),
    ("issued_at", Timestamptz, _params(default=None, null=True)),
    ("corrects", Integer, _params(default=None, null=True, index=True)),
    ("reason", Varchar, _params(default="", length=200)),
    ("scheduled_end", Timestamptz, _params(default=None, null=True)),
)

SERIES_COLUMNS = (
    ("series", Varchar, _params(default="", length=100, unique=True)),
    ("seller", Varchar, _params(default="operator", length=64)),
    ("year", Integer, _params(default=0)),
    ("prefix", Varchar, _params(default="", length=32)),
    ("last_number", Integer, _params(default=0)),
)


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="billing", description=DESCRIPTION
    )
    for name, column_class, params in STATEMENT_COLUMNS:
        manager.add_column(
            table_class_name="Statement",
            tablename="billing_statement",
            column_name=name,
            db_column_name=name,
            column_class_name=column_class.__name__,
            column_class=column_class,
            params=params,
            schema=None,
        )

    manager.add_table(class_name="InvoiceSeries", tablename="billing_invoice_series", schema=None, columns=None)
    for name, column_class, params in SERIES_COLUMNS:
        manager.add_column(
            table_class_name="InvoiceSeries",
            tablename="billing_invoice_series",
            column_name=name,
            db_column_name=name,
            column_class_name=column_class.__name__,
            column_class=column_class,
            params=params,
            schema=None,
        )
    return manager
