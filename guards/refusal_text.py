"""Chinese for what the network guards' refusal pages say, keyed by the English sentence.

The refusing middlewares (ip_allowlist, outages, rate limits) pass English; guards.refusals shows
this translation to a browser asking for Chinese. A sentence missing here stays English, and
tests/guards/test_refusal_pages.py fails on it.
"""

from __future__ import annotations

from core.locale import Catalog

TITLES = {
    403: "Access refused",
    413: "Request too large",
    429: "Too many requests",
    503: "Temporarily unavailable",
}
DEFAULT_TITLE = "Request refused"

REFUSAL_TEXT = Catalog(
    {
        "Access refused": "访问被拒绝",
        "Request too large": "请求过大",
        "Too many requests": "请求过于频繁",
        "Temporarily unavailable": "服务暂时不可用",
        "Request refused": "请求被拒绝",
        # guards.ip_allowlist
        "Your network address is not allowed to use this service. "
        "Connect from the company network or VPN, or ask your administrator.": (
            "您的网络地址不允许使用此服务。请从公司网络或 VPN 连接，或联系管理员。"
        ),
        # guards.outages
        "The service is briefly unavailable (shared state unreachable). "
        "Try again in a few seconds.": "服务暂时不可用（共享状态无法访问）。请几秒后再试。",
        "The service cannot reach its database right now; nothing was changed. "
        "Try again in a few seconds.": "服务暂时无法访问数据库，未做任何更改。请几秒后再试。",
        # guards.rate_limits
        "You are sending messages too quickly. Try again in {s} seconds.": (
            "发送消息过于频繁，请在 {s} 秒后再试。"
        ),
        "You have used today's reply allowance. Try again in {s} seconds.": (
            "您今天的回复额度已用完，请在 {s} 秒后再试。"
        ),
        "Too many login attempts. Try again in {s} seconds.": "登录尝试过多，请在 {s} 秒后再试。",
        "Too many requests. Try again in {s} seconds.": "请求过多，请在 {s} 秒后再试。",
        "Too many actions in a minute. Try again in {s} seconds.": (
            "一分钟内操作过多，请在 {s} 秒后再试。"
        ),
        "Too many new chat tabs in an hour. Reuse an open tab, or try again in {s} seconds.": (
            "一小时内打开的新对话标签页过多。请使用已打开的标签页，或在 {s} 秒后再试。"
        ),
        "Too many invalid API tokens from your address. "
        "Check the token, then try again in {s} seconds.": (
            "来自您地址的无效 API 令牌过多。请检查令牌，然后在 {s} 秒后再试。"
        ),
    }
)
