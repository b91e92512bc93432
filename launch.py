"""Command line: load settings once, build the services and the app, run uvicorn; admin sub-commands."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

DEFAULT_SETTINGS = Path(__file__).resolve().parent / "settings.toml"

log = logging.getLogger("chat.launch")
_STOP_MARGIN_SECONDS = 1.0  # time for stopped replies to reach their readers before the cancel


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="launch.py", description="Company Chat server")
    parser.add_argument(
        "--settings", type=Path, default=DEFAULT_SETTINGS, help="TOML settings file"
    )
    parser.add_argument("--host", help="bind address (overrides [server] host)")
    parser.add_argument("--port", type=int, help="port (overrides [server] port)")
    parser.add_argument(
        "--demo",
        action="store_true",
        help="use a tiny random model built offline (replies are meaningless)",
    )
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the server (the default)")
    sub.add_parser("migrate", help="apply database migrations and exit")
    audit = sub.add_parser("audit", help="audit trail tools")
    audit.add_argument(
        "action",
        choices=["verify", "keygen"],
        help="verify: check the chain, signatures and checkpoints; keygen: print a new signing key",
    )
    audit.add_argument(
        "--public-key",
        action="append",
        default=[],
        metavar="KEY",
        help="trust only this public key (base64, PEM, or a file); repeat for rotated keys",
    )
    audit.add_argument(
        "--checkpoints",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="checkpoint file to compare with the database (default: audit.checkpoint_file)",
    )
    audit.add_argument("--database-url", help="the database to verify (overrides [database] url)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "audit" and args.action == "keygen":
        from store.cli import keygen

        return keygen()  # needs no settings: it only makes a key
    # Imports are here, not at module level: `--help` stays instant and nothing loads by accident.
    from config import SettingsError, load_settings
    from webui.json_logging import configure_logging

    configure_logging()
    overrides: dict[str, object] = {}
    server = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if server:
        overrides["server"] = server
    if args.demo:
        overrides["model"] = {"source": "tiny-random"}
    if args.command == "audit" and args.database_url:
        overrides["database"] = {"url": args.database_url}
    try:
        settings = load_settings(args.settings, **overrides)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2

    if args.command == "audit":
        from store.cli import verify_command

        # Without the web stack: an auditor's machine needs only the database and public keys.
        return verify_command(
            settings.database.url, settings.audit, args.public_key, args.checkpoints
        )

    if args.command == "migrate":
        from store.cli import migrate_command

        return migrate_command(settings.database)
    return serve(settings)


def serve(settings) -> int:
    import uvicorn

    from app_factory import StartupError, build_services, create_app
    from guards.connection_limits import (
        ConnectionLimits,
        ReplacedServerLines,
        UnsupportedServer,
        guarded_h11_protocol,
    )

    GracefulServer = _graceful_server_class()

    try:
        # Slow and excess connections are closed before they reach the app (docs/operations.md).
        http_protocol = guarded_h11_protocol(
            ConnectionLimits(
                header_timeout=settings.server.request_header_timeout_seconds,
                max_per_address=settings.server.max_connections_per_address,
                exempt=settings.server.trusted_proxies,
            )
        )
        logging.getLogger("uvicorn.error").addFilter(ReplacedServerLines())
        services = build_services(settings)
        app = create_app(settings, services)
    except (UnsupportedServer, StartupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    log.info("listening", extra={"host": settings.server.host, "port": settings.server.port})
    config = uvicorn.Config(
        app,
        host=settings.server.host,
        port=settings.server.port,
        http=http_protocol,
        ws="none",  # Gradio streams over plain HTTP; an upgraded socket would escape the guard
        proxy_headers=False,  # the client address is decided in one place: guards.client_ip
        server_header=False,
        log_config=None,  # keep our JSON logging
        timeout_graceful_shutdown=settings.server.shutdown_grace_seconds,
    )
    server = GracefulServer(config, stop_replies=services.engine.close)
    server.run()
    return 0 if server.started else 1


def _graceful_server_class():
    import asyncio

    import uvicorn

    class GracefulServer(uvicorn.Server):
        """uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown (exit status -15, or a
        KeyboardInterrupt trace); a finished graceful shutdown is a normal exit for us: status 0.

        Replies still running a second before the grace period ends are stopped first: each ends
        with a readable notice and is saved as stopped, before uvicorn cancels what remains (a
        cancelled stream would tell the browser nothing useful)."""

        def __init__(self, config: uvicorn.Config, stop_replies) -> None:
            super().__init__(config)
            self._stop_replies = stop_replies

        def handle_exit(self, sig, frame) -> None:
            super().handle_exit(sig, frame)
            self._captured_signals.clear()

        async def shutdown(self, sockets=None) -> None:
            stopper = asyncio.create_task(self._stop_before_cancel())
            try:
                await super().shutdown(sockets)
            finally:
                stopper.cancel()

        async def _stop_before_cancel(self) -> None:
            grace = self.config.timeout_graceful_shutdown
            if grace is None:
                return  # nothing is ever cancelled: replies may finish
            await asyncio.sleep(max(0.0, grace - _STOP_MARGIN_SECONDS))
            await asyncio.to_thread(self._stop_replies)

    return GracefulServer


if __name__ == "__main__":
    sys.exit(main())
