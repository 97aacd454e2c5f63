"""The distributor against moto with queues in three regions: the happy path and its rules."""

from __future__ import annotations

import json

import pytest

from orchestrator.distributor.config import ConfigError
from orchestrator.distributor.handler import build_distributor
from support.records import FakeContext, event, record, request, valid_records

REQUIRED_ATTRIBUTES = {
    "request_id",
    "priority",
    "model_name",
    "origin_message_id",
    "attempt",
    "forwarded_at",
}


def forwarded_ids(aws):
    return sorted(m.request_id for msgs in aws.drain_all().values() for m in msgs)


def test_full_batch_is_forwarded_once_each_with_routing_attributes(aws, app, faults):
    records = valid_records(10)
    response = app.handle(event(*records), FakeContext())

    assert response == {"batchItemFailures": []}
    delivered = aws.drain_all()
    messages = [m for msgs in delivered.values() for m in msgs]
    assert len(messages) == 10
    by_origin = {m.attributes["origin_message_id"]: m for m in messages}
    for rec in records:
        message = by_origin[rec["messageId"]]
        assert message.body == rec["body"]  # byte-for-byte
        assert set(message.attributes) >= REQUIRED_ATTRIBUTES
        assert message.attributes["attempt"] == "1"
        assert message.attributes["request_id"] == json.loads(rec["body"])["request_id"]


def test_happy_path_costs_one_dynamodb_write_per_message_and_one_send_per_region(aws, app, faults):
    app.handle(event(*valid_records(10)), FakeContext())

    writes = [c for c in faults.calls if c[0] == "dynamodb"]
    assert [op for _, op, _ in writes] == ["put_item"] * 10
    sends = [c for c in faults.calls if c[1] == "send_message_batch"]
    assert len(sends) == len({region for _, _, region in sends}) <= 3


def test_ledger_records_claim_owner_payload_region_lease_and_ttl(aws, app, clock):
    rec = record(request("req-ledger-1"))
    app.handle(event(rec), FakeContext(remaining_ms=30_000))

    item = aws.ledger_item("req-ledger-1")
    region = next(r for r, msgs in aws.drain_all().items() if msgs)
    assert item["message_id"] == rec["messageId"]
    assert item["region"] == region
    assert len(item["payload_hash"]) == 64
    assert item["forwarded_at"].endswith("Z")
    assert clock.now + 30 <= float(item["lease_expires_at"]) <= clock.now + 60
    assert float(item["expires_at"]) == pytest.approx(clock.now + 7 * 86_400, abs=2)


def test_client_duplicate_in_a_later_batch_is_acknowledged_not_forwarded(aws, app):
    first = record(request("req-dup-1"))
    app.handle(event(first), FakeContext())
    aws.drain_all()

    again = record(request("req-dup-1"))  # same request, another SQS message
    report = app.process_event(event(again), FakeContext())

    assert report.outcomes[again["messageId"]].disposition == "duplicate"
    assert report.failed_message_ids == []
    assert forwarded_ids(aws) == []
    assert aws.ledger_item("req-dup-1")["message_id"] == first["messageId"]


def test_copies_in_one_batch_forward_once_and_cost_one_write(aws, app, faults):
    copies = [record(request("req-same")) for _ in range(3)]
    others = valid_records(2)
    response = app.handle(
        event(copies[0], others[0], copies[1], others[1], copies[2]), FakeContext()
    )

    assert response["batchItemFailures"] == []
    ids = forwarded_ids(aws)
    assert ids.count("req-same") == 1 and len(ids) == 3
    assert sum(1 for c in faults.calls if c[1] == "put_item") == 3


def test_retry_with_a_new_timestamp_is_a_duplicate_not_a_conflict(aws, app):
    app.handle(event(record(request("req-ts", timestamp="2025-12-02T10:23:00Z"))), FakeContext())
    report = app.process_event(
        event(record(request("req-ts", timestamp="2025-12-02T10:24:30Z"))), FakeContext()
    )
    assert [o.disposition for o in report.outcomes.values()] == ["duplicate"]
    assert aws.dead_letters() == []


def test_same_id_with_another_payload_is_a_conflict_in_the_dlq(aws, app):
    first = record(request("req-c", model_name="llama-3"))
    app.handle(event(first), FakeContext())
    before = aws.ledger_item("req-c")
    conflicting = record(request("req-c", model_name="mistral-7b"))

    response = app.handle(event(conflicting), FakeContext())

    assert response["batchItemFailures"] == []
    (letter,) = aws.dead_letters()
    assert letter.attributes["error_code"] == "PAYLOAD_CONFLICT"
    assert "request_id" in letter.attributes["error_message"]
    assert letter.attributes["origin_message_id"] == conflicting["messageId"]
    assert letter.body == conflicting["body"]
    assert aws.ledger_item("req-c") == before
    assert forwarded_ids(aws) == ["req-c"]


def test_conflicting_copy_in_the_same_batch_goes_to_the_dlq(aws, app):
    a = record(request("req-cb", model_name="llama-3"))
    b = record(request("req-cb", model_name="mistral-7b"))
    app.handle(event(a, b), FakeContext())
    assert forwarded_ids(aws) == ["req-cb"]
    assert [m.attributes["origin_message_id"] for m in aws.dead_letters()] == [b["messageId"]]


def test_redelivery_of_the_same_message_after_its_lease_is_forwarded_again(aws, app, clock):
    rec = record(request("req-redeliver"))
    app.handle(event(rec), FakeContext(remaining_ms=5_000))
    assert forwarded_ids(aws) == ["req-redeliver"]

    # Same SQS message while the first invocation may still hold it: must come back later.
    early = app.handle(event(rec), FakeContext())
    assert early["batchItemFailures"] == [{"itemIdentifier": rec["messageId"]}]
    assert forwarded_ids(aws) == []

    clock.advance(60)  # past the lease: the first invocation is gone (crash or time-out)
    late = app.handle(event(rec), FakeContext())
    assert late["batchItemFailures"] == []
    assert forwarded_ids(aws) == ["req-redeliver"]


def test_expired_ledger_record_no_longer_blocks_the_request_id(aws, app, clock):
    app.handle(event(record(request("req-ttl"))), FakeContext())
    aws.drain_all()
    clock.advance(8 * 86_400)  # past IDEMPOTENCY_TTL_DAYS, DynamoDB has not deleted it yet
    app.handle(event(record(request("req-ttl"))), FakeContext())
    assert forwarded_ids(aws) == ["req-ttl"]


def test_unknown_fields_and_formatting_are_forwarded_unchanged(aws, app):
    body = (
        '{ "request_id":"req-raw",\n "model_name":"m", "input_data_url":"s3://bucket/k",'
        ' "extra": {"nested": [1, 2.50, "é"]} }'
    )
    app.handle(event(record(body)), FakeContext())
    (message,) = [m for msgs in aws.drain_all().values() for m in msgs]
    assert message.body == body


def test_region_at_the_depth_threshold_gets_no_traffic(aws, make_app):
    full = "us-west-2"
    sqs = aws.client("sqs", full)
    for i in range(6):
        sqs.send_message(QueueUrl=aws.queue_urls[full], MessageBody=f"backlog-{i}")
    app = make_app(MAX_QUEUE_DEPTH_THRESHOLD="6")

    app.handle(event(*valid_records(10)), FakeContext())
    delivered = aws.drain_all()
    assert len(delivered[full]) == 6  # only the backlog we put there
    assert sum(len(v) for r, v in delivered.items() if r != full) == 10


def test_every_region_over_threshold_pushes_back_without_dropping_or_claiming(aws, make_app):
    for region, url in aws.queue_urls.items():
        aws.client("sqs", region).send_message(QueueUrl=url, MessageBody="backlog")
    app = make_app(MAX_QUEUE_DEPTH_THRESHOLD="1")
    records = valid_records(4)

    response = app.handle(event(*records), FakeContext())

    assert sorted(f["itemIdentifier"] for f in response["batchItemFailures"]) == sorted(
        r["messageId"] for r in records
    )
    for rec in records:
        assert aws.ledger_item(json.loads(rec["body"])["request_id"]) is None


def test_bad_configuration_fails_at_cold_start_naming_the_variable(aws):
    with pytest.raises(ConfigError, match="CACHE_TTL"):
        build_distributor(aws.environ(CACHE_TTL="soon"), aws.session)
    with pytest.raises(ConfigError, match="REGION_QUEUES"):
        build_distributor(aws.environ(REGION_QUEUES='{"not a region": "x"}'), aws.session)
    with pytest.raises(ConfigError, match="IDEMPOTENCY_TABLE_NAME"):
        build_distributor(aws.environ(IDEMPOTENCY_TABLE_NAME=""), aws.session)


def test_lambda_handler_reads_the_environment_once(aws, monkeypatch):
    import orchestrator.distributor.handler as handler

    for name, value in aws.environ().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(handler, "_app", None)
    monkeypatch.setattr(handler.boto3.session, "Session", lambda: aws.session)

    first = handler.lambda_handler(event(*valid_records(2)), FakeContext())
    built = handler._app
    second = handler.lambda_handler(event(*valid_records(2)), FakeContext())

    assert first == second == {"batchItemFailures": []}
    assert handler._app is built
    assert len(forwarded_ids(aws)) == 4


def _stall_one_region(aws, stalled="us-west-1"):
    """Five messages waiting in every region; consumers hold one message in each region but
    `stalled`, which has a backlog and nobody taking it (its Spot nodes are gone)."""
    for region, url in aws.queue_urls.items():
        sqs = aws.client("sqs", region)
        for n in range(6 if region != stalled else 5):
            sqs.send_message(QueueUrl=url, MessageBody=json.dumps(request(f"seed-{region}-{n}")))
        if region != stalled:
            sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=600)


def _share_of(aws, region, request_ids):
    return sum(1 for m in aws.drain(region) if m.request_id in request_ids)


@pytest.mark.parametrize(
    ("strategy", "stalled_gets_traffic"),
    [("inverse-depth", True), ("expected-wait", False)],
)
def test_the_strategy_setting_decides_whether_a_stalled_region_gets_traffic(
    aws, make_app, strategy, stalled_gets_traffic
):
    """The published inverse-depth formula keeps feeding a region with no consumers (defect 7);
    expected-wait gives it nothing. Equal backlogs, so only the strategy tells them apart."""
    _stall_one_region(aws)
    app = make_app(ROUTING_STRATEGY=strategy)
    records = valid_records(30)
    assert app.handle(event(*records[:10]), FakeContext()) == {"batchItemFailures": []}
    assert app.handle(event(*records[10:20]), FakeContext()) == {"batchItemFailures": []}
    assert app.handle(event(*records[20:]), FakeContext()) == {"batchItemFailures": []}
    sent = {json.loads(r["body"])["request_id"] for r in records}
    # With inverse-depth the stalled region's expected share is a third: P(0 of 30) < 1e-5.
    assert (_share_of(aws, "us-west-1", sent) > 0) is stalled_gets_traffic


def _with_attributes(rec, attributes):
    rec["messageAttributes"] = attributes
    return rec


def _received_attributes(aws):
    """(request_id, MessageAttributes) of every forwarded message, read as a worker would."""
    out = {}
    for region, url in aws.queue_urls.items():
        for m in (
            aws.client("sqs", region)
            .receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
            .get("Messages", [])
        ):
            out[m["MessageAttributes"]["request_id"]["StringValue"]] = m
    return out


def test_client_message_attributes_of_every_type_reach_the_region_queue(aws, app):
    """String, Number and Binary attributes travel as they are (up to 4 beside the routing 6)."""
    from orchestrator.core.attributes import client_attributes

    rec = _with_attributes(
        record(request("req-attrs")),
        {
            "tenant": {"dataType": "String", "stringValue": "acme"},
            "cost": {"dataType": "Number", "stringValue": "12.5"},
            "blob": {"dataType": "Binary", "binaryValue": "AAEC"},  # base64 of 00 01 02
        },
    )
    assert app.handle(event(rec), FakeContext()) == {"batchItemFailures": []}
    message = _received_attributes(aws)["req-attrs"]
    assert message["MessageAttributes"]["tenant"]["StringValue"] == "acme"
    assert message["MessageAttributes"]["cost"]["DataType"] == "Number"
    carried = client_attributes(message)
    assert {name: (a.data_type, a.value) for name, a in carried.items()} == {
        "tenant": ("String", "acme"),
        "cost": ("Number", "12.5"),
        "blob": ("Binary", b"\x00\x01\x02"),
    }


def test_more_client_attributes_than_fit_are_packed_not_dropped(aws, app):
    from orchestrator.core.attributes import PACKED_CLIENT_ATTRIBUTES, client_attributes

    attributes = {f"a{n}": {"dataType": "String", "stringValue": f"v{n}"} for n in range(8)}
    attributes["priority"] = {"dataType": "String", "stringValue": "collides with routing"}
    app.handle(event(_with_attributes(record(request("req-many")), attributes)), FakeContext())
    message = _received_attributes(aws)["req-many"]
    assert len(message["MessageAttributes"]) <= 10  # SQS's limit
    assert PACKED_CLIENT_ATTRIBUTES in message["MessageAttributes"]
    assert message["MessageAttributes"]["priority"]["StringValue"] == "normal"  # ours wins
    carried = client_attributes(message)
    assert {name: a.value for name, a in carried.items()} == {
        **{f"a{n}": f"v{n}" for n in range(8)},
        "priority": "collides with routing",
    }


@pytest.mark.parametrize("status", ["RUNNING", "SUCCEEDED", "FAILED"])
def test_redelivered_master_message_never_undoes_a_workers_claim(aws, app, clock, status):
    """After the lease, a redelivery of a request a worker has claimed or finished is a
    duplicate: the record is not reset to FORWARDED and nothing is forwarded again."""
    rec = record(request("req-claimed"))
    app.handle(event(rec), FakeContext(remaining_ms=5_000))
    assert forwarded_ids(aws) == ["req-claimed"]
    aws.client("dynamodb").update_item(
        TableName=aws.table_name,
        Key={"request_id": {"S": "req-claimed"}},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": status}},
    )
    clock.advance(60)  # past the distributor's claim lease

    again = app.handle(event(rec), FakeContext())

    assert again == {"batchItemFailures": []}
    assert forwarded_ids(aws) == []
    assert aws.ledger_item("req-claimed")["status"] == status
