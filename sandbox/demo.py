"""`rollbot dev --demo`: the whole story of a code rollback, played in the console and checked."""

from __future__ import annotations

import time
from collections.abc import Callable

from sandbox.console import Console
from sandbox.devenv import DevEnvironment
from sandbox.team import CHANNEL, PROJECT

ANSWERS = iter([  # the Resolve modal's fields, in order
    "The catalog cache change served stale prices and broke checkout totals.",
    "Canary cache changes behind a flag; add a checkout-total check to the health endpoint.",
    "Runbook: roll cache changes back with their flag first",  # a runbook or docs change …
    "carol",  # … and its owner
    "A checkout-total check in the health endpoint",  # a test to add …
    "bob",  # … and its owner
])


def _answer(label: str) -> str:
    text = next(ANSWERS, "n/a")
    print(label + text)
    return text


def run_demo(dev: DevEnvironment, out: Callable[[str], None] = print) -> int:
    console = Console(dev, out)

    def step(line: str) -> None:
        out(f"\n{console.user}> {line}")
        console.run_line(line, prompt=_answer)

    def click(label: str) -> None:
        target = next(c for c in reversed(console.renderer.clickables) if c.label.startswith(label))
        step(f"click {target.number}")

    bad = dev.vercel.production(PROJECT)
    step("/rollback code prod checkout returns 500 since the last deploy")
    click("Approve")  # alice may not approve her own request
    step("as bob")
    click("Approve")  # bob is an engineer, not a lead
    step("as carol")
    click("Approve")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any("Verified" in str(m.get("blocks")) for m in dev.slack.messages(CHANNEL)):
        time.sleep(0.2)
    console.settle(_answer)
    for _ in range(3):
        step("time +5m")
    click("Resolve")
    summary = [m for m in dev.slack.messages(CHANNEL) if "Post-incident summary" in str(m.get("blocks"))]
    rolled_back = dev.vercel.production(PROJECT) != bad
    rollbacks = len(dev.vercel.calls_to("POST", f"/v1/projects/{PROJECT}/rollback"))
    ok = bool(summary) and rolled_back and rollbacks == 1 and not dev.slack.validation_errors
    out(f"\nDemo {'complete' if ok else 'FAILED'}: production moved off {bad}: {rolled_back}; "
        f"Vercel rollback calls: {rollbacks}; summary posted: {bool(summary)}; "
        f"Block Kit errors: {len(dev.slack.validation_errors)}.")
    return 0 if ok else 1
