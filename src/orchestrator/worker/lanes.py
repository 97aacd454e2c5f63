"""The worker's lanes: the region's standard queue and, optionally, its high-priority queue.

**Which queue a receive takes from** (the rule the routing simulator models,
`orchestrator.simulator.queues.next_request`, with the same `STANDARD_EVERY`): each receive
takes from the high-priority queue when it has messages, except that when standard work is
also waiting and the last ``STANDARD_EVERY - 1`` receives were all high-priority takes made
while standard work waited, it takes from standard. A standard take resets the count, and so
does a high-priority take while no standard work waited. Under a flood of high-priority work
standard work therefore still gets one receive in `STANDARD_EVERY`; it is never starved.

**How the worker knows**, without peeking (an SQS receive that finds messages takes them):

- "high has messages": each receive short-polls the high-priority queue first
  (``WaitTimeSeconds`` 0); what it returns is the take;
- "standard is waiting": seen only by receiving from it. After ``STANDARD_EVERY - 1`` high
  takes the worker receives from standard (a short poll): if it returns messages, standard was
  waiting and that is its turn, exactly as the rule says; if it returns nothing, standard was
  not waiting, the same receive falls through to the high-priority queue, and the count starts
  again from that take (a high take with nothing standard waiting). The one approximation:
  standard work that arrived in the middle of a run of high takes gets its turn at the end of
  that run, up to ``STANDARD_EVERY - 1`` receives sooner than the rule, never later.
- When the high-priority queue is empty the receive goes to standard (a standard take: the
  count resets), as a long poll of at most `IDLE_LOOK_SECONDS`, so an idle worker looks at the
  high-priority queue again at least that often.

SQS requests per request at batch 10 on the happy path (receives and the DeleteMessageBatch):
standard only 0.3 (the empty high-priority short poll per receive is the lane's cost), high
only 0.225 (one empty look at standard per ``STANDARD_EVERY`` receives), both busy 0.2. An
idle worker makes about one receive a second (86,400 a day) instead of one per
``--poll-seconds``.

Every held message remembers its queue (`Held.queue_url`): visibility changes and deletes go
to that queue, in batches of 10 per queue.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from orchestrator.worker.queue import Held, QueueFailure, WorkQueue

STANDARD_EVERY = 4
"""Under contention at least one receive in `STANDARD_EVERY` takes standard work (the
routing simulator's constant: keep the two equal)."""
IDLE_LOOK_SECONDS = 2
"""With a high-priority lane, the longest a standard long poll waits: how often an idle worker
looks at the high-priority queue again (a high-priority request waits at most this long for an
idle worker)."""

STANDARD = "standard"
HIGH = "high"


class HighFirst:
    """The rule's state for one worker (module docstring): high-priority takes in a row
    made while standard work was (or may have been) waiting."""

    def __init__(self) -> None:
        self.streak = 0

    def standard_turn(self) -> bool:
        return self.streak >= STANDARD_EVERY - 1

    def took_high(self, *, standard_waiting: bool) -> None:
        self.streak = self.streak + 1 if standard_waiting else 0

    def took_standard(self) -> None:
        self.streak = 0


class Lanes:
    """Receives by the rule (module docstring) and sends each message's calls to its queue."""

    def __init__(self, standard: WorkQueue, high: WorkQueue | None = None) -> None:
        self.standard = standard
        self.high = high
        self.rule = HighFirst()
        self._by_url = {queue.url: queue for queue in self.queues}

    @property
    def queues(self) -> list[WorkQueue]:
        return [self.standard] if self.high is None else [self.high, self.standard]

    def receive(
        self,
        max_messages: int,
        wait_seconds: int,
        visibility_timeout: int,
        stopping: Callable[[], bool] = lambda: False,
    ) -> tuple[WorkQueue, list[dict[str, Any]]]:
        """One take: the queue it came from and its messages (possibly none). A take that
        needs more than one receive makes none after `stopping()` turned true."""
        if self.high is None:
            return self.standard, self.standard.receive(
                max_messages, wait_seconds, visibility_timeout
            )
        standard_waiting = True  # unknown until looked at: assume it waits
        if self.rule.standard_turn():
            got = self.standard.receive(max_messages, 0, visibility_timeout)
            if got:
                self.rule.took_standard()
                return self.standard, got
            standard_waiting = False
            if stopping():
                return self.standard, []
        got = self.high.receive(max_messages, 0, visibility_timeout)
        if got:
            self.rule.took_high(standard_waiting=standard_waiting)
            return self.high, got
        self.rule.took_standard()
        if stopping():  # above all, no new long poll once the worker is stopping
            return self.standard, []
        wait = min(wait_seconds, IDLE_LOOK_SECONDS)
        return self.standard, self.standard.receive(max_messages, wait, visibility_timeout)

    def queue_of(self, held: Held) -> WorkQueue:
        return self._by_url.get(held.queue_url, self.standard)

    def change_visibility(self, entries: Sequence[tuple[Held, int]]) -> list[QueueFailure]:
        """Set each message's visibility on its own queue (batches of 10 per queue)."""
        per_queue: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for held, seconds in entries:
            per_queue[self.queue_of(held).url].append((held.receipt_handle, seconds))
        failures: list[QueueFailure] = []
        for url, chunk in per_queue.items():
            failures += self._by_url[url].change_visibility(chunk)
        return failures

    def delete(self, messages: Sequence[Held]) -> list[QueueFailure]:
        """Delete each message from its own queue (batches of 10 per queue)."""
        per_queue: dict[str, list[str]] = defaultdict(list)
        for held in messages:
            per_queue[self.queue_of(held).url].append(held.receipt_handle)
        failures: list[QueueFailure] = []
        for url, handles in per_queue.items():
            failures += self._by_url[url].delete(handles)
        return failures
