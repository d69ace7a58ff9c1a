"""Reading a ``csms serve`` process's log file: what ``csms bench`` and the crash tests show when
the server they started fails. Imports nothing of the server, so the crash kit stays independent
of it."""

from __future__ import annotations

import os
from pathlib import Path


def log_tail(path: Path, size: int = 4000) -> str:
    """The last ``size`` bytes of a server's log file, as text (empty when there is none yet)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - size))
            return f.read().decode(errors="replace")
    except OSError:
        return ""
