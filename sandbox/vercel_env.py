"""Project environment variables and redeploys in the Vercel emulator.

Routes (as Vercel documents them):

* ``GET   /v10/projects/{id}/env``          ``{"envs": [...]}``; values encrypted unless ``decrypt=true``
* ``GET   /v1/projects/{id}/env/{envId}``   one variable, its value decrypted (never a ``sensitive`` one)
* ``PATCH /v9/projects/{id}/env/{envId}``   change ``value`` (and ``type``, ``target``)
* ``POST  /v10/projects/{id}/env``          create one (``key``, ``value``, ``type``, ``target``)
* ``POST  /v13/deployments``                ``{"name", "deploymentId", "target", "meta"}``: redeploy a
  deployment with the project's current variables (READY after ``build_delay`` seconds; production
  too, unless the project was rolled back and not promoted since)

A project can ``require_env`` values: its health endpoint then fails for a deployment built
without them, so a test sees whether a redeploy really carried restored values.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from sandbox.vercel_records import JSON, ApiError, DeploymentRecord, ProjectRecord, now_ms

TYPES = ("plain", "encrypted", "sensitive", "secret", "system")


@dataclass
class EnvVarRecord:
    id: str
    key: str
    value: str
    type: str
    target: list[str]
    created_at: int
    updated_at: int
    history: list[str] = field(default_factory=list)


def _encrypted(value: str) -> str:
    """What Vercel shows instead of a value: an opaque string, never the value."""
    return base64.b64encode(hashlib.sha256(value.encode()).digest()).decode()[:32]


class EnvRoutes:
    _env: dict[str, list[EnvVarRecord]]
    _builds: dict[str, float]  # deployment uid -> monotonic time it becomes READY
    build_delay: float
    _deployments: dict[str, DeploymentRecord]
    _projects: dict[str, ProjectRecord]
    _seq: int

    env_at_build: dict[str, dict[str, str]]

    def add_env(self, project_id: str, key: str, value: str, *, type: str = "encrypted",
                target: list[str] | None = None) -> str:
        """Add a project environment variable; returns its id."""
        if type not in TYPES:
            raise ValueError(f"type must be one of {TYPES}")
        now = now_ms()
        record = EnvVarRecord("env_" + secrets.token_hex(8), key, value, type, list(target or ["production"]),
                              now, now)
        self._env.setdefault(project_id, []).append(record)
        return record.id

    def env_values(self, project_id: str) -> dict[str, str]:
        """key -> value of the project's production variables, as stored now."""
        return {r.key: r.value for r in self._env.get(project_id, []) if "production" in r.target}

    def delete_env(self, project_id: str, key: str) -> None:
        """Remove a variable by hand."""
        self._env[project_id] = [r for r in self._env.get(project_id, []) if r.key != key]

    def require_env(self, project_id: str, key: str, value: str) -> None:
        """Deployments of the project built without ``key`` = ``value`` fail their health check."""
        self._projects[project_id].required_env[key] = value

    def build_env_ok(self, uid: str) -> str | None:
        """Why deployment ``uid``'s build lacks a required value (the key), or None."""
        dep = self._deployments[uid]
        built = self.env_at_build.get(uid, {})
        return next((k for k, v in self._projects[dep.project_id].required_env.items() if built.get(k) != v), None)

    def set_env_value(self, project_id: str, key: str, value: str) -> None:
        """Change a variable by hand (what someone in the dashboard would do)."""
        record = next(r for r in self._env.get(project_id, []) if r.key == key)
        record.history.append(record.value)
        record.value, record.updated_at = value, now_ms()

    def _env_view(self, record: EnvVarRecord, decrypted: bool) -> JSON:
        """A variable as Vercel shows it: the value only when read singly (``decrypted: true``),
        never for a ``sensitive`` one (its value is empty and ``decrypted`` false)."""
        decrypted = decrypted and record.type != "sensitive"
        shown = record.value if decrypted else "" if record.type == "sensitive" else _encrypted(record.value)
        view: JSON = {"id": record.id, "key": record.key, "value": shown, "type": record.type,
                      "target": copy.copy(record.target), "configurationId": None, "createdAt": record.created_at,
                      "updatedAt": record.updated_at, "createdBy": "usr_sandbox", "updatedBy": "usr_sandbox",
                      "securityIssues": []}
        view["decrypted"] = decrypted
        return view

    def _env_route(self, method: str, parts: list[str], query: dict[str, str], body: Any,
                   project_of: Any) -> tuple[int, Any, dict[str, str]] | None:
        if len(parts) >= 4 and parts[1] == "projects" and parts[3] == "env":
            project = project_of(parts[2])
            records = self._env.setdefault(project.id, [])
            if parts[0] == "v10" and len(parts) == 4 and method == "GET":  # listed encrypted, even with decrypt=true
                return 200, {"envs": [self._env_view(r, decrypted=False) for r in records],
                             "pagination": {"count": len(records), "next": None, "prev": None}}, {}
            if parts[0] == "v10" and len(parts) == 4 and method == "POST":
                return 201, self._create_env(project.id, records, body), {}
            if len(parts) == 5:
                record = next((r for r in records if r.id == parts[4]), None)
                if record is None:
                    raise ApiError(404, "Environment Variable not found")
                if parts[0] == "v1" and method == "GET":
                    return 200, self._env_view(record, decrypted=True), {}
                if parts[0] == "v9" and method == "PATCH":
                    return 200, self._edit_env(record, body), {}
        if parts == ["v13", "deployments"] and method == "POST":
            return 200, self._redeploy(body, project_of), {}
        return None

    def _create_env(self, project_id: str, records: list[EnvVarRecord], body: Any) -> JSON:
        if not isinstance(body, dict) or not isinstance(body.get("key"), str) or not isinstance(body.get("value"), str):
            raise ApiError(400, "Invalid request: `key` and `value` should be strings")
        kind = body.get("type", "encrypted")
        target = body.get("target") or []
        if kind not in TYPES or not isinstance(target, list) or not target:
            raise ApiError(400, "Invalid request: `type` and `target` are required")
        if any(r.key == body["key"] and set(r.target) & set(target) for r in records):
            raise ApiError(400, f"A variable with the name `{body['key']}` already exists for the target",
                           code="ENV_ALREADY_EXISTS")
        env_id = self.add_env(project_id, body["key"], body["value"], type=kind, target=[str(t) for t in target])
        record = next(r for r in self._env[project_id] if r.id == env_id)
        return {"created": self._env_view(record, decrypted=False), "failed": []}

    def _redeploy(self, body: Any, project_of: Any) -> JSON:
        """A new deployment of an existing one's source with the project's variables as they are
        now; BUILDING, then READY (and production, for target production) after ``build_delay``."""
        if not isinstance(body, dict) or not isinstance(body.get("deploymentId"), str):
            raise ApiError(400, "Invalid request: a redeploy needs `deploymentId`")
        source = self._deployments.get(body["deploymentId"])
        if source is None:
            raise ApiError(404, "Deployment not found")
        project = project_of(source.project_id)
        if body.get("name") != project.name:
            raise ApiError(400, f"Invalid request: `name` should be {project.name}")
        self._seq += 1
        uid = "dpl_" + secrets.token_hex(14)
        dep = DeploymentRecord(uid, project.id, project.name, f"{project.name}-{secrets.token_hex(4)}.vercel.app",
                               now_ms(), None, "BUILDING", body.get("target") or None, source.healthy,
                               source.commit_sha, source.commit_message, source.author, self._seq)
        meta = body.get("meta")
        if isinstance(meta, dict):
            dep.extra_meta = {str(k): str(v) for k, v in meta.items()}
        self._deployments[uid] = dep
        self.env_at_build[uid] = self.env_values(project.id)
        self._builds[uid] = time.monotonic() + max(self.build_delay, 0.0)
        self._settle_builds()
        return {**dep.public(), "id": uid, "status": dep.state}

    def _settle_builds(self) -> None:
        now = time.monotonic()
        for uid, due in list(self._builds.items()):
            if now < due:
                continue
            del self._builds[uid]
            dep = self._deployments[uid]
            dep.state, dep.ready = "READY", now_ms()
            project = self._projects[dep.project_id]
            # After an instant rollback Vercel stops assigning production to new deployments until
            # one is promoted: a production build then stays off the production alias.
            if dep.target == "production" and project.last_rollback_target is None:
                project.production = uid

    def _edit_env(self, record: EnvVarRecord, body: Any) -> JSON:
        if not isinstance(body, dict) or not isinstance(body.get("value", ""), str):
            raise ApiError(400, "Invalid request: `value` should be a string")
        if "type" in body and body["type"] not in TYPES:
            raise ApiError(400, f"Invalid request: `type` should be one of {', '.join(TYPES)}")
        if "value" in body:
            record.history.append(record.value)
            record.value = body["value"]
        if "type" in body:
            record.type = body["type"]
        if isinstance(body.get("target"), list):
            record.target = [str(t) for t in body["target"]]
        record.updated_at = now_ms()
        return self._env_view(record, decrypted=False)
