"""Web-layer load benchmark (not a test): what the auth gate, the session lookup and the audit trail add
to a request while signed-in users hold chat streams open, and how long the event loop stalls.

The product's goal, on 2 cores: 200 signed-in users hold open streams while others make page and API
requests; gate + session + audit add <= 5 ms at p99 at 100 requests/s, no event-loop stall over
50 ms, nothing lost.

The streams are held as the shipped settings hold them: [generation] max_concurrent (8) generate at
once, at the speed the real engine decodes eight together on these CPUs (--word-delay 0.09 s, about
11 tokens/s each, docs/performance.md), and the others wait in line for a slot with their streams
open, as users do. `--generating all` is a stress run instead: every stream generates at once
(200 x 5 words/s at the default 0.2 s, about eleven times the tokens the engine can produce here).

The real app (bench/web_load_server.py: create_app over build_services' SQL session store, history
and audit trail, the FakeEngine slowed to --word-delay seconds a word) runs under uvicorn in a
process of its own, on SQLite (a temporary file) and on PostgreSQL (a throw-away schema). This
process then:
1. opens one chat stream per user (queue/join, then queue/data's server-sent events): first those
   that will generate during the measurement, with a prompt long enough to outlast it, then the
   others, with a short one (they wait in line until the first ones end);
2. sends --rate requests a second for --seconds, open loop (each request leaves at its scheduled
   time, whether or not earlier ones were answered, so a slow server cannot hide its slowness by
   slowing the sender), cycling through four kinds:
     ungated  GET /healthz                          no session: the baseline
     gated    GET /bench/ping                       the same handler behind the gate: gate + session
     audited  GET queue/data of another user's tab  gate + session + the Gradio door's 403 and one
                                                    audit record
     page     GET /gradio_api/info                  a page/API request Gradio answers
   Each goes on a new connection; latency counts from the scheduled time; the p99 difference to
   `ungated` is the overhead (p50's is printed too: tails that hit every kind make p99 noisy);
3. waits for every stream to end and checks its text, and the reply saved in the history; any
   request answered with another status than its kind's (200, or 403 for `audited`) counts as lost;
4. reads the server's longest event-loop stall (an asyncio task sleeping 5 ms in a loop) during
   the measurement, and scans the server's log for tracebacks and errors.

Both processes share the machine's cores: the CPU used during the measurement by each, and by
every other process (which disturbs the figures), is printed. Server logs go to --log-dir.

    PYTHONPATH=. .venv/bin/python bench/web_load.py [--database sqlite|postgres|both]
        [--seconds 20] [--users 200] [--rate 100] [--generating 8|all] [--word-delay S] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from bench.common import cpu_name
from bench.web_load_server import ServerProcess, database_url

GOAL_OVERHEAD_MS = 5.0
GOAL_STALL_MS = 50.0
MAX_WORDS = 800  # "u199w799 ": the prompt must stay under the app's max_prompt_chars (8000)
WAITING_WORDS = 5  # the reply of a stream that waits in line through the measurement
SHIPPED_GENERATING = 8  # settings.toml [generation] max_concurrent
ENGINE_WORD_DELAY = 0.09  # s per token of each of 8 streams decoded together (~11 tokens/s each)
STRESS_WORD_DELAY = 0.2
STREAM_MARGIN_SECONDS = 15
# More unanswered requests than this and the next is not sent (it counts as unanswered): a server
# that far behind has failed the goal already, and this process must stay on time.
MAX_IN_FLIGHT = 256
REQUEST_TIMEOUT = 30.0
NOT_SENT = -1
BUSY_MACHINE_CORES = 0.2  # other processes' CPU during the measurement that disturbs it


@dataclass(frozen=True)
class Kind:
    name: str
    what: str
    expected_status: int
    signed_in: bool = True


KINDS = (
    Kind("ungated", "GET /healthz, no session", 200, signed_in=False),
    Kind("gated", "GET /bench/ping: gate + session lookup", 200),
    Kind("audited", "another user's queue/data: 403 + audit", 403),
    Kind("page", "GET /gradio_api/info", 200),
)
KIND_BY_NAME = {kind.name: kind for kind in KINDS}


@dataclass
class Sample:
    kind: str
    status: int  # 0: no answer (connection error or time-out); NOT_SENT
    latency: float  # from the scheduled send time to the whole answer
    send_lag: float  # how late this process sent it


@dataclass
class Outcome:
    samples: list[Sample] = field(default_factory=list)
    stream_problems: list[str] = field(default_factory=list)
    reply_problems: list[str] = field(default_factory=list)
    at_start: Counter[str] = field(default_factory=Counter)  # streams by state
    at_end: Counter[str] = field(default_factory=Counter)
    ramp_stalls: dict = field(default_factory=dict)
    window_stalls: dict = field(default_factory=dict)
    cores: dict[str, float] = field(default_factory=dict)  # CPU used during the measurement


@dataclass(frozen=True)
class Plan:
    users: int
    generating: int  # streams that generate at once; the others wait in line
    seconds: float
    rate: float
    word_delay: float
    words: int  # the prompt of each generating stream; the waiting ones have WAITING_WORDS


# --- the streams -----------------------------------------------------------------------------


@dataclass
class User:
    key: str
    headers: dict[str, str]
    session_hash: str
    prompt: str
    state: str = "joining"  # then queued (queue/data open), generating, and done or failed
    connected: asyncio.Event = field(default_factory=asyncio.Event)  # queue/data open, or failed

    @property
    def expected(self) -> str:
        return f"You said: {self.prompt}"  # what the FakeEngine answers


def make_users(setup: dict, plan: Plan) -> list[User]:
    """The first `plan.generating` users get a long prompt (they generate through the
    measurement), the others a short one (they wait in line, then finish quickly)."""
    users = []
    for i, (key, cookie) in enumerate(setup["cookies"].items()):
        words = plan.words if i < plan.generating else WAITING_WORDS
        prompt = " ".join(f"u{i}w{j}" for j in range(words))
        headers = {"Cookie": f"{setup['cookie_name']}={cookie}"}
        users.append(User(key, headers, f"bench-tab-{i:04d}", prompt))
    return users


async def hold_stream(
    client: httpx.AsyncClient, user: User, fn_index: int, joins: asyncio.Semaphore
) -> str | None:
    """One chat turn through queue/join and queue/data; None if it streamed and ended complete,
    else what went wrong."""
    try:
        async with joins:  # users arrive a few at a time, not all in one instant
            body = {"data": [user.prompt, None], "fn_index": fn_index}
            joined = await client.post(
                "/gradio_api/queue/join",
                json={**body, "session_hash": user.session_hash},
                headers=user.headers,
            )
        if joined.status_code != 200:
            problem = f"join answered {joined.status_code}: {joined.text[:120]}"
        else:
            problem = await read_stream(client, user)
    except httpx.HTTPError as exc:
        problem = f"{type(exc).__name__}: {exc}"
    user.state = "failed" if problem else "done"
    user.connected.set()
    return problem


async def read_stream(client: httpx.AsyncClient, user: User) -> str | None:
    streamed = ""
    params = {"session_hash": user.session_hash}
    async with client.stream(
        "GET", "/gradio_api/queue/data", params=params, headers=user.headers
    ) as response:
        if response.status_code != 200:
            return f"queue/data answered {response.status_code}"
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue
            message = json.loads(line[5:])
            user.connected.set()
            if user.state == "joining":
                user.state = "queued"
            if message.get("msg") in ("process_starts", "process_generating"):
                user.state = "generating"
            if message.get("msg") == "process_generating":
                streamed = apply_update(streamed, message["output"]["data"][0])
            elif message.get("msg") == "process_completed":
                return check_final(user, streamed, message)
    return "the stream closed before the reply completed"


def apply_update(reply: str, update) -> str:
    """Gradio streams the first output whole, then diffs: [["append", ["reply"], " word"], ...]."""
    if isinstance(update, dict):
        return update.get("reply") or ""
    for op, path, *value in update:
        if path == ["reply"] and op == "append":
            reply += value[0]
        elif path == ["reply"] and op == "replace":
            reply = value[0]
    return reply


def check_final(user: User, streamed: str, message: dict) -> str | None:
    if not message.get("success"):
        return f"the turn failed: {str(message)[:200]}"
    final = message["output"]["data"][0]
    if final.get("status") != "complete":
        return f"ended {final.get('status')!r}: {final.get('notice')}"
    if final.get("reply") != user.expected or streamed != user.expected:
        return f"wrong text: {len(streamed)} chars streamed, {len(user.expected)} expected"
    return None


# --- the paced requests ----------------------------------------------------------------------


def request_for(k: int, users: list[User]) -> tuple[Kind, str, dict[str, str]]:
    """The k-th request: the kinds in turn, each signed-in one with the next user's cookie."""
    kind = KINDS[k % len(KINDS)]
    i = (k // len(KINDS)) % len(users)
    user, victim = users[i], users[(i + 1) % len(users)]
    if not kind.signed_in:
        return kind, "/healthz", {}
    if kind.name == "gated":
        return kind, "/bench/ping", user.headers
    if kind.name == "audited":
        return kind, f"/gradio_api/queue/data?session_hash={victim.session_hash}", user.headers
    return kind, "/gradio_api/info", user.headers


async def plain_get(url: str, path: str, headers: dict[str, str]) -> int:
    """One GET on a connection of its own; the status code, once the whole answer has arrived.

    Not httpx: its connection pool re-counts its idle connections for each one of them whenever a
    request starts or ends, so with hundreds of requests waiting on a slow server this process, not
    the server, became the bottleneck (and the measured latency its own). A new connection per
    request costs every kind the same accept on the server.
    """
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        status_line = await reader.readline()
        await reader.read()  # the rest, until the server closes the connection
        return int(status_line.split()[1])
    finally:
        writer.close()


async def timed_request(url: str, kind: Kind, path: str, headers: dict, due: float) -> Sample:
    loop = asyncio.get_running_loop()
    sent = loop.time()
    try:
        status = await asyncio.wait_for(plain_get(url, path, headers), REQUEST_TIMEOUT)
    except (OSError, ValueError, IndexError, TimeoutError):
        status = 0
    return Sample(kind.name, status, loop.time() - due, sent - due)


async def paced_requests(url: str, users: list[User], rate: float, seconds: float) -> list[Sample]:
    """Open loop: request k leaves at start + k / rate, answered or not; past MAX_IN_FLIGHT
    unanswered ones it is not sent and counts as unanswered (infinite latency)."""
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05
    in_flight: set[asyncio.Task] = set()
    samples, tasks = [], []
    for k in range(int(rate * seconds)):
        due = start + k / rate
        if (wait := due - loop.time()) > 0:
            await asyncio.sleep(wait)
        kind, path, headers = request_for(k, users)
        if len(in_flight) >= MAX_IN_FLIGHT:
            samples.append(Sample(kind.name, NOT_SENT, math.inf, loop.time() - due))
            continue
        task = asyncio.create_task(timed_request(url, kind, path, headers, due))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
        tasks.append(task)
    return samples + list(await asyncio.gather(*tasks))


# --- one run ---------------------------------------------------------------------------------


async def run_load(server: ServerProcess, plan: Plan) -> Outcome:
    setup = server.setup
    users = make_users(setup, plan)
    outcome = Outcome()
    # No idle connections kept: httpx's pool re-counts them all for each one (see plain_get).
    stream_limits = httpx.Limits(max_connections=plan.users + 10, max_keepalive_connections=0)
    stream_timeout = httpx.Timeout(30, read=300)
    async with (
        httpx.AsyncClient(
            base_url=setup["url"], limits=stream_limits, timeout=stream_timeout
        ) as streams,
        httpx.AsyncClient(base_url=setup["url"], timeout=30) as probes,
    ):
        fn_index = await chat_index(probes, users[0])
        await stalls(probes, users[0])  # start-up is not measured
        joins = asyncio.Semaphore(10)
        tasks = []
        # The generating streams first, so that they hold the engine's slots; then the others.
        for group in (users[: plan.generating], users[plan.generating :]):
            tasks += [asyncio.create_task(hold_stream(streams, u, fn_index, joins)) for u in group]
            if group:
                connected = [asyncio.create_task(u.connected.wait()) for u in group]
                await asyncio.wait(connected, timeout=300)
                await settle(users)
        outcome.ramp_stalls = await stalls(probes, users[0])
        outcome.at_start = Counter(u.state for u in users)
        # This process's own garbage collection must not pause the sender (a full collection of
        # the previous run's objects took ~200 ms): what exists now is frozen out of it.
        gc.collect()
        gc.freeze()
        try:
            await measure_window(outcome, setup["url"], users, plan, server)
        finally:
            gc.unfreeze()
        outcome.at_end = Counter(u.state for u in users)
        outcome.window_stalls = await stalls(probes, users[0])
        results = await asyncio.gather(*tasks)
        outcome.stream_problems = [problem for problem in results if problem]
        outcome.reply_problems = await check_saved_replies(probes, users)
    return outcome


async def settle(users: list[User], limit: float = 30.0) -> None:
    """Wait until the number of generating streams has stopped growing for a second."""
    deadline = time.monotonic() + limit
    generating = -1
    while time.monotonic() < deadline:
        now = sum(u.state == "generating" for u in users)
        if now == generating:
            return
        generating = now
        await asyncio.sleep(1.0)


async def measure_window(
    outcome: Outcome, url: str, users: list[User], plan: Plan, server: ServerProcess
) -> None:
    before, started = cpu_seconds(server), time.monotonic()
    outcome.samples = await paced_requests(url, users, plan.rate, plan.seconds)
    after, elapsed = cpu_seconds(server), time.monotonic() - started
    outcome.cores = {name: (after[name] - before[name]) / elapsed for name in before}
    outcome.cores["others"] = (
        outcome.cores.pop("machine") - outcome.cores["server"] - outcome.cores["generator"]
    )


def cpu_seconds(server: ServerProcess) -> dict[str, float]:
    """CPU time used so far by the server, this process and the whole machine."""
    me, machine = psutil.Process().cpu_times(), psutil.cpu_times()
    busy = machine.user + machine.nice + machine.system + machine.irq + machine.softirq
    return {"server": server.cpu_seconds(), "generator": me.user + me.system, "machine": busy}


async def chat_index(client: httpx.AsyncClient, user: User) -> int:
    config = (await client.get("/config", headers=user.headers)).json()
    return next(d["id"] for d in config["dependencies"] if d.get("api_name") == "chat")


async def stalls(client: httpx.AsyncClient, user: User) -> dict:
    """The server's longest event-loop stall since the last call (the call starts a new window)."""
    return (await client.get("/bench/stalls", headers=user.headers)).json()


async def check_saved_replies(client: httpx.AsyncClient, users: list[User]) -> list[str]:
    """Every user's one reply is in the history, complete and whole."""
    saved = (await client.get("/bench/replies", headers=users[0].headers, timeout=120)).json()
    problems = []
    for user in users:
        replies = saved.get(user.key, [])
        expected = [{"status": "complete", "content": user.expected}]
        if replies != expected:
            states = [(r["status"], f"{len(r['content'])} chars") for r in replies]
            problems.append(f"history: saved {states or 'nothing'}, expected one complete reply")
    return problems


# --- the report ------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def unexpected(samples: list[Sample]) -> int:
    return sum(s.status != KIND_BY_NAME[s.kind].expected_status for s in samples)


def latency_table(samples: list[Sample]) -> dict[str, tuple[float, float]]:
    """Print one row per kind; return each kind's (p50, p99) in ms."""
    print(f"{'request':<9}{'what':<42}{'n':>6}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'bad':>5}")
    quantiles = {}
    for kind in KINDS:
        mine = [s for s in samples if s.kind == kind.name]
        ms = [s.latency * 1000 for s in mine]
        quantiles[kind.name] = (percentile(ms, 50), percentile(ms, 99))
        p50, p99 = quantiles[kind.name]
        print(
            f"{kind.name:<9}{kind.what:<42}{len(ms):>6}{p50:>9.1f}{p99:>9.1f}{max(ms):>9.1f}"
            f"{unexpected(mine):>5}"
        )
    lag = [s.send_lag * 1000 for s in samples]
    print(
        f"(latency counts from the scheduled send; this process sent late by "
        f"{percentile(lag, 99):.1f} ms at p99, {max(lag):.1f} ms at most)"
    )
    return quantiles


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(name: str, plan: Plan, outcome: Outcome, server: ServerProcess) -> dict[str, bool]:
    """Print one database's results; return its goal checks."""
    print(
        f"\n=== {name}: {plan.users} users ({plan.generating} generating at once), "
        f"{plan.rate:g} requests/s for {plan.seconds:g} s"
    )
    print(f"streams when the measurement started: {states(outcome.at_start)}")
    print(f"streams when it ended:                {states(outcome.at_end)}")
    print(
        f"cores used during the measurement (of {os.cpu_count()}): "
        + ", ".join(f"{name} {used:.2f}" for name, used in outcome.cores.items())
    )
    if outcome.cores["others"] > BUSY_MACHINE_CORES:
        print("  (other processes were busy: every figure below is disturbed; rerun when quiet)")
    checks = {
        "overhead": report_overhead(latency_table(outcome.samples)),
        "stall": report_stalls(outcome),
        "nothing lost": report_losses(plan, outcome),
    }
    log_path, log_problems = server.log_path, server.log_problems()
    print(f"server log ({log_path}): {len(log_problems)} lines naming an error or a traceback")
    for line in list(dict.fromkeys(log_problems))[:8]:
        print(f"  {line[:200]}")
    return checks


def states(counts: Counter[str]) -> str:
    order = ("generating", "queued", "joining", "done", "failed")
    return ", ".join(f"{counts[state]} {state}" for state in order if counts[state])


def report_overhead(quantiles: dict[str, tuple[float, float]]) -> bool:
    """The goal is on p99; p50 is printed too, as tails shared by every kind make p99 noisy."""
    base50, base99 = quantiles["ungated"]
    ok = True
    for name, label in (("gated", "gate + session"), ("audited", "gate + session + audit")):
        p50, p99 = quantiles[name]
        ok = ok and p99 - base99 <= GOAL_OVERHEAD_MS  # False for unanswered ones (inf - inf)
        print(f"added by {label}: {p50 - base50:+.1f} ms at p50, {p99 - base99:+.1f} ms at p99")
    print(f"overhead goal, p99 <= {GOAL_OVERHEAD_MS:g} ms: {verdict(ok)}")
    if math.isinf(base99):
        print("  (more than 1% of the ungated requests were never answered: p99 is unmeasurable)")
    elif base99 > 10 * GOAL_OVERHEAD_MS:
        print(
            f"  (the ungated baseline's own p99 is {base99:.0f} ms: what slows every kind "
            f"swamps the difference, which is then noise)"
        )
    return ok


def report_stalls(outcome: Outcome) -> bool:
    window, ramp = outcome.window_stalls, outcome.ramp_stalls
    ok = window["worst_ms"] <= GOAL_STALL_MS
    print(
        f"event loop's longest stall: {window['worst_ms']:.1f} ms during the measurement, "
        f"{window['over_50ms']:.0f} stalls over 50 ms ({verdict(ok)}: <= {GOAL_STALL_MS:g} ms); "
        f"{ramp['worst_ms']:.1f} ms while the streams opened"
    )
    return ok


def report_losses(plan: Plan, outcome: Outcome) -> bool:
    bad = unexpected(outcome.samples)
    streams, replies = outcome.stream_problems, outcome.reply_problems
    ok = not (streams or replies or bad)
    print(
        f"nothing lost ({verdict(ok)}): streams whole {plan.users - len(streams)}/{plan.users}, "
        f"replies saved whole {plan.users - len(replies)}/{plan.users}, "
        f"requests with an unexpected status {bad}"
    )
    for problem, count in Counter(streams + replies).most_common(6):
        print(f"  {count} x {problem}")
    names = {0: "no answer", NOT_SENT: f"not sent, {MAX_IN_FLIGHT} unanswered"}
    statuses = Counter(
        names.get(s.status, str(s.status))
        for s in outcome.samples
        if s.status != KIND_BY_NAME[s.kind].expected_status
    )
    for status, count in statuses.most_common():
        print(f"  {count} x request status: {status}")
    return ok


# --- main ------------------------------------------------------------------------------------


def run_database(name: str, plan: Plan, log_dir: Path) -> dict[str, bool]:
    """Start the server on this database, load it, report; the server and its data are removed,
    its log is kept in `log_dir`."""
    with (
        tempfile.TemporaryDirectory(prefix="web-load-") as tmp,
        database_url(name, Path(tmp)) as url,
    ):
        log_path = log_dir / f"{name}-server.log"
        server = ServerProcess(
            url, plan.users, plan.generating, plan.word_delay, Path(tmp), log_path
        )
        try:
            outcome = asyncio.run(run_load(server, plan))
        except BaseException:
            print(f"the run failed; the server's log ends:\n{server.log_tail()}")
            raise
        finally:
            server.stop()
        return report(name, plan, outcome, server)


def make_plan(args: argparse.Namespace) -> Plan:
    users = args.users or (20 if args.quick else 200)
    seconds = args.seconds or (5.0 if args.quick else 20.0)
    stress = args.generating == "all"
    generating = users if stress else min(users, int(args.generating))
    word_delay = args.word_delay or (STRESS_WORD_DELAY if stress else ENGINE_WORD_DELAY)
    # Long enough to outlast opening the streams and the measurement at full speed.
    words = math.ceil((seconds + STREAM_MARGIN_SECONDS) / word_delay)
    if words > MAX_WORDS:
        print(f"note: prompts capped at {MAX_WORDS} words; streams may end before the measurement")
    return Plan(users, generating, seconds, args.rate, word_delay, min(words, MAX_WORDS))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--seconds", type=float, help="measurement length (default 20)")
    parser.add_argument("--users", type=int, help="streams held open (default 200)")
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second")
    parser.add_argument(
        "--generating",
        default=str(SHIPPED_GENERATING),
        help=f"streams generating at once, or 'all' (default {SHIPPED_GENERATING}, as shipped)",
    )
    parser.add_argument(
        "--word-delay",
        type=float,
        help=f"FakeEngine s per word (default {ENGINE_WORD_DELAY}, or {STRESS_WORD_DELAY} for all)",
    )
    parser.add_argument("--quick", action="store_true", help="5 s and 20 users: does it work?")
    parser.add_argument("--log-dir", type=Path, default=Path("data/web-load"), help="server logs")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    plan = make_plan(args)
    names = ("sqlite", "postgres") if args.database == "both" else (args.database,)
    print(
        f"{cpu_name()}; {plan.generating} of {plan.users} streams generate at once, each reply "
        f"{plan.words + 2} words at {plan.word_delay:g} s a word; goal: <= {GOAL_OVERHEAD_MS:g} ms added at p99, "
        f"no stall over {GOAL_STALL_MS:g} ms, nothing lost"
    )
    results = {name: run_database(name, plan, args.log_dir) for name in names}
    print("\n=== summary")
    for name, checks in results.items():
        print(f"{name:<9}" + ", ".join(f"{check} {verdict(ok)}" for check, ok in checks.items()))


if __name__ == "__main__":
    main()
