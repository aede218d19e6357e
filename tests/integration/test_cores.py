"""integrations.cores on this machine: a process keeps its threads on one core, and the tools it
starts (pg_tools.start: pg_dump, pg_restore) get every core back."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

SCRIPT = """
import json, os, subprocess, threading, time
from integrations import pg_tools
from integrations.cores import OneCore
earlier = threading.Thread(target=time.sleep, args=(3,))  # running before: it must be moved
earlier.start()
assert OneCore().start()
later = threading.Thread(target=time.sleep, args=(1,))  # started after: it inherits the one core
later.start()
threads = {int(t): sorted(os.sched_getaffinity(int(t))) for t in os.listdir("/proc/self/task")}
assert earlier.native_id in threads and later.native_id in threads
with open(os.devnull, "wb") as errors:
    child = pg_tools.start(["sleep", "5"], dict(os.environ), errors)
try:
    print(json.dumps({"threads": threads, "child": sorted(os.sched_getaffinity(child.pid))}))
finally:
    pg_tools.end(child)
"""


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs Linux and two cores")
def test_one_core_for_every_thread_and_every_core_for_the_tools_it_starts() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=30,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    allowed = sorted(os.sched_getaffinity(0))
    placed = {tuple(cores) for cores in seen["threads"].values()}
    assert len(placed) == 1 and len(next(iter(placed))) == 1 and next(iter(placed))[0] in allowed, seen
    assert seen["child"] == allowed, seen
