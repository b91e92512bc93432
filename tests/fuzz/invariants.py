"""What every answer of the fuzzed server must satisfy, and the record of one request for a report.

Three properties, checked after every request: no 5xx (a 503 only as a JSON message the app means to
send), no traceback in the server's log (or an internal error noted by tests.server_errors), and no
other user's planted text in the body.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from tests.server_errors import ServerErrorWatch
from webui.json_logging import JsonFormatter

BODY_SHOWN = 600  # characters of a body quoted in a report
_RAISED = re.compile(r"[A-Za-z_][\w.]*: ")  # "module.Error: message", the line naming the exception


class LogWatch(logging.Handler):
    """Every log record of the server, formatted as production writes it (one JSON line each)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        with self._lock:
            self.lines.append(line)

    def mark(self) -> int:
        with self._lock:
            return len(self.lines)

    def since(self, mark: int) -> list[str]:
        with self._lock:
            return self.lines[mark:]


@dataclass
class Exchange:
    """One request and its answer, as a report quotes them."""

    caller: str
    method: str
    url: str
    request_headers: dict[str, str] = field(default_factory=dict)
    request_body: str = ""
    status: int = 0
    response_body: str = ""
    response_headers: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        shown = {k: v for k, v in self.request_headers.items() if k.lower() != "cookie"}
        if any(k.lower() == "cookie" for k in self.request_headers):
            shown["Cookie"] = "<the caller's session>"
        lines = [
            f"as {self.caller}: {self.method} {self.url}",
            f"  headers: {json.dumps(shown)[:BODY_SHOWN]}",
        ]
        if self.request_body:
            lines.append(f"  body: {self.request_body[:BODY_SHOWN]}")
        lines.append(f"  -> {self.status} {self.response_body[:BODY_SHOWN]!r}")
        return "\n".join(lines)


@dataclass
class Observer:
    """Checks the three properties; collects what went wrong for one failure message."""

    watch: ServerErrorWatch
    log: LogWatch
    hidden: Mapping[str, tuple[str, ...]]  # per caller: other users' texts it must never see

    def start(self) -> tuple[int, int]:
        return self.log.mark(), len(self.watch.errors)

    def problems(self, exchange: Exchange, since: tuple[int, int]) -> list[str]:
        """What is wrong with this answer, and with the log and errors since `since`."""
        found = []
        if exchange.status >= 500 and not _meant_503(exchange):
            found.append(f"answered {exchange.status}")
        for text in self.hidden.get(exchange.caller, ()):
            if text in exchange.response_body:
                found.append(f"another user's text {text!r} in the answer")
        log_mark, error_mark = since
        tracebacks = [line for line in self.log.since(log_mark) if "Traceback" in line]
        if tracebacks:
            shown = "\n    ".join(_summary(line) for line in tracebacks)
            found.append(f"a traceback in the log:\n    {shown}")
        errors = self.watch.errors[error_mark:]
        if errors:
            found.append(f"internal errors: {errors}")
        return found

    def check(self, exchange: Exchange, since: tuple[int, int], context: str = "") -> None:
        """Fail with the request, the answer and the log lines when any property is broken."""
        found = self.problems(exchange, since)
        if found:
            where = f"{context}\n" if context else ""
            raise AssertionError(f"{where}{exchange.describe()}\n" + "\n".join(found))


def _summary(line: str) -> str:
    """A logged traceback in one line: logger, message, where in our code, and the exception."""
    try:
        entry = json.loads(line)
    except ValueError:
        return line[:BODY_SHOWN]
    trace = str(entry.get("exc", ""))
    frames = [f for f in trace.split("\n") if f.startswith('  File "') and "/.venv/" not in f]
    ours = frames[-1].strip() if frames else "(no frame of ours)"
    raised_lines = [part for part in trace.split("\n") if _RAISED.match(part)]
    raised = raised_lines[-1] if raised_lines else trace[-200:]
    return f"{entry.get('logger')}: {entry.get('msg')} | {ours} | {raised[:300]}"


def _meant_503(exchange: Exchange) -> bool:
    """A 503 the app sends on purpose (not ready, shared state down) is JSON with a reason."""
    if exchange.status != 503:
        return False
    try:
        body = json.loads(exchange.response_body)
    except ValueError:
        return False
    return isinstance(body, dict) and bool(body.get("message") or body.get("status"))
