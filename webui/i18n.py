"""English and Simplified Chinese strings: page labels via Gradio's I18n, chat notices server-side."""

from __future__ import annotations

import gradio as gr
from gradio.i18n import I18nData

# One rule for every page, server-rendered ones in auth/ and guards/ too; re-exported here.
from core.locale import pick_locale as pick_locale

EN = {
    "title": "Company Chat",
    "chatbot": "Conversation",
    "input_placeholder": "Type a message and press Enter",
    "send": "Send",
    "stop": "Stop",
    "new_chat": "New chat",
    "demo_banner": "⚠️ demo model: random weights — replies are meaningless.",
    "dev_login_banner": "Development login is on: do not use this instance for real work.",
    "signed_in_as": "Signed in as",
    "logout": "Log out",
    "logout_confirm": "Log out of Company Chat?",
    "cancel": "Cancel",
    "busy": "The assistant is busy with other requests. Please try again in a moment.",
    "busy_retry": "The assistant is busy; please try again in {seconds} seconds.",
    "too_long": "Your message is too long ({limit} characters at most). Please shorten it.",
    "prompt_too_long": "Your message is too long for the model. Please shorten it and try again.",
    "engine_error": "The model failed to answer. Please try again; if it keeps failing, tell IT support.",
    "shutting_down": "The server is restarting. Please try again shortly.",
    "unavailable": "The service is briefly unavailable. Please try again in a few seconds.",
    "restarting": "The service is restarting; your reply so far is saved. Please send your message "
    "again in a minute.",
    "store_unavailable": "Your conversations cannot be saved right now, so nothing was sent. "
    "Please try again in a minute.",
    "stream_failed": "The reply stopped unexpectedly; what was written so far is saved. Reload the page "
    "to see it. Reference: {reference}",
    "signed_in_again": "Your session had ended (signed out elsewhere, expired, or ended by an "
    "administrator), so you were asked to sign in again. Your unsent message is back in the box.",
    "close": "Close",
    "stopped": "(stopped)",
    "interrupted": "(interrupted by a server restart)",
    "reply_failed": "(the reply failed)",
    "empty": "Please type a message first.",
    "history": "Conversations",
    "search_placeholder": "Search conversations",
    "rename_placeholder": "Title of the open conversation",
    "rename": "Rename",
    "delete": "Delete",
    "not_found": "Conversation not found.",
    "export": "Export",
    "blocked": "Sorry, I can't help with that request under the company's usage policy.",
    "rate_limited": "You are sending messages too quickly. Please try again in {seconds} seconds.",
    "token_quota": "You have used today's reply allowance. It renews in {seconds} seconds.",
    "audit_tab": "Audit",
    "since": "From (UTC)",
    "until": "Until (UTC)",
    "user": "User",
    "event_type": "Event type",
    "free_text": "Text",
    "search": "Search",
    "page": "Page",
    "active_sessions": "### Active sessions",
    "session_or_user": "Session handle or user key",
    "refresh": "Refresh",
    "revoke": "Revoke",
    "chat_tab": "Chat",
    "tokens_tab": "API tokens",
    "one_at_a_time": "A reply for you is still being generated. Wait for it or press Stop, then send again.",
}

ZH = {
    "title": "公司智能助手",
    "chatbot": "对话",
    "input_placeholder": "输入消息后按回车发送",
    "send": "发送",
    "stop": "停止",
    "new_chat": "新对话",
    "demo_banner": "⚠️ 演示模型：随机权重，回复没有意义。",
    "dev_login_banner": "开发登录已开启：请勿将此实例用于实际工作。",
    "signed_in_as": "当前用户",
    "logout": "退出登录",
    "logout_confirm": "要退出公司智能助手吗？",
    "cancel": "取消",
    "busy": "助手正忙于处理其他请求，请稍后再试。",
    "busy_retry": "助手正忙，请在 {seconds} 秒后再试。",
    "too_long": "消息太长（最多 {limit} 个字符），请缩短后再发送。",
    "prompt_too_long": "消息超出模型可处理的长度，请缩短后再试。",
    "engine_error": "模型未能回答，请重试；如果持续失败，请联系 IT 支持。",
    "shutting_down": "服务器正在重启，请稍后再试。",
    "restarting": "服务正在重启，已生成的回复已保存。请一分钟后重新发送。",
    "store_unavailable": "暂时无法保存对话，消息未发送。请一分钟后再试。",
    "stream_failed": "回复意外中断，已生成的内容已保存。请刷新页面查看。参考编号：{reference}",
    "signed_in_again": "您的会话已结束（在别处退出、超时或被管理员结束），因此需要重新登录。未发送的消息已放回输入框。",
    "close": "关闭",
    "unavailable": "服务暂时不可用，请几秒后再试。",
    "stopped": "（已停止）",
    "interrupted": "（因服务器重启而中断）",
    "reply_failed": "（回复失败）",
    "empty": "请先输入消息。",
    "history": "历史对话",
    "search_placeholder": "搜索对话",
    "rename_placeholder": "当前对话的标题",
    "rename": "重命名",
    "delete": "删除",
    "not_found": "未找到该对话。",
    "export": "导出",
    "blocked": "抱歉，根据公司的使用规定，我无法处理这个请求。",
    "rate_limited": "发送消息过于频繁，请在 {seconds} 秒后再试。",
    "token_quota": "您今天的回复额度已用完，将在 {seconds} 秒后恢复。",
    "audit_tab": "审计",
    "since": "开始（UTC）",
    "until": "结束（UTC）",
    "user": "用户",
    "event_type": "事件类型",
    "free_text": "文本",
    "search": "搜索",
    "page": "页码",
    "active_sessions": "### 活动会话",
    "session_or_user": "会话句柄或用户标识",
    "refresh": "刷新",
    "revoke": "撤销",
    "chat_tab": "对话",
    "tokens_tab": "API 令牌",
    "one_at_a_time": "您的上一条回复仍在生成中，请等待或点击停止后再发送。",
}

LOCALES = {"en": EN, "zh-CN": ZH}


_PREFIX = "cc_"  # our keys must not collide with Gradio's own (e.g. "chatbot" is a namespace there)


# Keys Gradio's own front end looks up but ships no translation for (6.31: the screen-reader
# announcement when an event completes).
GRADIO_GAPS = {"en": {"common.complete": "Done"}, "zh-CN": {"common.complete": "完成"}}


def build_i18n() -> gr.I18n:
    """Translations the browser picks from by its locale."""
    return gr.I18n(
        **{
            locale: {**GRADIO_GAPS.get(locale, {}), **{_PREFIX + k: v for k, v in strings.items()}}
            for locale, strings in LOCALES.items()
        }
    )


def label(key: str) -> I18nData:
    """A page label the browser translates to its locale."""
    if key not in EN:
        raise KeyError(key)
    return I18nData(_PREFIX + key)


def text(key: str, locale: str, **values: object) -> str:
    """A server-side string (chat notices are message content, which Gradio does not translate)."""
    template = LOCALES.get(locale, EN).get(key) or EN[key]
    return template.format(**values) if values else template
