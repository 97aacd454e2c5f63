"""The request record from the worker's side: every transition one conditional write."""

from __future__ import annotations

import dataclasses

import pytest

from orchestrator.core.record import RequestStatus
from orchestrator.worker.records import ClaimKind, FencedError, NewRecord, RunLedger
from worker.conftest import PRIMARY, make_request

NOW = 1_800_000_000.0
LEASE = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def ledger(stack, clock, worker_id: str) -> RunLedger:
    return RunLedger(stack.table_name, stack.client("dynamodb", PRIMARY), worker_id, clock=clock)


def new_record(request_id: str) -> NewRecord:
    return NewRecord(
        request_id=request_id,
        message_id="origin-1",
        payload_hash="h",
        region="us-west-2",
        priority="normal",
        model_name="m",
        forwarded_at="2027-01-15T08:00:00.000Z",
        callback_sns_topic="arn:aws:sns:us-east-1:123456789012:results",
    )


def forwarded(stack, request_id: str) -> None:
    stack.forward([make_request(request_id)])
    stack.drain(stack.queue_url)


def test_claim_moves_forwarded_to_running_with_a_lease_and_the_first_token(stack, clock):
    forwarded(stack, "r-1")
    outcome = ledger(stack, clock, "w-a").claim(new_record("r-1"), LEASE)
    assert outcome.kind is ClaimKind.CLAIMED and outcome.lease is not None
    assert (outcome.lease.fencing_token, outcome.lease.attempt) == (1, 1)
    record = stack.record("r-1")
    assert record.status is RequestStatus.RUNNING and record.worker_id == "w-a"
    assert record.run_lease_expires_at == NOW + LEASE and record.started_at
    assert record.message_id == "master-r-1"  # the distributor's fields are kept


def test_a_live_lease_refuses_another_claim_and_says_how_long_it_lasts(stack, clock):
    forwarded(stack, "r-2")
    ledger(stack, clock, "w-a").claim(new_record("r-2"), LEASE)
    clock.now += 20
    refused = ledger(stack, clock, "w-b").claim(new_record("r-2"), LEASE)
    assert refused.kind is ClaimKind.HELD
    assert refused.retry_after == pytest.approx(LEASE - 20 + 1)
    assert stack.record("r-2").worker_id == "w-a"


def test_an_expired_lease_is_claimed_again_with_a_new_token_and_the_late_worker_is_fenced(
    stack, clock
):
    forwarded(stack, "r-3")
    first = ledger(stack, clock, "w-a").claim(new_record("r-3"), LEASE).lease
    clock.now += LEASE + 1  # w-a died (or stalled) past its lease
    second = ledger(stack, clock, "w-b").claim(new_record("r-3"), LEASE).lease
    assert second is not None and first is not None
    assert (second.fencing_token, second.attempt) == (2, 2)
    with pytest.raises(FencedError):
        ledger(stack, clock, "w-a").finish(first, RequestStatus.SUCCEEDED, result='"late"')
    ledger(stack, clock, "w-b").finish(second, RequestStatus.SUCCEEDED, result='"fresh"')
    record = stack.record("r-3")
    assert (record.status, record.result, record.worker_id) == (
        RequestStatus.SUCCEEDED,
        '"fresh"',
        "w-b",
    )


def test_a_final_record_is_never_claimed_again(stack, clock):
    forwarded(stack, "r-4")
    runs = ledger(stack, clock, "w-a")
    lease = runs.claim(new_record("r-4"), LEASE).lease
    runs.finish(lease, RequestStatus.FAILED, error_code="BAD_INPUT", error_message="no")
    clock.now += 10 * LEASE
    again = ledger(stack, clock, "w-b").claim(new_record("r-4"), LEASE)
    assert again.kind is ClaimKind.FINISHED and again.record.status is RequestStatus.FAILED


def test_a_request_without_a_record_is_created_running(stack, clock):
    outcome = ledger(stack, clock, "w-a").claim(new_record("r-5"), LEASE)
    assert outcome.kind is ClaimKind.CLAIMED
    record = stack.record("r-5")
    assert record.status is RequestStatus.RUNNING
    assert (record.message_id, record.region, record.model_name) == ("origin-1", "us-west-2", "m")
    assert record.callback_sns_topic == "arn:aws:sns:us-east-1:123456789012:results"
    assert record.expires_at > NOW  # TTL set, so the table does not grow forever


def test_expire_marks_a_forwarded_request_expired_in_one_write(stack, clock):
    forwarded(stack, "r-6")
    outcome = ledger(stack, clock, "w-a").expire(new_record("r-6"), "too old")
    assert outcome.kind is ClaimKind.CLAIMED
    record = stack.record("r-6")
    assert (record.status, record.error_code) == (RequestStatus.EXPIRED, "REQUEST_EXPIRED")
    assert record.attempt == 0 and record.started_at is None  # never ran


def test_release_ends_the_lease_and_a_refund_gives_the_attempt_back(stack, clock):
    forwarded(stack, "r-7")
    runs = ledger(stack, clock, "w-a")
    lease = runs.claim(new_record("r-7"), LEASE).lease
    runs.release(lease, grace=2.0, refund_attempt=True)
    record = stack.record("r-7")
    assert record.run_lease_expires_at == NOW + 2 and record.attempt == 0
    clock.now += 3
    again = ledger(stack, clock, "w-b").claim(new_record("r-7"), LEASE).lease
    assert (again.attempt, again.fencing_token) == (1, 2)


def test_renew_moves_the_lease_only_for_its_holder(stack, clock):
    forwarded(stack, "r-8")
    runs = ledger(stack, clock, "w-a")
    lease = runs.claim(new_record("r-8"), LEASE).lease
    clock.now += 50
    renewed = runs.renew(lease, LEASE)
    assert renewed.expires_at == NOW + 50 + LEASE
    assert stack.record("r-8").run_lease_expires_at == NOW + 50 + LEASE
    clock.now += LEASE + 1
    ledger(stack, clock, "w-b").claim(new_record("r-8"), LEASE)
    with pytest.raises(FencedError):
        runs.renew(renewed, LEASE)


def test_finish_removes_a_previous_attempts_error(stack, clock):
    forwarded(stack, "r-9")
    runs = ledger(stack, clock, "w-a")
    lease = runs.claim(new_record("r-9"), LEASE).lease
    runs.release(lease, error_code="RETRYABLE", error_message="busy")
    lease = runs.claim(new_record("r-9"), LEASE).lease
    runs.finish(lease, RequestStatus.SUCCEEDED, result_location="s3://b/results/r-9.json")
    record = stack.record("r-9")
    assert record.error_code is None and record.error_message is None
    assert record.result_location == "s3://b/results/r-9.json" and record.result is None


def test_a_claim_records_the_claiming_workers_region(stack, clock):
    """A request handed back by a stopping region with its claim released stays RUNNING, so
    the rescue cannot re-point its record; whoever claims it next records its own region."""
    forwarded(stack, "r-region")
    west = ledger(stack, clock, "w-west")
    lease = west.claim(new_record("r-region"), LEASE).lease
    assert lease is not None and stack.record("r-region").region == "us-west-2"
    west.release(lease, refund_attempt=True)  # handed back on SIGTERM, before it ran
    clock.now += 1
    east = dataclasses.replace(new_record("r-region"), region="eu-west-1")

    outcome = ledger(stack, clock, "w-east").claim(east, LEASE)

    assert outcome.kind is ClaimKind.CLAIMED
    record = stack.record("r-region")
    assert (record.region, record.worker_id, record.attempt) == ("eu-west-1", "w-east", 1)
