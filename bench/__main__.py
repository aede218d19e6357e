"""`python -m bench`: Rollbot against a bare Bolt app, side by side, at rising concurrency.

Both apps are served the same way (gunicorn, gthread, 2 workers x 16 threads) and take the same
signed requests over loopback HTTP, one new connection per request, from a load generator in its
own process (bench.load). For each network latency of the emulators (0 and 200 ms), each run,
each concurrency and each request (`/rollback help`, `/rollback code <env>`, an Approve click),
the two apps take turns (the order flips every run); each number printed is the median over runs.
First, per latency, a few code rollbacks one at a time (`--alone`): the request -> root message,
click -> call and click -> "Verified" times no burst shares. Every timed code request is a real
one (its own environment, so a new incident and root message), and every timed Approve click
decides one of those incidents, which the worker then executes:
approve -> Vercel call and approve -> "Verified" message are measured on those. Then 200
monitoring reminders in 200 channels are made due at once. Peak memory is read from /proc.

`python -m bench --smoke` is the short variant CI runs to check that the benchmark still works;
it asserts nothing about timing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

for _name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
    os.environ[_name] = ""

from bench.runtime import runtime_python  # noqa: E402
from bench.stack import SIGNING_SECRET, Stack, channel_of, env_name  # noqa: E402
from sandbox.team import ALICE, CAROL  # noqa: E402

APPS = ("rollbot", "bare")
REQUESTS = ("help", "code", "approve")
SLACK_LIMIT_MS = 3000.0


@dataclass
class Results:
    """Samples by (latency ms, request, concurrency, app): one list of per-run percentiles each."""

    acks: dict[tuple[int, str, int, str], list[dict[str, float]]] = field(default_factory=lambda: defaultdict(list))
    to_root: dict[tuple[int, int], list[dict[str, float]]] = field(default_factory=lambda: defaultdict(list))
    to_call: dict[tuple[int, int], list[dict[str, float]]] = field(default_factory=lambda: defaultdict(list))
    to_verified: dict[tuple[int, int], list[dict[str, float]]] = field(default_factory=lambda: defaultdict(list))
    reminders: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    failures: dict[tuple[int, str, int, str], int] = field(default_factory=lambda: defaultdict(int))
    slow: dict[tuple[int, str, int, str], int] = field(default_factory=lambda: defaultdict(int))
    rss: dict[str, dict[str, float]] = field(default_factory=dict)
    # latency -> (request -> root message, approve -> Vercel call, approve -> "Verified"), ms, one rollback at a time
    alone: dict[int, tuple[list[float], list[float], list[float]]] = field(default_factory=dict)
    cpu: dict[tuple[int, str, int, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    # (latency, c) -> per run: the worker's CPU (ms), Slack and Vercel calls, per rollback
    work: dict[tuple[int, int], list[dict[str, float]]] = field(default_factory=lambda: defaultdict(list))


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]

    return {"p50": statistics.median(ordered), "p95": at(0.95), "p99": at(0.99), "max": ordered[-1]}


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def fire(stack: Stack, app: str, bodies: list[bytes], concurrency: int,
         cpu: list[float] | None = None) -> dict[str, list[Any]]:
    """Send ``bodies`` to ``app``; when ``cpu`` is given, append the CPU its web process spent per
    request (ms, while they were answered: the cost of an ack, work after it included)."""
    server = stack.web if app == "rollbot" else stack.bare
    before = server.cpu_seconds()
    job = {"host": "127.0.0.1", "port": stack.port(app), "path": "/slack/events", "secret": SIGNING_SECRET,
           "concurrency": concurrency, "bodies": [body.decode() for body in bodies]}
    done = subprocess.run([sys.executable, "-m", "bench.load"], input=json.dumps(job), capture_output=True,
                          text=True, check=True)
    result: dict[str, list[Any]] = json.loads(done.stdout)
    if cpu is not None:
        cpu.append((server.cpu_seconds() - before) * 1000 / max(1, len(bodies)))
    return result


def _record(results: Results, key: tuple[int, str, int, str], outcome: dict[str, list[Any]]) -> None:
    results.acks[key].append(percentiles(outcome["ms"]))
    results.failures[key] += sum(1 for status in outcome["status"] if status != 200)
    results.slow[key] += sum(1 for ms in outcome["ms"] if ms > SLACK_LIMIT_MS)


def _roots(stack: Stack, count: int, since: float) -> dict[int, dict[str, Any]]:
    """The root message posted after ``since`` in each of the first ``count`` environments."""
    deadline = time.monotonic() + 30 + count / 5  # generous: this waits, it does not judge
    found: dict[int, dict[str, Any]] = {}
    cursor = 0  # only new messages are read each time: a long run posts tens of thousands
    while True:
        posted, cursor = stack.slack.messages_since(cursor)
        for message in posted:
            channel = message.get("channel", "")
            if (channel.startswith("CBENCH") and message.get("thread_ts", message["ts"]) == message["ts"] and float(message["ts"]) >= since
                    and "approve" in json.dumps(message.get("blocks"))):
                found[int(channel[6:])] = message  # the newest root of that channel wins
        if all(n in found for n in range(count)):
            return {n: found[n] for n in range(count)}
        if time.monotonic() > deadline:
            missing = [env_name(n) for n in range(count) if n not in found]
            raise RuntimeError(f"only {len(found)} of {count} root messages were posted (of {cursor} messages); "
                               f"missing {', '.join(missing[:10])}:\n{stack.why_not(missing, since)}")
        time.sleep(0.05)


def _first_calls(calls: list[dict[str, Any]], after: float, match: Any) -> dict[int, float]:
    first: dict[int, float] = {}
    for call in calls:
        if call["at"] >= after and (n := match(call)) is not None and n not in first:
            first[n] = call["at"]
    return first


def _wait_verified(stack: Stack, started: dict[int, float], cursor: int = 0) -> tuple[list[float], list[float]]:
    """Approve -> Vercel rollback call and approve -> the "Verified" message, in ms, per incident.
    Slack's calls are read from index ``cursor`` on: the calls before the clicks are never copied
    (under the emulator's lock, which every Web API call needs) while the rollbacks run."""
    since = min(started.values())
    deadline = time.monotonic() + 60 + len(started)  # generous: this waits, it does not judge

    def vercel(call: dict[str, Any]) -> int | None:
        path = call["path"]
        if call["method"] == "POST" and path.startswith("/v1/projects/prj_bench_") and "/rollback" in path:
            return int(path.split("/")[3][len("prj_bench_"):])
        return None

    def verified(call: dict[str, Any]) -> int | None:
        if call["method"] in ("chat.postMessage", "chat.update") and "Verified." in json.dumps(call["args"]):
            channel = str(call["args"].get("channel", ""))
            return int(channel[6:]) if channel.startswith("CBENCH") else None
        return None

    seen: dict[int, float] = {}
    while True:
        calls, cursor = stack.slack.calls_since(cursor)
        seen = {**_first_calls(calls, since, verified), **seen}  # the first sighting stays
        if all(n in seen for n in started):
            break
        if time.monotonic() > deadline:
            missing = [env_name(n) for n in started if n not in seen]
            raise RuntimeError(f"only {len(seen)} of {len(started)} rollbacks were verified; missing "
                               f"{', '.join(missing[:10])}:\n{stack.why_not(missing, since)}")
        time.sleep(0.1)
    calls = _first_calls(stack.vercel.calls, since, vercel)
    return ([(calls[n] - started[n]) * 1000 for n in started if n in calls],
            [(seen[n] - started[n]) * 1000 for n in started])


def _reminders(stack: Stack, count: int, timeout: float = 60) -> float:
    ids = list(stack.incident_ids([env_name(n) for n in range(count)]).values())
    started = time.time()
    stack.make_due(ids)
    deadline = time.monotonic() + timeout
    sent: dict[str, float] = {}
    cursor = stack.slack.calls_since(1 << 62)[1]  # from now on
    while True:
        calls, cursor = stack.slack.calls_since(cursor)
        for call in calls:
            if (call["method"] == "chat.postMessage" and call["at"] >= started
                    and "Monitoring 1/3" in json.dumps(call["args"])):
                sent.setdefault(str(call["args"].get("channel")), call["at"])
        if len(sent) >= count:
            return max(sent.values()) - started
        if time.monotonic() > deadline:  # reported, not raised: the rest of the run still counts
            print(f"!! only {len(sent)} of {count} reminders were sent within {timeout:.0f} s", file=sys.stderr)
            return float("inf")
        time.sleep(0.02)


def alone(stack: Stack, results: Results, latency: int, rounds: int) -> None:
    """One code rollback at a time, the machine otherwise idle: the time from the deciding click
    to Vercel's rollback call and to the "Verified" message that no burst shares (a team's usual
    incident). Each round has an environment and a channel of its own (so no round spends the
    next one's posting budget), requests, waits for the root message and 3 s more (a person
    approves seconds after the request, by which time its thread notes are out), then approves
    and waits for "Verified"."""
    client, to_root, to_call, to_verified = stack.client, [], [], []
    for n in range(rounds):
        stack.settle()
        stack.slack.forget_calls()  # nothing earlier is copied while this round is timed
        stack.vercel.forget_calls()
        messages = stack.slack.messages_since(1 << 62)[1]
        requested = fire(stack, "rollbot", [client.command_body(ALICE, f"code {env_name(n)} alone {latency}",
                                                                channel_id=channel_of(n))], 1)
        root = _root(stack, n, messages)
        to_root.append((float(root["ts"]) - requested["started"][0]) * 1000)
        time.sleep(3.0)
        click = urlencode({"payload": json.dumps(client.click_payload(CAROL, channel=channel_of(n),
                                                                      message_ts=root["ts"],
                                                                      action_id="approve"))}).encode()
        outcome = fire(stack, "rollbot", [click], 1)
        call, verified = _wait_verified(stack, {n: outcome["started"][0]})
        to_call += call
        to_verified += verified
    stack.settle()
    results.alone[latency] = (to_root, to_call, to_verified)


def _root(stack: Stack, n: int, cursor: int, timeout: float = 30) -> dict[str, Any]:
    """The root message posted in environment ``n``'s channel from message index ``cursor`` on."""
    started, deadline = time.time(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        posted, cursor = stack.slack.messages_since(cursor)
        for message in posted:
            if (message.get("channel") == channel_of(n) and message.get("thread_ts", message["ts"]) == message["ts"]
                    and "approve" in json.dumps(message.get("blocks"))):
                return message
        time.sleep(0.02)
    raise RuntimeError(f"no root message in {channel_of(n)}:\n{stack.why_not([env_name(n)], started)}")


def one_level(stack: Stack, results: Results, latency: int, run: int, concurrency: int, count: int,
              reminders: int) -> None:
    order = APPS if run % 2 == 0 else tuple(reversed(APPS))
    # Each level reads only its own calls: the emulators (in this process) drop the ones before,
    # or a long run's log (every call's arguments) grows to hundreds of MiB and the garbage
    # collector's passes over it slow the emulators, and with them every later level's worker.
    stack.slack.forget_calls()
    stack.vercel.forget_calls()
    client = stack.client
    help_bodies = [client.command_body(ALICE, "help", channel_id=channel_of(n)) for n in range(count)]
    for app in order:
        _record(results, (latency, "help", concurrency, app),
                fire(stack, app, help_bodies, concurrency, results.cpu[(latency, "help", concurrency, app)]))
    code_bodies = [client.command_body(ALICE, f"code {env_name(n)} bench run {run}", channel_id=channel_of(n))
                   for n in range(count)]
    roots: dict[int, dict[str, Any]] = {}
    for app in order:
        if app == "rollbot":
            stack.settle()
            since = time.time()
        outcome = fire(stack, app, code_bodies, concurrency, results.cpu[(latency, "code", concurrency, app)])
        _record(results, (latency, "code", concurrency, app), outcome)
        if app == "rollbot":  # before the other app's turn: the worker's planning must not load it
            roots = _roots(stack, count, since)
            results.to_root[(latency, concurrency)].append(percentiles(
                [(float(roots[n]["ts"]) - started) * 1000 for n, started in enumerate(outcome["started"])]))
    clicks = [urlencode({"payload": json.dumps(client.click_payload(CAROL, channel=channel_of(n), message_ts=root["ts"],
                                                                    action_id="approve"))}).encode()
              for n, root in roots.items()]
    for app in order:
        if app == "rollbot":
            worker_cpu = stack.worker.cpu_seconds()
            slack_calls = stack.slack.calls_since(1 << 62)[1]
            vercel_calls = len(stack.vercel.calls)
        outcome = fire(stack, app, clicks, concurrency, results.cpu[(latency, "approve", concurrency, app)])
        _record(results, (latency, "approve", concurrency, app), outcome)
        if app == "rollbot":
            started = dict(zip(roots, outcome["started"], strict=True))
            to_call, to_verified = _wait_verified(stack, started, slack_calls)
            results.to_call[(latency, concurrency)].append(percentiles(to_call))
            results.to_verified[(latency, concurrency)].append(percentiles(to_verified))
            results.work[(latency, concurrency)].append({
                "worker_ms": (stack.worker.cpu_seconds() - worker_cpu) * 1000 / count,
                "slack": (stack.slack.calls_since(1 << 62)[1] - slack_calls) / count,
                "vercel": (len(stack.vercel.calls) - vercel_calls) / count})
    if reminders and count >= reminders:
        results.reminders[latency].append(_reminders(stack, reminders))


def report(results: Results, levels: list[int], latencies: list[int], runs: int, command: str,
           placement: str = "") -> str:
    out = [f"Rollbot vs a bare Bolt app: {command}",
           f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}, "
           f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; medians of {runs} run(s); ms unless stated",
           *([placement] if placement else []), ""]
    for latency in latencies:
        out.append(f"## Emulators at {latency} ms latency")
        out.append("")
        out.append("| request | c | Rollbot p50 / p95 / p99 | bare p50 / p95 / p99 | p99 ratio | > 3 s | failed |")
        out.append("|---|---|---|---|---|---|---|")
        for request in REQUESTS:
            for c in levels:
                ours, bare = (median_of(results.acks[(latency, request, c, app)]) for app in APPS)
                slow = results.slow[(latency, request, c, "rollbot")]
                failed = results.failures[(latency, request, c, "rollbot")]
                out.append(f"| {request} | {c} | {ours['p50']:.1f} / {ours['p95']:.1f} / {ours['p99']:.1f} | "
                           f"{bare['p50']:.1f} / {bare['p95']:.1f} / {bare['p99']:.1f} | "
                           f"{ours['p99'] / bare['p99']:.2f} | {slow} | {failed} |")
        root, call, verified = results.alone.get(latency, ([], [], []))
        if root and call and verified:
            out.append("")
            out.append(f"One rollback at a time ({len(call)}), the machine otherwise idle: request -> root message "
                       f"{statistics.median(root):.0f} ms (max {max(root):.0f}), approve -> Vercel rollback "
                       f"call {statistics.median(call):.0f} ms (max {max(call):.0f}), approve -> \"Verified\" message "
                       f"{statistics.median(verified):.0f} ms (max {max(verified):.0f})")
        out.append("")
        out.append("| after the request or the deciding click | c | p50 | p95 | p99 |")
        out.append("|---|---|---|---|---|")
        for name, table in (("request -> root message", results.to_root), ("approve -> Vercel rollback call",
                            results.to_call), ('approve -> "Verified" message', results.to_verified)):
            for c in levels:
                row = median_of(table[(latency, c)])
                out.append(f"| {name} | {c} | {row['p50']:.0f} | {row['p95']:.0f} | {row['p99']:.0f} |")
        if results.reminders.get(latency):
            times = results.reminders[latency]
            out.append("")
            out.append(f"Reminders due at once, each in its own channel: all sent in {statistics.median(times):.2f} s "
                       f"(runs: {', '.join(f'{t:.2f}' for t in times)})")
        out.append("")
        out.append("Web CPU per request (ms, user + system, all of the web's processes while the batch was "
                   "answered; Rollbot / bare):")
        out.append("")
        out.append("| request | " + " | ".join(f"c={c}" for c in levels) + " |")
        out.append("|---|" + "---|" * len(levels))
        for request in REQUESTS:
            cells = [" / ".join(f"{statistics.median(results.cpu[(latency, request, c, app)]):.2f}" for app in APPS)
                     for c in levels]
            out.append(f"| {request} | " + " | ".join(cells) + " |")
        out.append("")
        out.append("Work per rollback, from the deciding click to the last \"Verified\" message (the worker's "
                   "CPU, and the calls the emulators received meanwhile):")
        out.append("")
        out.append("| | " + " | ".join(f"c={c}" for c in levels) + " |")
        out.append("|---|" + "---|" * len(levels))
        for key, label, digits in (("worker_ms", "worker CPU (ms)", 1), ("slack", "Slack calls", 1),
                                   ("vercel", "Vercel calls", 1)):
            cells = [f"{statistics.median(run[key] for run in results.work[(latency, c)]):.{digits}f}" for c in levels]
            out.append(f"| {label} | " + " | ".join(cells) + " |")
        out.append("")
        out.append("Growth of p99 from c=1 (Rollbot / bare):")
        out.append("")
        out.append("| request | " + " | ".join(f"c={c}" for c in levels) + " |")
        out.append("|---|" + "---|" * len(levels))
        for request in REQUESTS:
            base = {app: median_of(results.acks[(latency, request, levels[0], app)])["p99"] for app in APPS}
            cells = []
            for c in levels:
                ours, bare = (median_of(results.acks[(latency, request, c, app)])["p99"] / base[app] for app in APPS)
                cells.append(f"{ours:.1f}x / {bare:.1f}x")
            out.append(f"| {request} | " + " | ".join(cells) + " |")
        out.append("")
    out.append("Peak RSS (MiB):")
    out.append("")
    for name, processes in results.rss.items():
        total = sum(processes.values())
        parts = ", ".join(f"{label} {mib:.0f}" for label, mib in processes.items())
        out.append(f"- {name}: {total:.0f} ({parts})")
    web, bare = (sum(results.rss.get(name, {}).values()) for name in ("rollbot-web", "bare-bolt"))
    if web and bare:
        out.append(f"- web / bare Bolt: {web / bare:.2f}x")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a short run that checks the benchmark works (CI)")
    parser.add_argument("--levels", default="1,10,50,100,200", help="concurrency levels")
    parser.add_argument("--latencies", default="0,200", help="emulator latencies in ms")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--min-requests", type=int, default=100, help="requests per batch at least (2 x c otherwise)")
    parser.add_argument("--reminders", type=int, default=200)
    parser.add_argument("--alone", type=int, default=5, help="rollbacks one at a time, before the bursts")
    parser.add_argument("--isolate", action="store_true",
                        help="both webs on the first core, everything else the benchmark starts on the others")
    parser.add_argument("--current-python", action="store_true",
                        help="servers on this interpreter, not a production install (bench.runtime; the smoke "
                             "run's choice)")
    args = parser.parse_args(argv)
    if args.isolate and len(os.sched_getaffinity(0)) < 2:
        parser.error("--isolate needs at least two cores")
    if args.smoke:
        args.levels, args.latencies, args.runs, args.min_requests, args.reminders, args.alone = "1,4", "0", 1, 8, 8, 1
        args.current_python = True
    levels = sorted({int(c) for c in args.levels.split(",")})
    latencies = [int(ms) for ms in args.latencies.split(",")]
    counts = {c: max(args.min_requests, 2 * c) for c in levels}
    python = sys.executable if args.current_python else runtime_python()
    stack = Stack(max(max(counts.values()), args.reminders, args.alone), python=python, isolate=args.isolate)
    results = Results()
    try:
        for latency in latencies:
            stack.set_latency(latency / 1000)
            print(f"… {latency} ms latency, one rollback at a time", file=sys.stderr, flush=True)
            alone(stack, results, latency, args.alone)
            for run in range(args.runs):
                for c in levels:
                    print(f"… {latency} ms latency, run {run + 1}/{args.runs}, c={c}", file=sys.stderr, flush=True)
                    one_level(stack, results, latency, run, c, counts[c],
                              args.reminders if c == levels[-1] else 0)
        for process in (stack.web, stack.worker, stack.bare):
            results.rss[process.name] = process.peak_rss_mib()
        placement = stack.placement()
    finally:
        stack.close()
    command = "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])
    print(report(results, levels, latencies, args.runs, command.strip(), placement))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
