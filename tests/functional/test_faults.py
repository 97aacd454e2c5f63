"""Fault injection at every failure point: no request is lost, and none is forwarded twice
outside the documented window (a crash between a successful send and Lambda's delete)."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from botocore.exceptions import EndpointConnectionError

from support.faults import Crash
from support.records import FakeContext, event, record, request, valid_records


def run_like_lambda(app, records, clock, *, rounds=8, crash_ok=False):
    """Lambda's SQS loop: failed records come back (after the visibility timeout) until done."""
    pending = list(records)
    for _ in range(rounds):
        if not pending:
            return
        retry = []
        for start in range(0, len(pending), 10):
            batch = pending[start : start + 10]
            try:
                response = app.handle(event(*batch), FakeContext(remaining_ms=5_000))
            except Crash:
                if not crash_ok:
                    raise
                retry.extend(batch)  # nothing was deleted: the whole batch returns
                continue
            failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
            retry.extend(r for r in batch if r["messageId"] in failed)
        pending = retry
        clock.advance(60 * 6)  # the master queue's visibility timeout: 6 x function timeout
    assert not pending, f"{len(pending)} records never went through"


def delivered(aws):
    return [m for msgs in aws.drain_all().values() for m in msgs]


def assert_each_forwarded_once(aws, records):
    got = Counter(m.request_id for m in delivered(aws))
    expected = {json.loads(r["body"])["request_id"] for r in records}
    assert set(got) == expected, "lost requests"
    assert max(got.values()) == 1, f"forwarded twice: {[k for k, v in got.items() if v > 1]}"


def test_unreachable_region_loses_nothing_of_200_requests(aws, app, faults, clock):
    """The published implementation lost 30% of 200 requests in this situation."""
    faults.unreachable("sqs", "send_message_batch", region="us-west-2")
    records = valid_records(200)

    run_like_lambda(app, records, clock)

    assert_each_forwarded_once(aws, records)


def _batches_until_region_is_tried(app, rule, limit=20):
    """Send batches of 10 until routing has chosen the failing region (bounded)."""
    reports = []
    for _ in range(limit):
        reports.append(app.process_event(event(*valid_records(10)), FakeContext()))
        if rule.hits:
            return reports
    raise AssertionError(f"the failing region was never chosen in {limit} batches")


def test_failed_sends_are_retried_once_in_another_region_within_the_invocation(aws, app, faults):
    rule = faults.unreachable("sqs", "send_message_batch", region="us-west-2")

    reports = _batches_until_region_is_tried(app, rule)

    outcomes = [o for report in reports for o in report.outcomes.values()]
    assert [o for o in outcomes if o.disposition.value == "failed"] == []
    rerouted = [o for o in outcomes if o.attempt == 2]
    assert rerouted, "the batch that met the failing region must have been rerouted"
    assert all(o.region != "us-west-2" for o in outcomes)
    for outcome in rerouted:
        assert aws.ledger_item(outcome.request_id)["region"] == outcome.region
    by_request = {m.request_id: m for m in delivered(aws)}
    assert {by_request[o.request_id].attributes["attempt"] for o in rerouted} == {"2"}
    assert len(by_request) == len(outcomes)


def test_a_region_that_failed_cools_down_and_is_not_tried_again(aws, app, faults):
    rule = faults.unreachable("sqs", "send_message_batch", region="us-west-2")
    _batches_until_region_is_tried(app, rule)
    tries = rule.hits
    for _ in range(5):
        assert app.handle(event(*valid_records(10)), FakeContext())["batchItemFailures"] == []
    assert rule.hits == tries
    assert "us-west-2" in app.distributor.health.cooling_down()


def test_partial_batch_entry_failures_are_rerouted(aws, app, faults, clock):
    faults.fail_entries("us-east-1", lambda index, _entry: index % 2 == 0)
    records = valid_records(40)
    run_like_lambda(app, records, clock)
    assert_each_forwarded_once(aws, records)


def test_every_region_down_reports_the_batch_and_releases_claims(aws, make_app, faults, clock):
    app = make_app(REGION_COOLDOWN_SECONDS="0")  # the regions are back for the retry
    for region in aws.queue_urls:
        faults.unreachable("sqs", "send_message_batch", region=region, times=1)
    records = valid_records(10)

    response = app.handle(event(*records), FakeContext())

    assert len(response["batchItemFailures"]) == 10
    for rec in records:
        assert aws.ledger_item(json.loads(rec["body"])["request_id"]) is None
    clock.advance(1_000)  # regions recover
    run_like_lambda(app, records, clock)
    assert_each_forwarded_once(aws, records)


def test_ledger_outage_fails_only_the_records_it_could_not_claim(aws, app, faults, clock):
    def throttle(_region, _params, _call):
        from botocore.exceptions import ClientError

        raise ClientError(
            {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}},
            "PutItem",
        )

    faults.add("dynamodb", "put_item", throttle, times=4)
    records = valid_records(10)

    response = app.handle(event(*records), FakeContext())

    assert len(response["batchItemFailures"]) == 4
    assert len(delivered(aws)) == 6
    failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
    run_like_lambda(app, [r for r in records if r["messageId"] in failed], clock)
    assert len(delivered(aws)) == 4


def test_release_failure_after_failed_send_still_recovers_after_the_lease(
    aws, make_app, faults, clock
):
    app = make_app(REGION_COOLDOWN_SECONDS="0")
    for region in aws.queue_urls:
        faults.unreachable("sqs", "send_message_batch", region=region, times=1)
    faults.unreachable("dynamodb", "delete_item")
    records = valid_records(5)

    response = app.handle(event(*records), FakeContext(remaining_ms=5_000))
    assert len(response["batchItemFailures"]) == 5
    assert all(aws.ledger_item(json.loads(r["body"])["request_id"]) for r in records)

    run_like_lambda(app, records, clock)  # redelivery comes after the lease ran out
    assert_each_forwarded_once(aws, records)


def test_crash_after_claim_before_send_forwards_once_on_redelivery(aws, app, faults, clock):
    faults.crash("dynamodb", "put_item", after=True, times=1)  # claimed, then died
    records = valid_records(10)

    run_like_lambda(app, records, clock, crash_ok=True)

    assert_each_forwarded_once(aws, records)


def test_crash_after_send_is_the_only_window_for_a_second_copy(aws, app, faults, clock):
    """Documented window: sent, then the container died before Lambda deleted the batch."""
    faults.crash("sqs", "send_message_batch", after=True, times=1)
    records = valid_records(10)

    run_like_lambda(app, records, clock, crash_ok=True)

    got = Counter(m.request_id for m in delivered(aws))
    expected = {json.loads(r["body"])["request_id"] for r in records}
    assert set(got) == expected
    twice = [rid for rid, n in got.items() if n == 2]
    assert max(got.values()) <= 2
    assert 1 <= len(twice) <= 10  # exactly the crashed call's entries, never more than once more


def test_dead_letter_queue_outage_fails_malformed_records_but_not_neighbours(aws, app, faults):
    def dlq_down(region, params, call):
        if params["QueueUrl"] == aws.dead_letter_queue_url:
            raise EndpointConnectionError(endpoint_url=aws.dead_letter_queue_url)
        return call(**params)

    faults.add("sqs", "send_message_batch", dlq_down)
    bad = record("not json")
    good = valid_records(4)

    response = app.handle(event(bad, *good), FakeContext())

    assert response["batchItemFailures"] == [{"itemIdentifier": bad["messageId"]}]
    assert len(delivered(aws)) == 4
    faults.rules.clear()
    assert app.handle(event(bad), FakeContext()) == {"batchItemFailures": []}
    (letter,) = aws.dead_letters()
    assert letter.attributes["error_code"] == "INVALID_JSON"


def test_depth_refresh_failure_keeps_routing_on_stale_figures(aws, make_app, faults):
    faults.unreachable("sqs", "get_queue_attributes", region="us-west-1")
    app = make_app(CACHE_TTL="0")

    response = app.handle(event(*valid_records(10)), FakeContext())

    assert response == {"batchItemFailures": []}
    loads = {load.region: load for load in app.distributor.depths.snapshot()}
    assert loads["us-west-1"].stale and not loads["us-east-1"].stale


@pytest.mark.parametrize("region", ["us-east-1", "us-west-2", "us-west-1"])
def test_any_single_region_outage_loses_nothing(aws, app, faults, clock, region):
    faults.unreachable("sqs", "send_message_batch", region=region)
    records = [*valid_records(30), record(request("req-x")), record(request("req-x"))]
    run_like_lambda(app, records, clock)
    got = Counter(m.request_id for m in delivered(aws))
    assert got["req-x"] == 1 and len(got) == 31 and max(got.values()) == 1


@pytest.mark.parametrize(
    ("service", "operation"), [("dynamodb", "put_item"), ("sqs", "send_message_batch")]
)
def test_a_programming_error_hands_the_batch_back_and_is_not_taken_for_an_outage(
    aws, app, faults, service, operation, caplog
):
    """A TypeError inside an AWS call path is a bug: every record goes back to SQS (nothing is
    lost), the traceback is logged, and no region is cooled down as if it were unreachable."""

    def bug(_region, _params, _call):
        raise TypeError("unexpected keyword argument 'Entries'")

    faults.add(service, operation, bug, times=1)
    records = valid_records(5)

    response = app.handle(event(*records), FakeContext())

    assert sorted(f["itemIdentifier"] for f in response["batchItemFailures"]) == sorted(
        r["messageId"] for r in records
    )
    assert app.distributor.health.cooling_down() == []
    assert "TypeError" in caplog.text
