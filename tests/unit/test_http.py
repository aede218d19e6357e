"""The adapters' HTTP layer: bounded retries of reads that honour the server's wait, and calls
that change something sent exactly once."""

from __future__ import annotations

import time

import httpx
import pytest

from integrations import http


def _client(responses: list[httpx.Response | Exception]) -> tuple[httpx.Client, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = responses.pop(0) if responses else httpx.Response(200, json={"ok": True})
        if isinstance(answer, Exception):
            raise answer
        return answer

    return http.client("https://api.test", transport=httpx.MockTransport(handler)), seen


def test_a_read_waits_as_long_as_retry_after_says() -> None:
    client, seen = _client([httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(503)])
    sleeps: list[float] = []
    response = http.read(client, "GET", "/x", sleep=sleeps.append)
    assert response.status_code == 200 and len(seen) == 3
    assert sleeps[0] == 7.0 and 0.25 <= sleeps[1] <= 0.7  # then the backoff for the 503


def test_a_read_honours_x_ratelimit_reset_capped_at_max_wait() -> None:
    reset = str(int(time.time()) + 3600)
    client, _ = _client([httpx.Response(429, headers={"X-RateLimit-Reset": reset})])
    sleeps: list[float] = []
    http.read(client, "GET", "/x", sleep=sleeps.append, max_wait=20)
    assert sleeps == [20]


def test_a_read_gives_up_after_its_attempts_with_the_last_answer() -> None:
    client, seen = _client([httpx.Response(502)] * 10)
    sleeps: list[float] = []
    response = http.read(client, "GET", "/x", attempts=3, sleep=sleeps.append)
    assert response.status_code == 502 and len(seen) == 3 and len(sleeps) == 2


def test_a_read_retries_timeouts_then_raises() -> None:
    client, seen = _client([httpx.ReadTimeout("slow")] * 5)
    with pytest.raises(httpx.ReadTimeout):
        http.read(client, "GET", "/x", attempts=3, sleep=lambda _: None)
    assert len(seen) == 3


@pytest.mark.parametrize("dropped", [httpx.RemoteProtocolError("Server disconnected without sending a response."),
                                     httpx.ReadError("[Errno 104] Connection reset by peer"),
                                     httpx.WriteError("[Errno 32] Broken pipe")])
def test_a_read_on_a_connection_the_server_dropped_is_asked_again(dropped: Exception) -> None:
    """A pooled keep-alive connection the server closed just as it was used again."""
    client, seen = _client([dropped])
    assert http.read(client, "GET", "/x", sleep=lambda _: None).status_code == 200 and len(seen) == 2


def test_a_protocol_error_of_our_own_is_not_retried() -> None:
    client, seen = _client([httpx.LocalProtocolError("bad header")])
    with pytest.raises(httpx.LocalProtocolError):
        http.read(client, "GET", "/x", sleep=lambda _: None)
    assert len(seen) == 1


def test_client_errors_are_not_retried() -> None:
    client, seen = _client([httpx.Response(404)])
    assert http.read(client, "GET", "/x", sleep=lambda _: None).status_code == 404 and len(seen) == 1


@pytest.mark.parametrize("answer", [httpx.Response(500), httpx.Response(429), httpx.ReadTimeout("slow"),
                                    httpx.RemoteProtocolError("Server disconnected without sending a response.")])
def test_a_change_is_sent_once_whatever_happens(answer: httpx.Response | Exception) -> None:
    client, seen = _client([answer])
    if isinstance(answer, Exception):
        with pytest.raises(type(answer)):
            http.send_once(client, "POST", "/x")
    else:
        assert http.send_once(client, "POST", "/x").status_code == answer.status_code
    assert len(seen) == 1


def test_the_client_ignores_proxy_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    client = http.client("https://api.test")
    assert client._trust_env is False and client.headers["User-Agent"] == "rollbot"
