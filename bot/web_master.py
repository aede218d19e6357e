"""`rollbot web`'s gunicorn master. `rollbot web` checks the configuration, then execs this
module, so the master holds gunicorn and nothing of the app (about a bare Bolt app's master in
memory); each worker imports and builds the app after the fork, configures its own logging with
secrets redacted, and writes its counters for prometheus_client's multiprocess mode.

    python -m bot.web_master HOST PORT WORKERS THREADS
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication

POOL_WAIT = 2.0  # seconds a request waits for a Postgres connection: its ack is due within 3 s
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus_client when imported: never in the master first


class RollbotWeb(BaseApplication):
    def __init__(self, host: str, port: int, workers: int, threads: int) -> None:
        self.options = {
            "bind": f"{host}:{port}",
            "workers": max(1, workers),
            "worker_class": "gthread",
            "threads": max(1, threads),
            "timeout": 60,
            "graceful_timeout": 20,
            "keepalive": 5,
            "accesslog": None,
            "loglevel": "warning",
            "proc_name": "rollbot-web",
            "worker_exit": self.worker_exit,
            "child_exit": child_exit,
        }
        self.container: Any = None  # this worker process's, set by load()
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from bot import logs
        from bot.bootstrap import build
        from bot.cli import secrets_of
        from bot.settings import Settings
        from bot.wsgi import RollbotWSGI

        settings = Settings()
        logs.configure(settings.rollbot_log_level, secrets=secrets_of(settings))
        # A connection for every request thread (each checks the replay ledger) and a few for the
        # listeners' work after the ack; fewer made the 16th concurrent request queue for one.
        self.container = build(settings, pool_size=settings.rollbot_web_threads + 4, pool_wait=POOL_WAIT,
                               http_on_first_use=True)  # Vercel and health checks are the worker's
        return RollbotWSGI(self.container)

    def worker_exit(self, _server: object, _worker: object) -> None:
        """Close the worker's pools before the interpreter exits. Left to the garbage collector
        at shutdown, psycopg's pool waits 5 s per background thread on Python 3.13+, which held
        every SIGTERM for 20 s."""
        if self.container is not None:
            self.container.close()


def metrics_dir() -> str:
    """The directory every worker writes its counters to, and a scrape of any worker adds up:
    ``PROMETHEUS_MULTIPROC_DIR`` if the operator set it (its old counter files removed, so the
    counters start at zero with the process, as Prometheus expects), else a fresh one."""
    given = os.environ.get(MULTIPROC_ENV)
    path = Path(given) if given else Path(tempfile.mkdtemp(prefix="rollbot-metrics-"))
    path.mkdir(parents=True, exist_ok=True)
    for old in path.glob("*.db"):
        old.unlink()
    return str(path)


def child_exit(_server: object, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def main(argv: list[str]) -> int:
    host, port, workers, threads = argv
    os.environ[MULTIPROC_ENV] = metrics_dir()
    RollbotWeb(host, int(port), int(workers), int(threads)).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
