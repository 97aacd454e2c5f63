"""The discrete-event model of the whole path, one strategy per run.

Requests arrive at the master queue (Poisson, optionally with bursts). Lambda hands them out
in batches of up to 10 (or what gathered in the batching window) to one of K warm containers,
picked at random; the container routes the batch with its chooser (for the project's
strategies, its own real `DepthCache` and `Router`) and the messages land in region queues.
GPU consumers take messages as soon as they are free (long polling) and hold each for a
lognormal service time. Consumers are lost cleanly (held messages come back at once) or hard
(held messages stay invisible for the visibility timeout; presence records stay until their
lease ends), and come back. The rescue function runs every minute.

With priorities, each region has a high-priority queue beside its standard one, a share of
the arrivals is high priority, and worker slots take high-priority work first without
starving standard work (`queues.next_request`). With placement, each request may run only in
the regions `orchestrator.core.placement.Placement.permitted` gives it (the model's regions
and its ``allowed_regions``); one that no region may run is dead-lettered at once, and every
router, the rescue included, chooses among its permitted regions only.

Each request's service time is drawn at its arrival, from its own random stream, so every
strategy of one seed faces the very same arrivals and the very same work.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from orchestrator.core.placement import Placement
from orchestrator.core.plan import Need
from orchestrator.core.routing import DEFAULT_STRATEGY, RegionLoad, assign_shortest_wait
from orchestrator.core.stats import percentile
from orchestrator.core.stranding import (
    QueueObservation,
    has_consumer_proof,
    looks_stalled,
    region_load,
    rescue_targets,
    track_stall,
)
from orchestrator.simulator.contenders import MAX_DEPTH, Chooser, Contender, chooser_factory
from orchestrator.simulator.queues import Consumer, RegionQueue, Request, next_request
from orchestrator.simulator.rescue import MAX_MESSAGES, RESCUE_INTERVAL, CoreRule, RescueRule
from orchestrator.simulator.scenarios import Loss, Scenario

ARRIVE, WINDOW, DONE, REAPPEAR, LOSE, RESTORE, RESCUE, SAMPLE, SPOT, RETRY = range(10)
SAMPLE_EVERY = 15.0
PUSHBACK_DELAY = 30.0
"""A batch item with no eligible region goes back to the master queue for this long."""

# Request states
IN_MASTER, WAITING, SERVING, INVISIBLE, DONE_STATE, DEAD_LETTERED = range(6)


@dataclass(slots=True)
class RunResult:
    scenario: str
    contender: str
    ttl: float
    seed: int
    mean_wait: float
    p99_wait: float
    measured: int
    stranded: int
    """Requests at the end in a region with no live consumer, waiting or invisible."""
    unfinished: int
    """Requests not served at the end, wherever they are."""
    routed_dead: int
    """Distributor sends to a region that had no live consumer at that moment."""
    rescued: int
    shares: dict[str, float]
    created: int
    completed: int
    in_system: int
    lost_rate_before: float = 0.0
    """Sends per second to the region that later lost its consumers, before the loss."""
    high_mean_wait: float = math.nan
    high_p99_wait: float = math.nan
    standard_mean_wait: float = math.nan
    standard_p99_wait: float = math.nan
    high_measured: int = 0
    dead_lettered: int = 0
    """Requests no permitted region could serve (dead-lettered at arrival, never routed)."""
    sent_outside: int = 0
    """Requests put in a region queue outside their permitted regions (by anyone)."""
    ran_outside: int = 0
    """Services started in a region outside the request's permitted regions."""
    backlog_times: list[float] = field(default_factory=list)
    backlog: dict[str, list[int]] = field(default_factory=dict)


class Simulation:
    """One scenario, one contender, one cache TTL, one seed."""

    def __init__(
        self,
        scenario: Scenario,
        contender: Contender,
        ttl: float,
        seed: int,
        *,
        rule: RescueRule | None = None,
        record_backlog: bool = False,
    ) -> None:
        self.scenario = scenario
        self.contender = contender
        self.ttl = ttl
        self.seed = seed
        self.rule = rule or CoreRule()
        # The rescue function routes with the deployment's strategy: the one under test when it
        # is one of the project's, the default otherwise.
        self._rescue_strategy = (
            contender.strategy if isinstance(contender.strategy, str) else DEFAULT_STRATEGY
        )
        self.record_backlog = record_backlog
        self.now = 0.0
        self.queues: dict[str, RegionQueue] = {
            name: RegionQueue(name, count) for name, count in scenario.capacities.items()
        }
        self.priority_queues = scenario.high_share > 0
        self._placement = Placement(
            {model: frozenset(regions) for model, regions in scenario.model_regions.items()}
        )
        self._everywhere = frozenset(self.queues)
        self._needs: dict[tuple[frozenset[str], bool], Need] = {}
        self._mix = random.Random(f"{seed}-mix")
        # Independent streams: the same seed gives every strategy the same arrivals and work.
        self._arrivals = random.Random(f"{seed}-arrivals")
        self._work = random.Random(f"{seed}-work")
        self._lambda = random.Random(f"{seed}-lambda")
        self._chaos = random.Random(f"{seed}-chaos")
        routing = random.Random(f"{seed}-routing-{contender.name}")
        self._make_chooser = chooser_factory(contender, self, ttl)
        self._containers: list[Chooser] = [
            self._make_chooser(random.Random(routing.random())) for _ in range(scenario.containers)
        ]
        self._rescue_rng = random.Random(f"{seed}-rescue")
        self._heap: list[tuple[float, int, int, Any]] = []
        self._seq = itertools.count()
        self._buffer: list[Request] = []
        self._window_gen = 0
        self._requests: list[Request] = []
        self._stalled_since: dict[str, float | None] = dict.fromkeys(self.queues)
        self.sent: dict[str, int] = dict.fromkeys(self.queues, 0)
        self._sent_before_loss = 0
        self.routed_dead = 0
        self.rescued = 0
        self.completed = 0
        self.dead_lettered = 0
        self.sent_outside = 0
        self.ran_outside = 0
        self.backlog_times: list[float] = []
        self.backlog: dict[str, list[int]] = {name: [] for name in self.queues}
        self._peak_rate = scenario.arrival_rate * max([1.0, *(b.factor for b in scenario.bursts)])

    # -- what choosers may read ---------------------------------------------------------------

    def presence(self) -> Mapping[str, float]:
        """The presence table's reading: live capacity per region."""
        return {name: queue.live_capacity(self.now) for name, queue in self.queues.items()}

    # -- the run -------------------------------------------------------------------------------

    def run(self) -> RunResult:
        sc = self.scenario
        self._push(self._next_arrival(0.0), ARRIVE, None)
        for zombie in sc.zombies:
            queue = self.queues[zombie.region]
            for _ in range(zombie.count):
                request = self._new_request(0.0, measured=False)
                request.region, request.entered, request.queued_at = queue.name, 0.0, 0.0
                request.started = 0.0
                self._hide(queue, request, zombie.invisible_for)
        for d in sc.disruptions:
            self._push(d.at, LOSE, d)
            if d.until is not None:
                self._push(d.until, RESTORE, (d.region, d.lose))
        if sc.spot is not None:
            for name in self.queues:
                self._push(self._chaos.expovariate(1 / sc.spot.mean_gap), SPOT, (name, 0))
        if sc.rescue:
            self._push(RESCUE_INTERVAL, RESCUE, None)
        if self.record_backlog:
            self._push(0.0, SAMPLE, None)
        self._loop(sc.horizon + sc.drain)
        self.now = sc.horizon + sc.drain
        return self._result()

    def _loop(self, end: float) -> None:
        heap = self._heap
        while heap:
            when, _, code, data = heap[0]
            if when > end:
                break
            heapq.heappop(heap)
            self.now = when
            if code == DONE:
                self._done(data)
            elif code == ARRIVE:
                self._arrive()
            elif code == WINDOW:
                if data == self._window_gen and self._buffer:
                    self._dispatch()
            elif code == REAPPEAR:
                queue, request = data
                queue.invisible -= 1
                queue.high_held -= request.high
                request.state = WAITING
                queue.lane(request.high).appendleft(request)
                self._start(queue)
            elif code == LOSE:
                d = data
                self._lose(self.queues[d.region], d.lose, d.loss)
            elif code == RESTORE:
                region, count = data
                self._restore(self.queues[region], count)
            elif code == RESCUE:
                self._rescue()
                self._push(when + RESCUE_INTERVAL, RESCUE, None)
            elif code == SAMPLE:
                self._sample()
            elif code == SPOT:
                self._spot(data)
            elif code == RETRY:
                self._buffer.append(data)
                self._dispatch()

    def _push(self, when: float, code: int, data: Any) -> None:
        heapq.heappush(self._heap, (when, next(self._seq), code, data))

    # -- arrivals and the distributor ----------------------------------------------------------

    def _next_arrival(self, now: float) -> float:
        """Poisson arrivals; bursts by thinning at the peak rate."""
        sc = self.scenario
        while True:
            now += self._arrivals.expovariate(self._peak_rate)
            if not sc.bursts:
                return now
            factor = next((b.factor for b in sc.bursts if b.start <= now < b.end), 1.0)
            if self._arrivals.random() * self._peak_rate <= sc.arrival_rate * factor:
                return now

    def _new_request(self, now: float, measured: bool) -> Request:
        sc = self.scenario
        # Drawn from their own stream, in arrival order: the same for every strategy.
        high = sc.high_share > 0 and self._mix.random() < sc.high_share
        permitted = self._everywhere
        if sc.mix:
            point, kind = self._mix.random() * sum(c.share for c in sc.mix), sc.mix[-1]
            for candidate in sc.mix:
                point -= candidate.share
                if point < 0:
                    kind = candidate
                    break
            permitted = self._placement.permitted(kind.model, kind.allowed_regions, self.queues)
        request = Request(len(self._requests), now, measured, high=high, permitted=permitted)
        request.service = self._work.lognormvariate(sc.service_mu, sc.service_sigma)
        self._requests.append(request)
        return request

    def _need(self, request: Request) -> Need:
        key = (request.permitted, request.high)
        need = self._needs.get(key)
        if need is None:
            need = self._needs[key] = Need(*key)
        return need

    def _arrive(self) -> None:
        sc, now = self.scenario, self.now
        request = self._new_request(now, sc.warmup <= now < sc.horizon)
        if request.permitted:
            self._buffer.append(request)
        else:  # the distributor dead-letters it with NO_PERMITTED_REGION
            request.state = DEAD_LETTERED
            self.dead_lettered += 1
        if len(self._buffer) >= sc.batch_size:
            self._dispatch()
        elif len(self._buffer) == 1 and request.permitted:
            self._push(now + sc.batching_window, WINDOW, self._window_gen)
        following = self._next_arrival(now)
        if following < sc.horizon:
            self._push(following, ARRIVE, None)

    def _dispatch(self) -> None:
        batch, self._buffer = self._buffer, []
        self._window_gen += 1
        chooser = self._containers[self._lambda.randrange(len(self._containers))]
        regions = chooser.choose([self._need(request) for request in batch])
        counts: dict[tuple[str, bool], int] = {}
        for request, region in zip(batch, regions, strict=True):
            if region is None:
                # Pushed back to the master queue: its wait counts from this first attempt,
                # as it would had it waited in a region queue (the oracle pushes back work
                # whose only permitted regions have no consumer).
                if math.isnan(request.entered):
                    request.entered = self.now
                self._push(self.now + PUSHBACK_DELAY, RETRY, request)
                continue
            queue = self.queues[region]
            if request.measured:
                self.sent[region] += 1
            if queue.alive == 0 and self.now >= self.scenario.warmup:
                self.routed_dead += 1
            self._count_before_loss(region)
            self._enqueue(queue, request)
            counts[region, request.high] = counts.get((region, request.high), 0) + 1
        for (region, high), count in counts.items():
            chooser.forwarded(region, count, high)

    def _count_before_loss(self, region: str) -> None:
        lost = next((d for d in self.scenario.disruptions if d.region == region), None)
        if lost is not None and self.scenario.warmup <= self.now < lost.at:
            self._sent_before_loss += 1

    def _enqueue(self, queue: RegionQueue, request: Request) -> None:
        if math.isnan(request.entered):
            request.entered = self.now
        request.region = queue.name
        request.queued_at = self.now
        request.state = WAITING
        if queue.name not in request.permitted:
            self.sent_outside += 1
        queue.lane(request.high).append(request)
        self._start(queue)

    # -- consumers -----------------------------------------------------------------------------

    def _start(self, queue: RegionQueue) -> None:
        while queue.idle and (queue.waiting or queue.high_waiting):
            consumer = queue.idle.pop()
            request = next_request(queue, consumer)
            assert request is not None
            if queue.name not in request.permitted:
                self.ran_outside += 1
            consumer.holding = request
            queue.busy += 1
            queue.high_held += request.high
            request.started = self.now
            request.state = SERVING
            self._push(self.now + request.service, DONE, (queue, consumer, consumer.epoch))

    def _done(self, data: tuple[RegionQueue, Consumer, int]) -> None:
        queue, consumer, epoch = data
        if consumer.epoch != epoch:
            return  # it died while serving: the message was handed back or hidden
        request = consumer.holding
        consumer.holding = None
        queue.busy -= 1
        queue.high_held -= request.high
        request.state = DONE_STATE
        self.completed += 1
        queue.idle.append(consumer)
        self._start(queue)

    def _hide(self, queue: RegionQueue, request: Request, seconds: float) -> None:
        queue.invisible += 1
        queue.high_held += request.high
        request.state = INVISIBLE
        self._push(self.now + seconds, REAPPEAR, (queue, request))

    def _lose(self, queue: RegionQueue, count: int, loss: Loss) -> None:
        sc = self.scenario
        alive = [c for c in queue.consumers if c.alive]
        for consumer in self._chaos.sample(alive, min(count, len(alive))):
            consumer.alive = False
            consumer.epoch += 1
            queue.alive -= 1
            if consumer.holding is None:
                queue.idle.remove(consumer)
            else:
                request, consumer.holding = consumer.holding, None
                queue.busy -= 1
                queue.high_held -= request.high
                if loss is Loss.CLEAN:
                    request.state = WAITING
                    queue.lane(request.high).appendleft(request)
                else:
                    self._hide(queue, request, sc.invisible_for)
            if loss is Loss.HARD:
                queue.presence_expiry.append(
                    self.now + sc.lease - self._chaos.random() * sc.heartbeat
                )
        queue.consumers = [c for c in queue.consumers if c.alive]
        self._start(queue)

    def _restore(self, queue: RegionQueue, count: int) -> None:
        for _ in range(count):
            consumer = Consumer()
            queue.consumers.append(consumer)
            queue.idle.append(consumer)
            queue.alive += 1
        self._start(queue)

    def _spot(self, data: tuple[str, int]) -> None:
        """An interruption; the first of a wave schedules the wave's others, and the next wave."""
        region, follows = data
        spot = self.scenario.spot
        assert spot is not None
        queue = self.queues[region]
        count = max(1, round(self.scenario.capacities[region] / 4))
        self._lose(queue, count, Loss.HARD)
        self._push(self.now + spot.replaced_after, RESTORE, (region, count))
        if follows == 0:
            after = self.now
            for left in range(spot.wave - 1, 0, -1):
                after += self._chaos.expovariate(1 / spot.wave_gap)
                self._push(after, SPOT, (region, left))
            self._push(self.now + self._chaos.expovariate(1 / spot.mean_gap), SPOT, (region, 0))

    # -- the rescue function -------------------------------------------------------------------

    def _rescue(self) -> None:
        """One run of the rescue function: observe every queue, judge, move (a budget)."""
        observations: dict[str, QueueObservation] = {}
        for name, queue in self.queues.items():
            oldest = min(
                (lane[0].queued_at for lane in (queue.waiting, queue.high_waiting) if lane),
                default=self.now,
            )
            observations[name] = QueueObservation(
                visible=queue.visible,
                in_flight=queue.in_flight,
                oldest_age=self.now - oldest,
                live_capacity=queue.live_capacity(self.now),
            )
            self._stalled_since[name] = track_stall(
                self._stalled_since[name], observations[name], self.now
            )
        stranded = [
            name
            for name, observation in observations.items()
            if self.rule.stranded(observation, self._stalled_since[name], self.now)
        ]
        loads = {
            name: replace(region_load(name, o), high_visible=len(self.queues[name].high_waiting))
            for name, o in observations.items()
        }
        budget = MAX_MESSAGES
        for name in stranded:
            queue = self.queues[name]
            moving: list[Request] = []
            for lane in (queue.high_waiting, queue.waiting):
                while lane and len(moving) < budget:
                    moving.append(lane.popleft())
            budget -= len(moving)
            groups: dict[Need, list[Request]] = {}
            for request in moving:
                groups.setdefault(self._need(request), []).append(request)
            for need, requests in groups.items():
                targets = self._rescue_targets(name, loads, need, len(requests), stranded)
                for request, region in zip(requests, targets, strict=True):
                    if region is None:  # nowhere permitted to go: back, as after its timeout
                        request.state = WAITING
                        queue.lane(request.high).append(request)
                        continue
                    load = loads[region]
                    loads[region] = load.plus_high(1) if need.high else load.plus(1)
                    self.rescued += 1
                    self._enqueue(self.queues[region], request)

    def _rescue_targets(
        self,
        source: str,
        loads: Mapping[str, RegionLoad],
        need: Need,
        count: int,
        avoid: list[str],
    ) -> list[str | None]:
        """Where the rescue function sends `count` messages of one kind: standard ones by
        `rescue_targets`, high-priority ones to the shortest high-priority wait among the same
        candidates (as `orchestrator.rescue.targets.TargetPicker` does); both only among the
        messages' permitted regions."""
        if not need.high:
            return rescue_targets(
                source,
                list(loads.values()),
                count,
                strategy=self._rescue_strategy,
                rng=self._rescue_rng,
                max_depth=MAX_DEPTH,
                avoid=avoid,
                permitted=need.permitted,
            )
        candidates = [
            load
            for load in loads.values()
            if load.region != source
            and load.region not in avoid
            and load.region in need.permitted
            and not looks_stalled(load)
        ]
        pool = [load for load in candidates if has_consumer_proof(load)] or candidates
        if not pool:
            return [None] * count
        return assign_shortest_wait(pool, count, MAX_DEPTH, self._rescue_rng)

    def _sample(self) -> None:
        self.backlog_times.append(self.now)
        for name, queue in self.queues.items():
            self.backlog[name].append(queue.visible)
        if self.now + SAMPLE_EVERY <= self.scenario.horizon + self.scenario.drain:
            self._push(self.now + SAMPLE_EVERY, SAMPLE, None)

    # -- results -------------------------------------------------------------------------------

    def _result(self) -> RunResult:
        sc, end = self.scenario, self.now
        waits: list[float] = []
        high_waits: list[float] = []
        standard_waits: list[float] = []
        for request in self._requests:
            if not request.measured:
                continue
            if request.state in (SERVING, DONE_STATE):
                wait = request.started - request.entered
            elif not math.isnan(request.entered):
                wait = end - request.entered  # not served yet: counted as it stands
            else:
                continue
            waits.append(wait)
            (high_waits if request.high else standard_waits).append(wait)
        dead = {name for name, queue in self.queues.items() if queue.alive == 0}
        stranded = sum(
            1
            for request in self._requests
            if request.state in (WAITING, INVISIBLE) and request.region in dead
        )
        in_system = sum(q.visible + q.busy + q.invisible for q in self.queues.values())
        in_system += len(self._buffer) + sum(1 for e in self._heap if e[2] == RETRY)
        total_sent = sum(self.sent.values()) or 1
        lost = next(iter(sc.disruptions), None)
        lost_rate = 0.0
        if lost is not None and lost.at > sc.warmup:
            lost_rate = self._sent_before_loss / (lost.at - sc.warmup)
        return RunResult(
            scenario=sc.name,
            contender=self.contender.name,
            ttl=self.ttl,
            seed=self.seed,
            mean_wait=sum(waits) / len(waits) if waits else math.nan,
            p99_wait=percentile(waits, 99),
            measured=len(waits),
            stranded=stranded,
            unfinished=sum(1 for r in self._requests if r.state not in (DONE_STATE, DEAD_LETTERED)),
            routed_dead=self.routed_dead,
            rescued=self.rescued,
            shares={name: count / total_sent for name, count in self.sent.items()},
            created=len(self._requests),
            completed=self.completed,
            in_system=in_system,
            lost_rate_before=lost_rate,
            high_mean_wait=_mean(high_waits),
            high_p99_wait=percentile(high_waits, 99) if high_waits else math.nan,
            standard_mean_wait=_mean(standard_waits),
            standard_p99_wait=percentile(standard_waits, 99) if standard_waits else math.nan,
            high_measured=len(high_waits),
            dead_lettered=self.dead_lettered,
            sent_outside=self.sent_outside,
            ran_outside=self.ran_outside,
            backlog_times=self.backlog_times,
            backlog=self.backlog,
        )


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan
