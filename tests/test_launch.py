"""launch.py as an operator runs it: clear one-line failures, and a clean SIGTERM under load."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from gradio_client import Client

from tests.live_server import free_port

ROOT = Path(__file__).resolve().parent.parent


def run_launch(tmp_path: Path, *args: str, env: dict[str, str] | None = None, **kw):
    full_env = {
        **os.environ,
        "CHAT_DATABASE__URL": f"sqlite:///{tmp_path}/chat.db",
        "CHAT_MODEL__CACHE_DIR": str(tmp_path / "models"),
        "CHAT_OIDC__EMBEDDED_PORT": str(free_port()),
        **(env or {}),
    }
    return subprocess.Popen(
        [sys.executable, "launch.py", *args],
        cwd=ROOT,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def test_a_bad_setting_stops_start_up_with_one_line_naming_the_key(tmp_path):
    proc = run_launch(tmp_path, env={"CHAT_GENERATION__TOP_P": "7"})
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert err.strip().splitlines() == [
        "settings error: generation.top_p: Input should be less than or equal to 1 (got '7')"
    ]


def test_offline_with_nothing_cached_says_what_failed_and_the_two_fixes(tmp_path):
    # An endpoint that refuses connections stands in for "no internet".
    proc = run_launch(tmp_path, env={"MODELSCOPE_ENDPOINT": "http://127.0.0.1:9"})
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: model unavailable: could not download qwen/Qwen1.5-0.5B-Chat")
    assert "--demo" in last and 'source = "local"' in last
    assert "Traceback" not in err


def test_sigterm_stops_a_running_reply_saves_it_and_frees_the_port(tmp_path):
    port = free_port()
    proc = run_launch(
        tmp_path,
        "--demo",
        "--port",
        str(port),
        env={
            "CHAT_GENERATION__MAX_NEW_TOKENS": "4000",
            "CHAT_SERVER__SHUTDOWN_GRACE_SECONDS": "1",
            "CHAT_SESSION__SECRET_KEYS": '["' + "s" * 40 + '"]',
        },
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, proc)
        session = httpx.Client(base_url=url, timeout=30)
        page = session.get("/login", follow_redirects=True)
        session.post(page.url, data={"sub": "alice"}, follow_redirects=True)
        cookie = "; ".join(f"{c.name}={c.value}" for c in session.cookies.jar)
        client = Client(url, headers={"Cookie": cookie}, verbose=False)
        job = client.submit("tell me a very long story", None, api_name="/chat")
        seen: list[dict] = []
        reader = threading.Thread(target=lambda: seen.extend(job), daemon=True)
        reader.start()
        deadline = time.monotonic() + 60
        while len(seen) < 5 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(seen) >= 5, "the reply did not start streaming"

        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0
        reader.join(timeout=10)
        # The reader is told, in words, and sees no internals (paths, task names, exceptions).
        assert seen[-1]["status"] == "stopped" and "restarting" in seen[-1]["notice"]
        assert "Traceback" not in err and "Cancelled" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    with socket.socket() as sock:  # the port is released: a restarted server can listen again
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        sock.bind(("127.0.0.1", port))
        sock.listen()
    with sqlite3.connect(tmp_path / "chat.db") as db:
        rows = db.execute(
            "SELECT role, status, length(content) FROM messages ORDER BY id"
        ).fetchall()
    assert rows[0][:2] == ("user", "complete")
    assert rows[1][:2] == ("assistant", "stopped") and rows[1][2] > 0


def _wait_ready(url: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"launch.py exited early: {proc.communicate()[1][-2000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    pytest.fail("the server did not become ready")
