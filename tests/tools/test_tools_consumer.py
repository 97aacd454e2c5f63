"""test-tools/consumer.py against in-process moto (one client per region)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tools_support import REGIONS, drain, free_port

from orchestrator.cli import consume as consumer
from orchestrator.cli import send as producer

PUBLISHED = """\
========================================
Message Distribution Statistics
========================================
us-east-1: 2 messages (22.2%)
us-west-2: 4 messages (44.4%)
us-west-1: 3 messages (33.3%)
----------------------------------------
Total: 9 messages"""

FAST = ["--wait-seconds", "0", "--idle-timeout", "0.3"]


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def forward(
    client: Any,
    url: str,
    n: int,
    *,
    priority: str = "normal",
    age: float = 0.0,
    request_id: str | None = None,
) -> list[str]:
    """Put n messages on a region queue the way the distributor forwards them."""
    ids = []
    sent_at = datetime.now(UTC) - timedelta(seconds=age)
    for _ in range(n):
        rid = request_id or producer.new_request_id()
        doc = producer.build_request(rid, priority=priority, timestamp=iso(sent_at))
        attrs = {
            "request_id": rid,
            "priority": priority,
            "model_name": doc["model_name"],
            "origin_message_id": "00000000-0000-4000-8000-000000000000",
            "attempt": "1",
            "forwarded_at": iso(sent_at + timedelta(seconds=age / 2)),
        }
        client.send_message(
            QueueUrl=url,
            MessageBody=producer.encode(doc),
            MessageAttributes={
                k: {"DataType": "String", "StringValue": v} for k, v in attrs.items()
            },
        )
        ids.append(rid)
    return ids


def targets(queues: dict[str, tuple[Any, str]]) -> list[consumer.QueueTarget]:
    return [consumer.QueueTarget(region, url, client) for region, (client, url) in queues.items()]


def test_prints_the_published_layout(region_queues, capsys) -> None:
    for region, n in zip(REGIONS, (2, 4, 3), strict=True):
        client, url = region_queues[region]
        forward(client, url, n)
    code = consumer.main(["--max-messages", "10", *FAST], targets=targets(region_queues))
    assert code == 0
    out = capsys.readouterr().out
    assert out.startswith(PUBLISHED + "\n")
    # everything counted was deleted
    assert all(drain(client, url) == [] for client, url in region_queues.values())


def test_latency_and_priority_sections(region_queues, capsys) -> None:
    client, url = region_queues["us-west-2"]
    forward(client, url, 2, priority="high", age=2.0)
    forward(client, url, 1, priority="low", age=2.0)
    assert consumer.main(["--max-messages", "3", *FAST], targets=targets(region_queues)) == 0
    lines = capsys.readouterr().out.splitlines()
    forwarded = lines[lines.index("Latency since forwarded_at (ms)") + 1 :][:3]
    assert forwarded[0] == "us-east-1: no data"
    assert forwarded[1].startswith("us-west-2: p50 ")
    p50 = float(forwarded[1].split()[2])
    assert 900 <= p50 <= 5_000  # forwarded 1 s before sending
    request = lines[lines.index("Latency since request timestamp (ms)") + 2]
    assert 1_900 <= float(request.split()[2]) <= 6_000
    section = lines[lines.index("Messages by priority") + 1 :][:3]
    assert section == ["high: 2", "normal: 0", "low: 1"]


def test_max_messages_stops_and_releases_the_excess(region_queues, capsys) -> None:
    client, url = region_queues["us-east-1"]
    forward(client, url, 8)
    argv = ["--max-messages", "3", "--wait-seconds", "0", "--idle-timeout", "5", "--json"]
    started = time.monotonic()
    assert consumer.main(argv, targets=targets(region_queues)) == 0
    assert time.monotonic() - started < 3  # stopped by the count, not the idle timeout
    stats = json.loads(capsys.readouterr().out)
    assert stats["total"] == 3 and stats["stopped"] == "max-messages"
    assert len(drain(client, url)) == 5  # the rest is visible again at once


def test_idle_timeout_with_empty_queues(region_queues, capsys) -> None:
    started = time.monotonic()
    assert consumer.main(FAST, targets=targets(region_queues)) == 0
    assert time.monotonic() - started < 3
    out = capsys.readouterr().out
    assert "us-east-1: 0 messages (0.0%)" in out and "Total: 0 messages" in out


def test_no_delete_leaves_messages_in_flight(region_queues, capsys) -> None:
    client, url = region_queues["us-west-1"]
    forward(client, url, 4)
    assert consumer.main(["--no-delete", *FAST], targets=targets(region_queues)) == 0
    assert "Total: 4 messages" in capsys.readouterr().out
    attrs = client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessagesNotVisible"] == "4"


def test_json_output_and_duplicate_request_ids(region_queues, capsys) -> None:
    east, west = region_queues["us-east-1"], region_queues["us-west-2"]
    forward(*east, 1, request_id="req-dup", priority="high")
    forward(*west, 1, request_id="req-dup", priority="high")
    forward(*west, 1)
    assert consumer.main(["--json", *FAST], targets=targets(region_queues)) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["total"] == 3
    assert stats["regions"]["us-west-2"]["count"] == 2
    assert stats["regions"]["us-west-2"]["percent"] == 66.7
    assert stats["regions"]["us-west-1"]["latency_ms"]["since_forwarded"] is None
    assert stats["priorities"] == {"high": 2, "normal": 1, "low": 0}
    assert stats["duplicate_request_ids"] == {"req-dup": 2}
    assert stats["stopped"] == "idle"


def test_messages_without_attributes_or_json_are_counted(region_queues, capsys) -> None:
    client, url = region_queues["us-east-1"]
    client.send_message(QueueUrl=url, MessageBody="not json")
    assert consumer.main(FAST, targets=targets(region_queues)) == 0
    out = capsys.readouterr().out
    assert "us-east-1: 1 messages (100.0%)" in out and "unknown: 1" in out


def test_render_with_fixed_numbers() -> None:
    now = 1_000_000.0
    received = [
        consumer.Received("us-east-1", str(i), now, f"r{i}", "normal", "1", now - i / 100, None)
        for i in range(1, 11)
    ]
    stats = consumer.Stats(regions=["us-east-1", "eu-west-1"], messages=received)
    text = stats.render()
    assert "us-east-1: 10 messages (100.0%)" in text
    assert "eu-west-1: 0 messages (0.0%)" in text
    assert "us-east-1: p50 50.0  p90 90.0  max 100.0  (n=10)" in text


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert consumer.percentile(values, 50) == 50.0
    assert consumer.percentile(values, 90) == 90.0
    assert consumer.percentile([7.0], 90) == 7.0


def test_parse_time() -> None:
    assert consumer.parse_time("1970-01-01T00:00:01Z") == 1.0
    assert consumer.parse_time("1970-01-01T00:00:01+00:00") == 1.0
    assert consumer.parse_time("1970-01-01T00:00:01") is None  # no zone
    assert consumer.parse_time("yesterday") is None and consumer.parse_time(None) is None


def test_queue_flags_collect_in_order() -> None:
    args = consumer.build_parser().parse_args(
        ["--queue-us-west-2", "B", "--queue", "eu-central-1=C", "--queue-us-east-1", "A"]
    )
    assert args.queues == [("us-west-2", "B"), ("eu-central-1", "C"), ("us-east-1", "A")]


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--queue-us-east-1", "A", "--max-messages", "0"], "--max-messages must be ≥ 1"),
        (["--queue-us-east-1", "A", "--wait-seconds", "21"], "--wait-seconds"),
        (["--queue-us-east-1", "A", "--idle-timeout", "0"], "--idle-timeout"),
        (["--queue", "not-a-pair"], "--queue"),
        (["--queue", "moon-base-1=http://x"], "--queue"),
        (["--queue-us-east-1", "A", "--queue", "us-east-1=B"], "--queue: region us-east-1"),
        (["--endpoint-url", "http://127.0.0.1:1"], "--queue-REGION or --queue"),
        ([], "--queue-us-east-1"),
    ],
)
def test_flag_errors_name_the_flag(argv, flag, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        consumer.main(argv)
    assert exit_info.value.code == 2
    assert flag in capsys.readouterr().err


def test_unreachable_endpoint_is_one_line(capsys) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    argv = ["--queue-us-east-1", f"{endpoint}/1/q", "--endpoint-url", endpoint]
    assert consumer.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"error: cannot reach SQS at {endpoint} (us-east-1): ")
    assert captured.err.count("\n") == 1


def test_missing_queue_is_one_line(region_queues, capsys) -> None:
    client, _ = region_queues["us-east-1"]
    bad = [consumer.QueueTarget("us-east-1", "https://sqs.us-east-1.amazonaws.com/1/nope", client)]
    assert consumer.main(FAST, targets=bad) == 2
    assert capsys.readouterr().err.startswith("error: us-east-1: queue does not exist:")
