"""Gradio per-tab memory benchmark (not a test): the server's RSS over many chats, each from a fresh
browser tab (a new session hash), with Gradio 6.31 as shipped and with the page's session expiry.

Two runs in one invocation, each against the real app (create_app over build_services' SQLite
stores, the FakeEngine answering at once) in a process of its own:
    baseline   Gradio's own bounds only: state for the last 10,000 tabs, message queues for 2,000,
               10,000 events of analytics; nothing expires (webui.gradio_state left out)
    expiry     the shipped [page] settings (webui.gradio_state), with state_ttl_minutes shortened
               to --ttl-minutes so that a run of minutes shows what an hour does in production
Each chat is what a browser tab does: load the page's per-user part (gr.render, through queue/join
and queue/data), then send one message with its Send button and read the whole reply; --script
sends through the `chat` API instead (no page, as gradio_client does). --workers users chat at
once, each from their own tabs. The server's RSS is read every --every chats, with the sizes of
Gradio's per-session structures (webui.gradio_state.session_counts). Printed: both curves, each
run's growth, and its slope over the second half (MB per 1,000 chats) with the ratio between them.

    PYTHONPATH=. .venv/bin/python bench/gradio_state_rss.py [--chats 10000 | --quick]
        [--ttl-minutes 0.5] [--workers 4] [--script] [--runs baseline expiry]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.common import cpu_name
from bench.web_load_server import (
    BENCH_SESSION_KEY,
    QuietExitServer,
    app_internals,
    free_port,
    sign_in,
)

REPO = Path(__file__).resolve().parent.parent
RUNS = ("baseline", "expiry")


# --- the server process ------------------------------------------------------------------------


class GradioAsShipped:
    """Stands in for webui.gradio_state.PageSessions in the baseline: installs and sweeps nothing."""

    def __init__(self, gradio_app: Any, blocks: Any, **_: Any) -> None:
        self.blocks = blocks

    def counts(self):
        from webui.gradio_state import session_counts

        return session_counts(self.blocks)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        yield


def serve(args: argparse.Namespace) -> None:
    """Build and serve the app; write the URL and the users' cookies to --setup once built."""
    import uvicorn
    from fastapi import APIRouter

    import webui.page_mount

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.run == "baseline":
        webui.page_mount.PageSessions = GradioAsShipped
    internals = app_internals()
    port = free_port()
    sections: dict[str, Any] = {
        "server": {"port": port, "public_url": f"http://127.0.0.1:{port}"},
        "oidc": {"issuer": "embedded", "embedded_port": free_port()},
        "session": {"secret_keys": [BENCH_SESSION_KEY]},
        "database": {"url": args.database_url},
        # Every chat must be answered: the per-user rate limits would refuse most of them.
        "limits": {
            "chat_per_minute": 10**6,
            "tokens_per_day": 10**9,
            "gradio_joins_per_minute": 10**6,
            "gradio_sessions_per_hour": 10**6,
        },
    }
    if args.run == "expiry":
        sections["page"] = {"state_ttl_minutes": args.ttl_minutes}
    settings = internals.Settings(**sections)
    engine = internals.FakeEngine(delay=0, max_concurrent=args.users, max_queue=args.users)
    services = internals.build_services(settings, engine)
    app = internals.create_app(settings, services)
    cookies = sign_in(internals, settings, services.sessions, args.users)
    router = APIRouter()

    @router.get("/bench/sessions")
    async def sessions() -> dict[str, int]:  # on the loop, where Gradio changes them
        return vars(app.state.page_sessions.counts())

    app.router.routes[:0] = router.routes
    setup = {
        "url": f"http://127.0.0.1:{port}",
        "cookie_name": settings.session.cookie_name,
        "cookies": list(cookies.values()),
    }
    args.setup.write_text(json.dumps(setup))
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", server_header=False
    )
    QuietExitServer(config).run()


@contextlib.contextmanager
def server_process(run: str, args: argparse.Namespace, workdir: Path) -> Iterator[dict]:
    """This module with --serve in a process of its own; yields its setup (with "pid")."""
    setup_path, log_path = workdir / f"{run}.json", workdir / f"{run}.log"
    command = [
        sys.executable, "-m", "bench.gradio_state_rss", "--serve",
        "--run", run,
        "--database-url", f"sqlite:///{workdir / run}.db",
        "--users", str(args.workers),
        "--ttl-minutes", str(args.ttl_minutes),
        "--setup", str(setup_path),
    ]  # fmt: skip
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
        "HF_HUB_OFFLINE": "1",
    }
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 180
        while not _ready(setup_path):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield {**json.loads(setup_path.read_text()), "pid": process.pid}
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        problems = [
            line
            for line in log_path.read_text(errors="replace").splitlines()
            if any(marker in line for marker in ("Traceback", "ERROR", "CRITICAL"))
        ]
        if problems:
            print(f"  ! the {run} server logged errors ({log_path}):", *problems[:5], sep="\n    ")


def _ready(setup_path: Path) -> bool:
    if not setup_path.is_file():
        return False
    url = json.loads(setup_path.read_text())["url"]
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(url + "/healthz", timeout=2).status_code == 200
    return False


# --- the browser side ----------------------------------------------------------------------------


class Browser:
    """One signed-in user opening tabs; each chat is a fresh tab (session hash)."""

    def __init__(self, url: str, cookie_name: str, cookie: str, script: bool) -> None:
        self.client = httpx.Client(base_url=url, cookies={cookie_name: cookie}, timeout=60)
        self.script = script
        config = self.client.get("/config").json()
        [self.load] = [
            d["id"] for d in config["dependencies"] if [t[1] for t in d["targets"]] == ["load"]
        ]
        self.api_chat = next(d["id"] for d in config["dependencies"] if d.get("api_name") == "chat")

    def chat(self, text: str) -> None:
        session_hash = uuid.uuid4().hex
        if self.script:
            reply = self._event(session_hash, self.api_chat, [text, None])[0]["reply"]
        else:
            page = self._event(session_hash, self.load, [])
            rendered = page["render_config"]
            [send] = [
                c["id"] for c in rendered["components"] if c["props"].get("elem_id") == "send"
            ]
            [fn] = [d["id"] for d in rendered["dependencies"] if [send, "click"] in d["targets"]]
            chatbot = self._event(session_hash, fn, [text, None])[0]
            reply = "".join(part["text"] for part in chatbot[-1]["content"])
        if reply != f"You said: {text}":
            raise RuntimeError(f"wrong reply {reply!r} to {text!r}")

    def _event(self, session_hash: str, fn_index: int, data: list) -> Any:
        """One event through queue/join and queue/data; its output ("data" unless it renders)."""
        body = {"data": data, "fn_index": fn_index, "session_hash": session_hash}
        joined = self.client.post("/gradio_api/queue/join", json=body)
        joined.raise_for_status()
        params = {"session_hash": session_hash}
        with self.client.stream("GET", "/gradio_api/queue/data", params=params) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    if not message.get("success"):
                        raise RuntimeError(f"the event failed: {message}")
                    output = message["output"]
                    return output if output.get("render_config") else output["data"]
        raise RuntimeError("the stream closed before the event completed")


@dataclass
class Sample:
    chats: int
    rss_mb: float
    tabs: int  # tabs whose state Gradio holds
    handlers: int  # handler timings the queue keeps (one per tab that sent a message)


def measure(run: str, args: argparse.Namespace, workdir: Path) -> tuple[list[Sample], float]:
    with server_process(run, args, workdir) as setup:
        server = psutil.Process(setup["pid"])
        browsers = [
            Browser(setup["url"], setup["cookie_name"], cookie, args.script)
            for cookie in setup["cookies"]
        ]
        counts = browsers[0].client

        def sample(chats: int) -> Sample:
            sizes = counts.get("/bench/sessions").json()
            rss = server.memory_info().rss / 2**20
            return Sample(chats, rss, sizes["states"], sizes["handler_timings"])

        def chat(browser: Browser, first: int, count: int) -> None:
            for i in range(first, first + count):
                browser.chat(f"hello {i}")

        with ThreadPoolExecutor(len(browsers)) as pool:

            def batch(first: int, count: int) -> None:
                share = -(-count // len(browsers))
                jobs = [
                    pool.submit(chat, b, first + k * share, min(share, count - k * share))
                    for k, b in enumerate(browsers)
                    if count - k * share > 0
                ]
                for job in jobs:
                    job.result()

            batch(0, args.warmup)  # imports and caches every chat path touches once
            samples = [sample(0)]
            started = time.monotonic()
            done = 0
            while done < args.chats:
                step = min(args.every, args.chats - done)
                batch(args.warmup + done, step)
                done += step
                samples.append(sample(done))
                print(f"  {run:8} {done:6} chats  {samples[-1].rss_mb:7.1f} MB", flush=True)
            elapsed = time.monotonic() - started
        for browser in browsers:
            browser.client.close()
    return samples, elapsed


def slope_per_1000(samples: list[Sample]) -> float:
    """Least-squares MB per 1,000 chats over the second half of the run."""
    half = [s for s in samples if s.chats >= samples[-1].chats / 2]
    xs, ys = [s.chats / 1000 for s in half], [s.rss_mb for s in half]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )


def report(results: dict[str, tuple[list[Sample], float]], args: argparse.Namespace) -> None:
    runs = list(results)
    print("\n        |" + "|".join(f"{run:^27}" for run in runs))
    print("  chats |" + "|".join("   RSS MB   tabs  handlers " for _ in runs))
    for row in zip(*(results[run][0] for run in runs), strict=True):
        cells = "|".join(f" {x.rss_mb:8.1f} {x.tabs:6} {x.handlers:9} " for x in row)
        print(f"  {row[0].chats:5} |{cells}")
    growth = {run: s[-1].rss_mb - s[0].rss_mb for run, (s, _) in results.items()}
    slopes = {run: slope_per_1000(s) for run, (s, _) in results.items()}
    for run, (samples, elapsed) in results.items():
        print(
            f"\n  {run:8}: {samples[0].rss_mb:.0f} -> {samples[-1].rss_mb:.0f} MB"
            f" (+{growth[run]:.0f} MB, {growth[run] / args.chats * 1000:.1f} MB per 1,000 chats);"
            f" second half {slopes[run]:+.2f} MB per 1,000 chats; {elapsed:.0f} s"
        )
    if len(runs) == 2:
        print(
            f"\n  expiry / baseline: growth {growth['expiry'] / growth['baseline']:.2f}x,"
            f" second-half slope {slopes['expiry'] / slopes['baseline']:.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="1,000 chats")
    parser.add_argument("--every", type=int, default=500, help="chats between RSS samples")
    parser.add_argument("--warmup", type=int, default=40)
    parser.add_argument("--workers", type=int, default=4, help="users chatting at once")
    parser.add_argument("--ttl-minutes", type=float, default=0.5)
    parser.add_argument("--script", action="store_true", help="the chat API, no page")
    parser.add_argument(
        "--runs", nargs="+", choices=RUNS, default=list(RUNS), help="which runs (default both)"
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--run", choices=RUNS, help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    parser.add_argument("--users", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--setup", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args)
        return
    if args.quick:
        args.chats = 1000
    kind = "the chat API" if args.script else "a browser tab (page load + Send)"
    print(
        f"{cpu_name()}; {args.chats} chats, each from a fresh session through {kind};"
        f" {args.workers} users at once; expiry run: state_ttl_minutes = {args.ttl_minutes}"
    )
    results = {}
    with tempfile.TemporaryDirectory(prefix="gradio-state-") as workdir:
        for run in args.runs:
            print(f"\n{run}:", flush=True)
            results[run] = measure(run, args, Path(workdir))
    report(results, args)


if __name__ == "__main__":
    main()
