import copy
import threading
import time

from bot.deferred import Deferred


class Adapter:
    built = 0

    def __init__(self) -> None:
        type(self).built += 1
        self.closed = False
        self.name = "vercel"
        time.sleep(0.05)  # long enough for every thread below to ask while it is being built

    def call(self, value: int) -> int:
        return value * 2

    def close(self) -> None:
        self.closed = True


def test_nothing_is_built_until_first_used_then_every_call_reaches_the_one_built() -> None:
    Adapter.built = 0
    deferred = Deferred(Adapter)
    assert Adapter.built == 0 and not deferred.built
    assert deferred.call(21) == 42
    assert deferred.name == "vercel"
    assert deferred.call(1) == 2
    assert Adapter.built == 1 and deferred.built


def test_threads_asking_at_once_build_it_once() -> None:
    Adapter.built = 0
    deferred = Deferred(Adapter)
    seen: list[object] = []
    start = threading.Barrier(8)

    def ask() -> None:
        start.wait()
        seen.append(deferred.get())

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Adapter.built == 1
    assert len(seen) == 8 and all(one is seen[0] for one in seen)


def test_close_builds_nothing_and_closes_what_was_built() -> None:
    Adapter.built = 0
    unused = Deferred(Adapter)
    unused.close()
    assert Adapter.built == 0 and not unused.built
    used = Deferred(Adapter)
    built = used.get()
    used.close()
    assert built.closed


def test_a_failed_build_is_tried_again_on_the_next_use() -> None:
    attempts: list[int] = []

    def flaky() -> Adapter:
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("no route")
        return Adapter()

    deferred = Deferred(flaky)
    try:
        deferred.call(1)
    except OSError:
        pass
    else:
        raise AssertionError("the first build's error should reach the caller")
    assert deferred.call(2) == 4 and len(attempts) == 2


def test_an_unknown_attribute_is_the_built_objects_error_and_copying_does_not_recurse() -> None:
    deferred = Deferred(Adapter)
    try:
        deferred.missing  # noqa: B018
    except AttributeError as error:
        assert "missing" in str(error)
    else:
        raise AssertionError("expected AttributeError")
    copied = copy.copy(deferred)
    assert copied.call(3) == 6


def test_nothing_is_built_after_close() -> None:
    Adapter.built = 0
    deferred = Deferred(Adapter)
    deferred.close()
    try:
        deferred.call(1)
    except RuntimeError as error:
        assert "after close" in str(error)
    else:
        raise AssertionError("a closed Deferred must not build a client nobody will close")
    assert Adapter.built == 0


def test_the_adapters_the_web_defers_have_no_names_the_stand_in_shadows() -> None:
    from integrations.health import HttpHealthChecker
    from integrations.vercel import VercelClient

    own = {"get", "built"}  # close() is meant to be the stand-in's: it closes only what was built
    for adapter in (VercelClient, HttpHealthChecker):
        assert not own & set(dir(adapter)), adapter.__name__
