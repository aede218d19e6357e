"""Vercel project environment variables and redeploys, for env rollbacks (implements
``handlers.env.EnvProvider``), on the Vercel client's transport: reads retried (bounded), every
change sent once, its failure marked ``uncertain`` when it may have taken effect. Values pass
through here in memory only; no message or error carries one."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from handlers.env_redeploy import Production
from handlers.env_snapshots import SENSITIVE, EnvVar
from handlers.ports import ProviderError

if TYPE_CHECKING:  # a type only: a web worker builds the client, and loads httpx, on first use
    from integrations.vercel import VercelClient

TAG = "rollbotTag"  # the deployment meta key that carries a redeploy's tag


class VercelEnvClient:
    def __init__(self, vercel: VercelClient) -> None:
        self._vercel = vercel

    def env_vars(self, project: str) -> list[EnvVar]:
        data = self._vercel.get_json(f"/v10/projects/{project}/env", {})
        envs = data.get("envs") if isinstance(data, dict) else None
        if not isinstance(envs, list):
            raise ProviderError(f"Vercel listed the variables of `{project}` in a shape Rollbot does not know")
        found = []
        for item in envs:
            if isinstance(item, dict) and item.get("id") and item.get("key"):
                target = item.get("target") or []
                found.append(EnvVar(str(item["id"]), str(item["key"]), str(item.get("type") or "encrypted"),
                                    tuple(target) if isinstance(target, list) else (str(target),)))
        return found

    def env_value(self, project: str, env_id: str) -> str | None:
        data = self._vercel.get_json(f"/v1/projects/{project}/env/{env_id}", {})
        if not isinstance(data, dict):
            raise ProviderError(f"Vercel answered a variable of `{project}` in a shape Rollbot does not know")
        if data.get("type") == SENSITIVE or data.get("decrypted") is False:
            return None  # Vercel does not return it: not restorable
        value = data.get("value")
        if not isinstance(value, str):
            raise ProviderError(f"Vercel answered variable `{data.get('key', env_id)}` of `{project}` without a value")
        return value

    def set_env_value(self, project: str, env_id: str, value: str) -> None:
        with _value_hidden(value):
            self._vercel.send_json("PATCH", f"/v9/projects/{project}/env/{env_id}", {}, {"value": value})

    def create_env(self, project: str, key: str, value: str, type: str, target: Sequence[str]) -> None:
        with _value_hidden(value):
            self._vercel.send_json("POST", f"/v10/projects/{project}/env", {},
                                   {"key": key, "value": value, "type": type, "target": list(target)})

    def production(self, project: str) -> Production:
        data = self._vercel.get_json(f"/v9/projects/{project}", {})
        if not isinstance(data, dict):
            raise ProviderError(f"Vercel answered project `{project}` in a shape Rollbot does not know")
        targets: Any = data.get("targets")
        serving: Any = targets.get("production") if isinstance(targets, dict) else None
        production = serving.get("id") if isinstance(serving, dict) else None
        return Production(str(data.get("name") or project), str(production) if production else None,
                          data.get("lastRollbackTarget") is not None)

    def redeploy(self, name: str, deployment: str, tag: str) -> str:
        data = self._vercel.send_json("POST", "/v13/deployments", {},
                                      {"name": name, "deploymentId": deployment, "target": "production",
                                       "meta": {TAG: tag}})
        uid = data.get("id") or data.get("uid") if isinstance(data, dict) else None
        if not uid:
            raise ProviderError("Vercel accepted the redeploy but did not say its id", uncertain=True)
        return str(uid)

    def find_redeploy(self, project: str, tag: str) -> str | None:
        data = self._vercel.get_json("/v7/deployments", {"projectId": project, "target": "production", "limit": 20})
        listed = data.get("deployments") if isinstance(data, dict) else None
        if not isinstance(listed, list):
            raise ProviderError(f"Vercel listed the deployments of `{project}` in a shape Rollbot does not know")
        for item in listed:
            meta: Any = item.get("meta") if isinstance(item, dict) else None
            if isinstance(meta, dict) and meta.get(TAG) == tag:
                return str(item.get("uid") or item.get("id"))
        return None

    def deployment_state(self, uid: str) -> str:
        data = self._vercel.get_json(f"/v13/deployments/{uid}", {})
        return str((data.get("readyState") or data.get("state") or "UNKNOWN") if isinstance(data, dict) else "UNKNOWN")

    def promote(self, project: str, uid: str) -> None:
        self._vercel.send_json("POST", f"/v10/projects/{project}/promote/{uid}", {})


@contextmanager
def _value_hidden(value: str) -> Iterator[None]:
    """Vercel's error messages are shown and audited: one that echoes the value sent (a
    validation error, say) has it replaced before it leaves this adapter."""
    try:
        yield
    except ProviderError as error:
        if value and len(value) >= 3 and value in error.message:
            raise ProviderError(error.message.replace(value, "[value]"), code=error.code, status=error.status,
                                uncertain=error.uncertain, retry_after=error.retry_after) from None
        raise
