"""The metrics' labels stay few: a request's kind, a provider call's method, never user text."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from bot.metrics import request_kind
from bot.request_scope import command_words
from integrations.http import TimedTransport, path_template
from tests.fakes.world import fake_world


@pytest.mark.parametrize("body, kind", [
    ({"command": "/rollback", "text": "code prod checkout is down"}, "command:code"),
    ({"command": "/rollback", "text": "  "}, "command:help"),
    ({"command": "/rollback", "text": "<script>alert(1)</script> prod"}, "command:other"),
    ({"type": "block_actions", "actions": [{"action_id": "approve"}]}, "action:approve"),
    ({"type": "block_actions", "actions": [{"action_id": "Robert'); DROP TABLE"}]}, "action:other"),
    ({"type": "block_actions", "actions": []}, "action:other"),
    ({"type": "view_submission", "view": {"callback_id": "deny_modal"}}, "view:deny_modal"),
    ({"type": "event_callback", "event": {"type": "app_home_opened"}}, "event:app_home_opened"),
    ({"type": "shortcut"}, "other"),
])
def test_a_requests_kind(body: dict, kind: str) -> None:
    assert request_kind(body, frozenset({"code", "db", "database", "code+env"})) == kind


def test_the_kinds_words_come_from_the_registry_aliases_and_combined_kinds_included(tmp_path: Path) -> None:
    words = command_words(fake_world(tmp_path).svc.kinds)
    assert {"code", "db", "database", "env", "flag", "code+env"} <= words
    assert request_kind({"command": "/rollback", "text": "database prod 0042"}, words) == "command:database"


@pytest.mark.parametrize("path, template", [
    ("/v6/deployments", "/v6/deployments"),
    ("/v1/projects/prj_demo/rollback/dpl_Ab12", "/v1/projects/{id}/rollback/{id}"),
    ("/v10/projects/checkout/env/yAbC9", "/v10/projects/checkout/env/{id}"),
    ("/v1/edge-config/ecfg_1/items", "/v1/edge-config/{id}/items"),
])
def test_a_vercel_paths_ids_become_placeholders(path: str, template: str) -> None:
    assert path_template(path) == template


def test_the_timed_transport_reports_every_exchange_and_what_failed() -> None:
    seen: list[tuple[str, str, str]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/down"):
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(429 if request.method == "POST" else 200, json={})

    transport = TimedTransport(lambda method, path, status, seconds: seen.append((method, path, status)),
                               httpx.MockTransport(answer))
    with httpx.Client(transport=transport, base_url="https://api.vercel.test") as http:
        http.get("/v6/deployments", params={"projectId": "prj_1"})
        http.post("/v1/projects/prj_1/rollback/dpl_2")
        with pytest.raises(httpx.ConnectError):
            http.get("/v1/projects/prj_1/down")
    assert seen == [("GET", "/v6/deployments", "200"), ("POST", "/v1/projects/{id}/rollback/{id}", "429"),
                    ("GET", "/v1/projects/{id}/down", "transport")]
