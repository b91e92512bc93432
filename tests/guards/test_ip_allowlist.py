"""Per-group address allowlists as a refused outsider, an admin off-site, a script and a scraper see them."""

from __future__ import annotations

from ipaddress import ip_network

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from core.audit import ACCESS_DENIED, MemoryAuditSink
from guards.client_ip import ClientAddressMiddleware
from guards.ip_allowlist import AccessRules, AddressRefused, IPAllowlistMiddleware
from guards.settings import AccessSettings
from tests.auth.loopback_server import client_from, serve


async def ok(request):
    return PlainTextResponse("ok")


ROUTES = [Route(p, ok) for p in ("/", "/admin", "/admin/users", "/administrator", "/metrics")]


def make_app(rules: AccessRules, audit: MemoryAuditSink, trusted=()) -> Starlette:
    return Starlette(
        routes=ROUTES,
        middleware=[
            Middleware(ClientAddressMiddleware, trusted_proxies=trusted),
            Middleware(IPAllowlistMiddleware, rules=rules, audit=audit),
        ],
    )


def client_at(address: str, rules: AccessRules, audit: MemoryAuditSink) -> TestClient:
    return TestClient(make_app(rules, audit), client=(address, 40000))


SHIPPED = AccessRules.from_settings(AccessSettings())


@pytest.mark.parametrize(
    ("address", "path", "status"),
    [
        ("10.1.2.3", "/", 200),
        ("192.168.5.5", "/admin", 200),
        ("fd00::5", "/", 200),
        ("203.0.113.5", "/", 403),  # the internet
        ("::ffff:203.0.113.5", "/", 403),
        ("10.1.2.3", "/metrics", 403),  # metrics: loopback only
        ("127.0.0.1", "/metrics", 200),
        ("::1", "/metrics", 200),
    ],
)
def test_shipped_defaults(address, path, status):
    audit = MemoryAuditSink()
    assert client_at(address, SHIPPED, audit).get(path).status_code == status


def test_refusal_over_real_socket_is_logged_with_peer_ip(caplog):
    audit = MemoryAuditSink()
    rules = AccessRules(allow=(ip_network("127.0.0.1/32"),))
    with serve(make_app(rules, audit)) as url:
        with client_from("127.0.0.1", url) as insider:
            assert insider.get("/").status_code == 200
        with client_from("127.0.0.2", url) as outsider:
            refused = outsider.get("/", headers={"X-Forwarded-For": "127.0.0.1"})
    assert refused.status_code == 403
    assert "network address is not allowed" in refused.json()["detail"]
    [event] = audit.of_type(ACCESS_DENIED)
    assert event.ip == "127.0.0.2"
    assert event.outcome == "ip_not_allowed:all"
    [line] = [r for r in caplog.records if r.getMessage() == "request refused"]
    assert (line.ip, line.status, line.reason) == (
        "127.0.0.2",
        403,
        "ip_not_allowed:all (peer 127.0.0.2)",
    )


def test_browser_gets_html_page_and_script_gets_json():
    client = client_at("203.0.113.5", SHIPPED, MemoryAuditSink())
    page = client.get("/", headers={"Accept": "text/html,application/xhtml+xml"})
    assert page.status_code == 403
    assert page.headers["content-type"].startswith("text/html")
    assert "Access refused" in page.text
    api = client.get("/", headers={"Accept": "application/json"})
    assert api.headers["content-type"] == "application/json"


def test_admin_group_by_path_prefix_only():
    rules = AccessRules(admin_allow=(ip_network("10.0.0.0/24"),))
    outsider = client_at("10.9.9.9", rules, MemoryAuditSink())
    assert outsider.get("/admin").status_code == 403
    assert outsider.get("/admin/users").status_code == 403
    assert outsider.get("/administrator").status_code == 200  # not an admin path
    assert outsider.get("/").status_code == 200
    assert client_at("10.0.0.7", rules, MemoryAuditSink()).get("/admin").status_code == 200


def test_admin_paths_are_judged_below_root_path():
    rules = AccessRules(admin_allow=(ip_network("10.0.0.0/24"),))
    app = make_app(rules, MemoryAuditSink())
    client = TestClient(app, client=("10.9.9.9", 1), root_path="/chat")
    assert client.get("/chat/admin").status_code == 403


def test_bearer_requests_are_the_api_group():
    audit = MemoryAuditSink()
    rules = AccessRules(api_allow=(ip_network("10.0.0.0/24"),))
    client = client_at("10.9.9.9", rules, audit)
    assert client.get("/").status_code == 200
    refused = client.get("/", headers={"Authorization": "Bearer chat_abc"})
    assert refused.status_code == 403
    assert audit.of_type(ACCESS_DENIED)[0].outcome == "ip_not_allowed:api"
    inside = client_at("10.0.0.9", rules, audit)
    assert inside.get("/", headers={"Authorization": "bearer chat_abc"}).status_code == 200


def test_empty_lists_add_no_restriction():
    client = client_at("198.51.100.1", AccessRules(), MemoryAuditSink())
    assert client.get("/admin").status_code == 200
    assert client.get("/metrics").status_code == 200


def test_unparseable_peer_is_refused_when_a_list_applies():
    client = TestClient(make_app(SHIPPED, MemoryAuditSink()))  # peer "testclient"
    assert client.get("/").status_code == 403


def test_require_admin_ip_inside_handlers():
    audit = MemoryAuditSink()
    rules = AccessRules(admin_allow=(ip_network("10.0.0.0/24"),))
    rules.require_admin_ip("10.0.0.3")
    with pytest.raises(AddressRefused) as refused:
        rules.require_admin_ip("203.0.113.5", audit=audit, actor="iss|alice")
    assert isinstance(refused.value, PermissionError)
    assert audit.of_type(ACCESS_DENIED)[0].actor == "iss|alice"
    with pytest.raises(PermissionError):
        rules.require_admin_ip(None)
