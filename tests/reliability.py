"""Write docs/reliability.md from a test run's results (never by hand).

Tests marked ``@pytest.mark.reliability(kind, name, trials=N)`` record how they ended in
``build/reliability-py3.X.json`` (see tests/conftest.py). This groups them by fault or attack:

    python3 -m tests.reliability            # write docs/reliability.md from the last run
    python3 -m tests.reliability --check    # fail when docs/reliability.md is not what the run says

Standard library only, so any Python can run it.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "reliability.md"
RESULTS = ROOT / "build" / (f"reliability-py{sys.version_info[0]}.{sys.version_info[1]}.json")

HEADER = """# Reliability: every fault and attack tried

Written by `python3 -m tests.reliability` from the results of the test suite
(`python3 tasks.py test`); CI regenerates it after each run and fails if this file differs, so
it cannot claim more than the tests showed. Each row is a fault injected into, or an attack made
on, the real processes (`rollbot web` under gunicorn, `rollbot worker`, Postgres, Redis) or the
core over the Slack and Vercel emulators on loopback. *Trials* counts how many times the tests
tried it in one run; *Outcome* is "held" only if every one of them passed its assertions, which
are, for faults, that nothing was lost and nothing was done twice (one provider call, each Slack
message once, every decision recorded), and, for attacks, that the request was refused with the
right status and nothing was acted on.
"""

SECTIONS = (("fault", "Faults"), ("attack", "Attacks"))


def render(results: dict[str, dict[str, object]]) -> str:
    rows: dict[tuple[str, str], dict[str, object]] = {}
    for nodeid, entry in sorted(results.items()):
        key = (str(entry["kind"]), str(entry["name"]))
        row = rows.setdefault(key, {"trials": 0, "tests": 0, "failed": 0, "files": set()})
        row["trials"] = int(row["trials"]) + int(entry["trials"])  # type: ignore[call-overload]
        row["tests"] = int(row["tests"]) + 1  # type: ignore[call-overload]
        if entry["outcome"] != "passed":
            row["failed"] = int(row["failed"]) + 1  # type: ignore[call-overload]
        row["files"].add(nodeid.split("::")[0])  # type: ignore[attr-defined]
    by_kind: dict[str, list[str]] = defaultdict(list)
    for (kind, name), row in sorted(rows.items()):
        failed, tests = int(row["failed"]), int(row["tests"])  # type: ignore[call-overload]
        outcome = "held" if not failed else f"**FAILED** in {failed} of {tests} tests"
        files = ", ".join(f"`{f}`" for f in sorted(row["files"]))  # type: ignore[call-overload]
        by_kind[kind].append(f"| {name} | {row['trials']} | {outcome} | {files} |")
    out = [HEADER]
    for kind, title in SECTIONS:
        lines = by_kind.pop(kind, [])
        total = sum(int(line.split(" | ")[1]) for line in lines)
        out += [f"## {title} ({len(lines)} kinds, {total} trials)", "",
                "| Fault or attack | Trials | Outcome | Tests |", "|---|---:|---|---|", *lines, ""]
    if by_kind:
        raise SystemExit(f"unknown reliability kinds: {sorted(by_kind)}")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail if docs/reliability.md differs")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if not args.results.exists():
        print(f"no results at {args.results}: run the test suite first", file=sys.stderr)
        return 2
    text = render(json.loads(args.results.read_text())["tests"])
    if args.check:
        current = DOC.read_text() if DOC.exists() else ""
        if current != text:
            sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), text.splitlines(True),
                                                       "docs/reliability.md (committed)", "from this run"))
            print("docs/reliability.md is not what this test run showed: run `python3 -m tests.reliability`",
                  file=sys.stderr)
            return 1
        print(f"docs/reliability.md matches this run ({args.results.name})")
        return 0
    DOC.write_text(text)
    print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
