"""A flood from one address leaves a few log lines a minute, then says how many it held back;
other addresses, and lines without an address, are not held back by it."""

from __future__ import annotations

import io
import json
import logging

from webui.json_logging import JsonFormatter
from webui.log_throttle import SourceThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def logger_with(throttle: SourceThrottle) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(throttle)
    logger = logging.Logger("throttled")
    logger.addHandler(handler)
    return logger, out


def lines(out: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_flood_from_one_address_is_cut_to_a_burst_then_counted_in_the_next_window():
    clock = Clock()
    logger, out = logger_with(SourceThrottle(burst=3, window=60, clock=clock))
    for _ in range(500):
        logger.warning("request refused", extra={"ip": "203.0.113.9", "status": 403})
    assert len(lines(out)) == 3

    clock.now += 61
    logger.warning("request refused", extra={"ip": "203.0.113.9", "status": 403})
    last = lines(out)[-1]
    assert len(lines(out)) == 4 and last["suppressed"] == 497 and last["ip"] == "203.0.113.9"

    clock.now += 61  # a quiet window: nothing was held back, nothing to report
    logger.warning("request refused", extra={"ip": "203.0.113.9", "status": 403})
    assert "suppressed" not in lines(out)[-1]


def test_other_addresses_messages_and_lines_without_an_address_pass():
    logger, out = logger_with(SourceThrottle(burst=1, window=60, clock=Clock()))
    for _ in range(10):
        logger.warning("request refused", extra={"ip": "203.0.113.9"})
        logger.warning("request refused", extra={"ip": "198.51.100.7"})
        logger.warning("bearer credential refused: %s", "unknown", extra={"ip": "203.0.113.9"})
        logger.error("generation failed")
    got = [(line["msg"], line.get("ip")) for line in lines(out)]
    assert got.count(("request refused", "203.0.113.9")) == 1
    assert got.count(("request refused", "198.51.100.7")) == 1
    assert got.count(("bearer credential refused: unknown", "203.0.113.9")) == 1
    assert got.count(("generation failed", None)) == 10


def test_the_table_of_addresses_is_bounded_forgetting_the_least_recent():
    logger, out = logger_with(SourceThrottle(burst=1, window=60, max_sources=100, clock=Clock()))
    addresses = [f"10.0.{n // 256}.{n % 256}" for n in range(5000)]
    for address in addresses:
        logger.warning("request refused", extra={"ip": address})
    assert len(lines(out)) == 5000  # each address is new: all pass

    logger.warning("request refused", extra={"ip": addresses[-1]})  # remembered: held back
    logger.warning("request refused", extra={"ip": addresses[0]})  # forgotten: passes again
    assert [line["ip"] for line in lines(out)[5000:]] == [addresses[0]]
