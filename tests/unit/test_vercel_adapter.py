"""The Vercel adapter's retry rules, with httpx.MockTransport as the seam."""

from __future__ import annotations

import httpx
import pytest

from handlers.ports import ProviderError
from integrations.vercel import VercelClient

TOKEN = "secret-vercel-token-123"


def _client(handler, **kwargs) -> tuple[VercelClient, list[float]]:
    sleeps: list[float] = []
    client = VercelClient(TOKEN, base_url="https://vercel.test", transport=httpx.MockTransport(handler),
                          sleep=sleeps.append, **kwargs)
    return client, sleeps


def _project(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"id": "prj", "targets": {"production": {"id": "dpl_b"}},
                                     "lastAliasRequest": {"jobStatus": "succeeded", "toDeploymentId": "dpl_b"}})


def test_reads_send_the_token_and_team_and_parse_the_project() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return _project(request)

    client, _ = _client(handler, team_id="team_1")
    state = client.alias_state("prj")
    assert (state.production_id, state.job_status, state.job_to) == ("dpl_b", "succeeded", "dpl_b")
    assert seen[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert seen[0].url.params["teamId"] == "team_1" and seen[0].url.path == "/v9/projects/prj"


def test_429_waits_for_retry_after_then_succeeds() -> None:
    calls = iter([httpx.Response(429, headers={"Retry-After": "3"}, json={"error": {"code": "rate_limited"}})])

    def handler(request: httpx.Request) -> httpx.Response:
        return next(calls, None) or _project(request)

    client, sleeps = _client(handler)
    assert client.alias_state("prj").production_id == "dpl_b"
    assert sleeps == [3.0]


def test_reads_retry_5xx_with_bounded_backoff_then_give_up() -> None:
    client, sleeps = _client(lambda r: httpx.Response(503, json={"error": {"code": "down", "message": "maintenance"}}))
    with pytest.raises(ProviderError) as error:
        client.alias_state("prj")
    assert len(sleeps) == 3 and sleeps == sorted(sleeps)
    assert "503" in error.value.message and "maintenance" in error.value.message
    assert not error.value.uncertain


def test_the_rollback_call_is_never_blindly_retried_after_a_5xx() -> None:
    posts: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        posts.append(request)
        return httpx.Response(500, json={"error": {"code": "internal", "message": "oops"}})

    client, _ = _client(handler)
    with pytest.raises(ProviderError) as error:
        client.rollback("prj", "dpl_a", "RB-1")
    assert len(posts) == 1 and error.value.uncertain
    assert posts[0].url.path == "/v1/projects/prj/rollback/dpl_a"


def test_vercel_errors_are_clear_and_never_carry_the_token() -> None:
    client, _ = _client(lambda r: httpx.Response(403, json={"error": {"code": "forbidden", "message": "Not authorized"}}))
    with pytest.raises(ProviderError) as error:
        client.production_deployments("prj")
    assert error.value.message == "Vercel answered 403 forbidden: Not authorized"
    assert TOKEN not in repr(error.value) and TOKEN not in str(error.value)


def test_deployments_are_parsed() -> None:
    body = {"deployments": [{"uid": "dpl_a", "url": "shop-a.vercel.app", "createdAt": 1_700_000_000_000,
                             "readyState": "READY", "meta": {"githubCommitSha": "abc1234def",
                                                             "githubCommitMessage": "fix: tax",
                                                             "githubCommitAuthorName": "Jonas"}}]}
    client, _ = _client(lambda r: httpx.Response(200, json=body))
    [d] = client.production_deployments("prj")
    assert (d.uid, d.short_sha, d.author, d.commit_message) == ("dpl_a", "abc1234", "Jonas", "fix: tax")
    assert d.created_at.year == 2023


def test_an_error_body_of_an_unexpected_shape_is_still_a_clear_error() -> None:
    client, _ = _client(lambda r: httpx.Response(400, json={"error": "bad things"}))
    with pytest.raises(ProviderError) as error:
        client.production_deployments("prj")
    assert error.value.message == "Vercel answered 400: bad things" and error.value.status == 400


def test_an_env_write_error_that_echoes_the_value_has_it_hidden() -> None:
    from integrations.vercel_env import VercelEnvClient

    secret = "https://internal.example/token=abc123"
    client, _ = _client(lambda r: httpx.Response(400, json={"error": {"code": "bad_request",
                                                                      "message": f"invalid value {secret}"}}))
    env = VercelEnvClient(client)
    for write in (lambda: env.set_env_value("prj", "env_1", secret),
                  lambda: env.create_env("prj", "API_URL", secret, "encrypted", ["production"])):
        with pytest.raises(ProviderError) as error:
            write()
        assert secret not in str(error.value) and "invalid value [value]" in error.value.message


def test_env_answers_of_an_unexpected_shape_are_clear_errors() -> None:
    from integrations.vercel_env import VercelEnvClient

    client, _ = _client(lambda r: httpx.Response(200, json={"deployments": "none", "envs": {"x": 1}}))
    env = VercelEnvClient(client)
    with pytest.raises(ProviderError, match="in a shape Rollbot does not know"):
        env.find_redeploy("prj", "tag")
    with pytest.raises(ProviderError, match="in a shape Rollbot does not know"):
        env.env_vars("prj")


def _change_error(error: type) -> ProviderError:
    """The error a rollback call raises when its transport raises ``error``."""
    def handler(request: httpx.Request) -> httpx.Response:
        raise error("transport", request=request)

    client, _ = _client(handler)
    with pytest.raises(ProviderError) as raised:
        client.rollback("prj", "dpl_a", "RB-1")
    return raised.value


@pytest.mark.parametrize("error", [httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ConnectError])
def test_a_change_that_found_no_connection_is_a_definite_refusal_not_an_uncertain_one(error: type) -> None:
    raised = _change_error(error)
    assert raised.code == "unreachable" and not raised.uncertain  # nothing was sent


@pytest.mark.parametrize("error", [httpx.ReadTimeout, httpx.WriteTimeout, httpx.RemoteProtocolError, httpx.ReadError])
def test_a_change_whose_answer_did_not_come_is_uncertain(error: type) -> None:
    assert _change_error(error).uncertain  # it may have reached Vercel: read back, never resend blindly
