"""Vercel Edge Config ("Global Config") adapter for flag rollbacks (implements
``handlers.flag.FlagProvider``), on the Vercel client's transport: reads retried (bounded), the
PATCH sent once, its failure marked ``uncertain`` when it may have taken effect."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from handlers.ports import ProviderError

if TYPE_CHECKING:  # a type only: a web worker builds the client, and loads httpx, on first use
    from integrations.vercel import VercelClient


class EdgeConfigClient:
    def __init__(self, vercel: VercelClient) -> None:
        self._vercel = vercel

    def flag_items(self, config_id: str) -> dict[str, Any]:
        data = self._vercel.get_json(f"/v1/global-config/{config_id}/items", {})
        if not isinstance(data, list):
            raise ProviderError(f"Edge Config `{config_id}` answered with something other than a list of items")
        return {str(item["key"]): item.get("value") for item in data if isinstance(item, dict) and "key" in item}

    def set_flag(self, config_id: str, key: str, value: Any) -> None:
        self._vercel.send_json("PATCH", f"/v1/global-config/{config_id}/items", {},
                               {"items": [{"operation": "update", "key": key, "value": value}]})
