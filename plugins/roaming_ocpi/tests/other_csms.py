"""A second CSMS in its own process (``python -m csms serve``) with its own data directory, loading
the roaming plugin through its entry point like any installation: the partner in roaming tests."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx

from csms.testing import free_port


class OtherCsms:
    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        base = {k: v for k, v in os.environ.items() if not k.startswith("CSMS_")}
        self.env = {**base, "CSMS_DATA_DIR": str(data_dir), "CSMS_UNKNOWN_STATIONS": "accept",
                    "CSMS_LOG_LEVEL": "warning", "CSMS_OCPI_BASE_URL": self.base_url, **env}
        self.process: subprocess.Popen | None = None
        self.api_key = ""
        self.api: httpx.AsyncClient | None = None
        self.log = data_dir / "server.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        if not self.api_key:
            out = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "csms", "apikey", "create",
                                                           "--name", "tests"], env=self.env, capture_output=True,
                                          text=True, timeout=120, check=True)
            self.api_key = out.stdout.strip().splitlines()[-1]
        self.process = subprocess.Popen([sys.executable, "-m", "csms", "serve", "--port", str(self.port)],
                                        env=self.env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        self.api = httpx.AsyncClient(base_url=f"{self.base_url}/api/v1", timeout=30,
                                     headers={"Authorization": f"Bearer {self.api_key}"})
        for _ in range(600):
            if self.process.poll() is not None:
                raise RuntimeError(f"the second CSMS exited:\n{self.log.read_text()[-3000:]}")
            try:
                if (await self.api.get("/health")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
        raise RuntimeError("the second CSMS did not start")

    async def stop(self) -> None:
        if self.api is not None:
            await self.api.aclose()
            self.api = None
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                await asyncio.to_thread(self.process.wait, 20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                await asyncio.to_thread(self.process.wait)
        self.process = None
