"""The docs stay in step with the code."""

from __future__ import annotations

from pathlib import Path


def test_readme_configuration_reference_is_current():
    from csms.settings import settings_reference_markdown

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    table = readme.split("<!-- settings:begin -->")[1].split("<!-- settings:end -->")[0].strip()
    assert table == settings_reference_markdown(), "run `csms config --markdown` and update the README"
