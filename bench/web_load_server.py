"""The chat app as bench.web_load drives it, in a process of its own (its own GIL and event loop).

The real app (create_app over build_services' SQL stores, audit trail and guards) with the FakeEngine
slowed down, --generating streams decoding at once and a line long enough for every other user's
(nobody is refused "busy"). Users are signed in
the way the login callback does it (SessionManager.start in the real session store, the cookie
signed by SessionCookie), so every request still goes through the real gate and session lookup.

Three routes only the benchmark adds, all behind the gate like any other:
    GET /bench/ping     /healthz's own handler, but gated: the difference is the gate
    GET /bench/stalls   the event loop's longest stall since the last call (and resets it)
    GET /bench/replies  every bench user's saved assistant replies, read back from the history

    python -m bench.web_load_server --database-url URL --users N --generating G --word-delay S
        --setup FILE
writes FILE (JSON: url, cookie name, one cookie per user) once the app is built, then serves until
SIGINT. ServerProcess, below, is how bench.web_load starts it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import httpx
import psutil
import psycopg
import uvicorn
from fastapi import APIRouter, FastAPI

REPO = Path(__file__).resolve().parent.parent
POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"
BENCH_SESSION_KEY = "bench-web-load-session-key-0123456789abcdef"
STALL_INTERVAL = 0.005  # the probe's sleep; a wake-up later than this is a stall


def app_internals() -> SimpleNamespace:
    """The app's modules this benchmark uses: the one place to repoint when they move."""
    from app_factory import build_services, create_app
    from auth.session_cookie import SessionCookie
    from auth.session_manager import SessionManager
    from config import Settings
    from core.identity import User
    from model.fake_engine import FakeEngine
    from webui.health import health_router

    return SimpleNamespace(
        build_services=build_services,
        create_app=create_app,
        SessionCookie=SessionCookie,
        SessionManager=SessionManager,
        Settings=Settings,
        User=User,
        FakeEngine=FakeEngine,
        health_router=health_router,
    )


class StallProbe:
    """Sleeps STALL_INTERVAL in a loop on the server's event loop; how late each wake-up comes is
    how long the loop was kept from running anything else."""

    def __init__(self) -> None:
        self._worst = 0.0
        self._over_50ms = 0
        self._wakeups = 0

    async def run(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(STALL_INTERVAL)
            late = time.perf_counter() - started - STALL_INTERVAL
            self._worst = max(self._worst, late)
            self._over_50ms += late > 0.050
            self._wakeups += 1

    def take(self) -> dict[str, float]:
        """The figures since the last call; starts a new window."""
        figures = {
            "worst_ms": self._worst * 1000,
            "over_50ms": self._over_50ms,
            "wakeups": self._wakeups,
        }
        self._worst, self._over_50ms, self._wakeups = 0.0, 0, 0
        return figures


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_settings(internals: SimpleNamespace, database_url: str, port: int):
    """Shipped defaults, except: this port, the embedded IdP, a fixed session key, this database."""
    return internals.Settings(
        server={"port": port, "public_url": f"http://127.0.0.1:{port}"},
        oidc={"issuer": "embedded", "embedded_port": free_port()},
        session={"secret_keys": [BENCH_SESSION_KEY]},
        database={"url": database_url},
    )


def sign_in(internals: SimpleNamespace, settings, store, users: int) -> dict[str, str]:
    """One real session per user in the app's session store: {user key: signed cookie value}."""
    session = settings.session
    cookie = internals.SessionCookie(
        [key.get_secret_value() for key in session.secret_keys],
        https=False,
        name=session.cookie_name,
        max_age_seconds=session.absolute_timeout_hours * 3600,
    )
    manager = internals.SessionManager(
        store,
        cookie,
        idle=timedelta(minutes=session.idle_timeout_minutes),
        absolute=timedelta(hours=session.absolute_timeout_hours),
        clock=lambda: datetime.now(UTC),
    )
    issuer = f"http://127.0.0.1:{settings.oidc.embedded_port}"
    cookies = {}
    for i in range(users):
        user = internals.User(issuer=issuer, subject=f"bench-user-{i:04d}", name=f"User {i}")
        started = manager.start(
            user, ip="127.0.0.1", user_agent="bench", idp_session_id=None, id_token=None
        )
        cookies[user.key] = cookie.sign(started.id)
    return cookies


def bench_routes(healthz: APIRouter, probe: StallProbe, history, user_keys: list[str]) -> APIRouter:
    router = APIRouter()
    # /healthz's own handler, at a path the gate guards: the difference between the two is the gate.
    [ungated] = [route for route in healthz.routes if getattr(route, "path", "") == "/healthz"]
    router.add_api_route("/bench/ping", ungated.endpoint, methods=["GET"])

    @router.get("/bench/stalls")
    async def stalls() -> dict[str, float]:
        return probe.take()

    @router.get("/bench/replies")
    def replies() -> dict[str, list[dict[str, str]]]:
        saved = {}
        for key in user_keys:
            found = []
            for summary in history.list_conversations(key, limit=100):
                for message in history.get_conversation(key, summary.id).messages:
                    if message.role == "assistant":
                        found.append({"status": message.status, "content": message.content})
            saved[key] = found
        return saved

    return router


def add_bench_parts(app: FastAPI, probe: StallProbe, router: APIRouter) -> None:
    """The bench routes ahead of the Gradio mount at "/"; the probe runs for the app's life."""
    app.router.routes[:0] = router.routes
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(asgi_app: FastAPI):
        task = asyncio.create_task(probe.run())
        try:
            async with inner(asgi_app) as state:
                yield state
        finally:
            task.cancel()

    app.router.lifespan_context = lifespan


class QuietExitServer(uvicorn.Server):
    """uvicorn re-raises the SIGINT that stopped it once its graceful shutdown is done, which would
    print a traceback into the log this benchmark scans for errors; launch.py does the same."""

    def handle_exit(self, sig, frame) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--generating", type=int, required=True)
    parser.add_argument("--word-delay", type=float, required=True)
    parser.add_argument("--setup", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    internals = app_internals()
    port = free_port()
    settings = bench_settings(internals, args.database_url, port)
    # `generating` streams decode at once; the engine's line holds every other user's (none is
    # refused "busy": the benchmark holds every stream open).
    engine = internals.FakeEngine(
        delay=args.word_delay, max_concurrent=args.generating, max_queue=args.users
    )
    services = internals.build_services(settings, engine)
    app = internals.create_app(settings, services)
    cookies = sign_in(internals, settings, services.sessions, args.users)
    probe = StallProbe()
    healthz = internals.health_router(engine)
    add_bench_parts(app, probe, bench_routes(healthz, probe, services.history, list(cookies)))
    setup = {
        "url": f"http://127.0.0.1:{port}",
        "cookie_name": settings.session.cookie_name,
        "cookies": cookies,
    }
    args.setup.write_text(json.dumps(setup))
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        proxy_headers=False,
        server_header=False,
        log_level="warning",
        timeout_graceful_shutdown=settings.server.shutdown_grace_seconds,
    )
    QuietExitServer(config).run()


# --- used by bench.web_load: this module in a process of its own, and a database for it ---------


class ServerProcess:
    """bench.web_load_server in a process of its own; its output goes to `log_path`."""

    def __init__(
        self,
        database_url: str,
        users: int,
        generating: int,
        word_delay: float,
        workdir: Path,
        log_path: Path,
    ) -> None:
        self.log_path = log_path
        setup_path = workdir / "setup.json"
        command = [
            sys.executable, "-m", "bench.web_load_server",
            "--database-url", database_url,
            "--users", str(users),
            "--generating", str(generating),
            "--word-delay", str(word_delay),
            "--setup", str(setup_path),
        ]  # fmt: skip
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "GRADIO_ANALYTICS_ENABLED": "False",
            "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
            "HF_HUB_OFFLINE": "1",
        }
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("w") as log:
            self.process = subprocess.Popen(
                command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        self.setup = self._wait_ready(setup_path)

    def _wait_ready(self, setup_path: Path) -> dict:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited:\n{self.log_tail()}")
            if setup_path.is_file():
                setup = json.loads(setup_path.read_text())
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(setup["url"] + "/healthz", timeout=2).status_code == 200:
                        return setup
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the server did not start:\n{self.log_tail()}")

    def cpu_seconds(self) -> float:
        times = psutil.Process(self.process.pid).cpu_times()
        return times.user + times.system

    def stop(self) -> None:
        """SIGINT: uvicorn's graceful shutdown, then the app's lifespan closes everything."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def log_problems(self) -> list[str]:
        """Lines of the server's log that name an error or start a traceback."""
        markers = ("Traceback", "ERROR", "CRITICAL", "Error:", "Exception:")
        lines = self.log_path.read_text(errors="replace").splitlines()
        return [line for line in lines if any(marker in line for marker in markers)]


@contextlib.contextmanager
def database_url(kind: str, workdir: Path) -> Iterator[str]:
    """An SQLite file in `workdir`, or a fresh PostgreSQL schema dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'chat.db'}"
        return
    schema = f"bench_web_load_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        base = POSTGRES_DSN.replace("postgresql://", "postgresql+psycopg://", 1)
        yield f"{base}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()
