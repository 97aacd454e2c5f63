"""Test resources built from what is deployed: the ledger table as the SAM template declares
it, read the way the local stack reads it (`localrun.templates`), once per session."""

from __future__ import annotations

import functools
from typing import Any

from localrun.templates import PRIMARY_REGION, TableSpec, load_stack_spec


@functools.cache
def _ledger_table() -> TableSpec:
    return load_stack_spec(regions=[PRIMARY_REGION]).table  # template.yaml only


def ledger_table_definition() -> dict[str, Any]:
    """CreateTable arguments (key schema, attributes, billing) of the ledger table."""
    table = _ledger_table()
    return {
        "KeySchema": [dict(item) for item in table.key_schema],
        "AttributeDefinitions": [dict(item) for item in table.attribute_definitions],
        "BillingMode": table.billing_mode,
    }
