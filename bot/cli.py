"""`rollbot …`: the console script (SPEC §2)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from bot.config_file import ConfigError
from bot.settings import Settings, secret

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus_client when imported (bot.metrics)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rollbot", description="Guided, approved, audited rollbacks from Slack.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    web = sub.add_parser("web", help="production HTTP server (gunicorn + Bolt)")
    web.add_argument("--port", type=int, default=None, help="port (default: $PORT or 3000)")
    web.add_argument("--host", default=os.environ.get("ROLLBOT_HOST", "0.0.0.0"), help="bind address")
    web.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "2")))
    sub.add_parser("socket", help="the same app over Socket Mode (SLACK_APP_TOKEN)")
    sub.add_parser("worker", help="scheduler: reminders, approval expiry, monitoring checks")
    sub.add_parser("migrate", help="apply the database schema (idempotent)")
    dev = sub.add_parser("dev", help="everything local, no credentials")
    dev.add_argument("--demo", action="store_true", help="play the whole story non-interactively and exit")
    dev.add_argument("--port", type=int, default=None)
    sub.add_parser("check-config", help="validate env + rollbot.toml and ping every dependency")
    manifest = sub.add_parser("manifest", help="print the Slack app manifest")
    manifest.add_argument("--url", default=None, help="public base URL (HTTP mode); omit for Socket Mode")
    sub.add_parser("secret-key", help="print a new key for ROLLBOT_SECRET_KEY (env-var snapshots)")
    sub.add_parser("rotate-secret-key", help="re-encrypt every env-var snapshot with the first key of ROLLBOT_SECRET_KEY")
    report = sub.add_parser("report", help="print one incident")
    report.add_argument("incident", help="RB-N")
    report.add_argument("--format", choices=("md", "json"), default="md")
    args = parser.parse_args(argv)

    try:
        settings = Settings()
    except Exception as error:  # pydantic's message names the variable
        print(f"rollbot: bad environment: {error}", file=sys.stderr)
        return 2
    from bot import logs

    secrets = secrets_of(settings)
    logs.configure(settings.rollbot_log_level, secrets=secrets)
    try:
        return _dispatch(args, settings)
    except ConfigError as error:
        print(logs.redact(f"rollbot: {error}", secrets), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # an operator sees one clear line, never a secret
        if os.environ.get("ROLLBOT_DEBUG"):
            import traceback

            print(logs.redact(traceback.format_exc(), secrets), file=sys.stderr)
        print(logs.redact(f"rollbot {args.command}: {type(error).__name__}: {error}", secrets), file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "migrate":
        from integrations.schema import migrate

        if not settings.database_url:
            raise ConfigError("DATABASE_URL is not set")
        applied = migrate(secret(settings.database_url))
        print("applied: " + ", ".join(applied) if applied else "schema is up to date")
        return 0
    if args.command == "web":
        from bot.server import preflight, serve

        preflight(settings)  # a bad config stops here with one clear message, not in every worker
        return serve(settings, host=args.host, port=args.port or settings.port, workers=args.workers)
    if args.command == "worker":
        os.environ.pop(MULTIPROC_ENV, None)  # its series are its own, never the web's gunicorn workers'
        from bot.bootstrap import build
        from bot.server import preflight
        from bot.worker import WORKER_POOL, Worker, lower_priority

        preflight(settings)
        lower_priority(settings.rollbot_worker_nice)
        if settings.rollbot_worker_one_core:  # before its threads start: they inherit it
            from integrations.cores import OneCore

            OneCore().start()
        if settings.rollbot_worker_metrics_port:
            from bot.metrics import serve_metrics

            serve_metrics(settings.rollbot_metrics_host, settings.rollbot_worker_metrics_port)
        Worker(build(settings, pool_size=WORKER_POOL)).run_forever()
        return 0
    if args.command == "socket":
        os.environ.pop(MULTIPROC_ENV, None)
        from bot.server import serve_socket_mode

        return serve_socket_mode(settings)
    if args.command == "dev":
        from bot.dev import run_dev

        return run_dev(demo=args.demo, port=args.port)
    if args.command == "check-config":
        from bot.checks import check_config

        return check_config(settings, secrets_of(settings))
    if args.command == "manifest":
        from bot.manifest import manifest

        print(json.dumps(manifest(args.url), indent=2))
        return 0
    if args.command == "secret-key":
        from integrations.secret_box import new_key

        print(new_key())
        return 0
    if args.command == "rotate-secret-key":
        from bot.report import rotate_snapshots

        return rotate_snapshots(settings)
    if args.command == "report":
        from bot.report import print_report

        return print_report(settings, args.incident, args.format)
    raise AssertionError(args.command)


def secrets_of(settings: Settings) -> list[str]:
    values = [settings.slack_bot_token, settings.slack_signing_secret, settings.slack_app_token,
              settings.vercel_token, settings.rollbot_secret_key]
    found = [secret(v) for v in values if v is not None]
    for url in (settings.database_url, settings.redis_url):
        if url is not None and "@" in secret(url) and ":" in secret(url).split("@")[0].split("//")[-1]:
            found.append(secret(url).split("@")[0].split("//")[-1].split(":", 1)[1])  # the password
    return found


if __name__ == "__main__":
    sys.exit(main())
