"""Fixtures for the browser end-to-end tests: a real IdP under node, Debian's Chromium via Playwright.

pytest-playwright supplies `playwright`, `browser`, `context` and `page`; this file points its launcher
at /usr/bin/chromium (Playwright's own browser download does not work here: never `playwright install`)
and keeps screenshots under test-artifacts/e2e/. Run tests/e2e/install.sh first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page
from playwright.sync_api import Error as PlaywrightError

from tests.e2e.chat_app import ChatApp, app_client, run_chat_app
from tests.e2e.harness import Idp, IdpClient, run_idp
from tests.live_server import free_port

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS_DIR = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    # No name resolves but loopback, so no page (e.g. a web-font import) can reach past this machine.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1 , EXCLUDE [::1]",
]
# Fail a step in seconds rather than Playwright's 30 s default: every server here is local.
STEP_TIMEOUT_MS = 10_000


def pytest_configure(config: pytest.Config) -> None:
    """Default pytest-playwright's artefacts to test-artifacts/e2e/ and screenshots on failure."""
    if config.getoption("--output", default=None) == "test-results":
        config.option.output = str(ARTIFACTS_DIR)
    if config.getoption("--screenshot", default=None) == "off":
        config.option.screenshot = "only-on-failure"
    # pytest-playwright 0.10's own base_url fixture trips a pytest 9 deprecation; not ours to fix.
    config.addinivalue_line(
        "filterwarnings",
        "ignore:Session-scoped fixtures defined as instance methods:pytest.PytestRemovedIn10Warning",
    )


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    """Launch Debian's Chromium headless, sandbox off (we run as root), no background traffic."""
    if not Path(CHROMIUM).is_file():
        raise RuntimeError(f"{CHROMIUM} is missing: run tests/e2e/install.sh")
    return {
        "headless": True,
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": CHROMIUM_ARGS,
    }


@pytest.fixture
def context(context: BrowserContext) -> BrowserContext:
    """A fresh browser profile per test (no cookies carried over), with short step timeouts."""
    context.set_default_timeout(STEP_TIMEOUT_MS)
    return context


@pytest.fixture
def open_browser(new_context: Callable[..., BrowserContext]) -> Callable[..., Page]:
    """Factory: a page in a browser profile of its own (another person, or another locale)."""

    def open_page(**context_args: object) -> Page:
        fresh = new_context(**context_args)
        fresh.set_default_timeout(STEP_TIMEOUT_MS)
        return fresh.new_page()

    return open_page


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    """On a failed journey, report where every open browser page was and what it showed."""
    report = yield
    browser = getattr(item, "funcargs", {}).get("browser")
    if report.when == "call" and report.failed and isinstance(browser, Browser):
        for number, shown in enumerate(_page_summaries(browser), 1):
            report.sections.append((f"browser page {number}", shown))
    return report


def _page_summaries(browser: Browser) -> list[str]:
    summaries = []
    for context in browser.contexts:
        for page in context.pages:
            try:
                text = page.locator("body").inner_text(timeout=2_000)
            except PlaywrightError as exc:
                text = f"(text unavailable: {exc.message.splitlines()[0]})"
            summaries.append(f"{page.url}\n{text[:1500]}")
    return summaries


@pytest.fixture(scope="session")
def app_port() -> int:
    """The loopback port the tiny harness relying party listens on (registered with the IdP)."""
    return free_port()


@pytest.fixture(scope="session")
def chat_client() -> IdpClient:
    """The chat app's registration at the IdP, on a port of its own."""
    return app_client(free_port())


@pytest.fixture(scope="session")
def idp(app_port: int, chat_client: IdpClient) -> Iterator[Idp]:
    """panva's oidc-provider under node; `idp.client` is the tiny RP's, then the chat app's."""
    with run_idp(IdpClient(rp_port=app_port), chat_client) as running:
        yield running


@pytest.fixture(scope="session")
def chat_app(
    idp: Idp, chat_client: IdpClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ChatApp]:
    """The whole app, once per run: real IdP, PostgreSQL schema, Redis namespace, tiny model."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")
        env.setenv("GRADIO_ANALYTICS_ENABLED", "False")
        with run_chat_app(idp.issuer, chat_client, tmp_path_factory.mktemp("models")) as app:
            yield app


@pytest.fixture
def screenshot(output_path: str) -> Callable[[Page, str], Path]:
    """Save a named full-page screenshot as a test artefact and return its path."""

    def take(page: Page, name: str) -> Path:
        path = Path(output_path) / f"{name}.png"
        page.screenshot(path=path, full_page=True)
        return path

    return take
