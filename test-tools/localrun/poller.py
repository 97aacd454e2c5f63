"""A local SQS event source mapping: pollers that feed a queue's messages to a handler the way
Lambda does for a standard queue.

- Each of `pollers` threads long-polls the queue, gathers up to `batch_size` messages or until
  `batching_window` seconds have passed since the first one arrived (no window: one receive),
  and invokes the handler synchronously with a Lambda-shaped event and context.
- Received messages stay invisible for the queue's visibility timeout while the handler runs;
  nothing extends it.
- With `report_batch_item_failures`, only the records not named in the response's
  ``batchItemFailures`` are deleted. A malformed response (an entry without, or with an empty or
  unknown, ``itemIdentifier``) fails the whole batch, as Lambda does.
- A raised exception, or a handler that outlives the function timeout, fails the whole batch:
  nothing is deleted and the messages come back when their visibility timeout ends.
- After ``maxReceiveCount`` receives SQS itself (moto too) moves a message to the queue's
  dead-letter queue; the poller has no part in it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from localrun.lambda_runtime import Handler, LambdaContext, sqs_record
from orchestrator.core.errors import AWS_ERRORS
from orchestrator.core.loop import BackgroundLoop

logger = logging.getLogger(__name__)

MAX_RECEIVE = 10  # SQS ReceiveMessage limit
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # Lambda's synchronous invocation payload limit
ERROR_BACKOFF_SECONDS = 0.5
SHORT_POLL_PAUSE = 0.05


@dataclass(frozen=True)
class EventSourceConfig:
    queue_url: str
    queue_arn: str
    region: str
    function_name: str = "function"
    function_timeout: float = 3.0
    memory_mb: int = 128
    batch_size: int = 10
    batching_window: float = 0.0
    report_batch_item_failures: bool = True
    pollers: int = 5
    """Lambda starts with five pollers for a standard queue (it scales them with the backlog,
    up to the mapping's MaximumConcurrency; these stay fixed)."""
    long_poll_seconds: int = 1
    """WaitTimeSeconds of an empty-queue receive. Lambda uses 20; short here so `stop` is quick.
    0 short-polls with a pause of `SHORT_POLL_PAUSE` between empty receives (tests use it)."""

    def __post_init__(self) -> None:
        limit = MAX_RECEIVE if self.batching_window <= 0 else 10_000
        if not 1 <= self.batch_size <= limit:
            raise ValueError(f"batch_size must be 1-{limit} with this batching window")
        if not 0 <= self.batching_window <= 300:
            raise ValueError("batching_window must be 0-300 seconds")
        if self.pollers < 1:
            raise ValueError("pollers must be at least 1")


@dataclass(frozen=True)
class Invocation:
    """One handler invocation and what the poller did with its records afterwards."""

    poller: int
    request_id: str
    message_ids: tuple[str, ...]
    started: float
    ended: float
    failed: frozenset[str]
    """Records returned to the queue (all of them when `error` is set)."""
    error: str | None
    """Why the whole batch failed, if it did."""
    deleted: int
    response: Any = None


class InvalidBatchResponse(ValueError):
    """The handler's response is not a valid partial batch response."""


def failed_message_ids(response: Any, message_ids: Iterable[str]) -> frozenset[str]:
    """The records a partial batch response reports as failed.

    None, ``{}`` and an empty or null ``batchItemFailures`` mean success; anything Lambda would
    reject raises `InvalidBatchResponse` (the caller then fails the whole batch).
    """
    if response is None:
        return frozenset()
    if not isinstance(response, Mapping):
        raise InvalidBatchResponse(f"response is a {type(response).__name__}, not an object")
    failures = response.get("batchItemFailures")
    if failures is None:
        return frozenset()
    if not isinstance(failures, list):
        raise InvalidBatchResponse("batchItemFailures is not a list")
    known = set(message_ids)
    failed: set[str] = set()
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, Mapping) else None
        if not isinstance(identifier, str) or not identifier:
            raise InvalidBatchResponse(f"batchItemFailures entry {item!r} has no itemIdentifier")
        if identifier not in known:
            raise InvalidBatchResponse(f"itemIdentifier {identifier!r} is not in the batch")
        failed.add(identifier)
    return frozenset(failed)


class SqsPoller:
    """Polls one queue with `config.pollers` threads and invokes `handler` per batch."""

    def __init__(
        self,
        client: Any,
        config: EventSourceConfig,
        handler: Handler,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_invocation: Callable[[Invocation], None] | None = None,
    ) -> None:
        self.client = client
        self.config = config
        self.handler = handler
        self._clock = clock
        self._on_invocation = on_invocation
        self._lock = threading.Lock()
        self._invocations: list[Invocation] = []
        self._busy = 0
        # A failed receive (the endpoint going away, throttling) is retried after a pause.
        self._loop = BackgroundLoop(
            self._poll,
            name="poller",
            threads=config.pollers,
            error_backoff=ERROR_BACKOFF_SECONDS,
            clock=clock,
        )

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> SqsPoller:
        self._loop.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop polling; a running invocation finishes, a batch being gathered is handed back."""
        self._loop.stop(timeout)

    def __enter__(self) -> SqsPoller:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- observation -------------------------------------------------------------------------
    @property
    def invocations(self) -> list[Invocation]:
        with self._lock:
            return list(self._invocations)

    @property
    def busy(self) -> int:
        """Invocations running right now."""
        with self._lock:
            return self._busy

    @property
    def failure(self) -> BaseException | None:
        """The defect (in the poller, not the handler) that stopped polling, if one did."""
        return self._loop.failure

    # -- one poller --------------------------------------------------------------------------
    def _poll(self, index: int) -> None:
        """One step of poller `index`: gather a batch, invoke the handler with it."""
        batch = self._gather()
        if not batch:
            return
        if self._loop.stopping:
            self._hand_back(batch)
            return
        self._invoke(index, batch)

    def _receive(self, count: int, wait: int) -> list[dict[str, Any]]:
        response = self.client.receive_message(
            QueueUrl=self.config.queue_url,
            MaxNumberOfMessages=count,
            WaitTimeSeconds=wait,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return list(response.get("Messages") or [])

    def _gather(self) -> list[dict[str, Any]]:
        config = self.config
        batch: list[dict[str, Any]] = []
        payload = 0
        window_ends: float | None = None
        while len(batch) < config.batch_size and not self._loop.stopping:
            if window_ends is None:
                wait = config.long_poll_seconds
            else:
                left = window_ends - self._clock()
                if left <= 0:
                    break
                wait = min(int(left), 20)
            count = min(MAX_RECEIVE, config.batch_size - len(batch))
            messages = self._receive(count, wait)
            if messages:
                batch.extend(messages)
                payload += sum(len(m["Body"].encode()) for m in messages)
                if config.batching_window <= 0 or payload >= MAX_PAYLOAD_BYTES // 2:
                    break
                if window_ends is None:
                    window_ends = self._clock() + config.batching_window
            elif window_ends is None:
                if wait == 0:
                    self._loop.wait(SHORT_POLL_PAUSE)
                break  # an empty poll: nothing to gather
            elif wait == 0:
                self._loop.wait(min(0.05, max(window_ends - self._clock(), 0.0)))
        return batch

    def _invoke(self, index: int, batch: list[dict[str, Any]]) -> None:
        config = self.config
        records = [sqs_record(m, config.queue_arn, config.region) for m in batch]
        context = LambdaContext(
            config.function_name,
            timeout=config.function_timeout,
            memory_mb=config.memory_mb,
            region=config.region,
            clock=self._clock,
        )
        with self._lock:
            self._busy += 1
        invocation: Invocation | None = None
        try:
            invocation = self._run_handler(index, batch, records, context)
        finally:
            with self._lock:  # one step, so that "not busy" implies "recorded"
                self._busy -= 1
                if invocation is not None:
                    self._invocations.append(invocation)
        if self._on_invocation is not None:
            self._on_invocation(invocation)

    def _run_handler(
        self,
        index: int,
        batch: list[dict[str, Any]],
        records: list[dict[str, Any]],
        context: LambdaContext,
    ) -> Invocation:
        config = self.config
        ids = tuple(r["messageId"] for r in records)
        started = self._clock()
        response: Any = None
        error: str | None = None
        try:
            response = self.handler({"Records": records}, context)
            json.dumps(response)  # Lambda serialises the response; an unserialisable one errors
        except Exception as exc:  # the function's error, whatever it is: Lambda's boundary
            error = f"{type(exc).__name__}: {exc}"
            logger.warning("invocation %s failed: %s", context.aws_request_id, error)
        ended = self._clock()
        failed: frozenset[str] = frozenset()
        if error is None and ended - started > config.function_timeout:
            error = f"Task timed out after {config.function_timeout:.2f} seconds"
        if error is None and config.report_batch_item_failures:
            try:
                failed = failed_message_ids(response, ids)
            except InvalidBatchResponse as exc:
                error = f"invalid partial batch response: {exc}"
        if error is not None:
            failed = frozenset(ids)
        done = [m for m in batch if m["MessageId"] not in failed]
        return Invocation(
            poller=index,
            request_id=context.aws_request_id,
            message_ids=ids,
            started=started,
            ended=ended,
            failed=failed,
            error=error,
            deleted=self._delete(done),
            response=response,
        )

    def _delete(self, messages: list[dict[str, Any]]) -> int:
        deleted = 0
        for start in range(0, len(messages), MAX_RECEIVE):
            chunk = messages[start : start + MAX_RECEIVE]
            try:
                response = self.client.delete_message_batch(
                    QueueUrl=self.config.queue_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(chunk)
                    ],
                )
            except AWS_ERRORS as exc:  # the records come back after their visibility timeout
                logger.warning("delete of %d messages failed: %s", len(chunk), exc)
                continue
            deleted += len(response.get("Successful") or [])
            for failure in response.get("Failed") or []:
                logger.warning("delete failed: %s", failure)
        return deleted

    def _hand_back(self, batch: list[dict[str, Any]]) -> None:
        """Make a gathered, not invoked, batch visible again at once."""
        for start in range(0, len(batch), MAX_RECEIVE):
            chunk = batch[start : start + MAX_RECEIVE]
            try:
                self.client.change_message_visibility_batch(
                    QueueUrl=self.config.queue_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                        for i, m in enumerate(chunk)
                    ],
                )
            except AWS_ERRORS as exc:  # they come back after their visibility timeout anyway
                logger.warning("could not hand back %d messages: %s", len(chunk), exc)
