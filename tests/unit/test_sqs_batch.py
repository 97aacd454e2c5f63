from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.core.dead_letter import DeadLetter
from orchestrator.core.sqs import (
    MAX_BATCH_BYTES,
    MAX_BATCH_ENTRIES,
    OutgoingMessage,
    chunks,
    send_chunk,
)

sizes = st.lists(st.integers(0, 400_000), max_size=40)


@given(sizes)
def test_chunks_hold_at_most_ten_entries_and_one_mib_in_order(body_sizes):
    messages = [
        OutgoingMessage(str(i), "x" * size, {"request_id": f"req-{i}"})
        for i, size in enumerate(body_sizes)
    ]
    out = list(chunks(messages))
    assert [m for chunk in out for m in chunk] == messages
    for chunk in out:
        assert 1 <= len(chunk) <= MAX_BATCH_ENTRIES
        assert sum(m.size for m in chunk) <= MAX_BATCH_BYTES


def test_size_counts_attribute_names_types_and_values():
    message = OutgoingMessage("k", "héllo", {"ab": "xyz"})
    assert message.size == len("héllo".encode()) + 2 + len("String") + 3


class RecordingClient:
    def __init__(self, failed=()):
        self.calls = []
        self.failed = failed

    def send_message_batch(self, QueueUrl, Entries):
        self.calls.append(Entries)
        return {"Failed": [{"Id": i, "Code": "X", "SenderFault": True} for i in self.failed]}


def test_entry_ids_are_positions_never_request_ids():
    """Defect 6: two copies of one request id in one call made the whole call fail."""
    client = RecordingClient()
    chunk = [
        OutgoingMessage("a", "{}", {"request_id": "same"}),
        OutgoingMessage("b", "{}", {"request_id": "same"}),
    ]
    assert send_chunk(client, "url", chunk) == []
    assert [e["Id"] for e in client.calls[0]] == ["0", "1"]


def test_failed_entries_map_back_to_their_keys():
    client = RecordingClient(failed=["1"])
    failures = send_chunk(client, "url", [OutgoingMessage("a", "{}"), OutgoingMessage("b", "{}")])
    assert [(f.key, f.transport, f.sender_fault) for f in failures] == [("b", False, True)]


def test_transport_errors_fail_every_entry_of_the_call():
    from botocore.exceptions import EndpointConnectionError

    class Down:
        def send_message_batch(self, **_):
            raise EndpointConnectionError(endpoint_url="https://sqs.us-west-2.amazonaws.com")

    failures = send_chunk(Down(), "url", [OutgoingMessage("a", "{}"), OutgoingMessage("b", "{}")])
    assert [f.key for f in failures] == ["a", "b"] and all(f.transport for f in failures)


def test_a_programming_error_is_not_taken_for_an_outage():
    """A TypeError is a bug: it must surface, not be reported as 'region down'."""

    class Buggy:
        def send_message_batch(self, **_):
            raise TypeError("unexpected keyword argument")

    with pytest.raises(TypeError):
        send_chunk(Buggy(), "url", [OutgoingMessage("a", "{}")])


def test_dead_letter_under_the_limit_is_sent_whole_with_its_reason():
    letter = DeadLetter("mid", "body", "INVALID_JSON", "body is not JSON", "req-1").to_message()
    assert letter.body == "body"
    assert letter.attributes == {
        "error_code": "INVALID_JSON",
        "error_message": "body is not JSON",
        "origin_message_id": "mid",
        "request_id": "req-1",
    }
