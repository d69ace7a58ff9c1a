"""The settings registry: the config file (core keys and plugin tables), the environment winning
over it, unknown keys reported, ``csms config`` and every ``CSMS_*`` name the code uses declared."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from csms.cli import main
from csms.settings import (CsmsSettings, Settings, SmartChargingSettings, config_file_problems, declared,
                           report_config_file, settings_registry, table_of)
from plugins.billing.config import BillingSettings
from csms.settings import SmtpSettings

ROOT = Path(__file__).parent.parent
# configure the test suite, not a CSMS; CSMS_ADDRESS and CSMS_WSS_ADDRESS are the outside tzi-OCTT
# suite's (bench/octt), where its stations find the CSMS under test
TEST_SUITE_PREFIXES = ("CSMS_TEST_", "CSMS_FUZZ_", "CSMS_ADDRESS", "CSMS_WSS_ADDRESS")


def all_declared():
    return [d for classes in settings_registry().values() for cls in classes for d in declared(cls)]


@pytest.fixture
def config_file(tmp_path, monkeypatch):
    """Write the config file named by CSMS_CONFIG_FILE; the variables of its keys are unset."""
    path = tmp_path / "csms.toml"

    def write(text: str) -> Path:
        path.write_text(text)
        for d in all_declared():
            monkeypatch.delenv(d.variable, raising=False)
        monkeypatch.setenv("CSMS_CONFIG_FILE", str(path))
        return path

    return write


def test_the_file_sets_core_and_plugin_settings_and_the_environment_wins(config_file, monkeypatch):
    config_file('port = 9000\nunknown_stations = "accept"\n\n[smart_charging]\ninterval_s = 5\n\n'
                '[billing]\ncost_updates = true\ncost_update_interval = 7\n\n[smtp]\nfrom = "ops@example.org"\n')
    assert Settings().port == 9000 and Settings().unknown_stations.value == "accept"
    assert SmartChargingSettings().interval_s == 5
    assert BillingSettings().cost_updates is True and BillingSettings().cost_update_interval == 7
    assert SmtpSettings().from_ == "ops@example.org"

    monkeypatch.setenv("CSMS_PORT", "9100")
    monkeypatch.setenv("CSMS_BILLING_COST_UPDATE_INTERVAL", "9")
    monkeypatch.setenv("CSMS_SMTP_FROM", "env@example.org")
    assert Settings().port == 9100 and Settings(port=1).port == 1  # explicit overrides win over both
    assert BillingSettings().cost_update_interval == 9 and BillingSettings().cost_updates is True
    assert SmtpSettings().from_ == "env@example.org"
    assert config_file_problems() == []


def test_unknown_keys_are_reported_with_the_file(config_file, caplog):
    path = config_file('prot = 9000\n[billing]\ncost_update = true\n[biling]\ncost_updates = true\n')
    problems = config_file_problems()
    assert problems == [f"{path}: unknown key 'prot' (did you mean 'port'?)",
                        f"{path}: unknown key 'cost_update' in [billing] (did you mean 'cost_updates'?)",
                        f"{path}: unknown table 'biling' (did you mean 'billing'?)"]
    with caplog.at_level(logging.WARNING, logger="csms.settings"):
        report_config_file()
    assert [r.getMessage() for r in caplog.records] == [f"{p}; it is ignored" for p in problems]


def test_csms_config_prints_every_setting_with_secrets_masked(config_file, monkeypatch, capsys):
    config_file('[smtp]\npassword = "smtp-pass"\nhots = "mail"\n')
    monkeypatch.setenv("CSMS_SESSION_SECRET", "top-secret")
    monkeypatch.setenv("CSMS_DATABASE_URL", "postgresql://csms:db-pass@db:5432/csms")
    main(["config"])
    out, err = capsys.readouterr()
    assert "top-secret" not in out and "smtp-pass" not in out and "db-pass" not in out
    lines = out.splitlines()
    assert "CSMS_SESSION_SECRET=***" in lines and "CSMS_SMTP_PASSWORD=***" in lines
    assert "CSMS_DATABASE_URL=postgresql://csms:***@db:5432/csms" in lines
    assert [line.split("=")[0] for line in lines if not line.startswith("#")] == [d.variable for d in all_declared()]
    assert "unknown key 'hots' in [smtp]" in err


def test_csms_config_markdown_covers_every_declared_setting(capsys):
    main(["config", "--markdown"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == [d.variable for d in all_declared()]
    assert all(d.field.description for d in all_declared())


def test_every_settings_class_follows_the_convention():
    classes = [cls for classes in settings_registry().values() for cls in classes]
    assert all(issubclass(cls, CsmsSettings) for cls in classes), "settings classes read the config file"
    tables = [table_of(cls) for cls in classes]
    assert len(set(tables)) == len(tables), f"two settings classes share a table: {tables}"
    for cls in classes:
        prefix = cls.model_config["env_prefix"]
        assert prefix.startswith("CSMS_") and all(d.variable.startswith(prefix) for d in declared(cls))


# Reads the admin's map settings from the environment; to read ``settings.map_tile_url`` and
# ``settings.map_attribution`` instead (then the config file applies to them too).
def test_every_csms_variable_in_the_source_is_declared():
    """Code and docs name only declared variables (or their prefixes), and only the settings
    module reads them from the environment: nothing is read ad hoc, past the config file."""
    variables = {d.variable for d in all_declared()}
    prefixes = {cls.model_config["env_prefix"] for classes in settings_registry().values() for cls in classes}
    undeclared, ad_hoc = set(), set()
    for root in ("csms", "plugins", "bench", "scripts", "docs", "tests", "README.md"):
        paths = [ROOT / root] if root.endswith(".md") else (ROOT / root).rglob("*")
        for path in paths:
            if path.suffix not in (".py", ".md") or {"node_modules", ".venv"} & set(path.parts):
                continue
            text, where = path.read_text(), str(path.relative_to(ROOT))
            for name in re.findall(r"CSMS_[A-Z0-9][A-Z0-9_]*", text):
                if name not in variables and name not in prefixes and not name.startswith(TEST_SUITE_PREFIXES):
                    undeclared.add(f"{name} ({where})")
            for name in re.findall(r"(?:environ\.get\(|getenv\(|environ\[)\s*[\"'](CSMS_\w+)", text):
                if not name.startswith(TEST_SUITE_PREFIXES) and where != "csms/settings.py":
                    ad_hoc.add(f"{name} ({where})")
    assert not undeclared, f"declare these in a settings class: {sorted(undeclared)}"
    assert not ad_hoc, f"read these through their settings class, not the environment: {sorted(ad_hoc)}"
