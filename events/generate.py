#!/usr/bin/env python3
"""Write the sample SQS events in this folder from the request contract and the malformed
catalogue, so they never drift from what the distributor accepts and rejects.

    python events/generate.py          # rewrite events/*.json
    python events/generate.py --check  # exit 1 when a committed file differs (a test runs this)

Each file is an SQS event as Lambda delivers it from the master queue, in the shape
`sam local generate-event sqs receive-message` writes (the same record keys, in the same
order), with one record per message and the checksums SQS computes: ``md5OfBody``, and
``md5OfMessageAttributes`` after the keys when a record has message attributes. Everything is
derived from fixed names (message ids are UUIDv5), so the output is byte-for-byte stable.

Valid bodies are built by the producer (`orchestrator.cli.traffic.build_request`) and must
pass `parse_request`; malformed ones come from `orchestrator.cli.malformed` and must fail with
the error code the catalogue gives them. The generator checks both before writing.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import struct
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orchestrator.cli import malformed, traffic
from orchestrator.core.request import InvalidRequestError, parse_request
from orchestrator.core.timefmt import iso_utc

EVENTS = Path(__file__).resolve().parent
ACCOUNT = "123456789012"
REGION = "us-east-1"
MASTER_QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:inference-master-queue-dev"
NAMESPACE = uuid.UUID("6f1c2f3e-58a4-4d0e-9a43-1d2b7c0e5a10")
FIRST_SENT_MS = 1_764_670_980_000  # 2025-12-02T10:23:00Z
SENT_STEP_MS = 137

# sqs-malformed-mix.json: valid requests at these positions, the cases below in between.
MIX_VALID_POSITIONS = (0, 3, 8)
MIX_MALFORMED_KINDS = (
    "truncated json",
    "json array",
    "missing request_id",
    "missing model_name",
    "priority unknown",
    "url ftp scheme",
    "request_id with space",
    "timestamp without zone",
    "callback not an arn",
    "duplicate keys",
    "lone surrogate",
)


class ContractMismatch(Exception):
    """A body no longer does what its file promises (the contract or the catalogue moved)."""


def _id(name: str) -> str:
    return str(uuid.uuid5(NAMESPACE, name))


def attributes_md5(attributes: Mapping[str, Mapping[str, Any]]) -> str:
    """SQS's MD5 of String message attributes: for each name in order, length-prefixed name,
    type and value (value marked 1 for a string)."""
    digest = hashlib.md5()
    for name in sorted(attributes):
        for part in (name, attributes[name]["dataType"]):
            raw = part.encode()
            digest.update(struct.pack("!I", len(raw)) + raw)
        raw = attributes[name]["stringValue"].encode()
        digest.update(b"\x01" + struct.pack("!I", len(raw)) + raw)
    return digest.hexdigest()


def sqs_record(
    message_id: str, body: str, index: int, attributes: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """One record, keys in the order of SAM's `Sqs.json` template."""
    sent = FIRST_SENT_MS + index * SENT_STEP_MS
    message_attributes = {
        name: {
            "stringValue": value,
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "String",
        }
        for name, value in (attributes or {}).items()
    }
    handle = base64.b64encode(hashlib.sha256(message_id.encode()).digest() * 3).decode()
    record: dict[str, Any] = {
        "messageId": message_id,
        "receiptHandle": f"AQEB{handle}",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": str(sent),
            "SenderId": ACCOUNT,
            "ApproximateFirstReceiveTimestamp": str(sent + 25),
        },
        "messageAttributes": message_attributes,
        "md5OfBody": hashlib.md5(body.encode("utf-8", "surrogatepass")).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": MASTER_QUEUE_ARN,
        "awsRegion": REGION,
    }
    if message_attributes:
        record["md5OfMessageAttributes"] = attributes_md5(message_attributes)
    return record


def valid_body(request_id: str, index: int, *, priority: str = "normal", model: str = "") -> str:
    sent_at = (FIRST_SENT_MS + index * SENT_STEP_MS - 40) / 1000
    body = traffic.encode(
        traffic.build_request(
            request_id,
            model=model or traffic.DEFAULT_MODEL,
            priority=priority,
            timestamp=iso_utc(sent_at),
        )
    )
    try:
        parse_request(body)
    except InvalidRequestError as exc:
        raise ContractMismatch(f"{request_id}: the producer's request is rejected: {exc}") from exc
    return body


def malformed_body(kind: str, request_id: str) -> str:
    case = malformed.BY_KIND[kind]
    body = case.body(request_id)
    try:
        parse_request(body)
    except InvalidRequestError as exc:
        if exc.code is not case.error_code:
            message = f"{kind}: rejected as {exc.code}, catalogued as {case.error_code}"
            raise ContractMismatch(message) from exc
        return body
    raise ContractMismatch(f"{kind}: the parser accepts it")


def three_requests() -> list[dict[str, Any]]:
    kinds = (
        ("high", "gpt-l-7b"),
        ("normal", "llama-3-8b-instruct"),
        ("low", "stable-diffusion-xl"),
    )
    records = []
    for index, (priority, model) in enumerate(kinds):
        message_id = _id(f"three-requests/{index}")
        body = valid_body(f"req-{message_id}", index, priority=priority, model=model)
        # the first carries a client attribute, which the distributor forwards
        attributes = {"source": "producer"} if index == 0 else None
        records.append(sqs_record(message_id, body, index, attributes))
    return records


def duplicates() -> list[dict[str, Any]]:
    """Four messages; the 1st and the 3rd are byte-identical copies of one request."""
    retried = f"req-{_id('duplicates/request')}"
    records = []
    for index, priority in enumerate(("high", "normal", "high", "low")):
        message_id = _id(f"duplicates/{index}")
        if index in (0, 2):
            body = valid_body(retried, 0, priority=priority)
        else:
            body = valid_body(f"req-{message_id}", index, priority=priority)
        records.append(sqs_record(message_id, body, index))
    return records


def malformed_mix() -> list[dict[str, Any]]:
    total = len(MIX_VALID_POSITIONS) + len(MIX_MALFORMED_KINDS)
    kinds = iter(MIX_MALFORMED_KINDS)
    records = []
    for index in range(total):
        message_id = _id(f"malformed-mix/{index}")
        if index in MIX_VALID_POSITIONS:
            body = valid_body(f"req-{message_id}", index)
        else:
            body = malformed_body(next(kinds), f"req-{message_id}")
        records.append(sqs_record(message_id, body, index))
    return records


def oversize() -> list[dict[str, Any]]:
    """The catalogue's oversize body (just over the limit), then a valid request."""
    first, second = _id("oversize/0"), _id("oversize/1")
    return [
        sqs_record(first, malformed_body("oversize body", f"req-{first}"), 0),
        sqs_record(second, valid_body(f"req-{second}", 1), 1),
    ]


def render(records: list[dict[str, Any]], *, indent: int | None = 2) -> str:
    return json.dumps({"Records": records}, indent=indent, ensure_ascii=False) + "\n"


def build() -> dict[str, str]:
    """File name -> its text."""
    return {
        "sqs-three-requests.json": render(three_requests()),
        "sqs-duplicates.json": render(duplicates()),
        "sqs-malformed-mix.json": render(malformed_mix()),
        # one line: about 1 MiB of padding is no reading matter
        "sqs-oversize.json": render(oversize(), indent=None),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    stale = []
    for name, text in build().items():
        path = EVENTS / name
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"stale: {', '.join(stale)} (run python events/generate.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
