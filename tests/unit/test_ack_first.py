"""bot.ack_first: the request returns when the listener acks, while its slow part goes on."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bot.ack_first import AckFirst


class _Ack:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)


def _ack_first() -> tuple[AckFirst, list[tuple[Exception, dict[str, Any]]], ThreadPoolExecutor]:
    errors: list[tuple[Exception, dict[str, Any]]] = []
    pool = ThreadPoolExecutor(max_workers=4)
    return AckFirst(pool, lambda error, body: errors.append((error, body))), errors, pool


def test_the_request_returns_at_the_ack_while_the_listener_goes_on() -> None:
    ack_first, errors, pool = _ack_first()
    release, finished = threading.Event(), threading.Event()

    def listener(ack: Any, body: dict[str, Any]) -> None:
        ack(text="on it")
        release.wait(5)
        finished.set()

    ack = _Ack()
    started = time.monotonic()
    ack_first.wrap(listener)(ack=ack, body={})
    assert time.monotonic() - started < 1.0 and ack.calls == [{"text": "on it"}]
    assert not finished.is_set()  # the slow part still runs, on the executor
    release.set()
    assert finished.wait(5) and errors == []
    pool.shutdown()


def test_a_listener_that_fails_before_its_ack_returns_an_empty_ack_and_reaches_the_error_handler() -> None:
    ack_first, errors, pool = _ack_first()

    def listener(ack: Any, body: dict[str, Any]) -> None:
        raise RuntimeError("boom")

    ack = _Ack()
    ack_first.wrap(listener)(ack=ack, body={"response_url": "https://hooks.example/1"})
    pool.shutdown(wait=True)
    assert ack.calls == [{}]  # an empty 200, not a 404 for an unhandled request
    [(error, body)] = errors
    assert str(error) == "boom" and body["response_url"] == "https://hooks.example/1"


def test_an_event_listener_without_ack_is_handed_over_whole() -> None:
    ack_first, errors, pool = _ack_first()
    release, ran = threading.Event(), threading.Event()

    def on_event(event: dict[str, Any]) -> None:
        release.wait(5)
        ran.set()

    started = time.monotonic()
    ack_first.wrap(on_event)(event={"type": "app_home_opened"})
    assert time.monotonic() - started < 1.0 and not ran.is_set()
    release.set()
    assert ran.wait(5)
    pool.shutdown()


def test_bolt_sees_the_listener_s_own_parameters() -> None:
    from slack_bolt.util.utils import get_arg_names_of_callable

    ack_first, _, pool = _ack_first()

    def listener(ack: Any, body: dict[str, Any], client: Any) -> None:
        ack()

    assert get_arg_names_of_callable(ack_first.wrap(listener)) == ["ack", "body", "client"]
    pool.shutdown()


def test_a_listener_that_never_acks_gets_an_empty_ack_before_slack_gives_up(monkeypatch) -> None:  # noqa: ANN001
    import bot.ack_first

    monkeypatch.setattr(bot.ack_first, "ACK_WAIT_SECONDS", 0.05)
    ack_first, errors, pool = _ack_first()
    release = threading.Event()

    def listener(ack: Any, body: dict[str, Any]) -> None:
        release.wait(5)

    ack = _Ack()
    ack_first.wrap(listener)(ack=ack, body={})
    assert ack.calls == [{}]  # answered by the request thread while the listener still runs
    release.set()
    pool.shutdown(wait=True)
    assert errors == []


# -- listeners in the request thread ---------------------------------------------------------


def test_an_in_request_thread_listener_acks_in_the_caller_s_thread_and_its_rest_runs_after() -> None:
    from bot.ack_first import in_request_thread

    ack_first, errors, pool = _ack_first()
    threads: dict[str, int] = {}
    release, finished = threading.Event(), threading.Event()

    def rest() -> None:
        threads["rest"] = threading.get_ident()
        release.wait(5)
        finished.set()

    @in_request_thread
    def listener(ack: Any, body: dict[str, Any]) -> Any:
        threads["listener"] = threading.get_ident()
        ack(text="queued")
        return rest

    ack = _Ack()
    ack_first.wrap(listener)(ack=ack, body={})
    assert threads["listener"] == threading.get_ident() and ack.calls == [{"text": "queued"}]
    release.set()
    assert finished.wait(5) and threads["rest"] != threading.get_ident() and errors == []
    pool.shutdown()


def test_an_in_request_thread_listener_that_fails_or_forgets_to_ack_still_answers() -> None:
    from bot.ack_first import in_request_thread

    ack_first, errors, pool = _ack_first()

    @in_request_thread
    def failing(ack: Any, body: dict[str, Any]) -> Any:
        raise RuntimeError("database down")

    @in_request_thread
    def forgetful(ack: Any, body: dict[str, Any]) -> Any:
        return None

    @in_request_thread
    def failing_later(ack: Any, body: dict[str, Any]) -> Any:
        ack()

        def rest() -> None:
            raise ValueError("after the ack")
        return rest

    acks = [_Ack(), _Ack(), _Ack()]
    for listener, ack in zip((failing, forgetful, failing_later), acks, strict=True):
        ack_first.wrap(listener)(ack=ack, body={"response_url": "https://hooks.example/1"})
    pool.shutdown(wait=True)
    assert [a.calls for a in acks] == [[{}], [{}], [{}]]  # each an empty 200, never Bolt's 404
    assert sorted(str(error) for error, _ in errors) == ["after the ack", "database down"]
    assert all(body["response_url"] == "https://hooks.example/1" for _, body in errors)
