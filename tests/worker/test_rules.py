"""The pure rules: deadlines, copies in a batch, retry backoff, what a model result means."""

from __future__ import annotations

import json
import random

import pytest

from orchestrator.worker.batch import deadline_of, group_copies, parse_item
from orchestrator.worker.exceptions import PermanentError, RetryableError
from orchestrator.worker.outcome import Action, backoff_seconds, classify
from orchestrator.worker.queue import Held
from orchestrator.worker.records import Lease

NOW = 1_800_000_000.0


def held(body: object, **attributes: str) -> Held:
    message = {
        "MessageId": "m-1",
        "ReceiptHandle": f"rh-{random.random()}",
        "Body": body if isinstance(body, str) else json.dumps(body),
        "MessageAttributes": {
            k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()
        },
        "Attributes": {"SentTimestamp": str(int(NOW * 1000))},
    }
    return Held(message, received_at=0.0, extended_at=0.0)


def document(request_id: str = "r-1", **extra: object) -> dict[str, object]:
    return {
        "request_id": request_id,
        "model_name": "m",
        "input_data_url": "s3://bucket-a/k",
        **extra,
    }


class TestDeadline:
    def test_metadata_deadline_wins(self):
        assert deadline_of(
            {"deadline": "2027-01-15T08:00:00Z", "ttl_seconds": 5}, NOW, 60
        ) == parse("2027-01-15T08:00:00Z")
        assert deadline_of({"deadline": NOW + 5}, NOW, 60) == NOW + 5

    def test_ttl_seconds_then_the_default(self):
        assert deadline_of({"ttl_seconds": 30}, NOW, 600) == NOW + 30
        assert deadline_of({}, NOW, 600) == NOW + 600
        assert deadline_of({}, NOW, None) is None

    @pytest.mark.parametrize(
        "metadata",
        [
            {"ttl_seconds": "soon"},
            {"ttl_seconds": -1},
            {"ttl_seconds": True},
            {"deadline": "tomorrow"},
        ],
    )
    def test_a_bad_deadline_is_a_permanent_error(self, metadata):
        with pytest.raises(PermanentError, match="metadata"):
            deadline_of(metadata, NOW, 600)

    def test_the_queueing_time_is_the_client_timestamp_but_never_after_forwarding(self):
        early = parse_item(
            held(
                document(timestamp="2027-01-15T08:00:00Z", metadata={"ttl_seconds": 10}),
                forwarded_at="2027-01-15T08:00:05Z",
            ),
            "us-west-2",
            None,
        )
        assert early.deadline_at == pytest.approx(parse("2027-01-15T08:00:10Z"))
        ahead = parse_item(
            held(
                document(timestamp="2027-01-15T09:00:00Z", metadata={"ttl_seconds": 10}),
                forwarded_at="2027-01-15T08:00:05Z",
            ),
            "us-west-2",
            None,
        )
        assert ahead.deadline_at == pytest.approx(parse("2027-01-15T08:00:15Z"))

    def test_without_routing_attributes_the_sent_timestamp_counts(self):
        item = parse_item(held(document(metadata={"ttl_seconds": 10})), "us-west-2", None)
        assert item.deadline_at == pytest.approx(NOW + 10)
        assert item.new_record is not None and item.new_record.message_id == "m-1"


def parse(value: str) -> float:
    from orchestrator.core.timefmt import parse_iso

    result = parse_iso(value)
    assert result is not None
    return result


def test_copies_of_a_request_in_one_batch_follow_the_first():
    items = [parse_item(held(document(rid)), "r", None) for rid in ("a", "b", "a", "a")]
    leaders = group_copies(items)
    assert [i.request_id for i in leaders] == ["a", "b"]
    assert len(leaders[0].followers) == 2


def test_an_invalid_body_is_kept_with_its_reason():
    item = parse_item(held("not json"), "r", None)
    assert item.invalid is not None and item.request is None
    assert group_copies([item]) == [item]


class TestBackoff:
    def test_exponential_with_equal_jitter_and_a_cap(self):
        rng = random.Random(7)
        for attempt, ceiling in ((1, 2), (2, 4), (3, 8), (4, 16)):
            delays = [backoff_seconds(attempt, rng) for _ in range(200)]
            assert min(delays) >= ceiling / 2 - 0.5 and max(delays) <= ceiling
            assert len(set(delays)) > 1  # jitter spreads retries that failed together
        assert max(backoff_seconds(30, rng) for _ in range(50)) <= 300


def item_with(attempt: int):
    item = parse_item(held(document()), "r", None)
    item.lease = Lease("r-1", fencing_token=attempt, attempt=attempt, expires_at=NOW + 100)
    return item


class TestClassify:
    def run(self, result, attempt=1, max_attempts=3):
        return classify(
            item_with(attempt),
            result,
            max_attempts=max_attempts,
            rng=random.Random(1),
            retry_base=2.0,
        )

    def test_a_value_succeeds(self):
        outcome = self.run({"label": 3})
        assert outcome.action is Action.SUCCEED and outcome.value == {"label": 3}

    def test_a_permanent_error_fails_at_once_with_its_code(self):
        outcome = self.run(PermanentError("bad pixels", "BAD_INPUT"))
        assert (outcome.action, outcome.code, outcome.message) == (
            Action.FAIL,
            "BAD_INPUT",
            "bad pixels",
        )

    def test_a_retryable_error_retries_until_the_last_attempt(self):
        first = self.run(RetryableError("busy"), attempt=1)
        assert first.action is Action.RETRY and first.code == "RETRYABLE" and 1 <= first.delay <= 2
        last = self.run(RetryableError("busy"), attempt=3)
        assert last.action is Action.FAIL and "(attempt 3 of 3)" in last.message

    def test_any_other_exception_is_a_retryable_model_error(self):
        outcome = self.run(ValueError("shape mismatch"))
        assert outcome.action is Action.RETRY and outcome.code == "MODEL_ERROR"
        assert "ValueError: shape mismatch" in outcome.message
