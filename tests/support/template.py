"""Read the SAM template so test resources are built from what is deployed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from localrun.cfn import load_template

TEMPLATE = Path(__file__).resolve().parents[2] / "infrastructure" / "template.yaml"


def resource_properties(logical_id: str, template: Path = TEMPLATE) -> dict[str, Any]:
    return dict(load_template(template)["Resources"][logical_id]["Properties"])


def ledger_table_definition() -> dict[str, Any]:
    """CreateTable arguments (key schema, attributes, billing) of the ledger table."""
    props = resource_properties("IdempotencyTable")
    return {
        "KeySchema": props["KeySchema"],
        "AttributeDefinitions": props["AttributeDefinitions"],
        "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
    }
