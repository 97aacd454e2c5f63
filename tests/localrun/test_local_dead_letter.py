"""Dead letters read back from a queue with `DeadLetter.from_message`, the one reader the demo's
audit and the invoker use (against a moto server)."""

from __future__ import annotations

from typing import Any

from orchestrator.core.dead_letter import DeadLetter, DeadLetterQueue
from orchestrator.core.sqs import receive_all


def test_a_dead_letter_reads_back_as_it_was_sent(sqs: Any, make_queue: Any) -> None:
    queue = make_queue()
    letters = [
        DeadLetter("m-1", '{"request_id": "r-1"', "INVALID_JSON", "body is not JSON", "r-1"),
        DeadLetter("m-2", "[1]", "NOT_AN_OBJECT", "body must be a JSON object, got list"),
    ]
    assert DeadLetterQueue(queue.url, sqs).send(letters) == []
    read = sorted(
        (DeadLetter.from_message(m) for m in receive_all(sqs, queue.url)),
        key=lambda letter: letter.origin_message_id,
    )
    assert read == letters


def test_a_message_sqs_moved_itself_keeps_its_own_id_as_origin(sqs: Any, make_queue: Any) -> None:
    queue = make_queue()
    # What a redrive leaves in the DLQ: the original message, its id, no attributes.
    message_id = sqs.send_message(QueueUrl=queue.url, MessageBody="poison")["MessageId"]
    (message,) = receive_all(sqs, queue.url)
    letter = DeadLetter.from_message(message)
    assert letter == DeadLetter(message_id, "poison", "", "", None)
