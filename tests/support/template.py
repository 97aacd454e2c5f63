"""Read the SAM template so test resources are built from what is deployed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cfnlint.decode import decode

TEMPLATE = Path(__file__).resolve().parents[2] / "infrastructure" / "template.yaml"


def resource_properties(logical_id: str, template: Path = TEMPLATE) -> dict[str, Any]:
    document, matches = decode(str(template))
    if document is None:
        raise RuntimeError(f"cannot parse {template}: {matches}")
    return dict(document["Resources"][logical_id]["Properties"])


def ledger_table_definition() -> dict[str, Any]:
    """CreateTable arguments (key schema, attributes, billing) of the ledger table."""
    props = resource_properties("IdempotencyTable")
    return {
        "KeySchema": props["KeySchema"],
        "AttributeDefinitions": props["AttributeDefinitions"],
        "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
    }


def ledger_ttl_attribute() -> str:
    return str(resource_properties("IdempotencyTable")["TimeToLiveSpecification"]["AttributeName"])
