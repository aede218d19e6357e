"""The benchmark still runs: `python -m bench --smoke` starts both apps, fires every request and
prints every table. It asserts what the run did, never how fast (bench/RESULTS.md has timings)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("isolate", [False, True], ids=["shared", "isolated"])
def test_the_benchmark_smoke_run_prints_every_table_with_no_failed_request(database_url: str, redis_url: str,
                                                                           isolate: bool) -> None:
    if isolate and len(os.sched_getaffinity(0)) < 2:
        pytest.skip("--isolate needs two cores")
    done = subprocess.run([sys.executable, "-m", "bench", "--smoke", *(["--isolate"] if isolate else [])], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url})
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    # The smoke run's servers run on this interpreter; --isolate gives the webs a core of their own.
    placement = ("both webs on core \\d+, everything else on the other cores" if isolate
                 else "every process on every core")
    assert re.search(rf"^servers on \S*python\S*; {placement}$", out, re.MULTILINE), out[:600]
    rows = re.findall(r"^\| (help|code|approve) \| (\d+) \| .* \| (\d+) \| (\d+) \|$", out, re.MULTILINE)
    assert sorted((request, int(c)) for request, c, _, _ in rows) == sorted(
        (request, c) for request in ("help", "code", "approve") for c in (1, 4))
    assert all(slow == "0" and failed == "0" for _, _, slow, failed in rows), out
    for c in (1, 4):  # every request was planned, and every deciding click reached Vercel and was verified
        for name in ("request -> root message", "approve -> Vercel rollback call", 'approve -> "Verified" message'):
            assert re.search(rf"^\| {re.escape(name)} \| {c} \| \d+ \| \d+ \| \d+ \|$", out, re.MULTILINE), out
    # One rollback alone (one round in the smoke run) reached Vercel and was verified.
    assert re.search(r"^One rollback at a time \(1\), the machine otherwise idle: request -> root message \d+ ms "
                     r"\(max \d+\), approve -> Vercel rollback call "
                     r"\d+ ms \(max \d+\), approve -> \"Verified\" message \d+ ms \(max \d+\)$", out, re.MULTILINE), out
    assert re.search(r"^Reminders due at once, each in its own channel: all sent in [\d.]+ s", out, re.MULTILINE), out
    cpu = re.findall(r"^\| (help|code|approve) \| ([\d.]+) / ([\d.]+) \| ([\d.]+) / ([\d.]+) \|$", out, re.MULTILINE)
    # The web's CPU per request, both apps, c=1 and 4 (read in clock ticks: a short batch may read 0).
    assert sorted(request for request, *_ in cpu) == ["approve", "code", "help"], out
    # The work per rollback: every rollback made its Vercel rollback call and read it back, and
    # told Slack (lower bounds: how often a redraw is drawn again depends on timing; the
    # worker's CPU is in clock ticks).
    found = re.findall(r"^\| (worker CPU \(ms\)|Slack calls|Vercel calls) \| ([\d.]+) \| ([\d.]+) \|$", out,
                       re.MULTILINE)
    work = {name: (float(c1), float(c4)) for name, c1, c4 in found}
    assert set(work) == {"worker CPU (ms)", "Slack calls", "Vercel calls"}, out
    assert all(calls >= 2 for calls in work["Vercel calls"]) and all(calls >= 1 for calls in work["Slack calls"]), out
    for process in ("rollbot-web", "rollbot-worker", "bare-bolt"):
        assert re.search(rf"^- {process}: \d+ \(", out, re.MULTILINE), out
