"""`csms user create` as the README documents it: without an e-mail, twice, and with mistakes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def csms(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
    env.update(CSMS_DATA_DIR=str(data_dir), CSMS_LOG_LEVEL="warning")
    return subprocess.run([sys.executable, "-m", "csms", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def test_users_without_an_email_are_created_and_mistakes_are_answered_in_words(tmp_path):
    first = csms(tmp_path, "user", "create", "--username", "vera", "--role", "viewer", "--password", "a-long-password-1")
    assert first.returncode == 0, first.stderr
    assert "user vera (viewer) created" in first.stdout
    second = csms(tmp_path, "user", "create", "--username", "otto", "--role", "operator")
    assert second.returncode == 0, second.stderr
    assert "user otto (operator) created; password: " in second.stdout

    again = csms(tmp_path, "user", "create", "--username", "vera", "--role", "viewer", "--password", "a-long-password-1")
    assert again.returncode == 1
    assert "user not created: a user named 'vera' exists already" in again.stderr
    assert "Traceback" not in again.stderr
    taken = csms(tmp_path, "user", "create", "--username", "olga", "--email", "vera@users.invalid")
    assert taken.returncode == 1 and "another user has the e-mail address" in taken.stderr
    short = csms(tmp_path, "user", "create", "--username", "kurt", "--password", "x")
    assert short.returncode == 1 and "user not created:" in short.stderr and "Traceback" not in short.stderr
    bad_role = csms(tmp_path, "user", "create", "--username", "ria", "--role", "owner")
    assert bad_role.returncode == 1 and "role must be one of" in bad_role.stderr


def test_two_servers_starting_on_one_new_database_create_one_admin(tmp_path):
    """Two ``csms serve`` started together on a new database: one creates the admin and prints its
    password, the other finds it (no traceback from the unique username)."""
    script = ("import asyncio\n"
              "from csms.cli import _with_db, ensure_first_admin\n"
              "async def both():\n"
              "    return await asyncio.gather(ensure_first_admin(), ensure_first_admin())\n"
              "print(sorted(p is None for p in asyncio.run(_with_db(both))))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
    env.update(CSMS_DATA_DIR=str(tmp_path), CSMS_LOG_LEVEL="warning")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[False, True]"  # one password printed, one start finds the admin
