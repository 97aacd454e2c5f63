"""The demo's traffic: valid requests, client retries (duplicates) and malformed messages,
planned from a seed and sent to the master queue at a steady rate.

The malformed messages are the catalogue's (`orchestrator.cli.malformed`), in its traffic
order, so the demo, `orchestrator send --malformed` and the tests exercise the same cases.
A few valid requests ask the simulated model for a failure (``metadata.simulate``:
`localrun.models`): one that succeeds on retry, or a permanent one. A share of the requests
is ``"priority": "high"`` (the rest normal or low: both go to the standard queues). Every
request names the callback topic, when there is one.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from localrun.models import PERMANENT, RETRYABLE
from orchestrator.cli.malformed import malformed_body
from orchestrator.core.timefmt import iso_utc

MODELS = ("llama-3-8b-instruct", "mistral-7b", "sdxl-turbo", "whisper-large-v3")
HIGH = "high"
STANDARD_PRIORITIES = ("normal", "normal", "low")
"""Drawn from for the requests that are not high-priority."""
DEFAULT_HIGH_SHARE = 0.1
SEND_BATCH = 10  # SendMessageBatch limit


@dataclass(frozen=True)
class PlannedMessage:
    body: str
    kind: str
    """``valid`` (first copy of a request), ``duplicate`` (a retry of one) or ``malformed``."""
    request_id: str | None = None
    expected_error: str | None = None
    """For malformed messages: the error_code the dead-letter queue must show."""
    label: str = ""
    simulate: str | None = None
    """For requests: the failure the simulated model injects (``retryable``, ``permanent``)."""
    priority: str | None = None
    """For requests: the body's ``priority``."""


@dataclass(frozen=True)
class SentMessage:
    planned: PlannedMessage
    message_id: str
    """The master queue's message id (``origin_message_id`` downstream)."""
    sent_at: float
    """Wall-clock seconds."""


def _valid_document(
    request_id: str,
    seq: int,
    rng: random.Random,
    topic: str | None,
    simulate: str | None,
    high: bool,
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "request_id": request_id,
        "model_name": rng.choice(MODELS),
        "input_data_url": f"s3://demo-inference-inputs/requests/{request_id}.json",
        "priority": HIGH if high else rng.choice(STANDARD_PRIORITIES),
        "timestamp": iso_utc(),
        "metadata": {"source": "localrun.demo", "seq": seq},
    }
    if simulate:
        document["metadata"]["simulate"] = simulate
    if topic:
        document["callback_sns_topic"] = topic
    return document


def _compact(document: Any) -> str:
    return json.dumps(document, separators=(",", ":"))


def plan_traffic(
    count: int,
    duplicates: int,
    malformed: int,
    seed: int,
    run_id: str,
    *,
    retryable: int = 0,
    permanent: int = 0,
    topic: str | None = None,
    high_share: float = DEFAULT_HIGH_SHARE,
) -> list[PlannedMessage]:
    """`count` messages in send order: `duplicates` retries of earlier requests (some within
    a batch of their original, most later), `malformed` bad ones, the rest valid requests,
    of which `retryable` fail once and `permanent` fail for good (`localrun.models`), and
    `high_share` (rounded to whole requests, spread at random) are high-priority."""
    valid = count - duplicates - malformed
    if valid < 1 or duplicates < 0 or malformed < 0:
        raise ValueError("count must exceed duplicates + malformed")
    if retryable < 0 or permanent < 0 or retryable + permanent > valid:
        raise ValueError("retryable + permanent must be at most the valid requests")
    if not 0 <= high_share <= 1:
        raise ValueError("high_share must be between 0 and 1")
    rng = random.Random(seed)
    picked = rng.sample(range(valid), retryable + permanent)
    simulate = dict.fromkeys(picked[:retryable], RETRYABLE)
    simulate.update(dict.fromkeys(picked[retryable:], PERMANENT))
    # Their own generator, so the share leaves the rest of the plan as it was.
    high = set(random.Random(seed + 1).sample(range(valid), round(valid * high_share)))
    keyed: list[tuple[float, PlannedMessage]] = []
    documents = []
    for seq in range(valid):
        request_id = f"{run_id}-{seq:05d}"
        document = _valid_document(request_id, seq, rng, topic, simulate.get(seq), seq in high)
        documents.append(document)
        planned = PlannedMessage(
            _compact(document),
            "valid",
            request_id,
            simulate=simulate.get(seq),
            priority=document["priority"],
        )
        keyed.append((float(seq), planned))
    for _ in range(duplicates):
        seq = rng.randrange(valid)
        document = dict(documents[seq])
        if rng.random() < 0.5:  # a client retry carries a new send time: still the same request
            document["timestamp"] = iso_utc()
        retry = PlannedMessage(
            _compact(document),
            "duplicate",
            document["request_id"],
            simulate=simulate.get(seq),
            priority=document["priority"],
        )
        keyed.append((seq + rng.uniform(0.5, 40.0), retry))
    for index in range(malformed):
        case, body = malformed_body(index, f"{run_id}-bad-{index:03d}")
        bad = PlannedMessage(
            body, "malformed", expected_error=case.error_code.value, label=case.kind
        )
        keyed.append((rng.uniform(0, valid), bad))
    keyed.sort(key=lambda item: item[0])
    return [message for _, message in keyed]


def send_traffic(
    client: Any,
    queue_url: str,
    plan: Sequence[PlannedMessage],
    *,
    rate: float,
    sleep: Callable[[float], None] = time.sleep,
) -> list[SentMessage]:
    """Send `plan` in batches of ten at about `rate` messages per second."""
    sent: list[SentMessage] = []
    began = time.monotonic()
    for start in range(0, len(plan), SEND_BATCH):
        chunk = plan[start : start + SEND_BATCH]
        due = began + start / rate if rate > 0 else 0.0
        if (pause := due - time.monotonic()) > 0:
            sleep(pause)
        response = client.send_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "MessageBody": m.body} for i, m in enumerate(chunk)],
        )
        now = time.time()
        if response.get("Failed"):
            raise RuntimeError(f"master queue refused messages: {response['Failed']}")
        for entry in response["Successful"]:
            sent.append(SentMessage(chunk[int(entry["Id"])], entry["MessageId"], now))
    return sent
