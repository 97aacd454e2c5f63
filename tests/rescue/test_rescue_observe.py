"""What the rescue reads: the oldest-message age (CloudWatch), worker presence, its memory."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from rescue_world import HEALTHY_A, HEALTHY_B, NOW, STALLED, World

from orchestrator.core.presence import WorkerPresence, publish, table_definition
from orchestrator.rescue.handler import build_rescue
from orchestrator.rescue.memory import StallMemory
from orchestrator.rescue.observe import CloudWatchAges
from support.faults import FaultySession


def test_cloudwatch_age_is_the_latest_datapoint_of_the_queue(world: World) -> None:
    cloudwatch = world.aws.client("cloudwatch", STALLED)
    url = world.aws.queue_urls[STALLED]
    queue_name = url.rsplit("/", 1)[-1]
    now = time.time()
    cloudwatch.put_metric_data(
        Namespace="AWS/SQS",
        MetricData=[
            {
                "MetricName": "ApproximateAgeOfOldestMessage",
                "Dimensions": [{"Name": "QueueName", "Value": queue_name}],
                "Value": value,
                "Timestamp": datetime.fromtimestamp(now - ago, UTC),
            }
            for value, ago in ((640.0, 180), (700.0, 60))
        ],
    )
    ages = CloudWatchAges(world.aws.queue_urls, {STALLED: cloudwatch, HEALTHY_A: cloudwatch})
    assert ages(STALLED, now) == 700.0
    assert ages(HEALTHY_A, now) is None, "no datapoint: unknown, never 0"


def test_ages_are_read_only_for_queues_with_messages_waiting(world: World) -> None:
    world.give_worker(HEALTHY_A)
    world.give_worker(STALLED)
    world.seed(STALLED, 2)
    session = FaultySession(world.aws.session, world.faults)
    app = build_rescue(world.aws.environ(RESCUE_MAX_AGE_SECONDS="600"), session, world.clock)

    app.handle()

    metric_reads = [c for c in world.faults.calls if c[1] == "get_metric_data"]
    assert metric_reads == [("cloudwatch", "get_metric_data", STALLED)]


def test_no_metric_is_read_when_the_age_rule_is_off(world: World) -> None:
    world.seed(STALLED, 2)
    session = FaultySession(world.aws.session, world.faults)
    app = build_rescue(world.aws.environ(RESCUE_MAX_AGE_SECONDS="0"), session, world.clock)

    app.handle()

    assert world.calls("get_metric_data") == 0


def test_presence_shows_zombie_in_flight_and_picks_live_regions(world: World) -> None:
    """Messages held by a dead worker look busy to SQS; presence says nobody is there."""
    dynamodb = world.aws.client("dynamodb")
    dynamodb.create_table(TableName="workers", **table_definition())
    publish(
        dynamodb,
        "workers",
        WorkerPresence(HEALTHY_A, "gpu-1", 4, 1, False, "2025-12-02T10:22:50.000Z", int(NOW) + 40),
    )
    world.give_worker(STALLED)  # the zombie: in flight, no presence
    world.give_worker(HEALTHY_B)  # in flight too, but its worker is not alive either
    world.give_worker(HEALTHY_A)
    ids = world.seed(STALLED, 7)

    report = world.app(WORKERS_TABLE_NAME="workers").handle()

    assert report["observations"][STALLED]["live_capacity"] == 0
    assert report["observations"][HEALTHY_A]["live_capacity"] == 4
    assert report["stranded"] == {STALLED: "no-consumers"}
    moved = [m.request_id for m in world.read(HEALTHY_A)]
    assert sorted(moved) == sorted(ids), "only the region with a live worker takes the work"


def test_an_unreadable_presence_falls_back_to_queue_counts(world: World) -> None:
    world.give_worker(HEALTHY_A)
    world.seed(STALLED, 3)
    world.faults.unreachable("dynamodb", "query")

    report = world.app(WORKERS_TABLE_NAME="workers").handle()

    assert report["observations"][STALLED]["live_capacity"] is None
    assert report["stranded"] == {STALLED: "no-consumers"}


def test_the_memory_round_trips_and_is_written_only_on_change(world: World) -> None:
    memory = StallMemory(world.aws.table_name, world.aws.client("dynamodb"))
    assert memory.load() == {}
    memory.save({STALLED: NOW - 30.5, HEALTHY_B: NOW}, NOW)
    assert memory.load() == {STALLED: NOW - 30.5, HEALTHY_B: NOW}

    world.seed(STALLED, 1)
    app = world.app(RESCUE_STALL_SECONDS="600")
    app.handle()  # HEALTHY_B is empty now: its clock stops, a write
    writes = world.calls("put_item")
    world.clock.advance(60)
    app.handle()  # nothing changed: no write
    assert world.calls("put_item") == writes == 1
    assert memory.load() == {STALLED: NOW - 30.5}
