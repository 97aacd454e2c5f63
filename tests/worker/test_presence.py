"""Proof of life: each worker's item, read by routing through live_capacity."""

from __future__ import annotations

import pytest

from orchestrator.core import presence
from orchestrator.core.errors import AwsUnavailableError
from orchestrator.worker.presence import PresencePublisher
from worker.conftest import PRIMARY, REGION, RecordingModel, wait_until

NOW = 1_800_000_000.0


def item(
    region: str, worker_id: str, capacity: int, *, draining: bool = False, expires: float = NOW + 30
):
    return presence.WorkerPresence(region, worker_id, capacity, 0, draining, "t", int(expires))


def test_an_item_round_trips():
    original = presence.WorkerPresence(
        "us-west-2", "pod-1", 10, 3, True, "2027-01-15T08:00:00.000Z", 123, "s"
    )
    assert presence.WorkerPresence.from_item(original.to_item()) == original


def test_live_capacity_counts_live_workers_that_are_not_draining(stack):
    ddb = stack.client("dynamodb", PRIMARY)
    for entry in (
        item("us-west-2", "a", 10),
        item("us-west-2", "b", 4),
        item("us-west-2", "draining", 10, draining=True),
        item("us-west-2", "dead", 10, expires=NOW - 1),  # TTL passed, not yet deleted
        item("us-east-1", "c", 2),
    ):
        presence.publish(ddb, stack.workers_table, entry)
    capacity = presence.live_capacity(
        ddb, stack.workers_table, ["us-west-2", "us-east-1", "us-west-1"], NOW
    )
    assert capacity == {"us-west-2": 14, "us-east-1": 2, "us-west-1": 0}


def test_an_unreadable_table_is_an_error_not_zero_capacity(stack):
    with pytest.raises(AwsUnavailableError):
        presence.live_capacity(
            stack.client("dynamodb", PRIMARY), "no-such-table", ["us-west-2"], NOW
        )


def test_the_publisher_marks_draining_then_withdraws(stack):
    ddb = stack.client("dynamodb", PRIMARY)
    busy = [3]
    publisher = PresencePublisher(ddb, stack.workers_table, REGION, "pod-9", 10, lambda: busy[0])
    assert publisher.publish()
    [live] = stack.presence_items()
    assert (live.capacity, live.busy, live.draining) == (10, 3, False)
    assert publisher.mark_draining()
    assert stack.presence_items()[0].draining
    assert presence.live_capacity(ddb, stack.workers_table, [REGION], NOW - 10**6) == {REGION: 0}
    assert publisher.withdraw()
    assert stack.presence_items() == []


def test_a_running_worker_is_present_with_its_batch_size_and_gone_after_it_stops(
    stack, start_worker
):
    handle = start_worker(RecordingModel(), batch_size=8, presence_interval=0.2)
    [live] = wait_until(stack.presence_items, 5)
    assert (live.worker_id, live.capacity, live.draining) == (
        handle.worker.settings.worker_id,
        8,
        False,
    )
    assert live.expires_at >= presence.TTL_SECONDS  # an absolute epoch, in the future
    assert handle.stop() == 0
    assert stack.presence_items() == []
