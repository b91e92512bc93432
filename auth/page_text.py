"""Chinese for what the login flow's own pages say, keyed by the English sentence.

auth/ may not import webui/ (docs/architecture.md), so its pages keep this table of their own; the
code that refuses a sign-in writes English (auth.login_routes, auth.login_policy) and
auth.auth_pages shows this translation to a browser asking for Chinese. A sentence missing here
stays English, and tests/auth/test_auth_pages.py fails on it.
"""

from __future__ import annotations

from core.locale import Catalog

_RETRY_EN = "Please go back to the chat and sign in again."
_RETRY_ZH = "请返回聊天页面重新登录。"

AUTH_TEXT = Catalog(
    {
        # auth.auth_pages
        "Reference: {reference}": "参考编号：{reference}",
        # auth.login_routes
        "You are signed out": "您已退出登录",
        "Your chat session has ended.": "您的聊天会话已结束。",
        "Sign in again": "重新登录",
        "Sign-in refused": "登录被拒绝",
        "Try again": "重试",
        "Sign-in unavailable": "暂时无法登录",
        "The company sign-in service cannot be reached right now. "
        "Please try again in a few minutes.": "暂时无法连接公司登录服务，请几分钟后再试。",
        "Sign-out refused": "退出登录被拒绝",
        "This sign-out request came from another site.": "此退出登录请求来自其他网站。",
        "Sign-out not confirmed": "退出登录未确认",
        "We could not verify this sign-out request. Reload the chat page and try again.": (
            "无法验证此退出登录请求。请刷新聊天页面后重试。"
        ),
        "This sign-in link is incomplete or was opened in another browser. " + _RETRY_EN: (
            "此登录链接不完整，或是在其他浏览器中打开的。" + _RETRY_ZH
        ),
        "This sign-in response does not belong to this browser. " + _RETRY_EN: (
            "此登录响应不属于当前浏览器。" + _RETRY_ZH
        ),
        "This sign-in response has expired or was already used. " + _RETRY_EN: (
            "此登录响应已过期或已被使用。" + _RETRY_ZH
        ),
        "The sign-in could not be verified ({reason}). " + _RETRY_EN: (
            "无法验证此次登录（{reason}）。" + _RETRY_ZH
        ),
        # auth.login_policy
        "The identity provider did not say who you are.": "身份提供方未提供您的身份信息。",
        "Your account is not in a group that may use this chat. "
        "Ask your IT service desk for access.": (
            "您的账号不在允许使用此聊天服务的用户组中。请向 IT 服务台申请访问权限。"
        ),
        "Your e-mail address is not in a domain that may use this chat.": (
            "您的电子邮件地址不属于允许使用此聊天服务的域。"
        ),
        # auth.embedded_idp: the development login page
        "Development sign-in": "开发登录",
        "Anyone can sign in here as any user: for laptops and demos only.": (
            "任何人都可以在这里以任意用户身份登录：仅供本机开发和演示使用。"
        ),
        "Application: {client}": "应用：{client}",
        "Authorize as a demo user": "以演示用户身份授权",
        "Authorize as a recent user": "以最近使用的用户身份授权",
        "Or another user ID (sub)": "或输入其他用户 ID（sub）",
        "Please enter a user ID.": "请输入用户 ID。",
        "Authorize": "授权",
        "Deny": "拒绝",
        "You will then be sent back to {uri}": "随后将返回 {uri}",
        "Sign out of the development login": "退出开发登录",
        "Sign out": "退出登录",
        "You are signed out of the development login.": "您已退出开发登录。",
        "Error: {name}": "错误：{name}",
    }
)
