"""test-tools/consumer.py against in-process moto (one client per region)."""

from __future__ import annotations

import _thread
import json
import time
from typing import Any

import pytest
from rich.console import Console
from tools_support import REGIONS, drain, free_port

from orchestrator.cli import consume as consumer
from orchestrator.cli import traffic
from orchestrator.cli.distribution import Received, Stats, proportional_quotas
from orchestrator.cli.polling import Consumer, QueueTarget
from orchestrator.core.attributes import RoutingAttributes
from orchestrator.core.timefmt import iso_utc

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


def forward(
    queue: tuple[Any, str],
    n: int,
    *,
    priority: str = "normal",
    age: float = 0.0,
    request_id: str | None = None,
) -> list[str]:
    """Put n messages on a region queue (client, url) the way the distributor forwards them."""
    client, url = queue
    ids = []
    sent_at = time.time() - age
    for _ in range(n):
        rid = request_id or traffic.new_request_id()
        doc = traffic.build_request(rid, priority=priority, timestamp=iso_utc(sent_at))
        routing = RoutingAttributes(
            request_id=rid,
            priority=priority,
            model_name=doc["model_name"],
            origin_message_id="00000000-0000-4000-8000-000000000000",
            attempt=1,
            forwarded_at=iso_utc(sent_at + age / 2),
        )
        client.send_message(
            QueueUrl=url,
            MessageBody=traffic.encode(doc),
            MessageAttributes={k: a.to_sqs() for k, a in routing.to_attributes().items()},
        )
        ids.append(rid)
    return ids


def targets(queues: dict[str, tuple[Any, str]]) -> list[QueueTarget]:
    return [QueueTarget(region, url, client) for region, (client, url) in queues.items()]


def test_prints_the_published_layout(region_queues, capsys) -> None:
    for region, n in zip(REGIONS, (2, 4, 3), strict=True):
        client, url = region_queues[region]
        forward((client, url), n)
    code = consumer.main(["--max-messages", "10", *FAST], targets=targets(region_queues))
    assert code == 0
    out = capsys.readouterr().out
    assert out.startswith(PUBLISHED + "\n")
    # everything counted was deleted
    assert all(drain(client, url) == [] for client, url in region_queues.values())


def test_latency_and_priority_sections(region_queues, capsys) -> None:
    client, url = region_queues["us-west-2"]
    forward((client, url), 2, priority="high", age=2.0)
    forward((client, url), 1, priority="low", age=2.0)
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
    forward((client, url), 8)
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
    forward((client, url), 4)
    assert consumer.main(["--no-delete", *FAST], targets=targets(region_queues)) == 0
    assert "Total: 4 messages" in capsys.readouterr().out
    attrs = client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessagesNotVisible"] == "4"


def test_json_output_and_duplicate_request_ids(region_queues, capsys) -> None:
    east, west = region_queues["us-east-1"], region_queues["us-west-2"]
    forward(east, 1, request_id="req-dup", priority="high")
    forward(west, 1, request_id="req-dup", priority="high")
    forward(west, 1)
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
        Received("us-east-1", str(i), now, f"r{i}", "normal", 1, now - i / 100, None)
        for i in range(1, 11)
    ]
    stats = Stats(regions=["us-east-1", "eu-west-1"], messages=received)
    text = stats.render()
    assert "us-east-1: 10 messages (100.0%)" in text
    assert "eu-west-1: 0 messages (0.0%)" in text
    # 10, 20, ... 100 ms: the one percentile definition (linear between closest ranks)
    assert "us-east-1: p50 55.0  p90 91.0  max 100.0  (n=10)" in text


def test_routing_attributes_win_over_the_body() -> None:
    message = {
        "MessageId": "m-1",
        "Body": traffic.encode(traffic.build_request("from-body", priority="low")),
        "MessageAttributes": {
            k: a.to_sqs()
            for k, a in RoutingAttributes(
                "from-attributes", "high", "m", "o", 2, "1970-01-01T00:00:01.000Z"
            )
            .to_attributes()
            .items()
        },
    }
    received = Received.from_message("us-east-1", message, received_at=3.0)
    assert (received.request_id, received.priority, received.attempt) == (
        "from-attributes",
        "high",
        2,
    )
    assert received.forward_latency_ms == 2000.0


EAST = "https://sqs.us-east-1.amazonaws.com/123456789012/q"
WEST = "https://sqs.us-west-2.amazonaws.com/123456789012/q"
CENTRAL = "https://sqs.eu-central-1.amazonaws.com/123456789012/q"


def test_queue_flags_collect_in_order() -> None:
    args = consumer.build_parser().parse_args(
        ["--queue-us-west-2", WEST, "--queue", f"eu-central-1={CENTRAL}", "--queue-us-east-1", EAST]
    )
    assert args.queues == [("us-west-2", WEST), ("eu-central-1", CENTRAL), ("us-east-1", EAST)]


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (
            ["--queue-us-east-1", EAST, "--max-messages", "0"],
            "argument --max-messages: must be ≥ 1",
        ),
        (["--queue-us-east-1", EAST, "--wait-seconds", "21"], "--wait-seconds"),
        (["--queue-us-east-1", EAST, "--idle-timeout", "0"], "argument --idle-timeout"),
        (["--queue-us-east-1", EAST, "--idle-timeout", "nan"], "argument --idle-timeout"),
        (["--queue", "not-a-pair"], "argument --queue: expected REGION=URL"),
        (["--queue", "moon-base-1=http://x"], "argument --queue: unknown region 'moon-base-1'"),
        (["--queue", "Moon_Base=http://x"], "argument --queue: unknown region 'Moon_Base'"),
        (["--queue-us-east-1", EAST, "--queue", f"us-east-1={EAST}"], "region us-east-1 given"),
        (["--queue-us-west-2", "sqs.example/q"], "argument --queue-us-west-2: must be a URL"),
        (["--queue-us-west-2", EAST], "--queue-us-west-2: us-west-2 does not match the queue URL"),
        (["--endpoint-url", "http://127.0.0.1:1"], "--queue-REGION or --queue"),
        (["--queue-us-east-1", EAST, "--endpoint-url", "127.0.0.1:1234"], "--endpoint-url"),
        ([], "--queue-us-east-1"),
    ],
)
def test_flag_errors_are_one_line_naming_the_flag(argv, flag, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        consumer.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert flag in err
    assert err.startswith("error: ") and err.count("\n") == 1, err


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
    bad = [QueueTarget("us-east-1", "https://sqs.us-east-1.amazonaws.com/1/nope", client)]
    assert consumer.main(FAST, targets=bad) == 2
    assert capsys.readouterr().err.startswith("error: us-east-1: queue does not exist:")


def test_max_messages_below_the_backlog_samples_every_region_by_its_share(
    region_queues, capsys
) -> None:
    """The first queue to answer must not fill the count: 6 of 12 waiting (8, 4, 0) is 4 + 2."""
    for region, n in zip(REGIONS, (8, 4, 0), strict=True):
        forward(region_queues[region], n)
    argv = ["--max-messages", "6", "--wait-seconds", "0", "--idle-timeout", "3", "--json"]
    assert consumer.main(argv, targets=targets(region_queues)) == 0
    stats = json.loads(capsys.readouterr().out)
    counts = {region: stats["regions"][region]["count"] for region in REGIONS}
    assert counts == {"us-east-1": 4, "us-west-2": 2, "us-west-1": 0}
    assert stats["sampled"] is True and stats["backlog_at_start"] == 12
    assert stats["regions"]["us-east-1"]["backlog_at_start"] == 8
    assert "a sample of 6 of the 12 waiting messages" in stats["counting"]
    assert stats["stopped"] == "max-messages"
    # the rest stays for the workers
    assert [len(drain(*region_queues[r])) for r in REGIONS] == [4, 2, 0]


def test_text_output_says_what_the_numbers_mean(region_queues, capsys) -> None:
    forward(region_queues["us-west-2"], 4)
    forward(region_queues["us-east-1"], 2)
    assert consumer.main(["--max-messages", "3", *FAST], targets=targets(region_queues)) == 0
    out = capsys.readouterr().out
    assert "us-east-1: 1 messages (33.3%)\nus-west-2: 2 messages (66.7%)" in out
    assert "Counted: a sample of 3 of the 6 waiting messages" in out
    assert "Backlog at start" in out and "us-west-2: 4 messages (66.7%)" in out


def test_proportional_quotas_add_up_and_follow_the_backlog() -> None:
    assert proportional_quotas({"a": 5, "b": 3, "c": 2}, 7) == {"a": 4, "b": 2, "c": 1}
    assert proportional_quotas({"a": 1, "b": 1, "c": 1}, 2) in (
        {"a": 1, "b": 1, "c": 0},
        {"a": 1, "b": 0, "c": 1},
        {"a": 0, "b": 1, "c": 1},
    )
    assert sum(proportional_quotas({"a": 997, "b": 2, "c": 1}, 10).values()) == 10


def test_ctrl_c_while_polling_prints_the_statistics_and_exits_130(region_queues, capsys) -> None:
    client, url = region_queues["us-west-1"]
    forward((client, url), 2)

    class CtrlCAfterFirstReceive:
        """Delivers Ctrl-C to the main thread, as the terminal would, once polling runs."""

        def __init__(self) -> None:
            self.pressed = False

        def __getattr__(self, name: str) -> Any:
            return getattr(client, name)

        def receive_message(self, **kwargs: Any) -> Any:
            response = client.receive_message(**kwargs)
            if response.get("Messages") and not self.pressed:
                self.pressed = True
                _thread.interrupt_main()
            return response

    target = [QueueTarget("us-west-1", url, CtrlCAfterFirstReceive())]
    argv = ["--wait-seconds", "0", "--idle-timeout", "30"]
    assert consumer.main(argv, targets=target) == 130
    captured = capsys.readouterr()
    assert "Total: " in captured.out
    assert "Counted: the messages received before the run stopped (interrupted)" in captured.out
    assert captured.err == "error: interrupted\n"


def test_ctrl_c_during_start_up_is_one_line_and_130(region_queues, capsys) -> None:
    _client, url = region_queues["us-east-1"]

    class CtrlCOnFirstCall:
        def __getattr__(self, name: str) -> Any:
            raise KeyboardInterrupt

    target = [QueueTarget("us-east-1", url, CtrlCOnFirstCall())]
    assert consumer.main(FAST, targets=target) == 130
    captured = capsys.readouterr()
    assert captured.err == "error: interrupted\n" and captured.out == ""


def test_live_display_counts_each_region_against_its_quota(region_queues) -> None:
    forward(region_queues["us-west-2"], 3)
    target = targets(region_queues)
    live = Consumer(target, max_messages=2, quotas={"us-west-2": 2}, wait_seconds=0, idle_timeout=1)
    live.run()
    console = Console(record=True, width=80)
    console.print(consumer._live_counts(live)())
    text = console.export_text()
    assert "Consuming: 2 of 2 messages" in text
    row = next(line for line in text.splitlines() if "us-west-2" in line)
    assert row.replace("│", " ").split() == ["us-west-2", "2", "2"]  # messages, quota


def test_plain_output_has_no_terminal_codes_and_rich_output_is_coloured(
    region_queues, capsys, monkeypatch
) -> None:
    forward(region_queues["us-east-1"], 2)
    assert consumer.main(FAST, targets=targets(region_queues)) == 0
    plain = capsys.readouterr()
    assert "\x1b[" not in plain.out + plain.err

    from orchestrator.cli import output

    monkeypatch.setattr(output, "interactive", lambda stream: True)
    forward(region_queues["us-east-1"], 2)
    assert consumer.main(FAST, targets=targets(region_queues)) == 0
    coloured = capsys.readouterr().out
    assert "Message Distribution Statistics" in coloured and "\x1b[" in coloured
    forward(region_queues["us-east-1"], 2)
    assert consumer.main([*FAST, "--plain"], targets=targets(region_queues)) == 0
    forced = capsys.readouterr()
    assert forced.out.startswith("=" * 40) and "\x1b[" not in forced.out + forced.err
