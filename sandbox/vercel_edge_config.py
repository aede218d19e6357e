"""Edge Config (Vercel's "Global Config") in the Vercel emulator: stores and their items.

Routes (``/v1/edge-config/…`` and the newer ``/v1/global-config/…`` are the same API):

* ``GET   /v1/edge-config/{id}/items``            every item, ``[{key, value, edgeConfigId, …}]``
* ``GET   /v1/edge-config/{id}/item/{key}``       one item (404 when absent)
* ``PATCH /v1/edge-config/{id}/items``            ``{"items": [{"operation", "key", "value"}]}``

As Vercel documents, reads through the REST API always return the latest version (only reads at
the edge lag while a change propagates), so a PATCH is visible to the next GET here.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from sandbox.vercel_records import JSON, ApiError, now_ms

PREFIXES = ("edge-config", "global-config")
OPERATIONS = ("create", "update", "upsert", "delete")


@dataclass
class EdgeItem:
    value: Any
    created_at: int
    updated_at: int
    deleted: bool = False


@dataclass
class EdgeConfigRecord:
    id: str
    slug: str
    items: dict[str, EdgeItem] = field(default_factory=dict)


class EdgeConfigRoutes:
    _edge_configs: dict[str, EdgeConfigRecord]

    def add_edge_config(self, config_id: str, items: dict[str, Any], slug: str | None = None) -> None:
        """Create (or replace) an Edge Config holding ``items``."""
        now = now_ms()
        self._edge_configs[config_id] = EdgeConfigRecord(
            config_id, slug or config_id, {k: EdgeItem(copy.deepcopy(v), now, now) for k, v in items.items()})

    def edge_items(self, config_id: str) -> dict[str, Any]:
        """What the store holds now (written values, whether or not propagated yet)."""
        record = self._edge_configs[config_id]
        return {k: copy.deepcopy(i.value) for k, i in record.items.items() if not i.deleted}

    def _edge_route(self, method: str, parts: list[str], body: Any) -> tuple[int, Any, dict[str, str]] | None:
        if len(parts) < 4 or parts[0] != "v1" or parts[1] not in PREFIXES:
            return None
        record = self._edge_configs.get(parts[2])
        if record is None:
            raise ApiError(404, "Edge Config not found")
        if parts[3:] == ["items"] and method == "GET":
            return 200, [self._item_view(record, k) for k in sorted(record.items) if self._visible(record, k)], {}
        if len(parts) == 5 and parts[3] == "item" and method == "GET":
            if not self._visible(record, parts[4]):
                raise ApiError(404, "Item not found")
            return 200, self._item_view(record, parts[4]), {}
        if parts[3:] == ["items"] and method == "PATCH":
            self._patch(record, body)
            return 200, {"status": "ok"}, {}
        return None

    def _visible(self, record: EdgeConfigRecord, key: str) -> bool:
        item = record.items.get(key)
        return item is not None and not item.deleted

    def _item_view(self, record: EdgeConfigRecord, key: str) -> JSON:
        item = record.items[key]
        return {"key": key, "value": copy.deepcopy(item.value), "edgeConfigId": record.id,
                "createdAt": item.created_at, "updatedAt": item.updated_at}

    def _patch(self, record: EdgeConfigRecord, body: Any) -> None:
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            raise ApiError(400, "Invalid request: `items` should be a non-empty array")
        for change in items:  # validate all first: a PATCH applies entirely or not at all
            if not isinstance(change, dict) or change.get("operation") not in OPERATIONS \
                    or not isinstance(change.get("key"), str) or not change["key"]:
                raise ApiError(400, "Invalid request: each item needs an `operation` and a `key`")
            exists = change["key"] in record.items and not record.items[change["key"]].deleted
            if change["operation"] in ("update", "delete") and not exists:
                raise ApiError(404, f"Item {change['key']} not found", "not_found")
            if change["operation"] == "create" and exists:
                raise ApiError(409, f"Item {change['key']} already exists", "conflict")
            if change["operation"] != "delete" and "value" not in change:
                raise ApiError(400, f"Invalid request: item {change['key']} needs a `value`")
        now = now_ms()
        for change in items:
            key, old = change["key"], record.items.get(change["key"])
            record.items[key] = EdgeItem(copy.deepcopy(change.get("value")), old.created_at if old else now, now,
                                         deleted=change["operation"] == "delete")
