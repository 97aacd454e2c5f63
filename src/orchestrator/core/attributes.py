"""SQS message attributes of a forwarded request: what the distributor adds, what a worker
or the consumer reads. Defined once here.

The distributor forwards the client's body unchanged and adds six String attributes
(`RoutingAttributes`). A client's own message attributes (String, Number, Binary) travel too,
within SQS's limit of 10 attributes per message: with up to 4 of them, each is carried as is;
with more, all of them are carried together in one String attribute, ``client_attributes``
(JSON: name -> {"DataType", "StringValue" | "BinaryValue" as base64}), which
`client_attributes` unpacks. Nothing is dropped. Client attributes whose names collide with
the routing attributes are carried in ``client_attributes`` as well.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_MESSAGE_ATTRIBUTES = 10
PACKED_CLIENT_ATTRIBUTES = "client_attributes"

REQUEST_ID = "request_id"
PRIORITY = "priority"
MODEL_NAME = "model_name"
ORIGIN_MESSAGE_ID = "origin_message_id"
ATTEMPT = "attempt"
FORWARDED_AT = "forwarded_at"
ROUTING_NAMES = (REQUEST_ID, PRIORITY, MODEL_NAME, ORIGIN_MESSAGE_ID, ATTEMPT, FORWARDED_AT)
MAX_DIRECT_CLIENT_ATTRIBUTES = MAX_MESSAGE_ATTRIBUTES - len(ROUTING_NAMES)


@dataclass(frozen=True, slots=True)
class MessageAttribute:
    """One SQS message attribute. `value` is text for String/Number, bytes for Binary."""

    data_type: str
    value: str | bytes

    def to_sqs(self) -> dict[str, Any]:
        """The boto3 `MessageAttributes` value."""
        if isinstance(self.value, bytes):
            return {"DataType": self.data_type, "BinaryValue": self.value}
        return {"DataType": self.data_type, "StringValue": self.value}

    @property
    def size(self) -> int:
        """Bytes SQS counts: the type and the value (the caller adds the name)."""
        raw = self.value if isinstance(self.value, bytes) else self.value.encode()
        return len(self.data_type.encode()) + len(raw)

    @classmethod
    def string(cls, value: str) -> MessageAttribute:
        return cls("String", value)

    @classmethod
    def from_sqs(cls, raw: Mapping[str, Any]) -> MessageAttribute:
        """From boto3's shape (``DataType``/``StringValue``) or a Lambda event's
        (``dataType``/``stringValue``, binary as base64 text)."""
        data_type = raw.get("DataType") or raw.get("dataType") or "String"
        if "BinaryValue" in raw:
            return cls(data_type, bytes(raw["BinaryValue"]))
        if "binaryValue" in raw:
            return cls(data_type, base64.b64decode(raw["binaryValue"]))
        return cls(data_type, str(raw.get("StringValue", raw.get("stringValue", ""))))


@dataclass(frozen=True, slots=True)
class RoutingAttributes:
    """The six attributes the distributor puts on every forwarded message."""

    request_id: str
    priority: str
    model_name: str
    origin_message_id: str
    attempt: int
    forwarded_at: str

    def to_attributes(self) -> dict[str, MessageAttribute]:
        return {
            REQUEST_ID: MessageAttribute.string(self.request_id),
            PRIORITY: MessageAttribute.string(self.priority),
            MODEL_NAME: MessageAttribute.string(self.model_name),
            ORIGIN_MESSAGE_ID: MessageAttribute.string(self.origin_message_id),
            ATTEMPT: MessageAttribute.string(str(self.attempt)),
            FORWARDED_AT: MessageAttribute.string(self.forwarded_at),
        }

    @classmethod
    def from_message(cls, message: Mapping[str, Any]) -> RoutingAttributes | None:
        """From a received SQS message (``MessageAttributes``); None when they are missing."""
        attributes = message.get("MessageAttributes") or {}
        values = {name: _text(attributes.get(name)) for name in ROUTING_NAMES}
        if not values[REQUEST_ID]:
            return None
        try:
            attempt = int(values[ATTEMPT] or 1)
        except ValueError:
            attempt = 1
        return cls(
            request_id=values[REQUEST_ID] or "",
            priority=values[PRIORITY] or "normal",
            model_name=values[MODEL_NAME] or "",
            origin_message_id=values[ORIGIN_MESSAGE_ID] or "",
            attempt=attempt,
            forwarded_at=values[FORWARDED_AT] or "",
        )


def _text(raw: Mapping[str, Any] | None) -> str | None:
    if not raw:
        return None
    value = raw.get("StringValue", raw.get("stringValue"))
    return str(value) if value is not None else None


def carry_client_attributes(
    client: Mapping[str, MessageAttribute],
) -> dict[str, MessageAttribute]:
    """The attributes to add beside the routing ones so that all of `client`'s arrive."""
    if not client:
        return {}
    collides = any(name in ROUTING_NAMES or name == PACKED_CLIENT_ATTRIBUTES for name in client)
    if len(client) <= MAX_DIRECT_CLIENT_ATTRIBUTES and not collides:
        return dict(client)
    packed = {
        name: (
            {"DataType": a.data_type, "BinaryValue": base64.b64encode(a.value).decode()}
            if isinstance(a.value, bytes)
            else {"DataType": a.data_type, "StringValue": a.value}
        )
        for name, a in sorted(client.items())
    }
    return {PACKED_CLIENT_ATTRIBUTES: MessageAttribute.string(json.dumps(packed))}


def client_attributes(message: Mapping[str, Any]) -> dict[str, MessageAttribute]:
    """The client's own attributes of a forwarded message, unpacked when they were packed."""
    raw = message.get("MessageAttributes") or {}
    result = {
        name: MessageAttribute.from_sqs(value)
        for name, value in raw.items()
        if name not in ROUTING_NAMES and name != PACKED_CLIENT_ATTRIBUTES
    }
    packed = _text(raw.get(PACKED_CLIENT_ATTRIBUTES))
    if packed:
        for name, value in json.loads(packed).items():
            if "BinaryValue" in value:
                result[name] = MessageAttribute(
                    value["DataType"], base64.b64decode(value["BinaryValue"])
                )
            else:
                result[name] = MessageAttribute(value["DataType"], value["StringValue"])
    return result
