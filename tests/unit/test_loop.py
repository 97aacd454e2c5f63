"""`orchestrator.core.loop.BackgroundLoop`: the loop behind the pollers, the sampler and the
workers. No network: steps are plain functions."""

from __future__ import annotations

import itertools
import logging
import statistics
import threading
import time
from collections.abc import Callable

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from orchestrator.core.loop import BackgroundLoop


def until(predicate: Callable[[], object], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_each_thread_runs_its_step_until_stop() -> None:
    seen: list[int] = []
    lock = threading.Lock()

    def step(index: int) -> None:
        with lock:
            seen.append(index)
        time.sleep(0.005)

    loop = BackgroundLoop(step, name="t", threads=3).start()
    assert until(lambda: {0, 1, 2} <= set(seen))
    assert loop.stop(timeout=2) is True
    assert not loop.running
    count = len(seen)
    time.sleep(0.05)
    assert len(seen) == count  # nothing runs after stop
    assert loop.stop() is True  # stopping twice is harmless
    assert loop.failure is None


def test_stop_interrupts_the_pause_between_periodic_steps() -> None:
    calls: list[float] = []
    loop = BackgroundLoop(lambda _: calls.append(time.monotonic()), name="t", interval=30)
    loop.start()
    assert until(lambda: calls)
    began = time.monotonic()
    assert loop.stop(timeout=5)
    assert time.monotonic() - began < 1.0
    assert len(calls) == 1


def test_the_interval_is_measured_from_the_start_of_a_step() -> None:
    calls: list[float] = []

    def step(_: int) -> None:
        calls.append(time.monotonic())
        time.sleep(0.08)

    with BackgroundLoop(step, name="t", interval=0.1):
        assert until(lambda: len(calls) >= 4)
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    # About 0.1 s, not 0.18 (step + interval): the step's own time counts towards it.
    assert min(gaps) >= 0.09 and statistics.median(gaps) < 0.15, gaps


def test_an_aws_failure_is_logged_and_retried_after_the_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[float] = []

    def step(_: int) -> None:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
        if len(calls) == 2:
            raise ClientError({"Error": {"Code": "Throttling", "Message": "slow down"}}, "Receive")

    with caplog.at_level(logging.WARNING, logger="orchestrator.core.loop"):
        loop = BackgroundLoop(step, name="poller", error_backoff=0.05).start()
        assert until(lambda: len(calls) >= 4)
        loop.stop()
    assert loop.failure is None
    assert calls[1] - calls[0] >= 0.04  # waited the backoff before trying again
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "poller: Could not connect to the endpoint URL" in warnings[0].getMessage()
    assert "Throttling" in warnings[1].getMessage()
    assert all(r.exc_info is None for r in warnings)  # one line each, no traceback


def test_a_defect_is_logged_with_its_traceback_and_ends_the_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[int] = []

    def step(index: int) -> None:
        calls.append(index)
        raise TypeError("unsupported operand")

    with caplog.at_level(logging.ERROR, logger="orchestrator.core.loop"):
        loop = BackgroundLoop(step, name="sampler", error_backoff=0).start()
        assert until(lambda: not loop.running)
    assert calls == [0]  # not retried
    assert isinstance(loop.failure, TypeError)
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "sampler stopped by an unexpected error" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is TypeError


def test_a_defect_in_one_thread_stops_the_others() -> None:
    def step(index: int) -> None:
        if index == 0:
            raise KeyError("missing")
        time.sleep(0.01)

    loop = BackgroundLoop(step, name="t", threads=3).start()
    assert until(lambda: not loop.running)
    assert isinstance(loop.failure, KeyError)


def test_a_step_sees_the_stop_request() -> None:
    handed_back: list[bool] = []
    holder: list[BackgroundLoop] = []

    def step(_: int) -> None:
        time.sleep(0.05)  # "gathering" while the stop arrives
        if holder[0].stopping:
            handed_back.append(True)

    loop = BackgroundLoop(step, name="t")
    holder.append(loop)
    loop.start()
    time.sleep(0.02)
    loop.stop()
    assert handed_back == [True]


def test_start_twice_is_refused_and_a_stopped_loop_restarts() -> None:
    loop = BackgroundLoop(lambda _: time.sleep(0.01), name="t")
    loop.start()
    with pytest.raises(RuntimeError, match="already running"):
        loop.start()
    loop.stop()
    loop.start()
    assert loop.running
    loop.stop()


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="threads"):
        BackgroundLoop(lambda _: None, name="t", threads=0)
    with pytest.raises(ValueError, match="negative"):
        BackgroundLoop(lambda _: None, name="t", interval=-1)


def test_request_stop_lets_several_loops_stop_together() -> None:
    loops = [BackgroundLoop(lambda _: time.sleep(0.2), name=f"l{i}") for i in range(3)]
    for loop in loops:
        loop.start()
    time.sleep(0.05)
    began = time.monotonic()
    for loop in loops:
        loop.request_stop()
    assert all(loop.stop(timeout=2) for loop in loops)
    assert time.monotonic() - began < 0.5  # in parallel, not 3 x 0.2 s one after another
