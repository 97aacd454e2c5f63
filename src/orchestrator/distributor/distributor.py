"""The distributor: validate, de-duplicate, route and forward one batch of master-queue records.

Order of work for a batch (each step's AWS calls run concurrently):

1. parse every record; malformed ones, and requests no permitted region can serve (model
   placement, data residency), are dead-lettered (in the background from here on);
2. copies of one request id inside the batch are reduced to the first, the leader;
3. a region is chosen for each leader from the cached depths, among its permitted regions
   (`orchestrator.core.plan`); high-priority requests go to the high-priority queue of
   the region where they would wait least, when the regions have such queues;
4. each leader is claimed in the ledger (one conditional PutItem, the region included);
5. claimed requests are forwarded, all regions at once; entries that fail are retried once in
   another healthy permitted region, and the region that failed cools down;
6. what still failed releases its claim and is reported as a batch item failure.

Nothing is acknowledged (left out of the failures) unless it is in a region queue, in the
dead-letter queue, or a duplicate of a request that was claimed.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, replace
from typing import Any

from orchestrator.core.attributes import (
    MessageAttribute,
    RoutingAttributes,
    carry_client_attributes,
)
from orchestrator.core.dead_letter import DeadLetter, DeadLetterQueue
from orchestrator.core.depth import DepthCache
from orchestrator.core.health import RegionHealth
from orchestrator.core.placement import Placement, no_permitted_region
from orchestrator.core.plan import Need, choose_regions
from orchestrator.core.request import (
    ErrorCode,
    InvalidRequestError,
    ParsedRequest,
    parse_request,
    readable_request_id,
)
from orchestrator.core.routing import DEFAULT_STRATEGY, RegionLoad, Router
from orchestrator.core.sqs import OutgoingMessage, SendFailure
from orchestrator.core.timefmt import iso_utc
from orchestrator.distributor.forwarder import Destination, Forwarder
from orchestrator.distributor.ledger import Claim, ClaimStatus, Ledger, LedgerError
from orchestrator.distributor.outcome import BatchReport, Disposition, FailureReason, Outcome

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Valid:
    message_id: str
    parsed: ParsedRequest
    client_attributes: Mapping[str, MessageAttribute]
    """The client's own message attributes, carried to the region queue."""
    need: Need
    """Where it may run, and whether it goes to a high-priority queue."""


@dataclass(frozen=True, slots=True)
class _Routed:
    valid: _Valid
    region: str
    forwarded_at: str

    @property
    def destination(self) -> Destination:
        return Destination(self.region, self.valid.need.high)


class Distributor:
    def __init__(
        self,
        *,
        ledger: Ledger,
        depths: DepthCache,
        forwarder: Forwarder,
        dead_letters: DeadLetterQueue,
        health: RegionHealth,
        executor: Executor,
        strategy: str = DEFAULT_STRATEGY,
        max_depth: int = 5000,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        placement: Placement | None = None,
    ) -> None:
        """`placement`: which regions serve which model (default: every region, every model)."""
        self.ledger = ledger
        self.depths = depths
        self.forwarder = forwarder
        self.dead_letters = dead_letters
        self.health = health
        self._executor = executor
        self.strategy = strategy
        self.max_depth = max_depth
        self._rng = rng or random.Random()
        self.router = Router(strategy, max_depth, self._rng)
        self._clock = clock
        self.placement = placement or Placement()

    # -- the batch ---------------------------------------------------------------------------

    def process(self, records: Sequence[Mapping[str, Any]], lease_seconds: float) -> BatchReport:
        report = BatchReport()
        valid, letters = self._parse(records)
        letter_futures = [self._submit_letters(letters, report)] if letters else []

        leaders, followers = _leaders_and_followers(valid)
        routed = self._route(leaders, report)
        claims = self._claim_all(routed, lease_seconds, report)

        conflicts: list[DeadLetter] = []
        to_forward: list[_Routed] = []
        for item in routed:
            claim = claims.get(item.valid.message_id)
            if claim is None:
                continue  # failed to claim: already reported
            if claim.status is ClaimStatus.CLAIMED:
                to_forward.append(item)
            elif claim.status is ClaimStatus.DUPLICATE:
                report.add(_duplicate(item.valid, claim.existing_region))
            elif claim.status is ClaimStatus.CONFLICT:
                conflicts.append(_conflict_letter(item.valid, claim.existing_message_id))
            else:
                report.add(
                    _failed(
                        item.valid, FailureReason.IN_PROGRESS, "the same message is being handled"
                    )
                )
        self._settle_followers(
            followers, {v.message_id: v for v in leaders}, claims, report, conflicts
        )
        if conflicts:
            letter_futures.append(self._submit_letters(conflicts, report))

        self._forward(to_forward, report)
        for future in letter_futures:
            future.result()
        return report

    # -- steps -------------------------------------------------------------------------------

    def _parse(self, records: Sequence[Mapping[str, Any]]) -> tuple[list[_Valid], list[DeadLetter]]:
        valid: list[_Valid] = []
        letters: list[DeadLetter] = []
        for index, record in enumerate(records):
            message_id = str(record.get("messageId") or f"record-{index}")
            body = record.get("body")
            if not isinstance(body, str):
                letters.append(
                    DeadLetter(message_id, "", ErrorCode.INVALID_JSON, "record has no body")
                )
                continue
            try:
                parsed = parse_request(body)
            except InvalidRequestError as exc:
                letters.append(
                    DeadLetter(message_id, body, exc.code, exc.message, readable_request_id(body))
                )
                continue
            need = self._need(parsed)
            if need.permitted:
                valid.append(_Valid(message_id, parsed, _client_attributes(record), need))
            else:
                letters.append(self._no_permitted_region(message_id, parsed))
        return valid, letters

    def _need(self, parsed: ParsedRequest) -> Need:
        request = parsed.request
        permitted = self.placement.permitted(
            request.model_name, request.allowed_regions, self.forwarder.regions
        )
        high = request.priority == "high" and self.forwarder.has_high_priority_queues
        return Need(permitted, high)

    def _no_permitted_region(self, message_id: str, parsed: ParsedRequest) -> DeadLetter:
        request = parsed.request
        serving = self.placement.serving(request.model_name, self.forwarder.regions)
        return DeadLetter(
            message_id,
            parsed.body,
            ErrorCode.NO_PERMITTED_REGION,
            no_permitted_region(request.model_name, request.allowed_regions or (), serving),
            request.request_id,
        )

    def _route(self, leaders: list[_Valid], report: BatchReport) -> list[_Routed]:
        loads = self.depths.snapshot(self.health.is_available)
        regions = choose_regions(self.router, loads, [v.need for v in leaders], self._rng)
        now = iso_utc(self._clock())
        routed = []
        for valid, region in zip(leaders, regions, strict=True):
            if region is None:
                permitted = [load for load in loads if load.region in valid.need.permitted]
                report.add(
                    _failed(
                        valid,
                        FailureReason.NO_ELIGIBLE_REGION,
                        _why_no_region(permitted, self.max_depth),
                    )
                )
            else:
                routed.append(_Routed(valid, region, now))
        return routed

    def _claim_all(
        self, routed: list[_Routed], lease_seconds: float, report: BatchReport
    ) -> dict[str, Claim]:
        futures = {
            item.valid.message_id: self._executor.submit(
                self.ledger.claim,
                item.valid.parsed,
                item.valid.message_id,
                item.region,
                lease_seconds,
                item.forwarded_at,
            )
            for item in routed
        }
        claims: dict[str, Claim] = {}
        for item in routed:
            try:
                claims[item.valid.message_id] = futures[item.valid.message_id].result()
            except LedgerError as exc:
                logger.warning("ledger claim failed: %s", exc)
                report.add(_failed(item.valid, FailureReason.LEDGER_UNAVAILABLE, str(exc)))
        return claims

    def _settle_followers(
        self,
        followers: Mapping[str, list[_Valid]],
        leaders: Mapping[str, _Valid],
        claims: Mapping[str, Claim],
        report: BatchReport,
        conflicts: list[DeadLetter],
    ) -> None:
        """Copies of a request id in the same batch follow their leader's fate."""
        for leader_id, copies in followers.items():
            claim = claims.get(leader_id)
            leader_outcome = report.outcomes.get(leader_id)
            if claim is not None and claim.status is not ClaimStatus.IN_PROGRESS:
                # The request that owns the id: the leader, or the record it lost to.
                claimed = claim.status is ClaimStatus.CLAIMED
                owner_hash = leaders[leader_id].parsed.payload_hash
                if not claimed and claim.existing_payload_hash:
                    owner_hash = claim.existing_payload_hash
                owner_id = leader_id if claimed else claim.existing_message_id
            for copy in copies:
                if claim is None or claim.status is ClaimStatus.IN_PROGRESS:
                    reason = (leader_outcome.reason if leader_outcome else None) or (
                        FailureReason.IN_PROGRESS
                    )
                    report.add(
                        _failed(copy, reason, "its first copy in this batch will be retried")
                    )
                elif copy.parsed.payload_hash != owner_hash:
                    conflicts.append(_conflict_letter(copy, owner_id))
                else:
                    report.add(_duplicate(copy, None if claimed else claim.existing_region))

    def _forward(self, items: list[_Routed], report: BatchReport) -> None:
        if not items:
            return
        failed = self._send(
            {item.valid.message_id: item for item in items}, attempt=1, report=report
        )
        if not failed:
            return
        retried = self._reroute(failed, report)
        releases = [self._executor.submit(self._release, item) for item in retried]
        for future in releases:
            future.result()

    def _send(
        self, items: Mapping[str, _Routed], attempt: int, report: BatchReport
    ) -> list[tuple[_Routed, SendFailure]]:
        plan: dict[Destination, list[OutgoingMessage]] = {}
        for key, item in items.items():
            plan.setdefault(item.destination, []).append(_outgoing(key, item, attempt))
        failures = self.forwarder.send(plan)
        failed: list[tuple[_Routed, SendFailure]] = []
        for destination, queue_failures in failures.items():
            region = destination.region
            failed_keys = {f.key for f in queue_failures}
            if any(not f.sender_fault for f in queue_failures):
                logger.warning(
                    "sends to %s failed; skipping it for a while: %s",
                    region,
                    queue_failures[0].reason,
                )
                self.health.mark_failed(region)
            sent = [m for m in plan[destination] if m.key not in failed_keys]
            if sent:
                self.depths.record_forwarded(region, len(sent), high=destination.high)
            for message in sent:
                item = items[message.key]
                report.add(
                    Outcome(
                        item.valid.message_id,
                        Disposition.FORWARDED,
                        item.valid.parsed.request_id,
                        region,
                        attempt,
                        high_priority=destination.high,
                    )
                )
            failed.extend((items[f.key], f) for f in queue_failures)
        return failed

    def _reroute(
        self, failed: list[tuple[_Routed, SendFailure]], report: BatchReport
    ) -> list[_Routed]:
        """Retry failed sends once in another healthy permitted region; return what still
        failed (a request whose only permitted regions failed goes back to SQS)."""
        bad_regions = {item.region for item, _ in failed}
        loads = [
            load if load.region not in bad_regions else _unavailable(load)
            for load in self.depths.snapshot(self.health.is_available)
        ]
        regions = choose_regions(
            self.router, loads, [item.valid.need for item, _ in failed], self._rng
        )
        retry: dict[str, _Routed] = {}
        still_failed: list[_Routed] = []
        now = iso_utc(self._clock())
        for (item, failure), region in zip(failed, regions, strict=True):
            if region is None:
                still_failed.append(item)
                report.add(_failed(item.valid, FailureReason.FORWARD_FAILED, failure.reason))
            else:
                retry[item.valid.message_id] = _Routed(item.valid, region, now)
        if not retry:
            return still_failed
        second_failures = self._send(retry, attempt=2, report=report)
        for item, failure in second_failures:
            still_failed.append(item)
            report.add(_failed(item.valid, FailureReason.FORWARD_FAILED, failure.reason))
        failed_ids = {item.valid.message_id for item, _ in second_failures}
        updates = [
            self._executor.submit(self._record_reroute, item)
            for key, item in retry.items()
            if key not in failed_ids
        ]
        for future in updates:
            future.result()
        return still_failed

    def _record_reroute(self, item: _Routed) -> None:
        try:
            self.ledger.reroute(
                item.valid.parsed.request_id, item.valid.message_id, item.region, item.forwarded_at
            )
        except LedgerError as exc:
            # Forwarded already: failing the record now would forward it twice. The ledger
            # keeps the first region; the region queue has the message.
            logger.warning("could not record the new region: %s", exc)

    def _release(self, item: _Routed) -> None:
        try:
            self.ledger.release(item.valid.parsed.request_id, item.valid.message_id)
        except LedgerError as exc:
            # The claim stays; its lease runs out before SQS redelivers the message (the
            # visibility timeout is longer than the function timeout), so the retry claims it.
            logger.warning("could not release a claim: %s", exc)

    def _submit_letters(self, letters: list[DeadLetter], report: BatchReport) -> Future[None]:
        return self._executor.submit(self._send_letters, letters, report)

    def _send_letters(self, letters: list[DeadLetter], report: BatchReport) -> None:
        failures = {f.key: f for f in self.dead_letters.send(letters)}
        for letter in letters:
            failure = failures.get(letter.origin_message_id)
            if failure is None:
                report.add(
                    Outcome(
                        letter.origin_message_id,
                        Disposition.DEAD_LETTERED,
                        letter.request_id,
                        reason=letter.error_code,
                        detail=letter.error_message,
                    )
                )
            else:
                logger.warning("dead-letter queue refused a message: %s", failure.reason)
                report.add(
                    Outcome(
                        letter.origin_message_id,
                        Disposition.FAILED,
                        letter.request_id,
                        reason=FailureReason.DEAD_LETTER_FAILED,
                        detail=failure.reason,
                    )
                )


# -- helpers -----------------------------------------------------------------------------------


def _leaders_and_followers(valid: list[_Valid]) -> tuple[list[_Valid], dict[str, list[_Valid]]]:
    leaders: dict[str, _Valid] = {}
    followers: dict[str, list[_Valid]] = {}
    for item in valid:
        leader = leaders.setdefault(item.parsed.request_id, item)
        if leader is not item:
            followers.setdefault(leader.message_id, []).append(item)
    return list(leaders.values()), followers


def _outgoing(key: str, item: _Routed, attempt: int) -> OutgoingMessage:
    request = item.valid.parsed.request
    routing = RoutingAttributes(
        request_id=request.request_id,
        priority=request.priority,
        model_name=request.model_name,
        origin_message_id=item.valid.message_id,
        attempt=attempt,
        forwarded_at=item.forwarded_at,
    )
    return OutgoingMessage(
        key=key,
        body=item.valid.parsed.body,
        attributes={
            **routing.to_attributes(),
            **carry_client_attributes(item.valid.client_attributes),
        },
    )


def _client_attributes(record: Mapping[str, Any]) -> dict[str, MessageAttribute]:
    """The client's message attributes from a Lambda SQS record (``messageAttributes``)."""
    raw = record.get("messageAttributes") or {}
    return {name: MessageAttribute.from_sqs(value) for name, value in raw.items()}


def _duplicate(valid: _Valid, region: str | None) -> Outcome:
    return Outcome(valid.message_id, Disposition.DUPLICATE, valid.parsed.request_id, region=region)


def _failed(valid: _Valid, reason: str, detail: str) -> Outcome:
    return Outcome(
        valid.message_id, Disposition.FAILED, valid.parsed.request_id, reason=reason, detail=detail
    )


def _conflict_letter(valid: _Valid, owner: str | None) -> DeadLetter:
    return DeadLetter(
        valid.message_id,
        valid.parsed.body,
        ErrorCode.PAYLOAD_CONFLICT,
        f"request_id: {valid.parsed.request_id!r} was already received with a different payload"
        + (f" (message {owner})" if owner else ""),
        valid.parsed.request_id,
    )


def _unavailable(load: RegionLoad) -> RegionLoad:
    return replace(load, available=False)


def _why_no_region(loads: Sequence[RegionLoad], max_depth: int) -> str:
    parts = [
        f"{load.region}: {'cooling down' if not load.available else f'backlog {load.backlog}'}"
        for load in loads
    ]
    return f"no region below MAX_QUEUE_DEPTH_THRESHOLD={max_depth} and healthy ({'; '.join(parts)})"
