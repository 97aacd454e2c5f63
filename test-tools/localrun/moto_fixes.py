"""What the local stack changes in moto (5.2) so it behaves, and keeps pace, like AWS.

`localrun.moto_process` applies all of them with `apply()`; the tests' in-process servers
use the same functions, so every local moto answers alike.

**Atomic where AWS is** (correctness):

- `AtomicDynamoDB`: DynamoDB requests run one at a time. moto checks a condition expression
  and applies the write without a lock, so two requests racing on one item can both pass
  the same condition, which DynamoDB never allows; workers racing to claim the same request
  (a duplicate copy, a rescued message whose original came back) would then both run it.
- `make_receives_atomic`: SQS receives pick their messages one at a time. moto's
  ReceiveMessage scans the queue and marks a message received without a lock, so two
  receivers polling at once can both get the same message (SQS never hands a message to two
  receivers within its visibility timeout). The scan holds a lock; the long poll's wait does
  not.

**Linear where moto is quadratic** (speed; `make_queue_scans_linear`). moto computes *every*
attribute of a queue — three scans over all its messages, each message's clock read through
``datetime`` — whenever it reads *one*: for each message a receive considers (its retention
period), for each message sent (its deduplication setting), and three times per attribute
a GetQueueAttributes names. A receive of 10 from a queue of 60 cost 31 ms of moto's CPU
and a batch send of 10 cost 28 ms; after these fixes, about 5 ms each. The answers are the
same: the retention period and the named attributes are read the way moto reads them, once,
and the clock is ``time.time()`` (what moto's ``unix_time`` computes, without datetimes).
A worker's throughput on the local stack would otherwise be the emulator's, not its own.
"""

from __future__ import annotations

import threading
import time
from typing import Any


class AtomicDynamoDB:
    """WSGI middleware: one DynamoDB request at a time (module docstring)."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if str(environ.get("HTTP_X_AMZ_TARGET", "")).startswith("DynamoDB_"):
            with self._lock:
                return list(self._app(environ, start_response))
        return self._app(environ, start_response)


_RECEIVING = threading.Lock()
_applied: set[str] = set()


def make_receives_atomic() -> None:
    """Patch moto's SQS backend (module docstring): `receive_message` holds `_RECEIVING` while
    it scans and marks messages, and lets go of it while it waits for new ones."""
    if "atomic receives" in _applied:
        return
    _applied.add("atomic receives")
    from moto.sqs import models

    scan = models.SQSBackend.receive_message
    wait = models.Queue.wait_for_messages

    def receive_message(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _RECEIVING:
            return scan(self, *args, **kwargs)

    def wait_for_messages(self: Any, timeout: int) -> None:
        _RECEIVING.release()
        try:
            wait(self, timeout)
        finally:
            _RECEIVING.acquire()

    models.SQSBackend.receive_message = receive_message  # type: ignore[method-assign]
    models.Queue.wait_for_messages = wait_for_messages  # type: ignore[method-assign]


def make_queue_scans_linear() -> None:
    """Patch moto's SQS models (module docstring, "Linear where moto is quadratic")."""
    if "linear scans" in _applied:
        return
    _applied.add("linear scans")
    from moto.sqs import models

    slow_time = models.unix_time

    def unix_time(dt: Any = None) -> float:
        return time.time() if dt is None else float(slow_time(dt))

    def unix_time_millis(dt: Any = None) -> float:
        return unix_time(dt) * 1000.0

    def is_message_valid_based_on_retention_period(
        self: Any, queue_name: str, message: Any
    ) -> bool:
        queue = self.get_queue(queue_name)
        retain_until = int(queue.message_retention_period) + message.sent_timestamp / 1000
        return bool(retain_until > unix_time())

    scan_attributes = models.SQSBackend.get_queue_attributes

    def get_queue_attributes(self: Any, queue_name: str, attribute_names: list[str]) -> Any:
        if not attribute_names or "All" in attribute_names:
            return scan_attributes(self, queue_name, attribute_names)
        queue = self.get_queue(queue_name)  # raises moto's QueueDoesNotExist
        valid = ["All", *queue.BASE_ATTRIBUTES, *queue.FIFO_ATTRIBUTES, *queue.KMS_ATTRIBUTES]
        invalid = next((name for name in attribute_names if name not in valid), None)
        if invalid is not None:
            raise models.InvalidAttributeName(invalid)
        everything = queue.attributes  # once, not three times per name
        return {
            name: everything[name] for name in attribute_names if everything.get(name) is not None
        }

    models.unix_time = unix_time
    models.unix_time_millis = unix_time_millis
    backend: Any = models.SQSBackend
    backend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period
    models.SQSBackend.get_queue_attributes = get_queue_attributes  # type: ignore[method-assign]


def apply() -> None:
    """Every patch of moto's models above."""
    make_receives_atomic()
    make_queue_scans_linear()


def wsgi_app() -> Any:
    """moto's server application with every fix: the patches applied, DynamoDB atomic."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    apply()
    return AtomicDynamoDB(DomainDispatcherApplication(create_backend_app))
