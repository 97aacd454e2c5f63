"""The distributor against moto, three regions with a standard and a high-priority queue each:
where high-priority requests go, and that no request leaves its permitted regions."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from orchestrator.distributor.config import ConfigError
from orchestrator.distributor.handler import build_distributor
from support.records import FakeContext, event, record, request, valid_records

EAST, WEST2, WEST1 = "us-east-1", "us-west-2", "us-west-1"


def busy(aws, region, workers):
    """`workers` busy consumers in `region`: as many messages held in flight."""
    sqs, url = aws.client("sqs", region), aws.queue_urls[region]
    for n in range(workers):
        sqs.send_message(QueueUrl=url, MessageBody=f"held-{n}")
    held = 0
    while held < workers:
        got = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=min(10, workers - held), VisibilityTimeout=3600
        ).get("Messages", [])
        assert got
        held += len(got)


def waiting(aws, region, count):
    """`count` standard messages waiting in `region`."""
    for n in range(count):
        aws.client("sqs", region).send_message(
            QueueUrl=aws.queue_urls[region], MessageBody=f"standard-backlog-{n}"
        )


def ours(messages):
    """The forwarded requests among a queue's messages (the seeded backlog left out)."""
    return [m for m in messages if "request_id" in m.attributes]


def counts(drained):
    return {region: len(ours(messages)) for region, messages in drained.items()}


def shortest_wait_world(aws, high):
    """Capacities 2 / 6 / 1 (messages in flight, no presence table). High-priority backlogs
    2, 3 and 0, so high-priority waits of 1.0, 0.5 and 0 service times; us-west-1, the
    smallest region, also has a long standard backlog, which high-priority work skips."""
    busy(aws, EAST, 2)
    busy(aws, WEST2, 6)
    busy(aws, WEST1, 1)
    high.put(EAST, 2)
    high.put(WEST2, 3)
    waiting(aws, WEST1, 20)


def test_a_high_priority_request_goes_to_the_shortest_wait_regions_high_queue(aws, high, make_app):
    shortest_wait_world(aws, high)
    app = make_app(**high.environ())

    response = app.handle(event(record(request("req-urgent", priority="high"))), FakeContext())

    assert response == {"batchItemFailures": []}
    (message,) = ours(high.drain(WEST1))  # wait 0, despite the long standard backlog
    assert message.request_id == "req-urgent"
    assert message.attributes["priority"] == "high"
    assert counts(high.drain_all()) == {EAST: 0, WEST2: 0, WEST1: 0}
    assert counts(aws.drain_all()) == {EAST: 0, WEST2: 0, WEST1: 0}
    assert aws.ledger_item("req-urgent")["region"] == WEST1


def test_each_high_priority_message_of_a_batch_sees_the_ones_before_it(aws, high, make_app):
    """Waits 1.0 / 0.5 / 0: the first joins us-west-1 (then 1/1 = 1.0), the next three
    us-west-2 (4/6, 5/6, then 6/6 = 1.0); at three equal waits the larger capacity wins."""
    shortest_wait_world(aws, high)
    app = make_app(**high.environ())

    app.handle(event(*valid_records(5, priority="high")), FakeContext())

    assert counts(high.drain_all()) == {EAST: 0, WEST2: 4, WEST1: 1}
    assert counts(aws.drain_all()) == {EAST: 0, WEST2: 0, WEST1: 0}


def test_normal_and_low_requests_spread_over_the_standard_queues_as_before(aws, high, make_app):
    app = make_app(**high.environ())
    records = valid_records(15, priority="normal") + valid_records(15, priority="low")
    for start in range(0, 30, 10):
        assert app.handle(event(*records[start : start + 10]), FakeContext()) == {
            "batchItemFailures": []
        }

    standard = counts(aws.drain_all())
    assert sum(standard.values()) == 30
    assert all(standard.values()), standard  # spread, not all to one region
    assert counts(high.drain_all()) == {EAST: 0, WEST2: 0, WEST1: 0}


def test_a_mixed_batch_splits_by_priority(aws, high, make_app):
    app = make_app(**high.environ())
    records = valid_records(4, priority="high") + valid_records(6, priority="normal")

    app.handle(event(*records), FakeContext())

    high_ids = {m.request_id for msgs in high.drain_all().values() for m in ours(msgs)}
    standard = [m for msgs in aws.drain_all().values() for m in ours(msgs)]
    assert high_ids == {json.loads(r["body"])["request_id"] for r in records[:4]}
    assert {m.attributes["priority"] for m in standard} == {"normal"}
    assert len(standard) == 6


def test_without_high_priority_queues_high_requests_go_to_the_standard_queues(aws, high, app):
    records = valid_records(10, priority="high")

    assert app.handle(event(*records), FakeContext()) == {"batchItemFailures": []}

    standard = [m for msgs in aws.drain_all().values() for m in ours(msgs)]
    assert len(standard) == 10
    assert {m.attributes["priority"] for m in standard} == {"high"}
    assert counts(high.drain_all()) == {EAST: 0, WEST2: 0, WEST1: 0}


def test_high_priority_queues_must_name_the_region_queues_regions(aws, high):
    partial = {EAST: high.urls[EAST], WEST2: high.urls[WEST2]}
    with pytest.raises(ConfigError, match=r"HIGH_PRIORITY_QUEUES.*no queue for us-west-1"):
        build_distributor(aws.environ(HIGH_PRIORITY_QUEUES=json.dumps(partial)), aws.session)
    extra = {**high.urls, "eu-west-1": high.urls[EAST]}
    with pytest.raises(ConfigError, match="eu-west-1 not in REGION_QUEUES"):
        build_distributor(aws.environ(HIGH_PRIORITY_QUEUES=json.dumps(extra)), aws.session)


# ---------------------------------------------------------------------- placement and residency
MODEL_REGIONS = json.dumps({"llama-70b": [WEST2, WEST1], "*": [EAST, WEST2, WEST1]})


def test_requests_run_only_where_their_model_is_served(aws, make_app):
    app = make_app(MODEL_REGIONS=MODEL_REGIONS)
    records = valid_records(30, model_name="llama-70b")
    for start in range(0, 30, 10):
        app.handle(event(*records[start : start + 10]), FakeContext())

    placed = counts(aws.drain_all())
    assert placed[EAST] == 0
    assert placed[WEST2] and placed[WEST1]
    assert sum(placed.values()) == 30


def test_allowed_regions_narrow_the_choice_further(aws, make_app):
    app = make_app(MODEL_REGIONS=MODEL_REGIONS)
    pinned = valid_records(6, model_name="llama-70b", allowed_regions=[WEST1, "eu-west-1"])
    anywhere = valid_records(4, model_name="gpt-l-7b", allowed_regions=[EAST, WEST2])

    assert app.handle(event(*pinned, *anywhere), FakeContext()) == {"batchItemFailures": []}

    drained = aws.drain_all()
    pinned_ids = {json.loads(r["body"])["request_id"] for r in pinned}
    assert {m.request_id for m in ours(drained[WEST1])} == pinned_ids
    assert {m.request_id for m in ours(drained[EAST]) + ours(drained[WEST2])} == {
        json.loads(r["body"])["request_id"] for r in anywhere
    }


def test_a_request_no_permitted_region_serves_is_dead_lettered_with_the_reason(aws, make_app):
    app = make_app(MODEL_REGIONS=MODEL_REGIONS)
    rec = record(request("req-eu", model_name="llama-70b", allowed_regions=[EAST, "eu-west-1"]))

    assert app.handle(event(rec, *valid_records(2)), FakeContext()) == {"batchItemFailures": []}

    (letter,) = aws.dead_letters()
    assert letter.attributes["error_code"] == "NO_PERMITTED_REGION"
    assert letter.attributes["error_message"] == (
        "no region serves model 'llama-70b' within allowed_regions [eu-west-1, us-east-1] "
        "(serving: us-west-1, us-west-2)"
    )
    assert letter.attributes["request_id"] == "req-eu"
    assert letter.body == rec["body"]
    assert aws.ledger_item("req-eu") is None  # never claimed
    assert len([m for msgs in aws.drain_all().values() for m in ours(msgs)]) == 2


def test_allowed_regions_outside_every_queue_are_dead_lettered_without_model_regions(aws, app):
    rec = record(request("req-nowhere", allowed_regions=["ap-south-1"]))
    app.handle(event(rec), FakeContext())
    (letter,) = aws.dead_letters()
    assert letter.attributes["error_code"] == "NO_PERMITTED_REGION"
    assert "serving: us-east-1, us-west-1, us-west-2" in letter.attributes["error_message"]


def test_the_retry_after_a_failed_send_stays_in_the_permitted_regions(aws, make_app, faults):
    faults.unreachable("sqs", "send_message_batch", region=WEST2)
    app = make_app(MODEL_REGIONS=MODEL_REGIONS)
    records = valid_records(10, model_name="llama-70b")

    report = app.process_event(event(*records), FakeContext())

    assert report.failed_message_ids == []
    placed = aws.drain_all()
    assert counts(placed) == {EAST: 0, WEST2: 0, WEST1: 10}
    attempts = Counter(m.attributes["attempt"] for m in ours(placed[WEST1]))
    assert attempts["2"] > 0, "some went to us-west-2 first and were retried in us-west-1"


def test_a_request_whose_only_permitted_region_failed_goes_back_to_sqs(aws, make_app, faults):
    faults.unreachable("sqs", "send_message_batch", region=WEST1)
    app = make_app(MODEL_REGIONS=MODEL_REGIONS)
    pinned = record(request("req-pinned", model_name="llama-70b", allowed_regions=[WEST1]))
    free = valid_records(3)

    response = app.handle(event(pinned, *free), FakeContext())

    assert response == {"batchItemFailures": [{"itemIdentifier": pinned["messageId"]}]}
    assert "req-pinned" not in {m.request_id for msgs in aws.drain_all().values() for m in msgs}
    assert aws.ledger_item("req-pinned") is None  # claim released: the redelivery claims again


def test_placement_and_priority_together(aws, high, make_app, faults):
    """High-priority llama requests: only us-west-2 / us-west-1, the shorter wait first; a
    request pinned to us-west-2 goes there even though us-west-1 waits less; when its send
    fails, the retry goes to another permitted high-priority queue or back to SQS."""
    shortest_wait_world(aws, high)
    environ = {**high.environ(), "MODEL_REGIONS": MODEL_REGIONS}
    app = make_app(**environ)
    free = record(request("req-free", model_name="llama-70b", priority="high"))
    pinned = record(
        request("req-west2", model_name="llama-70b", priority="high", allowed_regions=[WEST2])
    )
    everywhere = record(request("req-any", priority="high"))

    app.handle(event(free, pinned, everywhere), FakeContext())

    placed = {
        region: {m.request_id for m in ours(msgs)} for region, msgs in high.drain_all().items()
    }
    # free: us-west-1 (wait 0); pinned: us-west-2 (its only region); any: us-west-2 (3+1)/6
    # = 0.67 beats us-east-1 (1.0) and us-west-1, now 1/1 = 1.0
    assert placed == {EAST: set(), WEST2: {"req-west2", "req-any"}, WEST1: {"req-free"}}

    high.put(WEST2, 12)  # us-west-1 is now the shorter wait: 0 against 12/6
    faults.unreachable("sqs", "send_message_batch", region=WEST1)
    again = [
        record(request("req-retry", model_name="llama-70b", priority="high")),
        record(
            request("req-stuck", model_name="llama-70b", priority="high", allowed_regions=[WEST1])
        ),
    ]
    response = make_app(**environ).handle(event(*again), FakeContext())

    assert response == {"batchItemFailures": [{"itemIdentifier": again[1]["messageId"]}]}
    placed = {
        region: {m.request_id for m in ours(msgs)} for region, msgs in high.drain_all().items()
    }
    assert placed == {EAST: set(), WEST2: {"req-retry"}, WEST1: set()}
    assert counts(aws.drain_all()) == {EAST: 0, WEST2: 0, WEST1: 0}
