"""Fault and latency injection around real (moto) boto3 clients.

`FaultySession` stands in for a boto3 Session: every client it builds wraps the real one, and
each call first consults the shared `Faults` rules — raise a transport error, fail some batch
entries, crash the whole invocation, or sleep to simulate a network round trip.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import EndpointConnectionError


class Crash(BaseException):
    """Simulates the Lambda runtime dying mid-batch: not an Exception, so nothing catches it."""


@dataclass
class Rule:
    service: str
    operation: str
    region: str | None
    action: Callable[[str, dict[str, Any], Callable[[], Any]], Any]
    times: int | None  # None: every call
    after: bool = False  # apply after the real call succeeded (e.g. crash after a send)
    hits: int = 0


@dataclass
class Faults:
    rules: list[Rule] = field(default_factory=list)
    latency: dict[tuple[str, str], float] = field(default_factory=dict)
    calls: list[tuple[str, str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(
        self,
        service: str,
        operation: str,
        action: Callable[[str, dict[str, Any], Callable[[], Any]], Any],
        *,
        region: str | None = None,
        times: int | None = None,
        after: bool = False,
    ) -> Rule:
        rule = Rule(service, operation, region, action, times, after)
        self.rules.append(rule)
        return rule

    def unreachable(
        self, service: str, operation: str, region: str | None = None, **kw: Any
    ) -> Rule:
        def action(region_name: str, _params: dict[str, Any], _call: Callable[[], Any]) -> Any:
            raise EndpointConnectionError(
                endpoint_url=f"https://{service}.{region_name}.amazonaws.com"
            )

        return self.add(service, operation, action, region=region, **kw)

    def crash(self, service: str, operation: str, *, after: bool = False, **kw: Any) -> Rule:
        def action(_region: str, _params: dict[str, Any], _call: Callable[[], Any]) -> Any:
            raise Crash(f"crash {'after' if after else 'before'} {service}.{operation}")

        return self.add(service, operation, action, after=after, **kw)

    def fail_entries(
        self, region: str, which: Callable[[int, dict[str, Any]], bool], **kw: Any
    ) -> Rule:
        """SendMessageBatch: the entries `which` selects fail (service side); the rest go in."""

        def action(_region: str, params: dict[str, Any], call: Callable[[], Any]) -> Any:
            entries = params["Entries"]
            failing = [e for i, e in enumerate(entries) if which(i, e)]
            kept = [e for e in entries if e not in failing]
            response: dict[str, Any] = {"Successful": [], "Failed": []}
            if kept:
                response = call_with_entries(call, params, kept)
            response.setdefault("Failed", [])
            response["Failed"] += [
                {
                    "Id": e["Id"],
                    "SenderFault": False,
                    "Code": "InternalError",
                    "Message": "injected",
                }
                for e in failing
            ]
            return response

        return self.add("sqs", "send_message_batch", action, region=region, **kw)

    def match(self, service: str, operation: str, region: str, after: bool) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if (rule.service, rule.operation, rule.after) != (service, operation, after):
                    continue
                if rule.region not in (None, region):
                    continue
                if rule.times is not None and rule.hits >= rule.times:
                    continue
                rule.hits += 1
                return rule
        return None


def call_with_entries(call: Callable[..., Any], params: dict[str, Any], entries: list[Any]) -> Any:
    return call(**{**params, "Entries": entries})


class FaultyClient:
    def __init__(self, real: Any, service: str, region: str, faults: Faults) -> None:
        self._real = real
        self._service = service
        self._region = region
        self._faults = faults
        self.meta = real.meta
        self.exceptions = real.exceptions

    def __getattr__(self, operation: str) -> Any:
        real_method = getattr(self._real, operation)
        if not callable(real_method):
            return real_method

        def call(**params: Any) -> Any:
            faults = self._faults
            with faults._lock:
                faults.calls.append((self._service, operation, self._region))
            delay = faults.latency.get((self._service, self._region))
            if delay:
                time.sleep(delay)
            rule = faults.match(self._service, operation, self._region, after=False)
            if rule is not None:
                return rule.action(self._region, params, lambda **p: real_method(**p))
            result = real_method(**params)
            rule = faults.match(self._service, operation, self._region, after=True)
            if rule is not None:
                rule.action(self._region, params, lambda **p: real_method(**p))
            return result

        return call


class FaultySession:
    """A boto3 Session look-alike whose clients go through `faults`."""

    def __init__(self, session: Any, faults: Faults) -> None:
        self._session = session
        self.faults = faults

    def client(self, service: str, region_name: str, **kwargs: Any) -> FaultyClient:
        real = self._session.client(service, region_name=region_name, **kwargs)
        return FaultyClient(real, service, region_name, self.faults)

    def count(self, service: str, operation: str | None = None) -> int:
        return sum(1 for s, op, _ in self.faults.calls if s == service and operation in (None, op))
