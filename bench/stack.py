"""What the benchmark runs: Rollbot's production configuration and the bare Bolt baseline.

* Rollbot: `rollbot web` under gunicorn with its defaults (2 workers x 16 gthreads), a separate
  `rollbot worker`, real Postgres and Redis (given by `DATABASE_URL`/`REDIS_URL`, or embedded),
  and the Slack and Vercel emulators in this process, with a set network latency.
* Bare Bolt: `bench.bare_bolt` under gunicorn, gthread, 2 workers x 16 threads.

The policy has one environment per concurrent request (`bench-000`, …), each with its own
channel and Vercel project, so every timed code request and Approve click is a real one: a new
incident, a deciding approval, a rollback the worker executes.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

from integrations import cores
from integrations.pg_work import JOBS_CHANNEL
from integrations.schema import migrate
from sandbox.embedded import EmbeddedServer, services_from_env
from sandbox.slack_client import SignedSlackClient
from sandbox.slack_emulator import SlackEmulator
from sandbox.team import ALICE, CAROL
from sandbox.vercel_emulator import VercelEmulator

SIGNING_SECRET = "bench-signing-secret-0123456789"
BOT_TOKEN = "xoxb-bench-bot-token"
VERCEL_TOKEN = "vercel-bench-token"
SECRET_KEY = "3Q9nZp5m4w2Qe0y8aVt1cX7bH6kLrS2dF4gJ8uN0oPw="
LEADS = "S01LEADS"


def env_name(n: int) -> str:
    return f"bench-{n:03d}"


def channel_of(n: int) -> str:
    return f"CBENCH{n:03d}"


def project_of(n: int) -> str:
    return f"prj_bench_{n:03d}"


def _policy(vercel: VercelEmulator, count: int) -> str:
    lines = ['[roles]', 'engineer = { users = ["U01ALICE"] }', 'lead = { users = ["U01CAROL"] }',
             'dba = { users = ["U01DAN"] }', '',
             '[scheduler]', 'tick = "5s"', '']
    for n in range(count):
        lines += [f'[environments.{env_name(n)}]', f'channel = "{channel_of(n)}"', f'vercel_project = "{project_of(n)}"',
                  f'health_checks = [{json.dumps(vercel.health_url(project_of(n)))}]',
                  'monitor = ["5m", "10m", "15m"]', 'approval_timeout = "30m"',
                  f'[environments.{env_name(n)}.policy]', 'requesters = ["engineer"]', 'self_approval = false',
                  'code = { approvers = ["lead"], approvals = 1 }', '']
    return "\n".join(lines)


class Process:
    """A server subprocess with its output in a file (a pipe nobody reads would block it)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        # In the repository: `bench.bare_bolt` is not installed, it imports from there.
        self.process = subprocess.Popen(argv, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                        cwd=Path(__file__).resolve().parents[1])

    def wait_healthy(self, url: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n"
                                   f"{self.log_path.read_text(errors='replace')[-3000:]}")
            try:
                if httpx.get(url, timeout=1, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not answer {url} within {timeout:.0f} s")
            time.sleep(0.1)

    def peak_rss_mib(self) -> dict[str, float]:
        """Peak resident memory (VmHWM) of this process and each of its children, in MiB."""
        found: dict[str, float] = {}
        for label, pid in [("master" if self._children() else "process", self.process.pid)] + [
                (f"worker {i}", child) for i, child in enumerate(self._children(), start=1)]:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    found[label] = int(line.split()[1]) / 1024
        return found

    def cpu_seconds(self) -> float:
        """CPU time (user + system) this process and its children have used so far."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for pid in [self.process.pid, *self._children()]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / tick
        return total

    def _children(self) -> list[int]:
        children: list[int] = []
        for task in Path(f"/proc/{self.process.pid}/task").glob("*/children"):
            try:
                children += [int(pid) for pid in task.read_text().split()]
            except OSError:
                continue
        return sorted(children)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=25)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


def _move_off_first_core() -> set[int]:
    """Move this process (every thread) off its first core; that core, for the webs."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        raise RuntimeError("--isolate needs at least two cores")
    cores.place(cores.threads(os.getpid()), set(allowed[1:]))
    return {allowed[0]}


def _pin_tree(pid: int, where: set[int]) -> None:
    """Every thread of ``pid`` and of its descendants on ``where`` (threads and processes they
    start later inherit it). Twice: a thread started by one not yet moved in the first pass is
    moved in the second."""
    for _ in range(2):
        cores.place(_tree(pid), where)


def _tree(pid: int) -> list[int]:
    """The threads of ``pid`` and of its descendants (``/proc/<pid>/task/<tid>/children`` lists
    the children each thread forked)."""
    found: list[int] = []
    for tid in cores.threads(pid):
        found.append(tid)
        try:
            children = Path(f"/proc/{pid}/task/{tid}/children").read_text().split()
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that ended meanwhile
        for child in children:
            found += _tree(int(child))
    return found


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Stack:
    """Both apps, the emulators and the databases; ``close()`` stops everything.

    ``python`` is the interpreter both apps and the worker run on (bench.runtime's for the
    production install). ``isolate`` gives both webs the first core and everything else the
    benchmark starts (the load generator, the worker, Postgres and Redis when embedded, the
    emulators) the others: what the acks cost with the work they start elsewhere, as when the
    worker and the databases run on machines of their own.
    """

    def __init__(self, environments: int, *, python: str = sys.executable, isolate: bool = False) -> None:
        self.environments = environments
        self.python = python
        self.web_cores: set[int] | None = None
        if isolate:
            self.web_cores = _move_off_first_core()  # before anything starts: what follows inherits it
        self.tmp = Path(tempfile.mkdtemp(prefix="rollbot-bench-"))
        self._servers: list[EmbeddedServer] = []
        self._processes: list[Process] = []
        self.database_url, self.redis_url, self._servers = services_from_env(os.environ)
        try:
            self._start_all(environments)
        except BaseException:
            self.close()
            raise

    def _start_all(self, environments: int) -> None:
        migrate(self.database_url)
        self.slack = SlackEmulator(BOT_TOKEN).start()
        self.vercel = VercelEmulator(VERCEL_TOKEN, alias_delay=0.0, build_delay=0.0).start()
        self.slack.add_user(ALICE, "alice")
        self.slack.add_user(CAROL, "carol")
        self.broken: dict[str, str] = {}
        for n in range(environments):
            self.vercel.seed_demo(project_of(n))
            self.broken[project_of(n)] = self.vercel.production(project_of(n))
        config = self.tmp / "rollbot.toml"
        config.write_text(_policy(self.vercel, environments))
        env = {**os.environ, "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
               "SLACK_API_URL": self.slack.url, "DATABASE_URL": self.database_url, "REDIS_URL": self.redis_url,
               "VERCEL_TOKEN": VERCEL_TOKEN, "VERCEL_API_URL": self.vercel.url, "ROLLBOT_CONFIG": str(config),
               "ROLLBOT_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"), "ROLLBOT_SECRET_KEY": SECRET_KEY, "PYTHONUNBUFFERED": "1",
               "HTTP_PROXY": "", "HTTPS_PROXY": "", "http_proxy": "", "https_proxy": ""}
        self.rollbot_port, self.bare_port = _free_port(), _free_port()
        self.web = self._start("rollbot-web", [self.python, "-m", "bot.cli", "web", "--host", "127.0.0.1",
                                               "--port", str(self.rollbot_port)], env)
        self.worker = self._start("rollbot-worker", [self.python, "-m", "bot.cli", "worker"], env)
        self.bare = self._start("bare-bolt", [self.python, "-m", "gunicorn", "--worker-class", "gthread",
                                              "--workers", "2", "--threads", "16", "--bind",
                                              f"127.0.0.1:{self.bare_port}", "--log-level", "warning",
                                              "bench.bare_bolt:app"], env)
        self.web.wait_healthy(f"http://127.0.0.1:{self.rollbot_port}/healthz")
        self.bare.wait_healthy(f"http://127.0.0.1:{self.bare_port}/healthz")
        if self.web_cores is not None:
            for server in (self.web, self.bare):  # the masters and their workers, every thread
                _pin_tree(server.process.pid, self.web_cores)
        self.client = SignedSlackClient(f"http://127.0.0.1:{self.rollbot_port}/slack/events", SIGNING_SECRET,
                                        self.slack)

    def _start(self, name: str, argv: list[str], env: dict[str, str]) -> Process:
        process = Process(name, argv, env, self.tmp)
        self._processes.append(process)
        return process

    def placement(self) -> str:
        """The interpreter the servers ran on, and where each ran, read from /proc now (call it
        before ``close()``)."""
        def on(tids: list[int]) -> str:
            return ",".join(map(str, sorted(cores.cores_of(tids)))) or "?"

        python = Path(self.python)
        with contextlib.suppress(ValueError):
            python = python.relative_to(Path.cwd())
        parts = [f"servers on {python}"]
        parts += [f"{p.name} on cores {on(_tree(p.process.pid))}" for p in self._processes]
        parts.append(f"the emulators and the load generator on {on(cores.threads(os.getpid()))}")
        parts += [f"{server.name} on {on(_tree(server.process.pid))}" for server in self._servers]
        if not self._servers:
            parts.append("Postgres and Redis given by URL, not placed")
        return "; ".join(parts)

    def port(self, app: str) -> int:
        return self.rollbot_port if app == "rollbot" else self.bare_port

    def set_latency(self, seconds: float) -> None:
        self.slack.latency = self.vercel.latency = seconds

    # -- state between rounds -------------------------------------------------------------------

    def settle(self, timeout: float = 120) -> None:
        """Wait until nothing is executing, then close every incident and cancel every due job,
        and put each project's broken deployment back in production: the next round starts from
        the same place."""
        deadline = time.monotonic() + timeout
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            while conn.execute("SELECT count(*) FROM incidents WHERE status = 'executing'").fetchone()[0]:
                if time.monotonic() > deadline:
                    raise RuntimeError("executions did not finish")
                time.sleep(0.1)
            conn.execute("UPDATE incidents SET status = 'cancelled', finished_at = now() "
                         "WHERE status IN ('pending', 'executing')")
            conn.execute("UPDATE due_jobs SET status = 'cancelled' WHERE status = 'due'")
        for project, uid in self.broken.items():
            self.vercel.set_production(project, uid)

    def make_due(self, incident_ids: list[int]) -> None:
        """The first monitoring reminder of each of these incidents due now, in one transaction."""
        with psycopg.connect(self.database_url, autocommit=True) as conn, conn.transaction():
            conn.execute("UPDATE due_jobs SET due_at = now() WHERE kind = 'monitor' AND status = 'due' "
                         "AND payload->>'index' = '1' AND incident_id = ANY(%s)", (incident_ids,))
            conn.execute("SELECT pg_notify(%s, 'monitor')", (JOBS_CHANNEL,))

    def why_not(self, envs: list[str], since: float) -> str:
        """What Rollbot recorded about these environments: the requests refused since ``since``
        (epoch seconds) with the reason; the newest incident of each, its status, failure and last
        audit entries."""
        lines: list[str] = []
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            for at, action, detail in conn.execute(
                    "SELECT at, action, detail FROM audit_log WHERE outcome = 'refused' AND at >= to_timestamp(%s) "
                    "AND detail->>'env' = ANY(%s) ORDER BY id", (since, envs)).fetchall():
                lines.append(f"{at:%H:%M:%S} {action} refused: {json.dumps(detail)[:500]}")
            for incident, env, status, failure in conn.execute(
                    "SELECT DISTINCT ON (env) id, env, status, failure FROM incidents WHERE env = ANY(%s) "
                    "ORDER BY env, id DESC", (envs[:10],)).fetchall():
                lines.append(f"RB-{incident} ({env}, the newest) {status}{': ' + failure if failure else ''}")
                for at, action, outcome, detail in reversed(conn.execute(
                        "SELECT at, action, outcome, detail FROM audit_log WHERE incident_id = %s ORDER BY id DESC "
                        "LIMIT 4", (incident,)).fetchall()):
                    lines.append(f"  {at:%H:%M:%S} {action} {outcome} {json.dumps(detail)[:300]}")
        return "\n".join(lines) or "nothing recorded"

    def incident_ids(self, envs: list[str]) -> dict[str, int]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            rows = conn.execute("SELECT env, max(id) FROM incidents WHERE env = ANY(%s) GROUP BY env",
                                (envs,)).fetchall()
        return {env: int(incident) for env, incident in rows}

    def close(self) -> None:
        if hasattr(self, "client"):
            self.client.close()
        for process in reversed(self._processes):
            process.stop()
        for emulator in (getattr(self, "slack", None), getattr(self, "vercel", None)):
            if emulator is not None:
                emulator.stop()
        for server in self._servers:
            server.stop()
