"""The rescue with high-priority queues beside the standard ones, and with model placement and
data residency: a stranded high-priority queue moves into other regions' high-priority queues,
and no message ever moves to a region it may not run in."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from rescue_world import HEALTHY_A, HEALTHY_B, STALLED, World

from orchestrator.core.record import RequestStatus
from orchestrator.core.settings import ConfigError
from orchestrator.rescue.handler import build_rescue

HIGH = f"{STALLED}:high"


def _ids(world: World, region: str, high: bool = False) -> list[str]:
    return [m.request_id for m in world.read(region, high=high) if m.request_id]


def test_a_stranded_high_priority_queue_moves_to_the_shortest_high_priority_waits(
    world: World,
) -> None:
    """Capacities 1 and 3 (messages in flight), empty high-priority queues: us-west-2 first
    (tie, larger capacity), then us-east-1 (0 against 1/3), then us-west-2 until 3/3 = 1/1,
    and the tie to us-west-2 again: 4 and 1."""
    world.add_high_queues()
    world.give_worker(HEALTHY_A)
    for _ in range(3):
        world.give_worker(HEALTHY_B)
    ids = world.seed(STALLED, 5, high=True)

    report = world.app().handle()

    assert report["stranded"] == {HIGH: "no-consumers"}
    assert report["regions"][HIGH]["moved"] == {f"{HEALTHY_B}:high": 4, f"{HEALTHY_A}:high": 1}
    assert world.depth(STALLED, high=True) == (0, 0)
    moved = {r: world.read(r, high=True) for r in (HEALTHY_A, HEALTHY_B)}
    assert sorted(m.request_id or "" for msgs in moved.values() for m in msgs) == sorted(ids)
    assert {m.attempt for msgs in moved.values() for m in msgs} == {2}
    assert {m.raw["MessageAttributes"]["priority"]["StringValue"] for m in moved[HEALTHY_B]} == {
        "high"
    }
    for region, messages in moved.items():
        for message in messages:
            assert world.record(message.request_id or "").region == region
    assert _ids(world, HEALTHY_A) == _ids(world, HEALTHY_B) == []  # not the standard queues


def test_both_queues_of_a_dead_region_move_each_to_its_own_kind(world: World) -> None:
    world.add_high_queues()
    world.give_worker(HEALTHY_A)
    world.give_worker(HEALTHY_B)
    standard = world.seed(STALLED, 12)
    urgent = world.seed(STALLED, 4, high=True)

    report = world.app().handle()

    assert report["stranded"] == {STALLED: "no-consumers", HIGH: "no-consumers"}
    assert sorted(_ids(world, HEALTHY_A) + _ids(world, HEALTHY_B)) == sorted(standard)
    in_high = _ids(world, HEALTHY_A, high=True) + _ids(world, HEALTHY_B, high=True)
    assert sorted(in_high) == sorted(urgent)
    assert world.depth(STALLED) == world.depth(STALLED, high=True) == (0, 0)


def test_workers_busy_on_one_queue_keep_the_other_from_looking_stalled(world: World) -> None:
    """The same workers consume both queues: a region working through high-priority messages
    is not stranded because its standard queue has nothing in flight, nor the other way."""
    world.add_high_queues()
    world.give_worker(HEALTHY_A)
    world.give_worker(STALLED, high=True)  # busy on high-priority work
    waiting = world.seed(STALLED, 6)
    world.give_worker(HEALTHY_B)  # busy on standard work
    urgent = world.seed(HEALTHY_B, 2, high=True)

    report = world.app().handle()

    assert report["stranded"] == {}
    assert report["observations"][STALLED]["in_flight"] == 1
    assert report["observations"][f"{HEALTHY_B}:high"]["in_flight"] == 1
    assert sorted(_ids(world, STALLED)) == sorted(waiting)
    assert sorted(_ids(world, HEALTHY_B, high=True)) == sorted(urgent)


def test_the_age_rule_reads_each_queue_by_its_own_key(world: World) -> None:
    world.add_high_queues()
    world.give_worker(HEALTHY_A)
    world.give_worker(HEALTHY_B)
    world.give_worker(STALLED)  # consuming: only the age rule can strand it
    world.seed(STALLED, 3)
    urgent = world.seed(STALLED, 3, high=True)
    world.ages[HIGH] = 900.0

    report = world.app().handle()

    assert report["stranded"] == {HIGH: "too-old"}
    in_high = _ids(world, HEALTHY_A, high=True) + _ids(world, HEALTHY_B, high=True)
    assert sorted(in_high) == sorted(urgent)
    assert world.depth(STALLED)[0] == 3


# ---------------------------------------------------------------------- placement and residency
LLAMA_REGIONS = json.dumps({"llama-70b": [STALLED, HEALTHY_B]})


def test_rescued_work_goes_only_where_its_model_is_served(world: World) -> None:
    world.give_worker(HEALTHY_A)
    world.give_worker(HEALTHY_B)
    llama = world.seed(STALLED, 8, model_name="llama-70b")
    other = world.seed(STALLED, 8)

    report = world.app(MODEL_REGIONS=LLAMA_REGIONS).handle()

    in_a, in_b = _ids(world, HEALTHY_A), _ids(world, HEALTHY_B)
    assert not set(llama) & set(in_a), "us-east-1 does not serve llama-70b"
    assert set(llama) <= set(in_b)
    assert sorted(in_a + in_b) == sorted(llama + other)
    assert report["regions"][STALLED]["pinned"] == 0


def test_a_message_whose_only_other_permitted_region_is_down_stays(world: World) -> None:
    world.give_worker(HEALTHY_A)
    stuck_b = world.seed(HEALTHY_B, 2)  # us-west-2 is stranded too: no target for anything
    llama = world.seed(STALLED, 5, model_name="llama-70b")
    other = world.seed(STALLED, 5)

    report = world.app(MODEL_REGIONS=LLAMA_REGIONS).handle()

    assert set(report["stranded"]) == {STALLED, HEALTHY_B}
    assert report["regions"][STALLED]["pinned"] == 5
    assert sorted(_ids(world, STALLED)) == sorted(llama)  # handed back, visible
    assert sorted(_ids(world, HEALTHY_A)) == sorted(other + stuck_b)
    assert _ids(world, HEALTHY_B) == []
    for request_id in llama:
        record = world.record(request_id)
        assert (record.region, record.status) == (STALLED, RequestStatus.FORWARDED)


def test_allowed_regions_of_the_body_are_obeyed(world: World) -> None:
    world.add_high_queues()
    world.give_worker(HEALTHY_A)
    world.give_worker(HEALTHY_B)
    pinned = world.seed(STALLED, 3, allowed_regions=[STALLED])
    to_b = world.seed(STALLED, 3, high=True, allowed_regions=[STALLED, HEALTHY_B])
    to_a = world.seed(STALLED, 4, allowed_regions=[HEALTHY_A, "eu-west-1"])

    report = world.app().handle()

    assert report["regions"][STALLED]["pinned"] == 3
    assert sorted(_ids(world, STALLED)) == sorted(pinned)
    assert sorted(_ids(world, HEALTHY_B, high=True)) == sorted(to_b)
    assert sorted(_ids(world, HEALTHY_A)) == sorted(to_a)
    assert _ids(world, HEALTHY_A, high=True) == _ids(world, HEALTHY_B) == []


def test_a_residency_rule_that_cannot_be_read_moves_nothing(world: World) -> None:
    """Fail closed: a body whose allowed_regions is not a list of names stays put."""
    world.give_worker(HEALTHY_A)
    sqs, url = world.sqs(STALLED), world.aws.queue_urls[STALLED]
    sqs.send_message(
        QueueUrl=url,
        MessageBody=json.dumps({"request_id": "r-odd", "allowed_regions": "us-east-1"}),
    )

    report = world.app().handle()

    assert report["regions"][STALLED]["pinned"] == 1
    assert [m.body for m in world.read(STALLED)] == [
        json.dumps({"request_id": "r-odd", "allowed_regions": "us-east-1"})
    ]


def test_moves_spread_over_the_permitted_regions_only(world: World) -> None:
    world.give_worker(HEALTHY_A)
    world.give_worker(HEALTHY_B)
    ids = world.seed(STALLED, 30, allowed_regions=[HEALTHY_A, HEALTHY_B, STALLED])

    world.app(MODEL_REGIONS=json.dumps({"*": [HEALTHY_A, HEALTHY_B, STALLED]})).handle()

    placed = Counter({r: len(_ids(world, r)) for r in (HEALTHY_A, HEALTHY_B)})
    assert sum(placed.values()) == len(ids) and all(placed.values())


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("MODEL_REGIONS", '{"m": ["ap-south-1"]}', "MODEL_REGIONS"),
        ("HIGH_PRIORITY_QUEUES", '{"us-east-1": "https://sqs.x/1/q"}', "HIGH_PRIORITY_QUEUES"),
    ],
)
def test_bad_placement_or_high_priority_configuration_names_the_variable(
    world: World, variable: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        build_rescue(world.aws.environ(**{variable: value}), world.aws.session)


def test_a_pinned_message_waits_without_using_up_the_redrive_limit(world: World) -> None:
    """Handing a pinned message back would cost a receive per run, and after
    RegionQueueMaxReceiveCount runs SQS would dead-letter a request that was never tried.
    Re-enqueued in its own queue instead, it is a fresh message after every run."""
    world.give_worker(HEALTHY_A)
    pinned = world.seed(STALLED, 2, allowed_regions=[STALLED])
    app = world.app()
    for _ in range(4):
        assert app.handle()["regions"][STALLED]["pinned"] == 2

    received = world.sqs(STALLED).receive_message(
        QueueUrl=world.aws.queue_urls[STALLED],
        MaxNumberOfMessages=10,
        MessageAttributeNames=["All"],
        MessageSystemAttributeNames=["ApproximateReceiveCount"],
    )["Messages"]
    assert sorted(m["MessageAttributes"]["request_id"]["StringValue"] for m in received) == sorted(
        pinned
    )
    assert {m["Attributes"]["ApproximateReceiveCount"] for m in received} == {"1"}
    for request_id in pinned:
        assert world.record(request_id).region == STALLED
