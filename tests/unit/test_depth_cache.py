from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from orchestrator.core.depth import DepthCache
from orchestrator.core.health import RegionHealth


class FakeSqs:
    def __init__(self, visible=0, in_flight=0, fail=False, wait: threading.Barrier | None = None):
        self.visible, self.in_flight, self.fail, self.wait = visible, in_flight, fail, wait
        self.calls = 0

    def get_queue_attributes(self, QueueUrl, AttributeNames):
        self.calls += 1
        if self.wait:
            self.wait.wait(timeout=2)
        if self.fail:
            raise ConnectionError("down")
        return {
            "Attributes": {
                "ApproximateNumberOfMessages": str(self.visible),
                "ApproximateNumberOfMessagesNotVisible": str(self.in_flight),
            }
        }


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture
def pool():
    with ThreadPoolExecutor(8) as executor:
        yield executor


def make(clients, pool, clock, ttl=10.0):
    return DepthCache({r: f"url-{r}" for r in clients}, clients, ttl, pool, clock, random.Random(3))


def test_refreshes_at_most_once_per_ttl_with_jitter(pool):
    clients = {"a": FakeSqs(5, 1)}
    clock = Clock()
    cache = make(clients, pool, clock)
    for _ in range(5):
        cache.snapshot()
    assert clients["a"].calls == 1
    clock.now = 9.99
    cache.snapshot()
    assert clients["a"].calls == 1
    clock.now = 12.01  # past ttl * 1.2
    cache.snapshot()
    assert clients["a"].calls == 2


def test_all_regions_are_read_in_parallel(pool):
    barrier = threading.Barrier(3)  # would time out if the reads were sequential
    clients = {r: FakeSqs(1, 1, wait=barrier) for r in ("a", "b", "c")}
    loads = make(clients, pool, Clock()).snapshot()
    assert not barrier.broken
    assert all(not load.stale for load in loads)


def test_failed_refresh_keeps_last_figures_marked_stale(pool):
    clients = {"a": FakeSqs(7, 3), "b": FakeSqs(1, 1)}
    clock = Clock()
    cache = make(clients, pool, clock)
    cache.snapshot()
    clients["a"].fail = True
    clock.now = 100
    loads = {x.region: x for x in cache.snapshot()}
    assert (loads["a"].visible, loads["a"].in_flight, loads["a"].stale) == (7, 3, True)
    assert not loads["b"].stale


def test_forwarded_messages_count_until_the_next_refresh(pool):
    clients = {"a": FakeSqs(4, 0)}
    clock = Clock()
    cache = make(clients, pool, clock)
    cache.snapshot()
    cache.record_forwarded("a", 6)
    load = cache.snapshot()[0]
    assert (load.visible, load.pending, load.backlog) == (4, 6, 10)
    clock.now = 100
    assert cache.snapshot()[0].backlog == 4  # the fresh figure already includes them


def test_capacity_hint_remembers_the_busiest_recent_in_flight_and_decays(pool):
    clients = {"a": FakeSqs(10, 8)}
    clock = Clock()
    cache = make(clients, pool, clock)
    assert cache.snapshot()[0].capacity_hint == 8
    clients["a"].visible, clients["a"].in_flight = 0, 0  # drained between refreshes
    clock.now = 120  # one half-life later
    assert cache.snapshot()[0].capacity_hint == pytest.approx(4.0)
    clients["a"].in_flight = 6
    clock.now = 240
    assert cache.snapshot()[0].capacity_hint == 6


def test_cooling_down_regions_are_marked_unavailable(pool):
    clock = Clock()
    health = RegionHealth(30, clock)
    cache = make({"a": FakeSqs(), "b": FakeSqs()}, pool, clock)
    health.mark_failed("a")
    assert {x.region: x.available for x in cache.snapshot(health.is_available)} == {
        "a": False,
        "b": True,
    }
    clock.now = 31
    assert health.is_available("a")
