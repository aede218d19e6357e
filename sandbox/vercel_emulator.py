"""A stateful emulator of the parts of the Vercel REST API that Rollbot uses, served over real HTTP.

It runs a stdlib ``ThreadingHTTPServer`` on a free loopback port in a daemon thread, so the real
HTTP client code can talk to it unchanged. Tests seed projects and deployments, script faults
(429s, 5xx, failed alias jobs) and inspect every call afterwards.

Alias jobs (rollback / promote) are settled lazily from the clock: every request and every
inspection method first advances jobs whose time has come, so no timer threads are needed.
A job is ``pending`` for the first half of ``alias_delay``, ``in-progress`` for the second half,
then ``succeeded`` (production moves) or ``failed`` (production stays). With ``alias_delay == 0``
the job settles before the POST returns.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import string
import threading
import time
from http.server import ThreadingHTTPServer

from sandbox.vercel_edge_config import EdgeConfigRecord, EdgeConfigRoutes
from sandbox.vercel_env import EnvRoutes, EnvVarRecord
from sandbox.vercel_http import VercelHandler
from sandbox.vercel_records import (
    BASE62,
    HOUR_MS,
    JSON,
    DeploymentRecord,
    ProjectRecord,
    copy_json,
    now_ms,
)
from sandbox.vercel_routes import VercelRoutes

logger = logging.getLogger("rollbot.sandbox.vercel")
DEMO_EDGE_CONFIG = "ecfg_demo"


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # socketserver's default of 5 resets connections under a burst


class VercelEmulator(VercelRoutes, EdgeConfigRoutes, EnvRoutes):
    """In-memory Vercel API over real HTTP; see the module docstring."""

    def __init__(self, token: str = "vercel-sandbox-token", *, host: str = "127.0.0.1",
                 port: int = 0, team_id: str | None = None, alias_delay: float = 0.2,
                 build_delay: float = 0.5) -> None:
        self.token = token
        self.build_delay = build_delay
        self._env: dict[str, list[EnvVarRecord]] = {}
        self._builds: dict[str, float] = {}
        self.env_at_build: dict[str, dict[str, str]] = {}
        self._edge_configs: dict[str, EdgeConfigRecord] = {}
        self.team_id = team_id
        self.alias_delay = alias_delay
        self.latency = 0.0  # seconds every request waits before it is served (a benchmark's network)
        self.calls: list[JSON] = []
        self._host, self._port = host, port
        self._lock = threading.RLock()
        self._projects: dict[str, ProjectRecord] = {}
        self._deployments: dict[str, DeploymentRecord] = {}
        self._faults: list[JSON] = []
        self._seq = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> VercelEmulator:
        """Start serving in a daemon thread (idempotent); returns self."""
        if self._server is None:
            handler = type("_BoundHandler", (VercelHandler,), {"emulator": self})
            self._server = _Server((self._host, self._port), handler)
            self._server.daemon_threads = True
            self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                            name="vercel-emulator", daemon=True)
            self._thread.start()
            logger.debug("vercel emulator listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server, self._thread = None, None

    def __enter__(self) -> VercelEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:PORT`` (no trailing slash)."""
        if self._server is None:
            raise RuntimeError("VercelEmulator is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host.decode() if isinstance(host, bytes) else host}:{port}"

    def health_url(self, project_id: str) -> str:
        """URL of the health endpoint of the project's production site."""
        return f"{self.url}/site/{project_id}/api/health"

    # ------------------------------------------------------------------- seeding
    def add_project(self, project_id: str, name: str) -> JSON:
        """Create a project; returns its ``GET /v9/projects`` view."""
        with self._lock:
            if project_id in self._projects:
                raise ValueError(f"project {project_id!r} already exists")
            self._projects[project_id] = ProjectRecord(project_id, name, now_ms() - 30 * 24 * HOUR_MS)
            return self._project_view(self._projects[project_id])

    def add_deployment(self, project_id: str, uid: str | None = None, *, commit_sha: str,
                       commit_message: str, author: str, created_at_ms: int | None = None,
                       target: str | None = "production", state: str = "READY",
                       healthy: bool = True) -> JSON:
        """Add a deployment. A READY production deployment newer than the current production one
        also takes the production alias (as Vercel's auto-assignment does) unless the project is
        in a rolled-back state; use :meth:`set_production` to override."""
        with self._lock:
            project, state = self._project(project_id), state.upper()
            uid = uid or "dpl_" + "".join(secrets.choice(BASE62) for _ in range(28))
            if uid in self._deployments:
                raise ValueError(f"deployment {uid!r} already exists")
            build_ms = 30_000 + (int(hashlib.sha1(uid.encode()).hexdigest(), 16) % 60_000)
            created = created_at_ms if created_at_ms is not None else now_ms() - build_ms
            digest = "".join(secrets.choice(string.ascii_lowercase + string.digits)
                             for _ in range(9))
            self._seq += 1
            dep = DeploymentRecord(uid, project.id, project.name, f"{project.name}-{digest}.vercel.app",
                              created, created + build_ms if state == "READY" else None,
                              state, target, healthy, commit_sha, commit_message,
                              author, self._seq)
            self._deployments[uid] = dep
            self.env_at_build[uid] = self.env_values(project.id)
            current = self._deployments.get(project.production or "")
            if (dep.state == "READY" and dep.target == "production"
                    and project.last_rollback_target is None
                    and (current is None or dep.created_at >= current.created_at)):
                project.production = uid
            return dep.public()

    def set_production(self, project_id: str, uid: str) -> None:
        """Make the production alias of ``project_id`` serve deployment ``uid``."""
        with self._lock:
            project = self._project(project_id)
            dep = self._deployments.get(uid)
            if dep is None or dep.project_id != project.id:
                raise KeyError(f"deployment {uid!r} is not in project {project_id!r}")
            project.production = uid

    def set_healthy(self, uid: str, healthy: bool) -> None:
        """Change whether a deployment's health endpoint answers 200 or 500."""
        with self._lock:
            self._deployments[uid].healthy = healthy

    def seed_demo(self, project_id: str = "prj_demo") -> str:
        """Seed ``demo-shop``: two good deployments and a broken current production one, and its
        Edge Config ``ecfg_demo`` with a boolean flag on, a text flag and a setting."""
        now = now_ms()
        commits = [
            ("feat(cart): persist cart across sessions", "Maya Chen", now - 3 * 24 * HOUR_MS, True),
            ("fix(checkout): round tax to cents before summing", "Jonas Weber",
             now - 26 * HOUR_MS, True),
            ("perf(catalog): cache product listing responses", "Priya Raman",
             now - 2 * HOUR_MS, False),
        ]
        with self._lock:
            self.add_edge_config(DEMO_EDGE_CONFIG, {"new_checkout": True, "promo_banner": "Black Friday: 30% off",
                                                    "search_v2": False, "max_cart_items": 50})
            self.add_project(project_id, "demo-shop")
            for key, value, kind in (("API_URL", "https://api.demo-shop.test/v2", "encrypted"),
                                     ("FEATURE_RECS", "on", "plain"),
                                     ("PAYMENT_SECRET", "sk_live_demo_0123456789", "sensitive")):
                self.add_env(project_id, key, value, type=kind)
            self.require_env(project_id, "API_URL", "https://api.demo-shop.test/v2")  # a build without it fails
            uid = ""
            for message, author, created, healthy in commits:
                sha = hashlib.sha1(f"{project_id}:{message}".encode()).hexdigest()
                uid = self.add_deployment(project_id, commit_sha=sha, commit_message=message,
                                          author=author, created_at_ms=created,
                                          healthy=healthy)["uid"]
            self.set_production(project_id, uid)
        return project_id

    # ------------------------------------------------------------ scripted faults
    def script_rate_limit(self, path_prefix: str, times: int = 1, retry_after: int = 1, *,
                          method: str | None = None) -> None:
        """The next ``times`` requests whose path starts with ``path_prefix`` get a 429."""
        with self._lock:
            self._faults.append({"kind": "rate_limit", "prefix": path_prefix, "left": times,
                                 "retry_after": retry_after, "method": method})

    def script_error(self, path_prefix: str, status: int = 500, times: int = 1, *,
                     method: str | None = None) -> None:
        """The next ``times`` matching requests get ``status`` with a Vercel error body."""
        with self._lock:
            self._faults.append({"kind": "error", "prefix": path_prefix, "left": times,
                                 "status": status, "method": method})

    def script_drop(self, path_prefix: str, times: int = 1, *, method: str | None = None) -> None:
        """The next ``times`` matching requests take effect, then the connection is closed
        without an answer: the client cannot know whether its call went through."""
        with self._lock:
            self._faults.append({"kind": "drop", "prefix": path_prefix, "left": times, "method": method})

    def script_late(self, path_prefix: str, delay: float, times: int = 1, *, method: str | None = None) -> None:
        """The next ``times`` matching requests are held ``delay`` seconds, then take effect and
        are answered: a client that gave up before then saw a timeout, yet its call went through
        (and a read-back during the delay shows nothing yet)."""
        with self._lock:
            self._faults.append({"kind": "late", "prefix": path_prefix, "left": times, "delay": delay,
                                 "method": method})

    def take_late(self, method: str, path: str) -> float:
        """Seconds to hold this request (a scripted late application), else 0."""
        with self._lock:
            for fault in self._faults:
                if fault["kind"] == "late" and fault["left"] > 0 and path.startswith(fault["prefix"]) \
                        and (not fault["method"] or fault["method"].upper() == method):
                    fault["left"] -= 1
                    return float(fault["delay"])
        return 0.0

    def fail_next_alias(self, project_id: str, message: str = "Alias assignment failed") -> None:
        """The next rollback/promote of ``project_id`` ends ``failed``; production stays."""
        with self._lock:
            self._project(project_id).fail_next.append(message)

    def phantom_next_alias(self, project_id: str) -> None:
        """The next alias job of ``project_id`` reports ``succeeded`` but production stays put,
        so only a read-back of what production serves can tell."""
        with self._lock:
            self._project(project_id).phantom_next += 1

    # ---------------------------------------------------------------- inspection
    def calls_to(self, method: str, path_prefix: str) -> list[JSON]:
        """Recorded calls with this method whose path starts with ``path_prefix``."""
        with self._lock:
            return [dict(c) for c in self.calls
                    if c["method"] == method.upper() and c["path"].startswith(path_prefix)]

    def production(self, project_id: str) -> str:
        """The uid the production alias serves now (KeyError if none)."""
        with self._lock:
            self._settle()
            uid = self._project(project_id).production
            if uid is None:
                raise KeyError(f"project {project_id!r} has no production deployment")
            return uid

    def deployments(self, project_id: str) -> list[JSON]:
        """The project's deployments, newest first, as the API shows them."""
        with self._lock:
            return [d.public() for d in self._sorted(self._project(project_id).id)]

    def state(self) -> JSON:
        """Everything, as served by ``GET /_emulator/state``."""
        with self._lock:
            self._settle()
            return json.loads(json.dumps({
                "projects": [self._project_view(p) for p in self._projects.values()],
                "deployments": [{**d.public(), "healthy": d.healthy}
                                for d in self._sorted(None)],
                "edge_configs": {i: self.edge_items(i) for i in self._edge_configs},
                "faults": self._faults, "calls": self.calls}))

    def reset(self) -> None:
        """Forget all projects, deployments, scripted faults and recorded calls."""
        with self._lock:
            self._projects.clear()
            self._deployments.clear()
            self._edge_configs.clear()
            self._env.clear()
            self._builds.clear()
            self._faults.clear()
            self.calls.clear()

    def forget_calls(self) -> None:
        """Drop the call log (a long benchmark's)."""
        with self._lock:
            self.calls.clear()

    # ------------------------------------------------------------------ internals
    def _project(self, id_or_name: str) -> ProjectRecord:
        project = self._projects.get(id_or_name)
        if project is None:
            project = next((p for p in self._projects.values() if p.name == id_or_name), None)
        if project is None:
            raise KeyError(f"unknown project {id_or_name!r}")
        return project

    def _known(self, id_or_name: str) -> bool:
        return any(id_or_name in (p.id, p.name) for p in self._projects.values())

    def _sorted(self, project_id: str | None) -> list[DeploymentRecord]:
        deps = [d for d in self._deployments.values()
                if project_id is None or d.project_id == project_id]
        return sorted(deps, key=lambda d: (d.created_at, d.seq), reverse=True)

    def _project_view(self, project: ProjectRecord) -> JSON:
        """``GET /v9/projects/{id}`` as Vercel answers it: every field its OpenAPI schema (and so
        the official ``@vercel/sdk``) requires, checked by tests/integration/test_vercel_sdk.py."""
        targets: JSON = {}
        if project.production in self._deployments:
            dep = self._deployments[project.production]
            targets["production"] = {
                **dep.public(), "id": dep.uid, "name": project.name, "aliasAssigned": dep.created_at,
                "aliasError": None, "createdIn": "iad1", "deploymentHostname": dep.url.split(".")[0],
                "plan": "pro", "private": True, "readyState": dep.state, "type": "LAMBDAS",
                "creator": {"email": "deployer@demo-shop.test", "uid": "usr_sandbox", "username": "deployer"}}
        resources = {"functionDefaultRegions": ["iad1"]}
        return {"id": project.id, "name": project.name, "accountId": self.team_id or "team_sandbox",
                "createdAt": project.created_at, "updatedAt": project.created_at, "framework": "nextjs",
                "alias": [], "defaultResourceConfig": resources, "resourceConfig": resources,
                "deploymentExpiration": {}, "directoryListing": False, "nodeVersion": "22.x",
                "targets": targets, "lastAliasRequest": copy_json(project.last_alias_request),
                "lastRollbackTarget": copy_json(project.last_rollback_target)}

    def _settle(self) -> None:
        """Advance alias jobs and builds whose time has come."""
        self._settle_builds()
        now = time.monotonic()
        for project in self._projects.values():
            job = project.job
            if job is None:
                continue
            if now >= job.due:
                if job.failure is not None:
                    job.request.update(jobStatus="failed", failureReason=job.failure)
                else:
                    job.request["jobStatus"] = "succeeded"
                    if not job.phantom:
                        project.production = job.request["toDeploymentId"]
                    if job.request["type"] == "promote":
                        project.last_rollback_target = None
                project.job = None
            elif now >= job.started + (job.due - job.started) / 2:
                job.request["jobStatus"] = "in-progress"
