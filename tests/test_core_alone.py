"""The core runs, and its own OCPP and REST tests pass, with no plugin installed.

Every shipped plugin is a distribution of its own (``plugins/<name>/pyproject.toml``). These
tests build an environment that holds the core and its dependencies but none of the plugin
distributions (a venv whose site-packages links to this environment's, minus every distribution
with an entry point in the ``csms`` group), then start ``csms serve`` in it and run a station
through a charging session, and run the core's protocol and REST tests in it.
"""

from __future__ import annotations

import os
import re
import site
import subprocess
import sys
from importlib.metadata import distributions
from pathlib import Path

import httpx
import pytest
from ocpp.v16 import call

from csms.testing import free_port
from tests.crashkit import ServerProcess
from tests.stations import connect

ROOT = Path(__file__).resolve().parent.parent
# the core's own tests of the protocols and the REST API: none of them needs a plugin
CORE_TESTS = ["tests/test_ocpp_16.py", "tests/test_ocpp_201.py", "tests/test_api.py", "tests/test_bad_input.py"]


def plugin_distributions() -> dict[str, set[str]]:
    """Installed distributions that register a CSMS plugin, with their top-level entries in
    site-packages (dist-info, editable finders and .pth files)."""
    found: dict[str, set[str]] = {}
    for dist in distributions():
        if any(ep.group == "csms" for ep in dist.entry_points):
            found[dist.metadata["Name"]] = {Path(str(f)).parts[0] for f in dist.files or []}
    return found


def core_only_python(where: Path) -> str:
    """A venv with this environment's packages but no plugin distribution; its python."""
    venv = where / "core-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    target = next((venv / "lib").glob("python3*/site-packages"))
    hidden = set().union(*plugin_distributions().values())
    for source_dir in site.getsitepackages():
        for entry in Path(source_dir).iterdir():
            if entry.name not in hidden and entry.name != "__pycache__" and not (target / entry.name).exists():
                (target / entry.name).symlink_to(entry)
    return str(venv / "bin" / "python")


@pytest.fixture(scope="module")
def core_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    assert {"csms-billing", "csms-loadbalancing", "csms-notifications", "csms-peakshaving",
            "csms-roaming-ocpi", "csms-stationops"} <= set(plugin_distributions()), \
        "the shipped plugins are installed here (make test), so that hiding them means something"
    return core_only_python(tmp_path_factory.mktemp("alone"))


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CSMS_") and k != "PYTHONPATH"}


def test_no_plugin_is_installed_there(core_python: str, tmp_path: Path) -> None:
    listed = subprocess.run([core_python, "-m", "csms", "plugins"], cwd=tmp_path, env=clean_env(),
                            capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    names = [line for line in listed.stdout.splitlines() if line and not line.startswith(" ")]
    assert names and all(name.startswith("csms.") for name in names), listed.stdout
    shown = subprocess.run([core_python, "-c", "import importlib.util as u; print(u.find_spec('plugins'))"],
                           cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert shown.stdout.strip() == "None", shown.stdout + shown.stderr


async def test_the_core_alone_charges_a_car(core_python: str, tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", free_port(), python=core_python, cwd=tmp_path)
    server.env = {**clean_env(), **{k: v for k, v in server.env.items() if k.startswith("CSMS_")}}
    await server.start()
    try:
        key = await server.create_api_key()
        async with httpx.AsyncClient(base_url=f"{server.http_url}/api/v1", timeout=30,
                                     headers={"Authorization": f"Bearer {key}"}) as api:
            assert (await api.post("/tokens", json={"id_token": "ALONE1", "type": "ISO14443"})).status_code == 201
            async with connect(server.ws_url("ALONE"), "ALONE", version="1.6") as cp:
                boot = await cp.call(call.BootNotification(charge_point_vendor="Acme", charge_point_model="AC22"))
                assert boot.status == "Accepted"
                await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Preparing"))
                assert (await cp.call(call.Authorize(id_tag="ALONE1"))).id_tag_info["status"] == "Accepted"
                started = await cp.call(call.StartTransaction(connector_id=1, id_tag="ALONE1", meter_start=1000,
                                                              timestamp="2026-12-06T08:00:00Z"))
                assert started.id_tag_info["status"] == "Accepted"
                await cp.call(call.StopTransaction(meter_stop=8500, timestamp="2026-12-06T09:00:00Z",
                                                   transaction_id=started.transaction_id, id_tag="ALONE1"))
            sessions = (await api.get("/sessions", params={"station_id": "ALONE"})).json()
            rows = sessions["items"] if isinstance(sessions, dict) else sessions
            assert [round(float(s["energy_wh"])) for s in rows] == [7500], rows
        # the admin, signed in with the login printed on first start, shows the session
        printed = re.search(r"log in as 'admin' with password '([^']+)'", server.log_tail(100_000))
        assert printed, server.log_tail()
        async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as web:
            form = await web.get("/login")
            assert form.status_code == 200
            csrf = re.search(r'name="_csrf_token" value="([^"]+)"', form.text)
            assert csrf, form.text[:2000]
            signed_in = await web.post("/login", data={"username": "admin", "password": printed.group(1),
                                                        "_csrf_token": csrf.group(1)})
            assert signed_in.status_code in (302, 303), signed_in.text[:2000]
            page = await web.get("/admin/stations/ALONE")
            assert page.status_code == 200 and "ALONE" in page.text and "AC22" in page.text
            assert "billing" not in (await web.get("/admin/dashboard")).text.lower()
    finally:
        server.stop()
    assert "Traceback" not in server.log_tail(100_000)


def test_the_core_tests_pass_without_plugins(core_python: str) -> None:
    done = subprocess.run([core_python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *CORE_TESTS],
                          cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert " passed" in done.stdout.splitlines()[-1] and "skipped" not in done.stdout.splitlines()[-1], \
        done.stdout[-2000:]
