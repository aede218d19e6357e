"""Postgres ``LISTEN``: wake the worker the moment due work is written (``NOTIFY`` is sent by the
transaction that writes a due job, and delivered when it commits).

A wake-up is only a hint: the worker claims from the table, and its tick still runs when a
notification is lost (a dropped connection, a restart), so nothing depends on it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg

from integrations.pg_work import JOBS_CHANNEL

log = logging.getLogger("rollbot.worker")


class JobWakeups:
    """A thread holding one connection that LISTENs and calls ``on_wake`` per notification."""

    def __init__(self, database_url: str, on_wake: Callable[[], None], *, retry_every: float = 2.0) -> None:
        self._url = database_url
        self._on_wake = on_wake
        self._retry_every = retry_every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="rollbot-wakeups", daemon=True)
        self.listening = threading.Event()  # set while a LISTEN is in place (tests wait on it)

    def start(self) -> JobWakeups:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {JOBS_CHANNEL}")
                    self.listening.set()
                    self._on_wake()  # anything written while we were not listening
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=0.5):
                            self._on_wake()
            except psycopg.Error as error:
                self.listening.clear()
                log.warning("LISTEN for due work failed (%s); the tick still runs", type(error).__name__)
                self._stop.wait(self._retry_every)
        self.listening.clear()
