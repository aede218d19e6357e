"""An adapter built on its first use, for a process that may never use it.

A web worker answers Slack and writes jobs; the worker process calls Vercel and the health
check URLs. The web still holds the same container (a listener may read a provider after its
ack), so its HTTP clients are built, and httpx imported (about 6 MiB of every web worker's
memory), only when one of them is first called."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class Deferred:
    """Stands in for what ``build()`` returns: the first attribute asked for builds it (once,
    whichever thread asks first; a build that raised is tried again on the next use), and every
    later one is the built object's. ``close()`` closes it only if it was built; after it,
    nothing is built any more. The names defined here (``get``, ``built``, ``close``) shadow the
    built object's: a test checks that the adapters deferred do not define the first two."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._built: Any = None
        self._closed = False
        self._lock = threading.Lock()

    @property
    def built(self) -> bool:
        return self._built is not None

    def get(self) -> Any:
        built = self._built
        if built is None:
            with self._lock:
                if self._closed:
                    raise RuntimeError("used after close(): nothing is built once it is closed")
                if self._built is None:
                    self._built = self._build()
                built = self._built
        return built

    def __getattr__(self, name: str) -> Any:  # only for names this class does not define
        if name.startswith("__") or name in ("_build", "_built", "_closed", "_lock"):  # copy, pickle, half-made
            raise AttributeError(name)
        return getattr(self.get(), name)

    def close(self) -> None:
        with self._lock:  # waits for a build under way, and closes what it made
            self._closed = True
            built = self._built
        if built is not None:
            built.close()
