"""What `make local` tells another terminal: where its files are, the shell exports, and
commands that reach this stack (and no other) with the orchestrator tools and the AWS CLI.

Two rules shape the commands:

- The AWS CLI v1 ignores ``AWS_ENDPOINT_URL`` (v2 and boto3 honour it), so every `aws`
  command carries ``--endpoint-url``.
- moto keeps each region's queues apart, keyed by the region a request is signed for, while
  its queue URLs carry no region. A client that does not pass the queue's own region
  (``--region``) gets ``AWS.SimpleQueueService.NonExistentQueue`` for a URL that exists.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from localrun.server import FAKE_CREDENTIALS
from orchestrator.core.stackfile import STACK_FILE_ENV, LocalStack

SAMPLE_EVENT = "events/sqs-three-requests.json"
SAMPLE_BODY = {
    "request_id": "aws-cli-1",
    "model_name": "mistral-7b",
    "input_data_url": "s3://inference-inputs-dev/inputs/aws-cli-1.json",
}


@dataclass(frozen=True)
class StackFiles:
    """Where one local stack advertises itself and writes its functions' and workers' output."""

    stack_file: Path
    log: Path
    """The distributor's output."""
    shared: bool
    """True when `stack_file` is the one the tools read by default (`.local-stack.json`)."""
    rescue_log: Path = Path("reports/local-rescue.log")
    workers: Path = Path("reports/local-workers")
    """The workers' logs and execution logs (`localrun.workers`)."""


def stack_files(
    shared_file: Path, holds_shared: bool, endpoint_url: str, reports: Path, log: Path | None
) -> StackFiles:
    """The first stack uses the shared stack file, ``reports/local-distributor.log``,
    ``reports/local-rescue.log`` and ``reports/local-workers/``; a second one, started while
    the first runs, gets its own of each, named by its port, so it never truncates the first
    one's logs and its hints never drive the first stack."""
    if holds_shared:
        return StackFiles(
            shared_file,
            log or reports / "local-distributor.log",
            True,
            reports / "local-rescue.log",
            reports / "local-workers",
        )
    port = urlsplit(endpoint_url).port
    return StackFiles(
        reports / f"local-stack-{port}.json",
        log or reports / f"local-distributor-{port}.log",
        False,
        reports / f"local-rescue-{port}.log",
        reports / f"local-workers-{port}",
    )


def shown(path: Path, cwd: Path | None = None) -> str:
    """`path` relative to the working directory when it is below it (shorter to copy)."""
    try:
        return str(path.resolve().relative_to((cwd or Path.cwd()).resolve()))
    except ValueError:
        return str(path)


def exports(stack: LocalStack, high_priority_queues: Mapping[str, str] | None = None) -> list[str]:
    """Shell lines that point another terminal's tools (and boto3, AWS CLI v2) at `stack`,
    and its high-priority queues (the stack file's format does not name them)."""
    values = {
        "AWS_ENDPOINT_URL": stack.endpoint_url,
        **FAKE_CREDENTIALS,
        "AWS_DEFAULT_REGION": stack.primary_region,
        STACK_FILE_ENV: str(stack.path.resolve()),
        "MASTER_QUEUE_URL": stack.master_queue_url,
        "DEAD_LETTER_QUEUE_URL": stack.dead_letter_queue_url or "",
        "IDEMPOTENCY_TABLE_NAME": stack.table_name or "",
        "REGION_QUEUES": json.dumps(stack.region_queues),
    }
    if high_priority_queues:
        values["HIGH_PRIORITY_QUEUES"] = json.dumps(dict(high_priority_queues))
    for region, url in stack.region_queues.items():
        values[f"QUEUE_{region.upper().replace('-', '_')}"] = url
    for region, url in (high_priority_queues or {}).items():
        values[f"HIGH_QUEUE_{region.upper().replace('-', '_')}"] = url
    return [f"export {name}={shlex.quote(value)}" for name, value in values.items()]


def aws_cli_commands(
    stack: LocalStack, high_priority_queues: Mapping[str, str] | None = None
) -> list[str]:
    """AWS CLI commands (v1 and v2) against `stack`, each with the endpoint and the queue's
    own region: send a request to the master queue, and read each region queue's depth, the
    high-priority ones too (a read that takes nothing from the workers, unlike a receive)."""

    def aws(region: str, command: str) -> str:
        return f"aws --endpoint-url {stack.endpoint_url} --region {region} sqs {command}"

    body = shlex.quote(json.dumps(SAMPLE_BODY, separators=(",", ":")))
    lines = [
        aws(
            stack.primary_region,
            f"send-message --queue-url {stack.master_queue_url} --message-body {body}",
        )
    ]
    lines += [
        aws(
            region,
            f"get-queue-attributes --queue-url {url} --attribute-names "
            "ApproximateNumberOfMessages ApproximateNumberOfMessagesNotVisible",
        )
        for region, url in [
            *stack.region_queues.items(),
            *(high_priority_queues or {}).items(),
        ]
    ]
    return lines


def tool_commands(files: StackFiles, topic_arn: str | None = None) -> list[str]:
    """The orchestrator commands that drive this stack (and not another one)."""
    prefix = "" if files.shared else f"{STACK_FILE_ENV}={shlex.quote(shown(files.stack_file))} "
    commands = [f"{prefix}orchestrator send --count 30"]
    wait = f"{prefix}orchestrator send --count 5 --wait"
    if topic_arn:
        wait += f" --callback-sns-topic {topic_arn}"
    commands += [
        wait,
        f"{prefix}orchestrator status REQUEST_ID",
        f"{prefix}orchestrator invoke -e {SAMPLE_EVENT}",
    ]
    return commands


def banner(
    stack: LocalStack,
    files: StackFiles,
    details: list[str],
    topic_arn: str | None = None,
    high_priority_queues: Mapping[str, str] | None = None,
) -> list[str]:
    """Everything printed before the live table."""
    if files.shared:
        where = f"# stack file: {shown(files.stack_file)} (the tools read it by default)"
    else:
        where = (
            f"# another local stack holds the default stack file; this one is described in "
            f"{shown(files.stack_file)}"
        )
    return [
        f"# local stack running (moto) at {stack.endpoint_url}",
        where,
        f"# logs: distributor {shown(files.log)}, rescue {shown(files.rescue_log)}, "
        f"workers {shown(files.workers)}/",
        *details,
        "",
        "# in another terminal (the orchestrator tools, boto3 and AWS CLI v2 read these):",
        *exports(stack, high_priority_queues),
        "",
        "# try:",
        *(f"  {line}" for line in tool_commands(files, topic_arn)),
        "",
        "# with the AWS CLI, v1 or v2, after the exports above (v1 ignores AWS_ENDPOINT_URL;",
        "# moto keeps each region's queues apart, so pass the queue's own --region):",
        *(f"  {line}" for line in aws_cli_commands(stack, high_priority_queues)),
        "",
        "# Ctrl-C stops it.",
        "",
    ]
