"""The GPU inference worker: batched, Spot-safe, exactly-once execution of region-queue requests.

What model code imports (light: no AWS client, no metrics):

    from orchestrator.worker import PermanentError, Request, RetryableError

    class MyModel:
        def load(self) -> None: ...
        def predict(self, requests: list[Request]) -> list[object]: ...

The runtime (`Worker`, `WorkerSettings`, `Clients`, `build_clients`) is importable from here
too, loaded on first use. Run it with ``orchestrator worker`` or ``python -m
orchestrator.worker``; docs/worker.md has the whole story.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestrator.worker.exceptions import (
    FailureCode,
    InferenceError,
    PermanentError,
    RetryableError,
)
from orchestrator.worker.request import Request

if TYPE_CHECKING:
    from orchestrator.worker.config import WorkerSettings
    from orchestrator.worker.runtime import Clients, Worker, build_clients

__all__ = [
    "Clients",
    "FailureCode",
    "InferenceError",
    "PermanentError",
    "Request",
    "RetryableError",
    "Worker",
    "WorkerSettings",
    "build_clients",
]

_LAZY = {
    "Worker": "orchestrator.worker.runtime",
    "Clients": "orchestrator.worker.runtime",
    "build_clients": "orchestrator.worker.runtime",
    "WorkerSettings": "orchestrator.worker.config",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
