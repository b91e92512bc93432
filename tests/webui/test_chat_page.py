"""What the chat page shows for each kind of update: a refusal, a failure or a stop is our notice,
never the assistant's words, and never inside the assistant's message."""

from __future__ import annotations

from model.engine import QueuePlace
from webui.chat_display import present
from webui.chat_service import ReplyUpdate


def notices(turn: list[dict]) -> list[str]:
    return [m["metadata"]["title"] for m in turn if m.get("metadata")]


def replies(turn: list[dict]) -> list[str]:
    return [m["content"] for m in turn if m["role"] == "assistant" and not m.get("metadata")]


def test_a_refusal_leaves_the_chat_as_it_was_and_becomes_a_toast():
    for status in ("refused", "rate_limited"):
        update = ReplyUpdate("c1", "", status, "Try again in 12 seconds.", retry_after=12)
        assert present(update, "hello", "en") == (None, "Try again in 12 seconds.")


def test_a_failed_reply_keeps_its_words_and_is_followed_by_a_notice_of_its_own():
    update = ReplyUpdate("c1", "Half an ans", "error", "The model failed to answer.")
    turn, toast = present(update, "  a question ", "en")
    assert toast is None
    assert turn[0] == {"role": "user", "content": "a question"}
    assert replies(turn) == ["Half an ans"]
    assert notices(turn) == ["The model failed to answer."]
    assert turn[-1]["content"] == ""  # the notice is a titled box, not text in a bubble
    nothing, _ = present(ReplyUpdate("c1", "", "error"), "q", "zh-CN")
    assert replies(nothing) == []  # no empty assistant bubble beside the notice
    assert notices(nothing) == ["模型未能回答，请重试；如果持续失败，请联系 IT 支持。"]


def test_a_stopped_reply_is_marked_apart_in_the_readers_language():
    turn, toast = present(ReplyUpdate("c1", "Cut", "stopped"), "q", "en")
    assert (replies(turn), notices(turn), toast) == (["Cut"], ["Reply stopped."], None)
    zh, _ = present(ReplyUpdate("c1", "截断", "stopped"), "q", "zh-CN")
    assert (replies(zh), notices(zh)) == (["截断"], ["回复已停止。"])
    restart = ReplyUpdate("c1", "Cut", "stopped", "The server is restarting.")
    assert notices(present(restart, "q", "en")[0]) == ["The server is restarting."]


def test_streaming_and_complete_replies_have_no_notice():
    streaming = ReplyUpdate("c1", "Partial", "streaming")
    assert present(streaming, "q", "en") == (
        [{"role": "user", "content": "q"}, {"role": "assistant", "content": "Partial"}],
        None,
    )
    started = present(ReplyUpdate("c1", "", "streaming"), "q", "en")[0]
    # Before its first words the reply is a pending notice (a spinner), not an empty bubble.
    assert replies(started) == [] and notices(started) == ["Writing a reply…"]
    assert started[-1]["metadata"]["status"] == "pending"
    done = present(ReplyUpdate("c1", "All of it", "complete"), "q", "en")[0]
    assert notices(done) == [] and replies(done) == ["All of it"]


def test_a_reply_waiting_in_line_shows_its_place_as_a_notice_in_the_readers_language():
    two_ahead = ReplyUpdate("c1", "", "queued", queue=QueuePlace(ahead=2, expected_wait=39.6))
    turn, toast = present(two_ahead, "hi", "zh-CN")
    assert toast is None and replies(turn) == []
    assert notices(turn) == ["正在等待空闲位置：前面还有 2 个回复，约 40 秒"]
    assert turn[-1]["metadata"]["status"] == "pending"
    next_one = ReplyUpdate("c1", "", "queued", queue=QueuePlace(ahead=0, expected_wait=12.2))
    assert notices(present(next_one, "hi", "en")[0]) == [
        "Waiting for a free slot: yours is next, about 12 s"
    ]
