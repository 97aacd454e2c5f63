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


def test_inverse_depth_strategy_is_selectable(aws, make_app):
    app = make_app(ROUTING_STRATEGY="inverse-depth")
    assert app.distributor.strategy == "inverse-depth"
    assert app.handle(event(*valid_records(5)), FakeContext()) == {"batchItemFailures": []}
    assert len(forwarded_ids(aws)) == 5
