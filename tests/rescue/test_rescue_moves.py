"""The rescue function end to end against moto: what moves, what stays, what is never lost."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from rescue_world import HEALTHY_A, HEALTHY_B, STALLED, World

from orchestrator.core.attributes import MessageAttribute
from orchestrator.core.record import RequestStatus
from orchestrator.rescue.memory import STATE_KEY


def _ids(world: World, region: str) -> list[str]:
    return [m.request_id for m in world.read(region) if m.request_id]


def test_a_stalled_region_backlog_moves_to_healthy_regions_and_records_follow(
    world: World,
) -> None:
    world.give_worker(HEALTHY_A)
    world.give_worker(HEALTHY_B)
    ids = world.seed(STALLED, 23)

    report = world.app().handle()

    assert report["stranded"] == {STALLED: "no-consumers"}
    assert report["regions"][STALLED]["stopped"] == "empty"
    assert world.depth(STALLED) == (0, 0)
    moved = {HEALTHY_A: world.read(HEALTHY_A), HEALTHY_B: world.read(HEALTHY_B)}
    by_region = {r: sorted(m.request_id or "" for m in msgs) for r, msgs in moved.items()}
    assert sorted(by_region[HEALTHY_A] + by_region[HEALTHY_B]) == sorted(ids)
    assert by_region[HEALTHY_A] and by_region[HEALTHY_B], "both healthy regions take a share"
    for region, request_ids in by_region.items():
        for request_id in request_ids:
            record = world.record(request_id)
            assert record.region == region
            assert record.status is RequestStatus.FORWARDED
            assert record.forwarded_at != "2025-12-01T00:00:00.000Z"
    assert {m.attempt for msgs in moved.values() for m in msgs} == {2}
    assert sum(report["regions"][STALLED]["moved"].values()) == 23


def test_the_stall_must_last_the_threshold_and_the_clock_survives_a_cold_start(
    world: World,
) -> None:
    world.give_worker(HEALTHY_A)
    world.give_worker(HEALTHY_B)
    world.seed(STALLED, 5)

    first = world.app(RESCUE_STALL_SECONDS="120").handle()
    assert first["stranded"] == {}
    assert first["stalled_since"] == {STALLED: world.clock.now}
    world.clock.advance(60)
    assert world.app(RESCUE_STALL_SECONDS="120").handle()["stranded"] == {}
    world.clock.advance(60)
    third = world.app(RESCUE_STALL_SECONDS="120").handle()  # a new container each time

    assert third["stranded"] == {STALLED: "no-consumers"}
    assert world.depth(STALLED) == (0, 0)
    assert world.aws.ledger_item(STATE_KEY) is not None


def test_a_region_that_drains_is_left_alone(world: World) -> None:
    world.give_worker(HEALTHY_A)
    world.give_worker(HEALTHY_B)
    world.give_worker(STALLED)  # consumers there: backlog with something in flight
    ids = world.seed(STALLED, 8)

    report = world.app().handle()

    assert report["stranded"] == {}
    assert report["stalled_since"] == {}
    assert sorted(_ids(world, STALLED)) == sorted(ids)
    assert world.calls("send_message_batch") == 0
    assert world.calls("receive_message", STALLED) == 0
    assert all(world.record(i).region == STALLED for i in ids)


def test_an_old_backlog_moves_even_with_messages_in_flight(world: World) -> None:
    """Zombie in-flight: something holds messages, nothing drains the rest."""
    world.give_worker(HEALTHY_A)
    world.give_worker(HEALTHY_B)
    world.give_worker(STALLED)
    ids = world.seed(STALLED, 6)
    world.ages[STALLED] = 601.0

    report = world.app().handle()

    assert report["stranded"] == {STALLED: "too-old"}
    assert sorted(_ids(world, HEALTHY_A) + _ids(world, HEALTHY_B)) == sorted(ids)


def test_claimed_or_finished_requests_are_not_moved_and_their_original_goes(
    world: World,
) -> None:
    world.give_worker(HEALTHY_A)
    world.give_worker(HEALTHY_B)
    running = world.seed(STALLED, 3, status=RequestStatus.RUNNING, run_lease_expires_at=2**40)
    done = world.seed(STALLED, 3, status=RequestStatus.SUCCEEDED)
    waiting = world.seed(STALLED, 3)

    report = world.app().handle()

    outcome = report["regions"][STALLED]
    assert outcome["superseded"] == 6
    assert sum(outcome["moved"].values()) == 3
    assert world.depth(STALLED) == (0, 0)
    for request_id in running + done:
        record = world.record(request_id)
        assert record.region == STALLED, "a worker's record is never rewritten"
        assert record.status in (RequestStatus.RUNNING, RequestStatus.SUCCEEDED)
    for request_id in waiting:
        assert world.record(request_id).region in (HEALTHY_A, HEALTHY_B)
    # The documented order sends before the conditional update: the copies of claimed
    # requests exist, and the worker's claim deletes them without running them.
    copies = Counter(_ids(world, HEALTHY_A) + _ids(world, HEALTHY_B))
    assert set(copies) == set(running + done + waiting)
    assert set(copies.values()) == {1}


def test_a_failing_target_region_loses_nothing(world: World) -> None:
    world.give_worker(HEALTHY_A)
    world.give_worker(HEALTHY_B)
    ids = world.seed(STALLED, 30)
    world.faults.unreachable("sqs", "send_message_batch", region=HEALTHY_B)

    report = world.app().handle()

    outcome = report["regions"][STALLED]
    in_a = _ids(world, HEALTHY_A)
    still_stalled = _ids(world, STALLED)  # handed back: visible at once
    assert sorted(in_a + still_stalled) == sorted(ids)
    assert outcome["moved"] == {HEALTHY_A: len(in_a)}
    assert outcome["handed_back"] == len(still_stalled)
    assert len(in_a) >= 20, "after the failure the run keeps going to the other region"
    for request_id in in_a:
        assert world.record(request_id).region == HEALTHY_A
    for request_id in still_stalled:
        assert world.record(request_id).region == STALLED


def test_failed_entries_of_a_batch_stay_where_they_were(world: World) -> None:
    world.give_worker(HEALTHY_A)
    ids = world.seed(STALLED, 10)
    world.faults.fail_entries(HEALTHY_A, lambda index, _entry: index % 2 == 0)

    report = world.app(RESCUE_MAX_MESSAGES="10").handle()

    moved = _ids(world, HEALTHY_A)
    back = _ids(world, STALLED)
    assert sorted(moved + back) == sorted(ids)
    assert len(moved) == 5 and report["regions"][STALLED]["handed_back"] == 5
    assert all(world.record(i).region == STALLED for i in back)


def test_no_healthy_region_means_nothing_is_received(world: World) -> None:
    world.seed(STALLED, 4)
    world.seed(HEALTHY_A, 2)  # stalled too: visible, nothing in flight
    world.seed(HEALTHY_B, 1)

    report = world.app().handle()

    assert set(report["stranded"]) == {STALLED, HEALTHY_A, HEALTHY_B}
    assert {o["stopped"] for o in report["regions"].values()} == {"no-target"}
    assert world.calls("receive_message") == 0, "a receive counts towards the redrive limit"


def test_a_programming_error_surfaces_and_loses_nothing(world: World) -> None:
    world.give_worker(HEALTHY_A)
    ids = world.seed(STALLED, 12)

    def defect(_region: str, _params: dict[str, Any], _call: Callable[..., Any]) -> Any:
        raise TypeError("a bug in the record update")

    world.faults.add("dynamodb", "update_item", defect)

    with pytest.raises(TypeError, match="a bug"):
        world.app(RESCUE_VISIBILITY_TIMEOUT="1").handle()

    time.sleep(1.2)  # the originals come back after the rescue's visibility timeout
    present = set(_ids(world, STALLED)) | set(_ids(world, HEALTHY_A))
    assert present == set(ids)
    assert all(world.record(i).region == STALLED for i in ids)


def test_work_per_run_is_bounded_and_sqs_calls_are_batched(
    world: World, recording: Callable[[str], list[dict[str, Any]]]
) -> None:
    world.give_worker(HEALTHY_A)
    world.give_worker(HEALTHY_B)
    ids = world.seed(STALLED, 40)
    sends = recording("send_message_batch")
    receives = recording("receive_message")
    deletes = recording("delete_message_batch")

    report = world.app(RESCUE_MAX_MESSAGES="25").handle()

    moved = _ids(world, HEALTHY_A) + _ids(world, HEALTHY_B)
    left = _ids(world, STALLED)
    assert len(moved) == 25 and len(left) == 15
    assert sorted(moved + left) == sorted(ids)
    assert report["regions"][STALLED]["stopped"] == "budget"
    assert all(1 <= len(call["Entries"]) <= 10 for call in sends + deletes)
    assert all(call["MaxNumberOfMessages"] <= 10 for call in receives)
    assert sum(call["MaxNumberOfMessages"] for call in receives) == 25


def test_no_batch_starts_when_the_invocation_is_about_to_end(world: World) -> None:
    world.give_worker(HEALTHY_A)
    world.seed(STALLED, 5)

    class Ending:
        def get_remaining_time_in_millis(self) -> int:
            return 10_000

    report = world.app().handle({}, Ending())

    assert report["regions"][STALLED]["stopped"] == "deadline"
    assert world.calls("receive_message") == 0


def test_client_attributes_survive_the_move(world: World) -> None:
    world.give_worker(HEALTHY_A)
    few = {
        "tenant": MessageAttribute("String", "acme"),
        "weight": MessageAttribute("Number", "3.5"),
        "blob": MessageAttribute("Binary", b"\x00\xffraw"),
    }
    many = {f"k{i}": MessageAttribute("String", f"v{i}") for i in range(6)}
    many["attempt"] = MessageAttribute("String", "client's own")  # collides: packed
    few_ids = world.seed(STALLED, 3, client=few)
    many_ids = world.seed(STALLED, 3, client=many)

    world.app().handle()

    moved = {m.request_id: m for m in world.read(HEALTHY_A)}
    assert set(moved) == set(few_ids + many_ids)
    for request_id in few_ids:
        assert moved[request_id].client == few
    for request_id in many_ids:
        assert moved[request_id].client == many
        assert moved[request_id].attempt == 2
    assert all(len(m.raw["MessageAttributes"]) <= 10 for m in moved.values())


def test_a_message_without_routing_attributes_is_moved_as_it_came(world: World) -> None:
    world.give_worker(HEALTHY_A)
    url = world.aws.queue_urls[STALLED]
    world.sqs(STALLED).send_message(
        QueueUrl=url,
        MessageBody="not from the distributor",
        MessageAttributes={"origin": {"DataType": "String", "StringValue": "manual"}},
    )

    report = world.app().handle()

    (moved,) = world.read(HEALTHY_A)
    assert moved.body == "not from the distributor"
    assert moved.raw["MessageAttributes"]["origin"]["StringValue"] == "manual"
    assert report["regions"][STALLED]["unrecorded"] == 1


def test_the_request_table_failing_stops_the_region_and_keeps_originals(world: World) -> None:
    world.give_worker(HEALTHY_A)
    ids = world.seed(STALLED, 10)
    world.faults.unreachable("dynamodb", "update_item")

    report = world.app(RESCUE_VISIBILITY_TIMEOUT="1").handle()

    outcome = report["regions"][STALLED]
    assert outcome["stopped"] == "records-failed"
    assert outcome["left_hidden"] == 10
    time.sleep(1.2)
    # Both copies exist: the worker's claim lets one run; the record still names a region
    # that holds a copy.
    assert sorted(_ids(world, STALLED)) == sorted(ids)
    assert sorted(_ids(world, HEALTHY_A)) == sorted(ids)
    assert all(world.record(i).region == STALLED for i in ids)


def test_an_unreadable_memory_skips_the_run(world: World) -> None:
    world.give_worker(HEALTHY_A)
    world.seed(STALLED, 3)
    world.faults.unreachable("dynamodb", "get_item")

    report = world.app().handle()

    assert report["skipped"] == "memory-unreadable"
    assert world.calls("receive_message") == 0


def test_two_stalled_regions_are_rescued_concurrently_and_never_into_each_other(
    world: World,
) -> None:
    world.give_worker(HEALTHY_A)
    from_stalled = world.seed(STALLED, 14)
    from_b = world.seed(HEALTHY_B, 9)  # B has lost its consumers too

    report = world.app().handle()

    assert report["stranded"] == {STALLED: "no-consumers", HEALTHY_B: "no-consumers"}
    assert sorted(_ids(world, HEALTHY_A)) == sorted(from_stalled + from_b)
    assert world.depth(STALLED) == (0, 0) and world.depth(HEALTHY_B) == (0, 0)
    assert report["regions"][STALLED]["moved"] == {HEALTHY_A: 14}
    assert report["regions"][HEALTHY_B]["moved"] == {HEALTHY_A: 9}
