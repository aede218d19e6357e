"""The Slack emulator's call ledger: a log of every Web API call (refused ones too), and the
rate limits and faults a test scripts for the next calls of a method. A part of
:class:`sandbox.slack_state.SlackState`, under its lock."""

from __future__ import annotations

import copy
import threading
import time
from typing import Any

Record = dict[str, Any]
"""A Slack-shaped JSON object as stored by the emulator."""

FAULTS = frozenset({"drop_after", "error_after", "error_before", "internal_error_after", "ratelimited", "slow_after"})


class CallLedger:
    lock: threading.RLock

    def _clear_calls(self) -> None:
        self._calls: list[Record] = []
        self._rate_limits: dict[str, list[int]] = {}
        self._faults: dict[str, list[tuple[str, float] | None]] = {}

    # -- scripting (test setup) --------------------------------------------------------------

    def script_rate_limit(self, method: str, times: int = 1, retry_after: int = 1) -> None:
        """Make the next ``times`` calls of ``method`` answer HTTP 429 with ``Retry-After``."""
        with self.lock:
            self._rate_limits[method] = [times, retry_after]

    def script_fault(self, method: str, fault: str, times: int = 1, delay: float = 0.0, every: int = 1,
                     skip: int = 0) -> None:
        """Make the next ``times`` calls of ``method`` (every ``every``-th call, starting with the
        next, or after the next ``skip`` calls) fail the way a network or Slack does:

        * ``"drop_after"``: the call is applied, then the connection closes with no answer;
        * ``"error_after"``: the call is applied, then HTTP 500 (a gateway gave up on it);
        * ``"error_before"``: HTTP 503 and nothing applied;
        * ``"internal_error_after"``: the call is applied, then HTTP 200 ``internal_error``;
        * ``"ratelimited"``: HTTP 429 with ``Retry-After: 1`` and nothing applied;
        * ``"slow_after"``: the call is applied, then the answer waits ``delay`` seconds.
        """
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {sorted(FAULTS)}")
        with self.lock:
            pattern: list[tuple[str, float] | None] = [(fault, delay)] + [None] * (max(every, 1) - 1)
            self._faults.setdefault(method, []).extend([None] * skip + pattern * times)

    def take_fault(self, method: str) -> tuple[str, float] | None:
        """Consume the next scripted fault of ``method``, if any."""
        queue = self._faults.get(method)
        if not queue:
            return None
        fault = queue.pop(0)
        if not queue:
            del self._faults[method]
        return fault

    # -- the log ----------------------------------------------------------------------------------

    @property
    def calls(self) -> list[Record]:
        """Every Web API call, including refused ones: ``{"method", "args", "at", "status", "error"}``."""
        with self.lock:
            return copy.deepcopy(self._calls)

    def calls_since(self, start: int) -> tuple[list[Record], int]:
        """The calls recorded from index ``start`` on (copies), and the index to read from next:
        for a caller that polls a long run without copying every call each time."""
        with self.lock:
            return copy.deepcopy(self._calls[start:]), len(self._calls)

    def forget_calls(self) -> None:
        """Drop the call log (a long benchmark's: every call's arguments, hundreds of MiB)."""
        with self.lock:
            self._calls.clear()

    def calls_to(self, method: str) -> list[Record]:
        """The recorded calls of one Web API method."""
        with self.lock:
            return copy.deepcopy([c for c in self._calls if c["method"] == method])

    # -- for the Web API, which holds ``lock`` --------------------------------------------------

    def take_rate_limit(self, method: str) -> int | None:
        """Consume one scripted 429 for ``method``; returns its Retry-After or ``None``."""
        script = self._rate_limits.get(method)
        if not script or script[0] <= 0:
            return None
        script[0] -= 1
        if script[0] == 0:
            del self._rate_limits[method]
        return script[1]

    def record_call(self, method: str, args: Record, status: int, error: str | None,
                    fault: str | None = None) -> None:
        """Append one entry to the call log (``fault``: the scripted fault it met, if any)."""
        self._calls.append(
            {"method": method, "args": copy.deepcopy(args), "at": time.time(), "status": status, "error": error,
             "fault": fault}
        )
