"""Languages (issue 15): every text marked in the sources is translated in German, Dutch and French
(a new string without its translations fails here), the catalogs load and merge with a plugin's,
the browser's Accept-Language is negotiated, and numbers and dates follow the language. No server;
about 1.5 s (the extraction)."""

from __future__ import annotations

import importlib
import re
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from csms import i18n
from csms.admin.forms import parse_datetime_local
from csms.admin.templating import fmt_ago, fmt_amount, fmt_dt, fmt_duration, fmt_kwh, fmt_num, fmt_quantity

ROOT = Path(__file__).resolve().parents[1]
BILLING = ROOT / "plugins" / "billing"
# Every shipped plugin and the example plugins keep their texts in a catalog of their own.
PLUGINS = sorted(path.parent for pattern in ("plugins/*/babel.cfg", "examples/*/*/babel.cfg") for path in ROOT.glob(pattern))
# (where babel.cfg is, the catalogs' directory): the core's, then each plugin's
SOURCES = [(ROOT, ROOT / "csms" / "locale"), *((plugin, plugin / "locale") for plugin in PLUGINS)]
SOURCE_IDS = ["core", *(plugin.name for plugin in PLUGINS)]
TRANSLATED = [language for language in i18n.LANGUAGES if language != i18n.DEFAULT_LANGUAGE]
PLACEHOLDER = re.compile(r"%\((\w+)\)s")
FORMAT_TOKEN = re.compile(r"%(\(\w+\)s|%)")


def extracted(root: Path) -> dict[str, set[str]]:
    """msgid (the singular of a plural) to the source files it is in, as ``pybabel extract`` finds them."""
    with (root / "babel.cfg").open() as fh:
        method_map, options_map = parse_mapping_cfg(fh)
    found: dict[str, set[str]] = {}
    tops = {pattern.split("/", 1)[0] for pattern, _ in method_map}

    def wanted(path: str) -> bool:  # only the folders babel.cfg names (not .venv): a fraction of the walk
        relative = Path(path).relative_to(root).parts
        return not relative or ("**.py" in tops or relative[0] in tops) and not relative[-1].startswith(
            (".", "__pycache__")) and not relative[-1].endswith(".egg-info")

    for filename, _, message, _, _ in extract_from_dir(str(root), method_map, options_map, directory_filter=wanted):
        msgid = message if isinstance(message, str) else message[0]
        if msgid:
            found.setdefault(msgid, set()).add(filename)
    return found


@pytest.mark.parametrize(("root", "locale_dir"), SOURCES, ids=SOURCE_IDS)
def test_every_marked_text_is_translated_in_every_language(root, locale_dir):
    texts = extracted(root)
    assert texts, f"no texts found under {root}"
    # a template's _() fills %(name)s placeholders in every text: a lone % there breaks the page
    lone = sorted(t for t, files in texts.items() if any(f.endswith(".html") for f in files) and "%" in FORMAT_TOKEN.sub("", t))
    assert not lone, f"write %% for a percent sign in a template's text: {lone}"
    for language in TRANSLATED:
        path = i18n.catalog_path(locale_dir, language)
        with path.open("rb") as fh:
            catalog = read_po(fh, locale=language)
        entries = {m.id if isinstance(m.id, str) else m.id[0]: m for m in catalog if m.id}
        missing = sorted(set(texts) - set(entries))
        assert not missing, (f"{path} lacks {len(missing)} texts (extract and update, see csms/i18n.py): "
                             + "; ".join(f"{t!r} in {sorted(texts[t])}" for t in missing[:10]))
        stale = sorted(set(entries) - set(texts))
        assert not stale, f"{path} translates texts no source has any more: {stale[:10]}"
        for msgid, entry in entries.items():
            forms = [entry.string] if isinstance(entry.string, str) else list(entry.string)
            assert forms and all(f.strip() for f in forms), f"{language}: {msgid!r} is not translated"
            assert not entry.fuzzy, f"{language}: {msgid!r} is fuzzy"
            wanted = set(PLACEHOLDER.findall(msgid if isinstance(entry.id, str) else " ".join(entry.id)))
            for form in forms:
                assert set(PLACEHOLDER.findall(form)) <= wanted | {"num"}, f"{language}: {form!r} has a placeholder {msgid!r} lacks"
                assert wanted - {"count", "num"} <= set(PLACEHOLDER.findall(form)), f"{language}: {form!r} drops a placeholder of {msgid!r}"


def test_every_plugin_with_pages_ships_its_catalog_through_its_hook():
    """A plugin with pages has a catalog of its own (with its babel.cfg, so the completeness check
    above covers it) and returns it from its ``locale_dirs`` hook."""
    with_pages = {path.parent for pattern in ("plugins/*/templates", "examples/*/*/templates") for path in ROOT.glob(pattern)}
    assert with_pages <= set(PLUGINS)
    assert {"billing", "stationops", "notifications", "roaming_ocpi", "loadbalancing", "payments_stripe",
            "csms_fleet_limits"} <= {
        plugin.name for plugin in PLUGINS}
    for plugin in PLUGINS:
        module = importlib.import_module(f"plugins.{plugin.name}.plugin" if plugin.parent.name == "plugins"
                                         else f"{plugin.name}.plugin")
        assert [Path(d) for d in module.locale_dirs()] == [plugin / "locale"], plugin.name
        for language in TRANSLATED:
            assert i18n.catalog_path(plugin / "locale", language).is_file(), f"{plugin.name} lacks its {language} catalog"


def test_the_catalogs_load_and_a_plugins_catalog_merges_with_the_cores():
    catalogs = i18n.load_catalogs((str(BILLING / "locale"),))
    assert set(catalogs) == set(TRANSLATED)
    assert catalogs["de"].gettext("Stations") == "Ladestationen" and catalogs["de"].gettext("Billing") == "Abrechnung"
    assert catalogs["nl"].gettext("Billing") == "Facturatie" and catalogs["fr"].gettext("Sites") == "Sites"
    assert catalogs["fr"].gettext("A text nobody translated") == "A text nobody translated"  # English stays
    assert catalogs["de"].ngettext("Nothing was saved. Please correct this problem:",
                                   "Nothing was saved. Please correct these %(count)s problems:", 3).startswith("Nichts")


@pytest.mark.parametrize(("header", "language"), [
    ("de-DE,de;q=0.9,en;q=0.8", "de"), ("fr-CH, fr;q=0.9", "fr"), ("nl-BE", "nl"), ("en-US,en;q=0.5", "en"),
    ("es-ES, nl;q=0.3, de;q=0.7", "de"),  # the best we have, by weight
    ("de;q=0, fr", "fr"),  # q=0: not wanted
    ("es, it", None), ("", None), ("*", None), ("de;q=x", None),
])
def test_accept_language_negotiation(header, language):
    assert i18n.negotiate(header) == language


def test_numbers_dates_and_relative_times_follow_the_language():
    moment = datetime(2026, 7, 1, 12, 0, 5, tzinfo=timezone.utc)
    berlin = ZoneInfo("Europe/Berlin")
    expected = {
        "en": ("2026-07-01 14:00:05", "1,234.57 kWh", "0.0315", "63.5", "1.250 kWh", ("1:05 h", "45 min", "36 s")),
        "de": ("01.07.2026 14:00:05", "1.234,57 kWh", "0,0315", "63,5", "1,250 kWh", ("1:05 Std.", "45 Min.", "36 Sek.")),
        "nl": ("01-07-2026 14:00:05", "1.234,57 kWh", "0,0315", "63,5", "1,250 kWh", ("1:05 u", "45 min", "36 s")),
        "fr": ("01/07/2026 14:00:05", "1\u202f234,57 kWh", "0,0315", "63,5", "1,250 kWh", ("1 h 05", "45 min", "36 s")),
    }
    i18n._catalogs.update(i18n.load_catalogs(()))
    try:
        for language, (when, energy, amount, number, quantity, duration) in expected.items():
            i18n.use_language(language)
            assert fmt_dt(moment, tz=berlin) == when
            assert fmt_kwh(1234567) == energy and fmt_amount("0.0315") == amount and fmt_num(63.5) == number
            assert fmt_quantity("1.25", "kWh") == quantity
            assert (fmt_duration(65), fmt_duration(45), fmt_quantity("0.01", "h")) == duration
        i18n.use_language("de")
        assert fmt_ago(datetime.now(timezone.utc)).startswith("vor ") and fmt_ago(None) == "nie"
    finally:
        i18n.use_language("en")
    assert i18n.use_language("xx") == "en"  # an unknown language is the default


def test_a_time_typed_in_the_viewers_zone():
    berlin = ZoneInfo("Europe/Berlin")
    assert parse_datetime_local("2026-07-01T14:00", berlin) == datetime(2026, 7, 1, 12, 0, tzinfo=timezone.utc)
    assert parse_datetime_local("2026-01-15T14:00", berlin) == datetime(2026, 1, 15, 13, 0, tzinfo=timezone.utc)
    assert parse_datetime_local("2026-07-01T14:00") == datetime(2026, 7, 1, 14, 0, tzinfo=timezone.utc)  # UTC default
    assert parse_datetime_local("2026-07-01T14:00Z", berlin) == datetime(2026, 7, 1, 14, 0, tzinfo=timezone.utc)  # offset wins
    with pytest.raises(ValueError):
        parse_datetime_local("tomorrow", berlin)


def test_the_installation_language_setting():
    from pydantic import ValidationError

    from csms.settings import Settings

    assert Settings(admin_language="DE").admin_language == "de" and Settings(admin_language="").admin_language == "en"
    with pytest.raises(ValidationError, match="not a language"):
        Settings(admin_language="es")
