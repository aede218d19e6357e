"""The Vercel emulator, exercised over real HTTP with httpx."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sandbox.vercel_emulator import VercelEmulator

TOKEN = "test-token"


@pytest.fixture
def emulator() -> Iterator[VercelEmulator]:
    with VercelEmulator(TOKEN, alias_delay=0) as emu:
        emu.seed_demo()
        yield emu


@pytest.fixture
def client(emulator: VercelEmulator) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=emulator.url, headers=headers, trust_env=False,
                      timeout=5) as http:
        yield http


def _production_list(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    query = {"projectId": "prj_demo", "target": "production", "state": "READY", **params}
    response = client.get("/v6/deployments", params=query)
    assert response.status_code == 200, response.text
    return list(response.json()["deployments"])


def _project(client: httpx.Client) -> dict[str, Any]:
    response = client.get("/v9/projects/prj_demo")
    assert response.status_code == 200, response.text
    return dict(response.json())


def _assert_vercel_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


def test_url_has_no_trailing_slash(emulator: VercelEmulator) -> None:
    assert emulator.url.startswith("http://127.0.0.1:")
    assert not emulator.url.endswith("/")


def test_listing_is_newest_first_with_vercel_fields(client: httpx.Client,
                                                    emulator: VercelEmulator) -> None:
    deployments = _production_list(client)
    assert len(deployments) == 3
    created = [d["createdAt"] for d in deployments]
    assert created == sorted(created, reverse=True)
    newest = deployments[0]
    assert newest["uid"] == emulator.production("prj_demo")
    assert newest["uid"].startswith("dpl_")
    assert newest["url"].startswith("demo-shop-") and newest["url"].endswith(".vercel.app")
    assert newest["state"] == newest["readyState"] == "READY"
    assert newest["type"] == "LAMBDAS" and newest["target"] == "production"
    assert newest["projectId"] == "prj_demo" and newest["isRollbackCandidate"] is True
    assert newest["created"] == newest["createdAt"] and newest["ready"] >= newest["createdAt"]
    assert set(newest["creator"]) >= {"uid", "username"}
    meta = newest["meta"]
    assert len(meta["githubCommitSha"]) == 40 and meta["githubCommitRef"] == "main"
    assert meta["githubCommitMessage"] and meta["githubCommitAuthorName"]


def test_v6_and_v7_agree_and_filters_apply(client: httpx.Client,
                                           emulator: VercelEmulator) -> None:
    emulator.add_deployment("prj_demo", "dpl_preview", commit_sha="a" * 40,
                            commit_message="wip", author="Sam Lee", target="preview")
    emulator.add_deployment("prj_demo", "dpl_error", commit_sha="b" * 40,
                            commit_message="broken build", author="Sam Lee", state="ERROR")
    v6 = client.get("/v6/deployments", params={"projectId": "prj_demo"}).json()
    v7 = client.get("/v7/deployments", params={"projectId": "prj_demo"}).json()
    assert [d["uid"] for d in v6["deployments"]] == [d["uid"] for d in v7["deployments"]]
    assert len(v6["deployments"]) == 5
    uids = [d["uid"] for d in _production_list(client)]
    assert "dpl_preview" not in uids and "dpl_error" not in uids
    by_uid = {d["uid"]: d for d in v6["deployments"]}
    assert by_uid["dpl_preview"]["isRollbackCandidate"] is False
    assert by_uid["dpl_error"]["ready"] is None
    other = client.get("/v6/deployments", params={"projectId": "prj_other"}).json()
    assert other["deployments"] == [] and other["pagination"]["count"] == 0


def test_pagination_with_limit_and_until(client: httpx.Client) -> None:
    everything = _production_list(client)
    first = client.get("/v6/deployments", params={"projectId": "prj_demo", "limit": 2}).json()
    assert first["pagination"]["count"] == 2
    assert first["pagination"]["next"] == everything[1]["createdAt"]
    assert first["pagination"]["prev"] == everything[0]["createdAt"]
    rest = client.get("/v6/deployments", params={"projectId": "prj_demo", "limit": 2,
                                                 "until": first["pagination"]["next"]}).json()
    assert [d["uid"] for d in rest["deployments"]] == [everything[2]["uid"]]
    assert rest["pagination"]["next"] is None
    since = client.get("/v6/deployments", params={"projectId": "prj_demo",
                                                  "since": everything[1]["createdAt"]}).json()
    assert [d["uid"] for d in since["deployments"]] == [everything[0]["uid"]]
    _assert_vercel_error(client.get("/v6/deployments", params={"limit": "lots"}),
                         400, "bad_request")


def test_get_one_deployment_by_id_or_url(client: httpx.Client) -> None:
    newest = _production_list(client)[0]
    by_id = client.get(f"/v13/deployments/{newest['uid']}").json()
    assert by_id["uid"] == by_id["id"] == newest["uid"]
    by_url = client.get(f"/v13/deployments/{newest['url']}").json()
    assert by_url["uid"] == newest["uid"]
    _assert_vercel_error(client.get("/v13/deployments/dpl_nope"), 404, "not_found")


def test_project_shows_production_target(client: httpx.Client,
                                         emulator: VercelEmulator) -> None:
    project = _project(client)
    assert project["id"] == "prj_demo" and project["name"] == "demo-shop"
    assert project["accountId"]
    assert project["targets"]["production"]["id"] == emulator.production("prj_demo")
    assert project["lastAliasRequest"] is None and project["lastRollbackTarget"] is None
    assert client.get("/v9/projects/demo-shop").json()["id"] == "prj_demo"
    _assert_vercel_error(client.get("/v9/projects/prj_missing"), 404, "not_found")


def test_rollback_goes_pending_then_succeeded(client: httpx.Client,
                                              emulator: VercelEmulator) -> None:
    emulator.alias_delay = 0.3
    current, previous = (d["uid"] for d in _production_list(client)[:2])
    response = client.post(f"/v1/projects/prj_demo/rollback/{previous}",
                           params={"description": "bad deploy"})
    assert response.status_code == 201 and response.json() == {}
    request = _project(client)["lastAliasRequest"]
    assert request["jobStatus"] == "pending" and request["type"] == "rollback"
    assert request["fromDeploymentId"] == current and request["toDeploymentId"] == previous
    assert _project(client)["targets"]["production"]["id"] == current
    seen = set()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        project = _project(client)
        seen.add(project["lastAliasRequest"]["jobStatus"])
        if project["lastAliasRequest"]["jobStatus"] == "succeeded":
            break
        time.sleep(0.02)
    assert "in-progress" in seen
    assert project["targets"]["production"]["id"] == previous
    assert project["lastRollbackTarget"]["toDeploymentId"] == previous
    assert emulator.production("prj_demo") == previous
    assert emulator.calls_to("POST", "/v1/projects")[0]["query"] == {"description": "bad deploy"}


def test_scripted_alias_failure_leaves_production(client: httpx.Client,
                                                  emulator: VercelEmulator) -> None:
    current, previous = (d["uid"] for d in _production_list(client)[:2])
    emulator.fail_next_alias("prj_demo", message="domain verification failed")
    assert client.post(f"/v1/projects/prj_demo/rollback/{previous}").status_code == 201
    project = _project(client)
    assert project["lastAliasRequest"]["jobStatus"] == "failed"
    assert project["targets"]["production"]["id"] == current
    # only the next one fails
    assert client.post(f"/v1/projects/prj_demo/rollback/{previous}").status_code == 201
    assert _project(client)["targets"]["production"]["id"] == previous


def test_second_request_while_pending_conflicts(client: httpx.Client,
                                                emulator: VercelEmulator) -> None:
    emulator.alias_delay = 5
    _, previous, oldest = (d["uid"] for d in _production_list(client))
    assert client.post(f"/v1/projects/prj_demo/rollback/{previous}").status_code == 201
    _assert_vercel_error(client.post(f"/v1/projects/prj_demo/rollback/{oldest}"),
                         409, "conflict")
    _assert_vercel_error(client.post(f"/v10/projects/prj_demo/promote/{oldest}"),
                         409, "conflict")


def test_rollback_validation(client: httpx.Client, emulator: VercelEmulator) -> None:
    emulator.add_project("prj_other", "other-app")
    foreign = emulator.add_deployment("prj_other", commit_sha="c" * 40,
                                      commit_message="x", author="A B")["uid"]
    preview = emulator.add_deployment("prj_demo", commit_sha="d" * 40, commit_message="x",
                                      author="A B", target="preview")["uid"]
    building = emulator.add_deployment("prj_demo", commit_sha="e" * 40, commit_message="x",
                                       author="A B", state="BUILDING")["uid"]
    for uid in (foreign, preview, building):
        _assert_vercel_error(client.post(f"/v1/projects/prj_demo/rollback/{uid}"),
                             400, "bad_request")
    _assert_vercel_error(client.post("/v1/projects/prj_demo/rollback/dpl_nope"),
                         404, "not_found")
    _assert_vercel_error(client.post(f"/v1/projects/prj_nope/rollback/{foreign}"),
                         404, "not_found")
    assert _project(client)["lastAliasRequest"] is None


def test_promote_is_accepted_and_moves_production(client: httpx.Client,
                                                  emulator: VercelEmulator) -> None:
    oldest = _production_list(client)[-1]["uid"]
    response = client.post(f"/v10/projects/prj_demo/promote/{oldest}")
    assert response.status_code == 202
    project = _project(client)
    assert project["lastAliasRequest"]["type"] == "promote"
    assert project["lastAliasRequest"]["jobStatus"] == "succeeded"
    assert emulator.production("prj_demo") == oldest


def test_rate_limit_script_answers_429_without_side_effects(
        client: httpx.Client, emulator: VercelEmulator) -> None:
    current, previous = (d["uid"] for d in _production_list(client)[:2])
    emulator.script_rate_limit("/v1/projects", times=1, retry_after=7)
    response = client.post(f"/v1/projects/prj_demo/rollback/{previous}")
    _assert_vercel_error(response, 429, "rate_limited")
    assert response.headers["Retry-After"] == "7"
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert int(response.headers["X-RateLimit-Limit"]) > 0
    assert int(response.headers["X-RateLimit-Reset"]) >= int(time.time()) + 6
    assert response.json()["error"]["limit"]["remaining"] == 0
    assert _project(client)["lastAliasRequest"] is None
    assert emulator.production("prj_demo") == current
    assert client.post(f"/v1/projects/prj_demo/rollback/{previous}").status_code == 201


def test_script_error_uses_vercel_body(client: httpx.Client, emulator: VercelEmulator) -> None:
    emulator.script_error("/v6/deployments", status=503, times=2)
    _assert_vercel_error(client.get("/v6/deployments"), 503, "service_unavailable")
    _assert_vercel_error(client.get("/v6/deployments"), 503, "service_unavailable")
    assert client.get("/v6/deployments").status_code == 200
    emulator.script_error("/v9/projects")
    _assert_vercel_error(client.get("/v9/projects/prj_demo"), 500, "internal_server_error")


def test_bad_or_missing_token_is_forbidden(emulator: VercelEmulator) -> None:
    with httpx.Client(base_url=emulator.url, trust_env=False) as anonymous:
        _assert_vercel_error(anonymous.get("/v6/deployments"), 403, "forbidden")
        wrong = anonymous.get("/v9/projects/prj_demo", headers={"Authorization": "Bearer nope"})
        _assert_vercel_error(wrong, 403, "forbidden")
        assert wrong.json()["error"]["message"] == "Not authorized"
    assert [c["status"] for c in emulator.calls[-2:]] == [403, 403]


def test_team_id_must_match_when_configured() -> None:
    with VercelEmulator(TOKEN, team_id="team_abc") as emu, \
            httpx.Client(base_url=emu.url, trust_env=False,
                         headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        assert http.get("/v6/deployments", params={"teamId": "team_abc"}).status_code == 200
        assert http.get("/v6/deployments").status_code == 200
        _assert_vercel_error(http.get("/v6/deployments", params={"teamId": "team_x"}),
                             403, "forbidden")


def test_unknown_path_has_vercel_error_shape(client: httpx.Client) -> None:
    _assert_vercel_error(client.get("/v2/nothing-here"), 404, "not_found")


def test_health_endpoint_flips_after_rollback(client: httpx.Client,
                                              emulator: VercelEmulator) -> None:
    current, previous = (d["uid"] for d in _production_list(client)[:2])
    sick = client.get(emulator.health_url("prj_demo"))
    assert sick.status_code == 500
    assert sick.json()["status"] == "error" and sick.json()["deployment"] == current
    assert client.post(f"/v1/projects/prj_demo/rollback/{previous}").status_code == 201
    healthy = client.get(emulator.health_url("prj_demo"))
    assert healthy.status_code == 200
    assert healthy.json() == {"status": "ok", "deployment": previous}


def test_calls_state_and_reset(client: httpx.Client, emulator: VercelEmulator) -> None:
    client.get("/v6/deployments", params={"projectId": "prj_demo"})
    client.post("/v1/projects/prj_demo/rollback/dpl_nope", json={"why": "test"})
    call = emulator.calls_to("POST", "/v1/projects/prj_demo/rollback")[0]
    assert call["status"] == 404 and call["body"] == {"why": "test"}
    assert isinstance(call["at"], float) and call["method"] == "POST"
    state = httpx.get(f"{emulator.url}/_emulator/state", trust_env=False).json()
    assert state["projects"][0]["id"] == "prj_demo" and len(state["deployments"]) == 3
    assert len(emulator.deployments("prj_demo")) == 3
    emulator.reset()
    assert emulator.calls == [] and emulator.state()["projects"] == []


def test_env_vars_read_decrypted_one_by_one_never_a_sensitive_one_and_a_redeploy_takes_them() -> None:
    with VercelEmulator("tok", build_delay=0.2) as emu:
        emu.seed_demo("prj_demo")
        client = httpx.Client(base_url=emu.url, headers={"Authorization": "Bearer tok"}, trust_env=False)
        envs = {e["key"]: e for e in client.get("/v10/projects/prj_demo/env").json()["envs"]}
        assert envs["API_URL"]["value"] != "https://api.demo-shop.test/v2"  # listed encrypted
        one = client.get(f"/v1/projects/prj_demo/env/{envs['API_URL']['id']}").json()
        assert one["value"] == "https://api.demo-shop.test/v2" and one["decrypted"] is True
        secret = client.get(f"/v1/projects/prj_demo/env/{envs['PAYMENT_SECRET']['id']}").json()
        assert (secret["type"], secret["value"], secret["decrypted"]) == ("sensitive", "", False)
        listed = client.get("/v10/projects/prj_demo/env", params={"decrypt": "true"}).json()["envs"]
        assert all(not e["decrypted"] for e in listed)  # the list never decrypts
        edited = client.patch(f"/v9/projects/prj_demo/env/{envs['API_URL']['id']}", json={"value": "https://old"})
        assert edited.status_code == 200 and emu.env_values("prj_demo")["API_URL"] == "https://old"
        current = client.get("/v9/projects/prj_demo").json()["targets"]["production"]["id"]
        assert client.post("/v13/deployments", json={"deploymentId": current}).status_code == 400  # no name
        built = client.post("/v13/deployments", json={"name": "demo-shop", "deploymentId": current,
                                                      "target": "production"}).json()
        assert built["readyState"] == "BUILDING" and emu.production("prj_demo") == current
        time.sleep(0.3)
        assert emu.production("prj_demo") == built["id"] and emu.env_at_build[built["id"]]["API_URL"] == "https://old"
        client.close()
