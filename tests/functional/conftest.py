from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from orchestrator.distributor.handler import App, build_distributor
from support.faults import Faults, FaultySession
from support.stack import LocalAws, create_local_aws


class Clock:
    """Wall-clock seconds that a test moves by hand (leases, TTLs)."""

    def __init__(self, now: float = 1_764_670_980.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def aws(moto_session: Any) -> LocalAws:
    return create_local_aws(moto_session)


@pytest.fixture
def faults() -> Faults:
    return Faults()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_app(aws: LocalAws, faults: Faults, clock: Clock) -> Callable[..., App]:
    """Build the distributor as Lambda would, with faulty clients and a test clock."""

    def make(**env: str) -> App:
        return build_distributor(aws.environ(**env), FaultySession(aws.session, faults), clock)

    return make


@pytest.fixture
def app(make_app: Callable[..., App]) -> App:
    return make_app()
