"""Start-up refuses unsafe auth settings in production with one clear line; development is lenient."""

from __future__ import annotations

import logging

import pytest

from app_factory import site_of
from auth.session_cookie import session_keys
from auth.startup_checks import validate_auth_settings
from tests.auth.conftest import make_settings

GOOD_SECRET = "Zq8v-3kP_w9yT2mB7nX4cR6d"
GOOD_KEY = "mN3q-Xv8_Lp2Rz7Tb5Wc9Yd4Fh6Jk1Gs0Ae"


def check(settings) -> None:
    validate_auth_settings(settings.oidc, settings.session, site_of(settings))


def keys_of(settings) -> list[str]:
    return session_keys(settings.session, production=settings.environment == "production")


def production(**sections):
    base = {
        "server": {"public_url": "https://chat.corp.example"},
        "oidc": {"client_secret": GOOD_SECRET},
        "session": {"secret_keys": [GOOD_KEY]},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    settings = make_settings(443, "https://login.corp.example", environment="production", **base)
    return settings


def test_a_sound_production_configuration_passes():
    check(production())


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"oidc": {"client_secret": ""}}, "oidc.client_secret is missing"),
        ({"oidc": {"client_secret": "short"}}, "shorter than 16"),
        ({"oidc": {"client_secret": "a_very_secret_key_for_demo"}}, "placeholder"),
        ({"oidc": {"client_secret": "changeme-changeme-changeme"}}, "placeholder"),
        ({"oidc": {"client_secret": "aaaaaaaaaaaaaaaaaaaaaaaa"}}, "placeholder"),
        ({"session": {"secret_keys": []}}, "session.secret_keys is missing"),
        ({"session": {"secret_keys": ["too-short-key"]}}, "secret_keys[0] is shorter than 32"),
        (
            {"session": {"secret_keys": [GOOD_KEY, "your-session-key-goes-here-please!!"]}},
            "secret_keys[1]",
        ),
        ({"server": {"public_url": "http://chat.corp.example"}}, "public_url must be https"),
        ({"oidc": {"issuer": "http://login.corp.example"}}, "oidc.issuer must be an https"),
    ],
)
def test_unsafe_production_settings_stop_start_up(sections, message):
    with pytest.raises(ValueError, match=r"^[^\n]+$") as refused:
        check(production(**sections))
    assert message in str(refused.value)
    assert GOOD_SECRET not in str(refused.value)


def test_production_without_keys_never_falls_back_to_a_key():
    with pytest.raises(ValueError, match="secret_keys"):
        keys_of(production(session={"secret_keys": []}))


def test_development_without_keys_uses_a_random_key_and_warns(caplog):
    settings = make_settings(7860, "https://idp.example", session={"secret_keys": []})
    with caplog.at_level(logging.WARNING, "chat.auth"):
        first, second = keys_of(settings), keys_of(settings)
    assert first != second and len(first[0]) >= 48
    assert "ephemeral random key" in caplog.text
    check(settings)


def test_id_token_algorithms_refuse_none_and_hmac():
    from pydantic import ValidationError

    for bad in (["none"], ["HS256"], ["RS256", "HS512"], []):
        with pytest.raises(ValidationError):
            make_settings(7860, "https://idp.example", oidc={"id_token_algorithms": bad})
