"""Processes the browser end-to-end tests run beside the browser: the OpenID provider and ASGI servers.

Everything listens on loopback only. The IdP is panva's oidc-provider under node (tests/e2e/idp/),
with one registered client per relying party (the tiny harness RP, the chat app); ASGI apps run in
uvicorn on a background thread.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvicorn

IDP_DIR = Path(__file__).parent / "idp"
LOOPBACK = "127.0.0.1"
# The relying party's routes, registered with the IdP; the app under test must serve the same paths.
CALLBACK_PATH = "/auth/callback"
POST_LOGOUT_PATH = "/"  # the tiny RP's; the chat app's is its oidc.post_logout_path
BACKCHANNEL_LOGOUT_PATH = "/auth/backchannel-logout"


@dataclass(frozen=True)
class IdpAccount:
    """A person the IdP knows; any password is accepted for them."""

    login: str
    groups: tuple[str, ...]


STAFF = IdpAccount("alice", ("staff",))
ADMIN = IdpAccount("carol", ("staff", "chat-admins"))
OUTSIDER = IdpAccount("mallory", ("contractors",))


@dataclass(frozen=True)
class IdpClient:
    """The confidential client registered with the IdP, pointing at a relying party on `rp_port`."""

    rp_port: int
    client_id: str = "chat-e2e"
    client_secret: str = field(default="e2e-only-client-secret", repr=False)
    post_logout_path: str = POST_LOGOUT_PATH

    @property
    def rp_base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.rp_port}"

    @property
    def redirect_uri(self) -> str:
        return self.rp_base_url + CALLBACK_PATH

    @property
    def post_logout_redirect_uri(self) -> str:
        return self.rp_base_url + self.post_logout_path

    def registration(self) -> dict[str, object]:
        """Client metadata in the form oidc-provider takes it."""
        return {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "redirect_uris": [self.redirect_uri],
            "post_logout_redirect_uris": [self.post_logout_redirect_uri],
            "backchannel_logout_uri": self.rp_base_url + BACKCHANNEL_LOGOUT_PATH,
            "backchannel_logout_session_required": True,
        }


@dataclass(frozen=True)
class Idp:
    """A running IdP: where it is and the clients registered with it (`client` is the first)."""

    issuer: str
    clients: tuple[IdpClient, ...]

    @property
    def client(self) -> IdpClient:
        return self.clients[0]

    @property
    def metadata_url(self) -> str:
        return self.issuer + "/.well-known/openid-configuration"


def _read_ready_line(proc: subprocess.Popen[str], timeout: float) -> str:
    # Read on a thread so a silent or dead node cannot hang the test session.
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        # Keeps draining stdout after "ready" so the IdP never blocks on a full pipe.
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=pump, name="idp-stdout", daemon=True).start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.1)
        except queue.Empty:
            if proc.poll() is not None:
                break
            continue
        if line.startswith("ready "):
            return line.split()[1]
    raise RuntimeError(f"IdP did not start (exit code {proc.poll()}); see its stderr above")


def _wait_for_discovery(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.05)


@contextmanager
def run_idp(*clients: IdpClient, timeout: float = 20.0) -> Iterator[Idp]:
    """Start the IdP for `clients` on a free loopback port, wait until it serves discovery, stop it after."""
    node = shutil.which("node")
    if node is None or not (IDP_DIR / "node_modules").is_dir():
        raise RuntimeError("node or the IdP's packages are missing: run tests/e2e/install.sh")
    proc = subprocess.Popen(
        [node, "provider.mjs", "--host", LOOPBACK, "--port", "0"],
        cwd=IDP_DIR,
        env={**os.environ, "E2E_IDP_CLIENT": json.dumps([c.registration() for c in clients])},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        issuer = _read_ready_line(proc, timeout)
        idp = Idp(issuer=issuer, clients=clients)
        _wait_for_discovery(idp.metadata_url, timeout)
        yield idp
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def serve_in_thread(app: object, port: int, timeout: float = 10.0) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a loopback port in a background thread; yield its base URL."""
    config = uvicorn.Config(app, host=LOOPBACK, port=port, log_level="warning", lifespan="auto")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"server on port {port} did not start")
        time.sleep(0.02)
    try:
        yield f"http://{LOOPBACK}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=timeout)
