"""The history's days are the reader's: grouping across a time-zone boundary with a fixed clock, and
the `tz` cookie, which is whatever a browser (or an attacker) sends, validated down to a known zone
or UTC, never an error."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.requests import Request

from webui.history_sidebar import group_by_day, listing_updates
from webui.reader_time_zone import (
    COOKIE,
    MAX_LENGTH,
    SCRIPT_PATH,
    reader_zone,
    time_zone_head,
    time_zone_router,
    zone_named,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")  # UTC+8
LOS_ANGELES = ZoneInfo("America/Los_Angeles")  # UTC-7 in March after the switch
# 07:30 on 10 March in Shanghai; still 9 March in UTC (23:30) and in Los Angeles (16:30).
NOW = datetime(2026, 3, 9, 23, 30, tzinfo=UTC)


@dataclass(frozen=True)
class Summary:
    id: str
    title: str
    updated_at: datetime


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


CHATS = [
    Summary("a", "Evening in Shanghai", at(9, 12)),  # 20:00 on the 9th in Shanghai
    Summary("b", "Just after midnight in Shanghai", at(8, 16, 30)),  # 00:30 on the 9th there
    Summary("c", "Late on the 7th in Shanghai", at(7, 15, 30)),  # 23:30 on the 7th there
]


def grouped(zone) -> list[list[tuple[str, str]]]:
    return group_by_day(CHATS, NOW.astimezone(zone).date(), zone)


def test_at_seven_in_shanghai_last_evening_is_yesterday_not_today():
    today, yesterday, earlier = grouped(SHANGHAI)

    assert today == []
    assert yesterday == [("Evening in Shanghai", "a"), ("Just after midnight in Shanghai", "b")]
    assert earlier == [("Late on the 7th in Shanghai · 2026-03-07", "c")]


def test_the_same_conversations_by_utc_days():
    today, yesterday, earlier = grouped(UTC)

    assert today == [("Evening in Shanghai", "a")]
    assert yesterday == [("Just after midnight in Shanghai", "b")]
    assert earlier == [("Late on the 7th in Shanghai · 2026-03-07", "c")]


def test_an_earlier_conversation_shows_the_readers_date():
    # 16:30 UTC on the 6th is the 7th in Shanghai and still the 6th in Los Angeles.
    old = [Summary("d", "Planning", at(6, 16, 30))]

    assert group_by_day(old, NOW.astimezone(SHANGHAI).date(), SHANGHAI)[2] == [
        ("Planning · 2026-03-07", "d")
    ]
    assert group_by_day(old, NOW.astimezone(LOS_ANGELES).date(), LOS_ANGELES)[2] == [
        ("Planning · 2026-03-06", "d")
    ]


def test_in_los_angeles_the_afternoon_is_still_the_9th():
    today, yesterday, _ = grouped(LOS_ANGELES)

    assert [cid for _, cid in today] == ["a"]  # 05:00 on the 9th there
    assert [cid for _, cid in yesterday] == ["b"]  # 09:30 on the 8th there


def test_the_listing_shows_only_the_groups_the_reader_has():
    updates = listing_updates(CHATS, "", "a", "en", NOW.astimezone(SHANGHAI).date(), SHANGHAI)

    assert [u["visible"] for u in updates[:3]] == [False, True, True]
    assert updates[1]["value"] == "a"  # the open conversation stays selected in its group


@pytest.mark.parametrize(
    ("cookie", "zone"),
    [
        ("Asia/Shanghai", "Asia/Shanghai"),
        ("America/Los_Angeles", "America/Los_Angeles"),
        ("America/Argentina/Buenos_Aires", "America/Argentina/Buenos_Aires"),
        ("Etc/GMT+5", "Etc/GMT+5"),
        ("UTC", "UTC"),
    ],
)
def test_a_real_zone_is_taken(cookie, zone):
    assert str(zone_named(cookie)) == zone


@pytest.mark.parametrize(
    "cookie",
    [
        None,
        "",
        "Mars/Olympus_Mons",
        "Asia",  # a folder of zones, not a zone
        "../../../../etc/passwd",
        "Asia/../Europe/Paris",
        "/etc/localtime",
        "/usr/share/zoneinfo/Asia/Shanghai",
        "localtime",  # the server's own zone file
        "posixrules",
        "Asia/Shanghai; Path=/",
        "Asia/Shanghai\n",
        "Asia/Shanghai\x00",
        "Asia%2FShanghai",
        "Asia\\Shanghai",
        "<script>alert(1)</script>",
        "Europe/" + "A" * MAX_LENGTH,
        "A" * 10_000,
        "Asia/Shanghai/Extra/Deep",
    ],
)
def test_junk_overlong_or_unknown_values_mean_utc(cookie):
    assert zone_named(cookie) is UTC


def cookie_request(header: bytes) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "headers": [(b"cookie", header)]})


def test_the_zone_comes_from_the_requests_cookie():
    assert reader_zone(cookie_request(b"session=abc; tz=Asia/Shanghai")) == SHANGHAI
    assert reader_zone(cookie_request(b"tz=../../etc/passwd")) is UTC
    assert reader_zone(cookie_request(b"tz=")) is UTC
    assert reader_zone(cookie_request(b"other=1")) is UTC
    assert reader_zone(None) is UTC  # no request at all (outside a page load)


def test_the_script_is_served_from_our_origin_and_named_in_the_head():
    app = FastAPI()
    app.include_router(time_zone_router())

    answer = TestClient(app).get(SCRIPT_PATH)

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/javascript")
    assert f'"{COOKIE}=" + zone' in answer.text
    assert "resolvedOptions().timeZone" in answer.text
    assert time_zone_head("https://chat.example/app") == (
        '<script src="https://chat.example/app/time-zone.js"></script>'
    )
