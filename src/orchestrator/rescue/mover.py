"""Moving one stranded queue's waiting messages to healthy regions, ten at a time.

A stranded queue is a lane (`orchestrator.rescue.lanes`): a region's standard queue, whose
messages go to other regions' standard queues, or its high-priority queue, whose messages go
to other regions' high-priority queues. For each batch, in this order (docs/rescue.md explains
why nothing is lost or run twice):

1. **receive** up to 10 messages with their attributes, hidden for the visibility timeout
   (only once a target exists: every receive counts towards the queue's redrive limit);
2. **choose** a region for each among the regions it may run in (its model's placement,
   `MODEL_REGIONS`, and its body's ``allowed_regions``): `TargetPicker`, healthy regions only.
   A message no other permitted region can take stays in its region (*pinned*): at the end
   of the run it is sent again to its own queue and the original deleted, so waiting for its
   region to come back does not use up the queue's redrive limit (each receive counts);
3. **send** the copies: same body, routing attributes with ``attempt`` + 1 and a new
   ``forwarded_at``, the client's attributes carried (`orchestrator.core.attributes`);
4. **update** each request record's region, on condition that it is still FORWARDED;
5. **delete** the originals whose copy is in and whose record was updated or refused
   (refused: a worker has the request, so the copy is harmless; or there is no record).

Messages that found no target or whose send failed are handed back (visibility 0) when the
region's loop ends, so that no message is received twice in one run.
An original whose record could not be written (the table failing, not refusing) stays
hidden until its visibility timeout and comes back: a copy already exists, and the worker's
claim lets only one of them run.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from orchestrator.core.attributes import (
    MessageAttribute,
    RoutingAttributes,
    carry_client_attributes,
    client_attributes,
)
from orchestrator.core.errors import AWS_ERRORS, one_line
from orchestrator.core.placement import Placement, queued_permitted
from orchestrator.core.sqs import MAX_BATCH_ENTRIES, OutgoingMessage, chunks, send_chunk
from orchestrator.core.stranding import StrandReason
from orchestrator.core.timefmt import iso_utc
from orchestrator.rescue.lanes import Lane, lane_urls
from orchestrator.rescue.records import RecordsUnavailableError, RecordUpdate, RequestRecords
from orchestrator.rescue.targets import Budget, TargetPicker

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

logger = logging.getLogger(__name__)

TIME_MARGIN_SECONDS = 15.0
"""No batch starts with less time left than this: one batch's calls at their time-outs."""
RECEIVE_WAIT_SECONDS = 1
"""A short long-poll: asks every SQS server, so an almost empty queue still answers."""


class StopReason(StrEnum):
    EMPTY = "empty"
    BUDGET = "budget"
    DEADLINE = "deadline"
    NO_TARGET = "no-target"
    RECEIVE_FAILED = "receive-failed"
    RECORDS_FAILED = "records-failed"


@dataclass(slots=True)
class RegionOutcome:
    """What happened to one stranded queue's messages in one run."""

    region: str
    """The queue's lane key: the region, or ``<region>:high`` for its high-priority queue."""
    reason: StrandReason
    moved: Counter[str] = field(default_factory=Counter)
    """Target lane key -> copies sent whose original was deleted."""
    superseded: int = 0
    """Copies sent while a worker had the request: original deleted, copy harmless."""
    unrecorded: int = 0
    """Moved without a record to update (no routing attributes, or no record)."""
    handed_back: int = 0
    """No target or the send failed: made visible again in the source queue."""
    pinned: int = 0
    """Of `handed_back`: no region its placement and residency permit could take it."""
    left_hidden: int = 0
    """Copy sent, record not writable: the original returns after the visibility timeout."""
    not_deleted: int = 0
    """Original whose delete failed: it returns; its copy's claim makes it harmless."""
    stopped: StopReason = StopReason.EMPTY

    @property
    def moved_total(self) -> int:
        return sum(self.moved.values())


@dataclass(frozen=True, slots=True)
class _Copy:
    original: MessageTypeDef
    target: Lane
    outgoing: OutgoingMessage
    request_id: str | None
    """None: the message carries no routing attributes (not forwarded by the distributor)."""


class Mover:
    def __init__(
        self,
        queue_urls: Mapping[str, str],
        sqs: Mapping[str, SQSClient],
        records: RequestRecords,
        visibility_timeout: int,
        clock: Callable[[], float],
        *,
        high_queue_urls: Mapping[str, str] | None = None,
        placement: Placement | None = None,
    ) -> None:
        """`high_queue_urls`: each region's high-priority queue; `placement`: which regions
        serve which model (`MODEL_REGIONS`; default every region, every model)."""
        self._urls = lane_urls(queue_urls, high_queue_urls)
        self._regions = frozenset(queue_urls)
        self._sqs = sqs
        self._records = records
        self._visibility_timeout = visibility_timeout
        self._clock = clock
        self._placement = placement or Placement()

    def rescue_region(
        self,
        key: str,
        reason: StrandReason,
        picker: TargetPicker,
        budget: Budget,
        time_left: Callable[[], float],
    ) -> RegionOutcome:
        """Move the waiting messages of the queue `key` names (a lane key: the region, or
        ``<region>:high``) until it is empty, the budget or the time runs out, no region can
        take them, or AWS fails."""
        lane = Lane.from_key(key)
        outcome = RegionOutcome(key, reason)
        unmoved: list[MessageTypeDef] = []
        requeue: list[MessageTypeDef] = []
        outcome.stopped = self._batches(lane, picker, budget, time_left, outcome, unmoved, requeue)
        unmoved.extend(self._requeue(lane, requeue))
        # Handed back only now: a message is received at most once per run, because every
        # receive counts towards the queue's redrive limit (maxReceiveCount).
        outcome.handed_back += len(unmoved)
        for start in range(0, len(unmoved), MAX_BATCH_ENTRIES):
            self._hand_back(lane, unmoved[start : start + MAX_BATCH_ENTRIES])
        return outcome

    def _batches(
        self,
        lane: Lane,
        picker: TargetPicker,
        budget: Budget,
        time_left: Callable[[], float],
        outcome: RegionOutcome,
        unmoved: list[MessageTypeDef],
        requeue: list[MessageTypeDef],
    ) -> StopReason:
        while True:
            if time_left() < TIME_MARGIN_SECONDS:
                return StopReason.DEADLINE
            if not picker.has_target(lane.region):
                return StopReason.NO_TARGET
            wanted = budget.take(MAX_BATCH_ENTRIES)
            if wanted == 0:
                return StopReason.BUDGET
            try:
                messages = self._receive(lane, wanted)
            except AWS_ERRORS as exc:
                budget.give_back(wanted)
                logger.warning("receive from %s failed: %s", lane.key, one_line(exc))
                return StopReason.RECEIVE_FAILED
            budget.give_back(wanted - len(messages))
            if not messages:
                return StopReason.EMPTY
            if not self._move_batch(lane, messages, picker, outcome, unmoved, requeue):
                return StopReason.RECORDS_FAILED

    def _receive(self, lane: Lane, count: int) -> list[MessageTypeDef]:
        response = self._sqs[lane.region].receive_message(
            QueueUrl=self._urls[lane],
            MaxNumberOfMessages=count,
            WaitTimeSeconds=RECEIVE_WAIT_SECONDS,
            VisibilityTimeout=self._visibility_timeout,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        )
        return list(response.get("Messages", []))

    def _move_batch(
        self,
        lane: Lane,
        messages: Sequence[MessageTypeDef],
        picker: TargetPicker,
        outcome: RegionOutcome,
        unmoved: list[MessageTypeDef],
        requeue: list[MessageTypeDef],
    ) -> bool:
        """One batch, steps 2-5; messages not sent go to `unmoved`. False when the request
        table failed (stop this region)."""
        forwarded_at = iso_utc(self._clock())
        copies: list[_Copy] = []
        hand_back: list[MessageTypeDef] = []
        for message, target, permitted in self._targets(lane, messages, picker):
            if target is not None:
                copies.append(_copy(message, lane.to(target), forwarded_at))
                continue
            if lane.region in permitted and permitted < self._regions:
                outcome.pinned += 1
                requeue.append(message)
                continue
            hand_back.append(message)
            if permitted < self._regions:
                outcome.pinned += 1
        sent, unsent = self._send(copies, picker)
        hand_back.extend(copy.original for copy in unsent)

        to_delete: list[MessageTypeDef] = []
        records_ok = True
        for copy in sent:
            if copy.request_id is None:
                outcome.unrecorded += 1
                to_delete.append(copy.original)
                continue
            if not records_ok:
                outcome.left_hidden += 1
                continue
            try:
                result = self._records.move(copy.request_id, copy.target.region, forwarded_at)
            except RecordsUnavailableError as exc:
                logger.warning("%s; leaving the rest of %s for later", one_line(exc), lane.key)
                records_ok = False
                outcome.left_hidden += 1
                continue
            if result.update is RecordUpdate.MOVED:
                outcome.moved[copy.target.key] += 1
            elif result.update is RecordUpdate.MISSING:
                outcome.unrecorded += 1
            else:
                outcome.superseded += 1
                logger.info(
                    "request %s is %s: its copy in %s will be dropped by the worker's claim",
                    copy.request_id,
                    result.status,
                    copy.target.key,
                )
            to_delete.append(copy.original)

        outcome.not_deleted += self._delete(lane, to_delete)
        unmoved.extend(hand_back)
        return records_ok

    def _targets(
        self, lane: Lane, messages: Sequence[MessageTypeDef], picker: TargetPicker
    ) -> list[tuple[MessageTypeDef, str | None, frozenset[str]]]:
        """(message, target region or None, the regions it may run in), in order. Messages
        are chosen for in groups of the same permitted regions, each group seeing the ones
        before it."""
        permitted = [self._permitted(message) for message in messages]
        groups: dict[frozenset[str], list[int]] = defaultdict(list)
        for index, regions in enumerate(permitted):
            groups[regions].append(index)
        targets: list[str | None] = [None] * len(messages)
        for regions, indexes in groups.items():
            chosen = picker.pick(lane.region, len(indexes), regions, high=lane.high)
            for index, target in zip(indexes, chosen, strict=True):
                targets[index] = target
        return list(zip(messages, targets, permitted, strict=True))

    def _permitted(self, message: MessageTypeDef) -> frozenset[str]:
        routing = RoutingAttributes.from_message(message)
        model_name = routing.model_name if routing else None
        return queued_permitted(self._placement, message["Body"], self._regions, model_name)

    def _send(
        self, copies: Sequence[_Copy], picker: TargetPicker
    ) -> tuple[list[_Copy], list[_Copy]]:
        """Send every copy to its target; (in, not in). A target that fails is avoided for
        the rest of the run."""
        by_target: dict[Lane, list[_Copy]] = defaultdict(list)
        for copy in copies:
            by_target[copy.target].append(copy)
        sent: list[_Copy] = []
        unsent: list[_Copy] = []
        for target, group in by_target.items():
            by_key = {copy.outgoing.key: copy for copy in group}
            failed: set[str] = set()
            for chunk in chunks([copy.outgoing for copy in group]):
                failures = send_chunk(self._sqs[target.region], self._urls[target], chunk)
                for failure in failures:
                    logger.warning("rescue send to %s failed: %s", target.key, failure.reason)
                failed.update(failure.key for failure in failures)
            if failed:
                picker.mark_failed(target.region)
            for key, copy in by_key.items():
                (unsent if key in failed else sent).append(copy)
        return sent, unsent

    def _delete(self, lane: Lane, messages: Sequence[MessageTypeDef]) -> int:
        """Delete the originals; returns how many were not deleted."""
        if not messages:
            return 0
        entries: list[Any] = [
            {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
            for index, message in enumerate(messages)
        ]
        try:
            response = self._sqs[lane.region].delete_message_batch(
                QueueUrl=self._urls[lane], Entries=entries
            )
        except AWS_ERRORS as exc:
            logger.warning("delete from %s failed: %s", lane.key, one_line(exc))
            return len(messages)
        return len(response.get("Failed", []))

    def _requeue(self, lane: Lane, messages: Sequence[MessageTypeDef]) -> list[MessageTypeDef]:
        """Send pinned messages again to their own queue and delete the originals; returns
        those that could not be re-sent (handed back instead).

        A pinned message can only wait for its region to come back. Handing it back would
        cost one receive per run against the queue's redrive limit (maxReceiveCount), so after
        that many runs SQS would dead-letter a request that was never tried; a fresh copy
        starts at receive count 0. Done after the region's loop, so no run receives it twice.
        Its record is unchanged (same region); if the delete fails, the worker's claim lets
        only one of the two copies run.
        """
        if not messages:
            return []
        forwarded_at = iso_utc(self._clock())
        copies = {str(i): _copy(m, lane, forwarded_at) for i, m in enumerate(messages)}
        failed: set[str] = set()
        outgoing = [replace(copy.outgoing, key=key) for key, copy in copies.items()]
        for chunk in chunks(outgoing):
            failed.update(
                f.key for f in send_chunk(self._sqs[lane.region], self._urls[lane], chunk)
            )
        self._delete(lane, [c.original for key, c in copies.items() if key not in failed])
        return [c.original for key, c in copies.items() if key in failed]

    def _hand_back(self, lane: Lane, messages: Sequence[MessageTypeDef]) -> None:
        """Make unmoved messages visible again now rather than after the timeout."""
        if not messages:
            return
        entries: list[Any] = [
            {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"], "VisibilityTimeout": 0}
            for index, message in enumerate(messages)
        ]
        try:
            self._sqs[lane.region].change_message_visibility_batch(
                QueueUrl=self._urls[lane], Entries=entries
            )
        except AWS_ERRORS as exc:  # they come back after the visibility timeout anyway
            logger.warning("hand-back to %s failed: %s", lane.key, one_line(exc))


def _copy(message: MessageTypeDef, target: Lane, forwarded_at: str) -> _Copy:
    """The message as it is sent to `target`."""
    routing = RoutingAttributes.from_message(message)
    attributes: dict[str, str | MessageAttribute]
    if routing is None:
        # Not forwarded by the distributor: carried exactly as it came.
        attributes = {
            name: MessageAttribute.from_sqs(raw)
            for name, raw in (message.get("MessageAttributes") or {}).items()
        }
        request_id = None
    else:
        moved = replace(routing, attempt=routing.attempt + 1, forwarded_at=forwarded_at)
        attributes = {
            **moved.to_attributes(),
            **carry_client_attributes(client_attributes(message)),
        }
        request_id = routing.request_id
    outgoing = OutgoingMessage(
        key=message["MessageId"], body=message["Body"], attributes=attributes
    )
    return _Copy(message, target, outgoing, request_id)
