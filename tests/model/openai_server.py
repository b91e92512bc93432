"""A real OpenAI-compatible server process on loopback: `transformers serve` for a model folder.

transformers 5.24's server runs on CPU from a local model directory (it needs `accelerate` for its
device_map). It generates one request at a time on a single inference thread, which the
cancellation tests rely on: a generation left running would delay the next request by minutes.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.live_server import free_port

STARTUP_TIMEOUT = 60.0


@dataclass(frozen=True)
class OpenAIServer:
    base_url: str  # ends in /v1, as OpenAISettings.base_url
    model: str  # the name requests must use: transformers serve names a local model by its path
    log_path: Path

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def openai_server(model_dir: Path, log_path: Path) -> Iterator[OpenAIServer]:
    """Start `transformers serve` for `model_dir` on a free loopback port; stop it afterwards."""
    port = free_port()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",  # a local directory needs no hub; never reach the internet
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "OMP_NUM_THREADS": "1",  # the machine's two cores are shared with the test process
    }
    command = [
        *(sys.executable, "-m", "transformers.cli.transformers", "serve", str(model_dir)),
        *("--host", "127.0.0.1", "--port", str(port), "--device", "cpu"),
        *("--log-level", "info", "--default-seed", "0"),
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_healthy(process, base, log_path)
        yield OpenAIServer(f"{base}/v1", str(model_dir), log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _wait_healthy(process: subprocess.Popen, base: str, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"transformers serve exited:\n{log_path.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"transformers serve did not start:\n{log_path.read_text()[-3000:]}")
