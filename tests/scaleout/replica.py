"""One app replica for the scale-out test: `python -m tests.scaleout.replica '<json>'`.

It does what `launch.py serve` does (settings -> build_services -> create_app -> uvicorn), with one
test-only substitution: the echoing FakeEngine instead of a model. The Redis auth stores come from
build_services itself, because `[limits] storage` is a Redis URL.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class ReplicaConfig:
    port: int
    public_url: str
    issuer: str
    client_secret: str
    session_key: str
    database_url: str
    redis_url: str
    key_prefix: str
    chat_per_minute: int
    audit_key: str  # the same signing key on every replica
    checkpoint_file: str  # each replica's own

    def to_json(self) -> str:
        return json.dumps(self.__dict__)


def settings_for(config: ReplicaConfig):
    from config import Settings

    return Settings(
        environment="development",
        server={"host": "127.0.0.1", "port": config.port, "public_url": config.public_url},
        oidc={
            "issuer": config.issuer,
            "client_secret": config.client_secret,
            "allowed_groups": ["staff"],
        },
        session={"secret_keys": [config.session_key]},
        database={"url": config.database_url, "migrate_on_start": False},
        limits={
            "storage": config.redis_url,
            "key_prefix": config.key_prefix,
            "chat_per_minute": config.chat_per_minute,
        },
        audit={
            "signing_keys": [config.audit_key],
            "checkpoint_file": config.checkpoint_file,
            "checkpoint_interval_seconds": 1,
        },
    )


def main(argv: list[str]) -> int:
    import uvicorn

    from app_factory import build_services, create_app
    from model.fake_engine import FakeEngine

    logging.basicConfig(level=logging.WARNING)
    config = ReplicaConfig(**json.loads(argv[1]))
    settings = settings_for(config)
    services = build_services(settings, engine=FakeEngine(delay=0.005))  # no model here
    assert services.bindings is not None, "the replicas must share Redis"
    app = create_app(settings, services)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=config.port,
            log_level="warning",
            proxy_headers=False,
            timeout_graceful_shutdown=2,
        )
    )
    server.run()
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
