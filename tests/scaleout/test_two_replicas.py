"""Two app processes on different loopback ports with one PostgreSQL, one Redis and one IdP:
what a user does on one replica holds on the other."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from store.audit_keys import audit_keys
from store.cli import verify_audit
from store.settings import AuditSettings
from tests.backends import POSTGRES_DSN
from tests.scaleout.cluster import Cluster, two_replicas

CHAT_PER_MINUTE = 4


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    with two_replicas(tmp_path_factory.mktemp("replicas"), CHAT_PER_MINUTE) as running:
        yield running


def test_login_begun_on_one_replica_completes_on_the_other_and_chat_works_on_both(cluster):
    with cluster.browser() as browser:
        cluster.login(browser, "lou", start=cluster.a, finish=cluster.b)
        first = cluster.chat(browser, cluster.a, "hello from A")
        assert first["status"] == "complete" and first["reply"] == "You said: hello from A"
        second = cluster.chat(browser, cluster.b, "hello from B")
        assert second["reply"] == "You said: hello from B"
        # History written by one replica is read by the other.
        listed = cluster.call(browser, cluster.b, "list_conversations", "")
        assert {c["id"] for c in listed} == {first["conversation_id"], second["conversation_id"]}
        stored = cluster.call(browser, cluster.a, "get_conversation", second["conversation_id"])
        assert [m["content"] for m in stored["messages"]] == [
            "hello from B",
            "You said: hello from B",
        ]


def test_a_callback_replayed_on_the_other_replica_is_refused(cluster):
    with cluster.browser() as browser:
        begun = browser.get(cluster.a + "/login")
        bound = browser.cookies["chat_session_login"]
        page = browser.get(begun.headers["location"], follow_redirects=True)
        callback = browser.post(page.url, data={"sub": "lou"}).headers["location"]
        assert browser.get(callback.replace(cluster.a, cluster.b)).status_code == 302
    # Someone who copied the callback URL and the browser's login cookie comes too late.
    with cluster.browser() as thief:
        thief.cookies.set("chat_session_login", bound)
        replay = thief.get(callback)
        assert replay.status_code == 400
        assert "expired or was already used" in replay.text


def test_the_chat_rate_limit_counts_messages_on_both_replicas(cluster):
    with cluster.browser() as browser:
        cluster.login(browser, "rita", start=cluster.b, finish=cluster.a)
        for replica in (cluster.a, cluster.b) * (CHAT_PER_MINUTE // 2):
            assert cluster.chat(browser, replica, "within the limit")["status"] == "complete"
        for replica in (cluster.a, cluster.b):
            refused = cluster.chat(browser, replica, "one too many")
            assert refused["status"] == "rate_limited"
            assert "too quickly" in refused["notice"]


def test_logout_on_one_replica_is_refused_on_the_other(cluster):
    with cluster.browser() as browser:
        session = cluster.login(browser, "dave", start=cluster.a, finish=cluster.a)
        assert browser.get(cluster.b + "/gradio_api/info").status_code == 200
        page = browser.get(cluster.a + "/signout")
        token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        out = browser.post(
            cluster.b + "/logout", data={"csrf_token": token}, headers={"origin": cluster.a}
        )
        assert out.status_code == 303
    # The cookie a copy-paster kept is dead on both replicas.
    with cluster.browser() as stale:
        stale.cookies.set("chat_session", session)
        for replica in (cluster.a, cluster.b):
            assert stale.get(replica + "/gradio_api/info").status_code == 401
            joined = stale.post(
                replica + "/gradio_api/queue/join",
                json={"data": ["hi", None], "fn_index": 0, "session_hash": "stale-tab"},
            )
            assert joined.status_code == 401


def test_concurrent_chats_on_both_replicas_leave_one_unbroken_audit_chain(cluster):
    browsers = {user: cluster.browser() for user in ("carol", "erin")}
    cluster.login(browsers["carol"], "carol", start=cluster.a, finish=cluster.b)
    cluster.login(browsers["erin"], "erin", start=cluster.b, finish=cluster.a)
    results: list[str] = []
    failures: list[BaseException] = []

    def chat(user: str, replicas: tuple[str, ...]) -> None:
        try:
            for i, replica in enumerate(replicas):
                results.append(cluster.chat(browsers[user], replica, f"{user} {i}")["status"])
        except BaseException as exc:  # reported below, the thread must not die silently
            failures.append(exc)

    plan = {"carol": (cluster.a, cluster.b, cluster.a), "erin": (cluster.b, cluster.a, cluster.b)}
    threads = [threading.Thread(target=chat, args=item) for item in plan.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for browser in browsers.values():
        browser.close()
    assert not failures, failures
    assert results == ["complete"] * 6

    assert verify_audit(cluster.database_url) == 0
    with psycopg.connect(POSTGRES_DSN) as conn:
        conn.execute(f'SET search_path TO "{cluster.schema}"')
        rows = conn.execute("SELECT id, prev_hash, hash, type, actor FROM audit_log ORDER BY id")
        rows = rows.fetchall()
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1))  # no gaps
    assert len({r[1] for r in rows}) == len(rows)  # no two records claim the same predecessor
    chats = [r[4] for r in rows if r[3] == "chat.request"]
    assert chats.count(cluster.key("carol")) == 3 and chats.count(cluster.key("erin")) == 3
    ended = [r[4] for r in rows if r[3] == "chat.reply"]  # each turn's end, whichever replica
    assert ended.count(cluster.key("carol")) == 3 and ended.count(cluster.key("erin")) == 3


def test_both_replicas_sign_the_shared_chain_and_each_writes_checkpoints(cluster):
    with cluster.browser() as browser:
        cluster.login(browser, "lou", start=cluster.a, finish=cluster.b)
        for replica in (cluster.a, cluster.b):
            assert cluster.chat(browser, replica, "signed")["status"] == "complete"
    with psycopg.connect(POSTGRES_DSN) as conn:
        conn.execute(f'SET search_path TO "{cluster.schema}"')
        head = conn.execute("SELECT last_id FROM audit_head").fetchone()[0]
        unsigned = conn.execute("SELECT count(*) FROM audit_log WHERE signature IS NULL")
        assert unsigned.fetchone()[0] == 0
    # Each replica checkpoints within its 1 s interval; both vouch for the final head.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not all(
        _checkpointed(path) >= head for path in cluster.checkpoint_files
    ):
        time.sleep(0.2)
    assert [_checkpointed(path) >= head for path in cluster.checkpoint_files] == [True, True]
    keys = audit_keys(AuditSettings(), [cluster.audit_public_key])
    assert verify_audit(cluster.database_url, keys, cluster.checkpoint_files) == 0


def _checkpointed(path) -> int:
    """The newest record id a checkpoint file vouches for (0 if none yet)."""
    if not path.exists():
        return 0
    return max((json.loads(line)["last_id"] for line in path.read_text().splitlines()), default=0)


def test_a_gradio_session_hash_belongs_to_its_first_user_on_every_replica(cluster):
    hash_ = "h" + uuid.uuid4().hex[:10]
    with cluster.browser() as owner, cluster.browser() as intruder:
        cluster.login(owner, "lou", start=cluster.a, finish=cluster.a)
        cluster.login(intruder, "erin", start=cluster.b, finish=cluster.b)
        fn_index = cluster.fn_index(owner, cluster.a, "chat")
        join = {"data": ["hi", None], "fn_index": fn_index, "session_hash": hash_}
        joined = owner.post(cluster.a + "/gradio_api/queue/join", json=join)
        assert joined.status_code == 200, joined.text
        cancel = {
            "session_hash": hash_,
            "fn_index": fn_index,
            "event_id": joined.json()["event_id"],
        }
        # B never saw this hash or this event, yet it knows whose they are.
        for replica in (cluster.b, cluster.a):
            refused = intruder.post(replica + "/gradio_api/cancel", json=cancel)
            assert refused.status_code == 403
            assert "belongs to another user" in refused.json()["message"]
            own_hash = {**cancel, "session_hash": "intruder-tab"}
            refused = intruder.post(replica + "/gradio_api/cancel", json=own_hash)
            assert refused.status_code == 403
            assert "event belongs to another user" in refused.json()["message"]
        assert owner.post(cluster.b + "/gradio_api/cancel", json=cancel).status_code == 200
