"""The architecture holds: import-linter's contracts in pyproject.toml are kept, and they cover
every module of the core and every shipped plugin (a new module cannot slip past them)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import csms
import plugins

ROOT = Path(__file__).resolve().parent.parent
PUBLIC = {"csms.plugin_api", "csms.testing"}


def contract(kind: str, source: str | None = None) -> dict:
    """The one contract of ``kind`` (of ``source``, for forbidden contracts)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    found = [c for c in config["contracts"] if c["type"] == kind
             and (source is None or c["source_modules"] == [source])]
    assert len(found) == 1, found
    return found[0]


def test_every_contract_is_kept() -> None:
    done = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
                           "lint_imports_command()"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_plugins_may_reach_only_the_public_api() -> None:
    internal = ({f"csms.{m.name}" for m in pkgutil.iter_modules(csms.__path__)} - PUBLIC - {"csms.__main__"}
                | {"csms_tools"})
    assert set(contract("forbidden", "plugins")["forbidden_modules"]) == internal


def test_every_shipped_plugin_is_held_independent() -> None:
    shipped = {f"plugins.{m.name}" for m in pkgutil.iter_modules(plugins.__path__) if m.ispkg}
    assert set(contract("independence")["modules"]) == shipped
