"""The local stack's moto patches (`localrun.moto_fixes`) answer as moto does, only without
scanning the queue once per message: retention still drops old messages, GetQueueAttributes
still returns exactly the names asked for and refuses unknown ones."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.sqs import models

from localrun import moto_fixes

REGION = "us-west-2"


@pytest.fixture
def sqs():
    moto_fixes.apply()
    with mock_aws():
        yield boto3.client("sqs", region_name=REGION)


def _queue(sqs, name: str = "q", **attributes: str) -> str:
    return sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]


def _backend_queue(name: str):
    return models.sqs_backends["123456789012"][REGION].queues[name]


def test_a_message_past_its_retention_period_is_not_received(sqs) -> None:
    url = _queue(sqs, MessageRetentionPeriod="60")
    sqs.send_message(QueueUrl=url, MessageBody="old")
    _backend_queue("q")._messages[0].sent_timestamp -= 61_000
    sqs.send_message(QueueUrl=url, MessageBody="new")

    bodies = [
        m["Body"]
        for _ in range(2)  # moto ends a receive at an expired message; the next goes past it
        for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    ]

    assert bodies == ["new"]


def test_named_attributes_are_exactly_those_asked_for(sqs) -> None:
    url = _queue(sqs, VisibilityTimeout="45")
    sqs.send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(n), "MessageBody": "x"} for n in range(3)]
    )
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=30)
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "VisibilityTimeout",
    ]

    got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]

    assert got == {
        "ApproximateNumberOfMessages": "2",
        "ApproximateNumberOfMessagesNotVisible": "1",
        "VisibilityTimeout": "45",
    }
    everything = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert {name: everything[name] for name in names} == got


def test_an_unknown_attribute_or_queue_is_refused_as_moto_refuses_it(sqs) -> None:
    url = _queue(sqs)
    with pytest.raises(ClientError) as bad_name:
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["NoSuchAttribute"])
    assert bad_name.value.response["Error"]["Code"] == "InvalidAttributeName"
    with pytest.raises(ClientError) as no_queue:
        sqs.get_queue_attributes(
            QueueUrl=url.replace("/q", "/missing"), AttributeNames=["VisibilityTimeout"]
        )
    assert "NonExistentQueue" in no_queue.value.response["Error"]["Code"]


def test_receiving_does_not_rescan_the_queue_per_message(sqs, monkeypatch) -> None:
    """The quadratic cost was moto reading every queue attribute (three scans of all its
    messages) for each message a receive considered."""
    url = _queue(sqs)
    sqs.send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(n), "MessageBody": "x"} for n in range(10)]
    )
    scans = 0
    original = models.Queue.attributes

    def counted(self):
        nonlocal scans
        scans += 1
        return original.fget(self)

    monkeypatch.setattr(models.Queue, "attributes", property(counted))

    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]

    assert len(got) == 10
    assert scans <= 1
