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


def contracts() -> dict[str, dict]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {c["type"] if c["type"] != "forbidden" else c["source_modules"][0]: c for c in config["contracts"]}


def test_every_contract_is_kept() -> None:
    done = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
                           "lint_imports_command()"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_plugins_may_reach_only_the_public_api() -> None:
    internal = {f"csms.{m.name}" for m in pkgutil.iter_modules(csms.__path__)} - PUBLIC - {"csms.__main__"}
    assert set(contracts()["plugins"]["forbidden_modules"]) == internal


def test_every_shipped_plugin_is_held_independent() -> None:
    shipped = {f"plugins.{m.name}" for m in pkgutil.iter_modules(plugins.__path__) if m.ispkg}
    assert set(contracts()["independence"]["modules"]) == shipped
