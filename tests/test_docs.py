"""The docs stay in step with the code."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

ROOT = Path(__file__).parent.parent
HOOKS_DOC = ROOT / "docs" / "hooks.md"


def settings_block(path: Path) -> str:
    """The generated settings reference of a README (between the ``settings`` markers)."""
    text = path.read_text()
    assert "<!-- settings:begin -->" in text, f"{path} has no generated settings block"
    return text.split("<!-- settings:begin -->")[1].split("<!-- settings:end -->")[0].strip()


def shipped_owners() -> list[str]:
    """The core and the plugins shipped in ``plugins/`` (an installed third-party plugin, such as
    the example in ``examples/``, documents its settings in its own README)."""
    from csms.plugins import pm
    from csms.settings import settings_registry

    return [name for name in settings_registry()
            if name == "core" or Path(pm.get_plugin(name).__file__).is_relative_to(ROOT / "plugins")]


def test_readme_configuration_reference_is_current():
    from csms.settings import settings_reference_markdown

    assert settings_block(ROOT / "README.md") == settings_reference_markdown(owners=shipped_owners()), \
        "run `csms config --markdown` (without third-party plugins installed) and update the README"


def test_each_plugin_readme_carries_its_settings_table():
    from csms.plugins import pm
    from csms.settings import settings_reference_markdown, settings_registry

    plugins = [name for name in settings_registry() if name != "core"]
    assert {"billing", "loadbalancing", "notifications", "peakshaving", "roaming_ocpi", "stationops"} <= set(plugins)
    for name in plugins:
        package = Path(pm.get_plugin(name).__file__).parent
        # the package's README, or its distribution's (one level up, as in examples/fleet-limits)
        readme = next(p for p in (package / "README.md", package.parent / "README.md") if p.exists())
        assert settings_block(readme) == settings_reference_markdown(name), \
            f"run `csms config --markdown {name}` and update {readme}"


def declared_hooks() -> dict:
    """Every hook spec: the core's and those the loaded plugins declare (billing's too)."""
    from csms.plugins import hook_specs, load_plugins

    load_plugins()
    specs = hook_specs()
    assert specs, "no hook specs found"
    assert "billing_request_payment" in specs, "hooks declared by plugins are checked too"
    return specs


def hook_sections() -> dict[str, tuple[str, str]]:
    """Documented hook name → (its heading's arguments, the text of its section)."""
    text = HOOKS_DOC.read_text()
    headings = list(re.finditer(r"^### `(\w+)\((.*)\)`$", text, flags=re.M))
    sections = {}
    for m in headings:
        end = re.compile(r"^##", flags=re.M).search(text, m.end())
        sections[m.group(1)] = (m.group(2), text[m.end():end.start() if end else len(text)])
    return sections


def test_every_hook_is_documented():
    documented = set(hook_sections())
    names = set(declared_hooks())
    missing = names - documented
    assert not missing, f"hooks without documentation in docs/hooks.md: {sorted(missing)}"
    assert not documented - names, "docs/hooks.md documents hooks that do not exist"


def test_documented_arguments_match_specs():
    sections = hook_sections()
    for name, spec in declared_hooks().items():
        args = list(inspect.signature(spec).parameters)
        assert sections[name][0] == ", ".join(args), f"signature of {name} differs in docs"


def test_each_hook_states_its_rule_and_has_an_example():
    from csms.plugins import rule_of

    sections = hook_sections()
    for name in declared_hooks():
        section = sections[name][1]
        assert f"*{rule_of(name).value}.*" in section, f"docs/hooks.md does not state the rule of {name}"
        example = re.search(r"```python\n(.*?)```", section, flags=re.S)
        assert example and "@hookimpl" in example.group(1) and f"def {name}(" in example.group(1), \
            f"docs/hooks.md has no example implementing {name}"
        compile(example.group(1), f"docs/hooks.md:{name}", "exec")


def _conformance_rows(text: str, start: str, end: str) -> list[tuple[str, str]]:
    """(first cell, status) of every table row between the headings ``start`` and ``end``."""
    section = text[text.index(start):text.index(end, text.index(start))]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) >= 3 and cells[1] in ("supported", "partly", "no"):
            rows.append((cells[0], cells[1]))
    return rows


def _use_cases(name: str) -> int:
    """How many 2.0.1 use cases a row's first cell names: ``K11–K13`` three, ``I04, I05`` two."""
    m = re.match(r"[A-P](\d\d)(?:[–-][A-P]?(\d\d))?((?:, [A-P]\d\d)*)", name)
    if m is None:
        return 1
    count = int(m.group(2)) - int(m.group(1)) + 1 if m.group(2) else 1
    return count + len(re.findall(r"[A-P]\d\d", m.group(3) or ""))


def test_conformance_counts_match_the_rows():
    text = (ROOT / "docs" / "conformance.md").read_text()
    counts = {}
    for line in text[text.index("## Counts"):].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[1].isdigit():
            counts[cells[0].split(" (")[0] + ("/rows" if "per table row" in cells[0] else "")] = tuple(
                int(c) for c in cells[1:])

    def tally(rows: list[tuple[str, str]], weight=lambda name: 1) -> tuple[int, int, int]:
        return tuple(sum(weight(n) for n, s in rows if s == status) for status in ("supported", "partly", "no"))

    v201 = _conformance_rows(text, "## OCPP 2.0.1", "## OCPP 1.6J")
    assert counts["Connection and security profiles"] == tally(
        _conformance_rows(text, "## Connection and security profiles", "## OCPP 2.0.1"))
    assert counts["OCPP 2.0.1, per use case"] == tally(v201, _use_cases)
    assert counts["OCPP 2.0.1, per table row/rows"] == tally(v201)
    assert counts["OCPP 1.6J, per row"] == tally(_conformance_rows(text, "## OCPP 1.6J", "## OCPP 2.1"))
    assert counts["OCPP 2.1"] == tally(_conformance_rows(text, "## OCPP 2.1", "## Counts"))
    assert f"the {sum(tally(v201, _use_cases))} listed above" in text and f"{len(v201)} rows" in text
