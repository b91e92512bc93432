"""What the chat page shows for each kind of update: a refusal or a failure is our notice, never the
assistant's words."""

from __future__ import annotations

from webui.chat_page import present
from webui.chat_service import ReplyUpdate


def test_a_refusal_leaves_the_chat_as_it_was_and_becomes_a_notice():
    for status in ("refused", "rate_limited"):
        update = ReplyUpdate("c1", "", status, "Try again in 12 seconds.", retry_after=12)
        assert present(update, "hello", "en") == (None, "Try again in 12 seconds.")


def test_a_failed_reply_keeps_its_words_apart_from_the_notice():
    update = ReplyUpdate("c1", "Half an ans", "error", "The model failed to answer.")
    turn, notice = present(update, "  a question ", "en")
    assert notice == "The model failed to answer."
    assert turn == [
        {"role": "user", "content": "a question"},
        {"role": "assistant", "content": "Half an ans\n\n(the reply failed)"},
    ]
    nothing = ReplyUpdate("c1", "", "error", "The model failed to answer.")
    assert present(nothing, "q", "zh-CN")[0][1]["content"] == "（回复失败）"


def test_streaming_and_stopped_replies_have_no_notice():
    streaming = ReplyUpdate("c1", "Partial", "streaming")
    assert present(streaming, "q", "en") == (
        [{"role": "user", "content": "q"}, {"role": "assistant", "content": "Partial"}],
        None,
    )
    stopped = present(ReplyUpdate("c1", "Cut", "stopped"), "q", "en")
    assert stopped[0][1]["content"] == "Cut\n\n(stopped)" and stopped[1] is None
