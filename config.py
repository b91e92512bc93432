"""The settings schema: settings.toml, overridden by CHAT_* environment variables (`__` nests)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from pydantic_settings import (
    SettingsError as PydanticSettingsError,
)

from auth.api_settings import ApiSettings
from auth.settings import OidcSettings, SessionSettings
from guards.settings import AccessSettings, LimitSettings
from model.openai_settings import OpenAISettings
from model.settings import GenerationSettings, ModelSettings
from store.settings import AuditSettings, DatabaseSettings, PolicySettings, RetentionSettings
from webui.page_settings import PageSettings
from webui.settings import ServerSettings, UISettings


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CHAT_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    environment: Literal["development", "production"] = "development"
    server: ServerSettings = ServerSettings()
    model: ModelSettings = ModelSettings()
    generation: GenerationSettings = GenerationSettings()
    ui: UISettings = UISettings()
    page: PageSettings = PageSettings()
    oidc: OidcSettings = OidcSettings()
    session: SessionSettings = SessionSettings()
    access: AccessSettings = AccessSettings()
    limits: LimitSettings = LimitSettings()
    database: DatabaseSettings = DatabaseSettings()
    retention: RetentionSettings = RetentionSettings()
    audit: AuditSettings = AuditSettings()
    policy: PolicySettings = PolicySettings()
    api: ApiSettings = ApiSettings()
    openai: OpenAISettings = OpenAISettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Precedence: explicit arguments, then CHAT_* environment, then the TOML file.
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


_SECRET_HINT = re.compile(r"secret|key|password|token|database\.url", re.IGNORECASE)


class SettingsError(Exception):
    """Raised with one readable line per invalid key."""


def load_settings(toml_file: Path | None, **overrides: object) -> Settings:
    """Read the TOML file and the environment once; raise SettingsError naming each bad key."""
    if toml_file is not None and not toml_file.is_file():
        raise SettingsError(f"settings file not found: {toml_file}")

    class FileSettings(Settings):
        model_config = ConfigDict(toml_file=toml_file)  # type: ignore[typeddict-unknown-key]

    try:
        return FileSettings(**overrides)
    except ValidationError as exc:
        raise SettingsError(format_validation_error(exc)) from None
    except PydanticSettingsError as exc:
        # e.g. a list-valued CHAT_* variable that is not JSON; the message names the section only.
        raise SettingsError(
            f"settings error: {exc} (list and table values in CHAT_* variables must be JSON)"
        ) from None


def format_validation_error(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"])
        line = f"settings error: {key}: {error['msg']}"
        value = error.get("input")
        # Echo the offending value, except for anything that may be a secret.
        if isinstance(value, str | int | float) and not _SECRET_HINT.search(key):
            line += f" (got {value!r})"
        lines.append(line)
    return "\n".join(lines)
