"""Fixtures of the rescue tests (helpers in rescue_world.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from rescue_world import Clock, World

from support.faults import Faults
from support.stack import create_local_aws


@pytest.fixture
def world(moto_session: Any) -> Iterator[World]:
    yield World(create_local_aws(moto_session), Faults(), Clock())


@pytest.fixture
def recording(world: World) -> Callable[[str], list[dict[str, Any]]]:
    """Record the parameters of every call of an SQS operation (the call goes through)."""
    seen: dict[str, list[dict[str, Any]]] = {}

    def record(operation: str) -> list[dict[str, Any]]:
        calls = seen.setdefault(operation, [])

        def action(_region: str, params: dict[str, Any], call: Callable[..., Any]) -> Any:
            calls.append(params)
            return call(**params)

        world.faults.add("sqs", operation, action)
        return calls

    return record
