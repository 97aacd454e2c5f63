"""The local stack in moto matches its specs; its environment is one the distributor accepts."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from localrun.resources import StackResources
from localrun.stack import RunningStack, event_source_config, running_stack
from localrun.stackfile import claim_stack_file, live_stack, release_stack_file
from localrun.templates import load_stack_spec
from orchestrator.core.stackfile import load_stack
from orchestrator.distributor.config import Settings
from orchestrator.rescue.config import Settings as RescueSettings
from orchestrator.worker.config import settings_from


@pytest.fixture(scope="module")
def local() -> Iterator[RunningStack]:
    with running_stack(name_suffix=f"-{uuid.uuid4().hex[:8]}") as running:
        yield running


def test_queues_have_the_templates_attributes_and_redrive(local: RunningStack) -> None:
    stack, spec = local.stack, local.stack.spec
    sqs = local.sqs[stack.primary_region]
    attributes = sqs.get_queue_attributes(QueueUrl=stack.master_queue_url, AttributeNames=["All"])[
        "Attributes"
    ]
    assert int(attributes["VisibilityTimeout"]) == spec.master_queue.visibility_timeout
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["maxReceiveCount"] == spec.master_queue.max_receive_count
    assert redrive["deadLetterTargetArn"].endswith(stack.dead_letter_queue_url.rsplit("/", 1)[1])
    for region, url in stack.region_queues.items():
        attributes = local.sqs[region].get_queue_attributes(QueueUrl=url, AttributeNames=["All"])[
            "Attributes"
        ]
        assert attributes["QueueArn"].startswith(f"arn:aws:sqs:{region}:")
        redrive = json.loads(attributes["RedrivePolicy"])
        assert redrive["maxReceiveCount"] == spec.region_queues[region].max_receive_count == 10


def test_high_priority_queues_have_the_standard_queues_settings(local: RunningStack) -> None:
    """RegionHighPriorityQueue: the template's name, the standard queue's visibility,
    retention, long poll and redrive (the same dead-letter queue), in the region's own SQS."""
    stack, spec = local.stack, local.stack.spec
    assert set(stack.high_priority_queues) == set(stack.region_queues)
    for region, url in stack.high_priority_queues.items():
        high, standard = spec.region_high_priority_queues[region], spec.region_queues[region]
        assert high.logical_id == "RegionHighPriorityQueue"
        assert high.name == standard.name + "-high"
        assert url.rsplit("/", 1)[1].startswith(high.name)
        assert url != stack.region_queues[region]
        client = local.sqs[region]
        got = client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        want = client.get_queue_attributes(
            QueueUrl=stack.region_queues[region], AttributeNames=["All"]
        )["Attributes"]
        assert got["QueueArn"].startswith(f"arn:aws:sqs:{region}:")
        for name in (
            "VisibilityTimeout",
            "MessageRetentionPeriod",
            "ReceiveMessageWaitTimeSeconds",
            "RedrivePolicy",
        ):
            assert got[name] == want[name], name
        assert dict(high.attributes) == dict(standard.attributes)
        assert (high.dead_letter_queue, high.max_receive_count) == (
            standard.dead_letter_queue,
            standard.max_receive_count,
        )
    assert list(stack.inference_queues()) == [
        name for region in stack.region_queues for name in (region, f"{region} high")
    ]


def test_each_region_queue_lives_in_its_own_region(local: RunningStack) -> None:
    for region, url in local.stack.region_queues.items():
        name = url.rsplit("/", 1)[1]
        for other, client in local.sqs.items():
            urls = client.list_queues(QueueNamePrefix=name).get("QueueUrls", [])
            assert (url in urls) == (other == region)


def test_ledger_table_has_the_key_schema_and_ttl(local: RunningStack) -> None:
    table = local.dynamodb.describe_table(TableName=local.stack.table_name)["Table"]
    assert table["KeySchema"] == [{"AttributeName": "request_id", "KeyType": "HASH"}]
    ttl = local.dynamodb.describe_time_to_live(TableName=local.stack.table_name)
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "expires_at"


def test_presence_table_buckets_and_callback_topic_follow_the_templates(
    local: RunningStack,
) -> None:
    stack, spec = local.stack, local.stack.spec
    assert spec.workers_table is not None and stack.workers_table
    table = local.dynamodb.describe_table(TableName=stack.workers_table)["Table"]
    assert table["KeySchema"] == [
        {"AttributeName": "region", "KeyType": "HASH"},
        {"AttributeName": "worker_id", "KeyType": "RANGE"},
    ]
    assert set(stack.results_buckets) == set(stack.region_queues)
    for region, bucket in stack.results_buckets.items():
        assert bucket.startswith(f"inference-results-123456789012-{region}-")
        location = local.s3[region].get_bucket_location(Bucket=bucket)["LocationConstraint"]
        assert (location or "us-east-1") == region
    # A message published to the callback topic lands in the subscribed queue.
    assert stack.callback_topic_arn and stack.notification_queue_url
    assert ":inference-callback-local-" in stack.callback_topic_arn  # the worker's IAM pattern
    local.sns.publish(TopicArn=stack.callback_topic_arn, Message='{"request_id": "r-1"}')
    sqs = local.sqs[stack.primary_region]
    got = sqs.receive_message(QueueUrl=stack.notification_queue_url, WaitTimeSeconds=2)
    envelope = json.loads(got["Messages"][0]["Body"])
    assert json.loads(envelope["Message"]) == {"request_id": "r-1"}


def test_the_distributor_accepts_the_environment(local: RunningStack) -> None:
    environ = local.stack.distributor_environ(CACHE_TTL="1")
    settings = Settings.from_environ(environ)
    assert dict(settings.region_queues) == dict(local.stack.region_queues)
    assert settings.cache_ttl == 1
    assert settings.primary_region == "us-east-1"
    assert settings.workers_table_name == local.stack.workers_table  # routing reads presence
    assert dict(settings.high_priority_queues) == dict(local.stack.high_priority_queues)
    assert json.loads(environ["HIGH_PRIORITY_QUEUES"]).keys() == settings.region_queues.keys()
    assert environ["AWS_ENDPOINT_URL"] == local.stack.endpoint_url


def test_the_rescue_and_the_worker_accept_their_environments(local: RunningStack) -> None:
    stack = local.stack
    assert stack.spec.rescue is not None and stack.spec.rescue.schedule_seconds == 60
    rescue = RescueSettings.from_environ(stack.rescue_environ(RESCUE_STALL_SECONDS="3"))
    assert dict(rescue.region_queues) == dict(stack.region_queues)
    assert rescue.stall_seconds == 3
    assert rescue.workers_table_name == stack.workers_table
    assert rescue.idempotency_table_name == stack.table_name
    assert dict(rescue.high_priority_queues) == dict(stack.high_priority_queues)
    for region in stack.region_queues:
        environ = {**stack.worker_environ(region), "WORKER_HANDLER": "m:M"}
        worker = settings_from({}, environ)
        assert (worker.queue_url, worker.region) == (stack.region_queues[region], region)
        assert (worker.table_name, worker.table_region) == (stack.table_name, "us-east-1")
        assert worker.workers_table == stack.workers_table
        assert worker.results_bucket == stack.results_buckets[region]
        high = environ["WORKER_HIGH_PRIORITY_QUEUE_URL"]
        assert high == stack.high_priority_queues[region]
        assert worker.high_priority_queue_url == high
        assert environ["AWS_ENDPOINT_URL"] == stack.endpoint_url
        assert environ["AWS_ACCESS_KEY_ID"] == "testing"


def test_event_source_follows_the_template(local: RunningStack) -> None:
    mapping = event_source_config(local.stack)
    function = local.stack.spec.function
    assert mapping.batch_size == function.batch_size
    assert mapping.batching_window == function.batching_window
    assert mapping.function_timeout == function.timeout
    assert mapping.report_batch_item_failures
    assert mapping.pollers == 5  # Lambda's initial pollers, below MaximumConcurrency


def test_stack_file_is_claimed_once_and_released_by_its_owner(
    local: RunningStack, tmp_path: Path
) -> None:
    path = tmp_path / ".local-stack.json"
    mine = local.stack.advertised(path)
    assert claim_stack_file(mine)
    assert set(json.loads(path.read_text())) == {
        "endpoint_url",
        "primary_region",
        "master_queue_url",
        "dead_letter_queue_url",
        "table_name",
        "region_queues",
    }
    assert load_stack(path) == mine  # what the tools read is what was written
    assert live_stack(path) == mine
    other = replace(mine, endpoint_url="http://127.0.0.1:1")
    assert not claim_stack_file(other)  # a live stack holds it
    release_stack_file(other)  # not the owner: left alone
    assert load_stack(path) == mine
    release_stack_file(mine)
    assert not path.exists()
    assert claim_stack_file(other)  # a stale file from a killed process ...
    assert live_stack(path) is None
    assert claim_stack_file(mine)  # ... is taken over
    path.write_text("{not json")
    assert live_stack(path) is None  # unusable: not a live stack, and may be overwritten
    assert claim_stack_file(mine)


def test_a_stack_read_back_from_its_file_is_the_same_stack(local: RunningStack) -> None:
    advertised = local.stack.advertised(Path("stack.json"))
    again = StackResources.from_local_stack(advertised, load_stack_spec())
    assert again.distributor_environ() == local.stack.distributor_environ()
    assert again.workers_table == local.stack.workers_table  # named beside the request table
    assert again.master_queue_arn == local.stack.master_queue_arn
    # The stack file does not name the high-priority queues; they are found by name.
    assert again.high_priority_queues == local.stack.high_priority_queues
    with pytest.raises(ValueError, match="table_name"):
        StackResources.from_local_stack(replace(advertised, table_name=None), load_stack_spec())
