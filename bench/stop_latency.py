"""Stop latency under load (not a test): how long after a Stop reaches the server the reply's stream
ends, against the engine's decoding step measured in the same run.

The real engine (ThreadedEngine on random weights of Qwen1.5-0.5B-Chat's exact shape, built once
by bench.common, loaded with the shipped [model] and [generation] settings: int8, 8 generating at
once) is kept busy: --generating users' replies decode together and --waiting more wait in line,
each a chat turn of the real ChatService over a SQLite history and audit trail, its stop signal in
the real Redis (as replicas share it; --storage memory for one process). Every reply is long (512
tokens, the random model never ends one early), and a stopped user sends again at once, so the
load stays as it was.

Each round picks a generating reply, waits for its next token plus a random part of a step (a
Stop lands anywhere in a step), and stops it each of three ways, in turn:
  this replica   ChatService.stop(user), what the Stop button's handler calls, in the process that
                 runs the reply (another tab on the same replica): it cancels the generation at once
  other replica  the same signal from another replica's stop store (Redis only): the turn sees it
                 at its next token (one Redis GET per token), then cancels
  own tab        closing the turn's generator, what Gradio's cancel does to the tab that pressed
                 Stop (today's Stop: the baseline); it closes once the reader is back from its step
and times, from the call: "ended", the turn's last update in the reader's hands (stopped notice,
Send back; for "own tab" the close returning), and "saved", the turn finished (reply saved as
stopped, lock released). Gradio's own hop (the click's HTTP request, the update's server-sent
event) is not in these figures: it is the same for every way. A few more rounds stop a reply still
waiting in line ("this replica").

The decoding step is the median gap between consecutive tokens of the generating replies during
the rounds. Printed: each way's median and p90 / max, and "stop latency / decode step".

    PYTHONPATH=. .venv/bin/python bench/stop_latency.py [--rounds 20] [--generating 8]
        [--waiting 4] [--storage redis|memory] [--threads 2]
"""

from __future__ import annotations

import itertools
import os
import random
import statistics
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import bench_parser, cpu_name, model_ready, prompt_messages
from config import load_settings
from core.identity import User
from guards.settings import LimitSettings
from guards.stop_requests import StopRequests
from guards.user_concurrency import UserConcurrency
from model.loader import load_model
from model.threaded_engine import ThreadedEngine
from store.audit_log import AuditLog
from store.chat_history import ChatHistory
from store.database import create_database, migrate
from webui.chat_service import ChatService, TurnContext, TurnGuards

SHIPPED = Path(__file__).resolve().parent.parent / "settings.toml"
REDIS_URL = "redis://127.0.0.1:6379/0"
PROMPT_TOKENS = 64
QUEUED_ROUNDS = 4  # stops of a reply still waiting in line


@dataclass
class Turn:
    """One user's running reply, read on a thread of its own as Gradio's worker reads it."""

    user: User
    updates: object  # the ChatService generator
    token_times: list[float] = field(default_factory=list)
    ended: float | None = None  # the last update was read (status stopped or complete)
    saved: float | None = None  # the generator has finished: saved, audited, lock released
    last_status: str = ""
    done: threading.Event = field(default_factory=threading.Event)
    close: threading.Event = field(default_factory=threading.Event)  # Gradio's cancel, pending

    def read(self) -> None:
        shown = ""
        try:
            for update in self.updates:
                now = time.perf_counter()
                if update.reply != shown:
                    shown = update.reply
                    self.token_times.append(now)
                self.last_status = update.status
                if update.status not in ("queued", "streaming"):
                    self.ended = now
                if self.close.is_set():
                    # Gradio's cancel closes the handler's generator once its worker is back from
                    # the step it was in (one cannot close a generator another thread runs).
                    self.updates.close()
                    self.ended = time.perf_counter()
                    break
        finally:
            self.saved = time.perf_counter()
            self.done.set()

    @property
    def generating(self) -> bool:
        return bool(self.token_times) and not self.done.is_set()


class Load:
    """--generating + --waiting users, each with one reply running; a stopped user sends again."""

    def __init__(self, service: ChatService, message: str, users: int) -> None:
        self._service, self._message = service, message
        self.every: list[Turn] = []  # ended ones too: the step is measured over all of them
        self.turns = {
            i: self.start(User("https://bench", f"user{i}", None, ("staff",))) for i in range(users)
        }

    def start(self, user: User) -> Turn:
        updates = self._service.reply(TurnContext(user), None, self._message, report_queue=True)
        turn = Turn(user, updates)
        self.every.append(turn)
        threading.Thread(target=turn.read, daemon=True).start()
        return turn

    def restart(self, index: int) -> None:
        self.turns[index] = self.start(self.turns[index].user)

    def full(self, generating: int) -> bool:
        """Replies that ran to their end are sent again; True once `generating` decode."""
        for index, turn in list(self.turns.items()):
            if turn.done.is_set():
                self.restart(index)
        return len(self.generating()) >= generating

    def generating(self) -> list[int]:
        return [i for i, turn in self.turns.items() if turn.generating]

    def waiting(self) -> list[int]:
        """Replies told their place in line (so watching for a Stop), not yet generating."""
        return [
            i
            for i, t in self.turns.items()
            if t.last_status == "queued" and not t.token_times and not t.done.is_set()
        ]

    def step_gaps(self, since: float) -> list[float]:
        gaps = []
        for turn in self.every:
            times = [t for t in turn.token_times if t >= since]
            gaps += [b - a for a, b in itertools.pairwise(times)]
        return gaps


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.005)


def stop_one(load: Load, stop, index: int, way: str, step: float) -> tuple[float, float]:
    """Stop turn `index` a random part of a step after one of its tokens; (ended, saved) in s.
    `stop(user_key)` sends the signal (None: close the generator, as Gradio's cancel does)."""
    turn = load.turns[index]
    if turn.token_times:
        seen = len(turn.token_times)
        wait_until(lambda: len(turn.token_times) > seen or turn.done.is_set(), 60, "a token")
        time.sleep(random.uniform(0, step))
    pressed = time.perf_counter()
    if stop is not None:
        stop(turn.user.key)
    else:
        turn.close.set()
    if not turn.done.wait(60):
        raise SystemExit(f"{way}: the reply did not end within a minute of its Stop")
    if stop is not None and turn.last_status != "stopped":
        raise SystemExit(f"{way}: the reply ended {turn.last_status!r}, not stopped")
    load.restart(index)
    return turn.ended - pressed, turn.saved - pressed


def summary(name: str, values: list[float], step: float) -> str:
    values = sorted(values)
    median = statistics.median(values)
    p90 = values[min(len(values) - 1, round(0.9 * (len(values) - 1)))]
    return (
        f"  {name:<22} median {median * 1000:7.1f} ms  p90 {p90 * 1000:7.1f} ms  "
        f"max {values[-1] * 1000:7.1f} ms   stop latency / decode step: {median / step:.2f}"
        f" (p90 {p90 / step:.2f}, max {values[-1] / step:.2f})"
    )


def main() -> None:
    parser = bench_parser(__doc__.splitlines()[0], rounds=20)
    parser.add_argument("--generating", type=int, default=None, help="default: max_concurrent")
    parser.add_argument("--waiting", type=int, default=4)
    parser.add_argument("--storage", choices=("redis", "memory"), default="redis")
    args = parser.parse_args()
    if not model_ready(args, "bench.stop_latency"):
        return
    settings = load_settings(SHIPPED)
    model_settings = settings.model.model_copy(
        update={"source": "local", "path": args.cache, "threads": args.threads}
    )
    generation = settings.generation
    generating = args.generating or generation.max_concurrent
    loaded = load_model(args.cache, model_settings)
    engine = ThreadedEngine(loaded, generation)
    messages, _ = prompt_messages(loaded, generation, PROMPT_TOKENS)
    prefix = f"bench-stop-{uuid.uuid4().hex[:8]}"
    storage = REDIS_URL if args.storage == "redis" else "memory://"
    limits = LimitSettings(storage=storage, key_prefix=prefix)
    stops, concurrency = StopRequests.from_settings(limits), UserConcurrency.from_settings(limits)
    with tempfile.TemporaryDirectory() as tmp:
        database = create_database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        migrate(database)
        audit = AuditLog(database)
        service = ChatService(
            engine,
            ChatHistory(database, audit),
            audit,
            generation,
            TurnGuards(concurrency=concurrency, stops=stops),
        )
        print(
            f"{cpu_name()}; {generating} generating + {args.waiting} waiting "
            f"(max_concurrent {generation.max_concurrent}, quantization "
            f"{model_settings.quantization}, {args.threads} threads); stop signal in "
            f"{args.storage}; {args.rounds} rounds",
            flush=True,
        )
        load = Load(service, messages[0].content, generating + args.waiting)
        wait_until(lambda: load.full(generating), 600, "the replies to start")
        warm = time.perf_counter()
        wait_until(lambda: len(load.step_gaps(warm)) >= 4 * generating, 600, "a few steps")
        measured_from = time.perf_counter()
        other = StopRequests.from_settings(limits) if args.storage == "redis" else None
        ways = {"this replica": service.stop, "own tab": None}
        if other is not None:
            ways["other replica"] = other.request
        ended: dict[str, list[float]] = {way: [] for way in ways}
        saved: dict[str, list[float]] = {way: [] for way in ways}
        order = list(ways)
        for round_no in range(args.rounds):
            step = statistics.median(load.step_gaps(measured_from) or [0.1])
            order = order[1:] + order[:1]  # each way goes first in turn: drift spreads evenly
            for way in order:
                wait_until(lambda: load.full(generating), 600, "a full batch")
                index = random.choice(load.generating())
                until_end, until_saved = stop_one(load, ways[way], index, way, step)
                ended[way].append(until_end)
                saved[way].append(until_saved)
            print(
                f"round {round_no + 1}: step {step * 1000:.0f} ms; "
                + ", ".join(f"{way} {ended[way][-1] * 1000:.0f} ms" for way in order),
                flush=True,
            )
        queued = []
        for _ in range(QUEUED_ROUNDS):
            wait_until(lambda: bool(load.waiting()), 600, "a reply waiting in line")
            index = random.choice(load.waiting())
            queued.append(stop_one(load, service.stop, index, "in line", 0)[0])
        step = statistics.median(load.step_gaps(measured_from))
        print(
            f"\ndecode step (median gap between tokens, {generating} decoding together): "
            f"{step * 1000:.1f} ms; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} "
            "cores (other processes disturb the figures)"
        )
        print("time from Stop reaching the server to the reply's last update (Send back):")
        for way in ways:
            print(summary(way, ended[way], step))
        print(summary("this replica, in line", queued, step))
        print("to the turn finished (reply saved as stopped, audited, lock released):")
        for way in ways:
            print(summary(way, saved[way], step))
        if other is not None:
            other.close()
        engine.close()  # the replies still running end ("the server is restarting")
        for turn in load.turns.values():
            turn.done.wait(30)
        database.dispose()
    stops.close()
    concurrency.close()


if __name__ == "__main__":
    main()
