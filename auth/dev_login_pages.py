"""The development login's pages, in place of oidc-provider-mock's own.

The library's pages load their stylesheet from a CDN (a request to a third party at every sign-in,
and an unstyled page offline) and speak English only. These templates replace them by name, with a
few lines of inline CSS, and speak the browser's language (Accept-Language, auth.page_text). The
forms post the same fields (`sub`, `action=deny`, `redirect_uri`) the library reads.
"""

from __future__ import annotations

from collections.abc import Mapping

import flask
import jinja2

from auth.page_text import AUTH_TEXT
from core.locale import request_locale

_CSS = """
body { font-family: system-ui, sans-serif; line-height: 1.5; margin: 0; color: #1f2937; }
main { max-width: 36rem; margin: 3rem auto; padding: 0 1rem; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.1rem; margin-top: 2rem; }
.note { background: #fef3c7; border-left: 4px solid #d97706; padding: .5rem .75rem; }
.users { display: flex; flex-wrap: wrap; gap: .5rem; }
button { font: inherit; padding: .5rem 1rem; border-radius: .375rem; cursor: pointer;
  border: 1px solid #2563eb; background: #2563eb; color: #fff; }
button.secondary { background: #fff; color: #2563eb; }
button.deny { background: #fff; color: #b91c1c; border-color: #b91c1c; }
input[type=text] { font: inherit; padding: .5rem; width: 100%; box-sizing: border-box;
  border: 1px solid #9ca3af; border-radius: .375rem; }
.row { display: flex; gap: .5rem; margin-top: .5rem; }
small, .muted { color: #4b5563; overflow-wrap: anywhere; }
"""

_BASE = (
    """<!doctype html>
<html lang="{{ locale }}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width">
<title>{% block title %}{{ t("Development sign-in") }}{% endblock %}</title>
<style>"""
    + _CSS
    + """</style></head>
<body><main>{% block content %}{% endblock %}</main></body></html>
"""
)

_AUTHORIZE = """{% extends "_base.html" %}
{% block content %}
<h1>{{ t("Development sign-in") }}</h1>
<p class="note">{{ t("Anyone can sign in here as any user: for laptops and demos only.") }}</p>
<p class="muted">{{ t("Application: {client}", client=client_id) }}</p>
{% if predefined_users %}
<h2 id="demo-users">{{ t("Authorize as a demo user") }}</h2>
<form method="post" class="users" aria-labelledby="demo-users">
{% for sub in predefined_users %}
  <button type="submit" name="sub" value="{{ sub }}">{{ demo_names.get(sub, sub) }}</button>
{% endfor %}
</form>
{% endif %}
{% if recent_subjects %}
<h2 id="recent-users">{{ t("Authorize as a recent user") }}</h2>
<form method="post" class="users" aria-labelledby="recent-users">
{% for sub in recent_subjects %}
  <button type="submit" class="secondary" name="sub" value="{{ sub }}">{{ sub }}</button>
{% endfor %}
</form>
{% endif %}
<h2><label for="sub">{{ t("Or another user ID (sub)") }}</label></h2>
<form method="post">
  <input type="text" id="sub" name="sub" required
    {% if sub_missing %}aria-invalid="true" aria-describedby="sub-missing"{% endif %}>
  {% if sub_missing %}<small id="sub-missing">{{ t("Please enter a user ID.") }}</small>{% endif %}
  <div class="row">
    <button type="submit">{{ t("Authorize") }}</button>
    <button type="submit" class="deny" name="action" value="deny" formnovalidate>{{ t("Deny") }}</button>
  </div>
</form>
<p><small>{{ t("You will then be sent back to {uri}", uri=redirect_uri) }}</small></p>
{% endblock %}
"""

_END_SESSION_FORM = """{% extends "_base.html" %}
{% block content %}
<h1>{{ t("Sign out of the development login") }}</h1>
<form method="post" action="{{ end_session_confirm_url }}">
  {% if redirect_uri %}<input type="hidden" name="redirect_uri" value="{{ redirect_uri }}">{% endif %}
  <button type="submit">{{ t("Sign out") }}</button>
</form>
{% if redirect_uri %}<p><small>{{ t("You will then be sent back to {uri}", uri=redirect_uri) }}</small></p>{% endif %}
{% endblock %}
"""

_END_SESSION_CONFIRM = """{% extends "_base.html" %}
{% block content %}
<h1>{{ t("Sign out of the development login") }}</h1>
<p>{{ t("You are signed out of the development login.") }}</p>
{% endblock %}
"""

_ERROR = """{% extends "_base.html" %}
{% block content %}
<h1>{{ t("Error: {name}", name=name) }}</h1>
<p>{{ description }}</p>
{% endblock %}
"""

_INDEX = """{% extends "_base.html" %}
{% block content %}
<h1>{{ t("Development sign-in") }}</h1>
<p class="note">{{ t("Anyone can sign in here as any user: for laptops and demos only.") }}</p>
{% endblock %}
"""

# Every page the library renders, by the name it renders it under.
PAGES = {
    "_base.html": _BASE,
    "authorization_form.html": _AUTHORIZE,
    "end_session_form.html": _END_SESSION_FORM,
    "end_session_confirm.html": _END_SESSION_CONFIRM,
    "error.html": _ERROR,
    "index.html": _INDEX,
}


def install_pages(app: flask.Flask, demo_names: Mapping[str, str]) -> None:
    """Serve our pages instead of the library's; `demo_names` labels each demo user's button.

    Only ours: a page a later library version adds fails loudly rather than loading the CDN."""
    app.jinja_loader = jinja2.DictLoader(PAGES)

    @app.context_processor
    def page_language() -> dict[str, object]:
        locale = request_locale(flask.request)

        def t(text: str, **values: object) -> str:
            said = AUTH_TEXT.translate(text, locale)
            return said.format(**values) if values else said

        return {"locale": locale, "t": t, "demo_names": demo_names}
