"""`rollbot dev`: the local sandbox (SPEC §9). The only production-side module that imports
``sandbox`` (the import-linter contract allows exactly this)."""

from __future__ import annotations

import os
from pathlib import Path


def run_dev(*, demo: bool, port: int | None) -> int:
    from bot import logs
    from sandbox.console import interactive
    from sandbox.demo import run_demo
    from sandbox.devenv import DevEnvironment

    logs.configure(os.environ.get("ROLLBOT_LOG_LEVEL", "WARNING"), readable=True)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        os.environ[name] = ""
    dev = DevEnvironment(Path(os.environ.get("ROLLBOT_DEV_DIR", ".rollbot/dev")).resolve(), port)
    try:
        dev.start()
        return run_demo(dev) if demo else interactive(dev)
    finally:
        dev.stop()
