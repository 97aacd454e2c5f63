from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import EndpointConnectionError

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
            raise EndpointConnectionError(endpoint_url="https://sqs.us-west-2.amazonaws.com")
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


# -- the presence seam, ages and preemptions ----------------------------------------------------


class Presence:
    """A presence reader: live capacity per region, or a failure."""

    def __init__(self, reading=None, fail=False):
        self.reading, self.fail, self.calls = dict(reading or {}), fail, 0

    def __call__(self):
        self.calls += 1
        if self.fail:
            raise EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")
        return self.reading


def with_presence(clients, pool, clock, presence, ttl=10.0):
    return DepthCache(
        {r: f"url-{r}" for r in clients},
        clients,
        ttl,
        pool,
        clock,
        random.Random(3),
        presence=presence,
    )


def by_region(cache):
    return {load.region: load for load in cache.snapshot()}


def test_live_capacity_comes_from_presence_and_an_absent_region_has_none(pool):
    clients = {"a": FakeSqs(3, 10), "b": FakeSqs(0, 0)}
    presence = Presence({"a": 4.0})
    loads = by_region(with_presence(clients, pool, Clock(), presence))
    assert loads["a"].live_capacity == 4.0  # ten in flight, but four GPUs alive: six zombies
    assert loads["b"].live_capacity == 0.0
    assert presence.calls == 1


def test_presence_is_read_once_per_refresh(pool):
    clock, presence = Clock(), Presence({"a": 2.0})
    cache = with_presence({"a": FakeSqs()}, pool, clock, presence)
    for _ in range(3):
        cache.snapshot()
    clock.now = 100
    cache.snapshot()
    assert presence.calls == 2 == cache.refreshes


def test_without_presence_or_when_it_fails_live_capacity_is_unknown(pool):
    clients = {"a": FakeSqs(3, 2)}
    assert by_region(make(clients, pool, Clock()))["a"].live_capacity is None
    failing = by_region(with_presence(clients, pool, Clock(), Presence(fail=True)))["a"]
    assert failing.live_capacity is None
    assert (failing.visible, failing.in_flight, failing.stale) == (3, 2, False)


def test_age_counts_from_the_last_successful_read(pool):
    clients = {"a": FakeSqs(1, 1), "b": FakeSqs(1, 1)}
    clock = Clock()
    cache = make(clients, pool, clock)
    assert by_region(cache)["a"].age == 0
    clock.now = 5
    assert by_region(cache)["a"].age == 5
    clients["b"].fail = True
    clock.now = 50
    loads = by_region(cache)
    assert loads["a"].age == 0
    assert loads["b"].age == 50 and loads["b"].stale


def test_a_sudden_fall_of_live_capacity_is_remembered_as_a_preemption(pool):
    clock, presence = Clock(), Presence({"a": 8.0, "b": 8.0})
    cache = with_presence({"a": FakeSqs(), "b": FakeSqs()}, pool, clock, presence)
    assert by_region(cache)["a"].since_drop == float("inf")
    presence.reading = {"a": 2.0, "b": 7.0}  # a loses three quarters; b one of eight
    clock.now = 20
    loads = by_region(cache)
    assert loads["a"].since_drop == 0
    assert loads["b"].since_drop == float("inf")
    clock.now = 25
    assert by_region(cache)["a"].since_drop == 5


def test_without_presence_a_fall_of_in_flight_under_a_backlog_is_a_preemption(pool):
    clients = {"a": FakeSqs(visible=5, in_flight=8)}
    clock = Clock()
    cache = make(clients, pool, clock)
    cache.snapshot()
    clients["a"].visible, clients["a"].in_flight = 0, 1  # drained: says nothing about capacity
    clock.now = 20
    assert by_region(cache)["a"].since_drop == float("inf")
    clients["a"].visible, clients["a"].in_flight = 30, 2  # a backlog, and only two at work
    clock.now = 40
    assert by_region(cache)["a"].since_drop == 0


def test_a_defect_while_reading_depths_surfaces_instead_of_marking_the_region_stale():
    """A TypeError is a bug, not an outage: it must reach the handler (which hands the batch
    back), never be taken for a region whose figures are merely stale."""
    from concurrent.futures import ThreadPoolExecutor

    from orchestrator.core.depth import DepthCache

    class Buggy:
        def get_queue_attributes(self, **_):
            raise TypeError("unexpected keyword argument")

    with ThreadPoolExecutor(2) as executor:
        cache = DepthCache({"us-east-1": "url"}, {"us-east-1": Buggy()}, 10.0, executor)
        with pytest.raises(TypeError):
            cache.refresh()
