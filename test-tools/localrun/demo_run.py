"""One run of the whole pipeline on this machine (`orchestrator demo`, `localrun.demo`).

`run_demo(options, console)` starts a moto server with the stack the templates declare, the
worker processes, the real distributor behind the Lambda-like poller and the real rescue on
its timer; sends the planned traffic; waits until everything is done; reads back what the
run left (records, results, notifications, dead letters, the model's execution logs) and
audits it (`localrun.audit`). Progress lines go to `console`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from localrun.audit import audit
from localrun.collect import collect, final_depths, watched_queues
from localrun.demo_options import DemoOptions
from localrun.depths import DepthSampler
from localrun.distributor import DistributionTally, distributor_handler
from localrun.models import OK, PERMANENT_CODE
from localrun.poller import SqsPoller
from localrun.rescue_timer import RescueTimer
from localrun.stack import RunningStack, event_source_config, running_stack
from localrun.stackfile import claim_stack_file, release_stack_file
from localrun.summary import DEAD_LETTERS, DemoResult
from localrun.traffic import plan_traffic, send_traffic
from localrun.workers import WorkerFleet
from orchestrator.core.sqs import read_depth

QUIET_SECONDS = 3.0  # queues empty this long with work missing: it is lost, stop waiting


class _Progress:
    def __init__(self, console: TextIO, every: float) -> None:
        self._console = console
        self._every = every
        self._next = 0.0

    def maybe(self, elapsed: float, line: str) -> None:
        if elapsed >= self._next:
            self._next = elapsed + self._every
            print(f"  {elapsed:5.1f}s  {line}", file=self._console, flush=True)


@dataclass
class _Pipeline:
    """One run's moving parts, in the order they start."""

    options: DemoOptions
    local: RunningStack
    fleet: WorkerFleet
    environ: dict[str, str]
    tally: DistributionTally
    handler: Any
    mapping: Any
    rescue: RescueTimer
    sampler: DepthSampler
    poller: SqsPoller
    stopped: dict[str, float] = field(default_factory=dict)
    sending: float = 0.0
    first_send_at: float = 0.0

    @classmethod
    def assemble(cls, options: DemoOptions, local: RunningStack) -> _Pipeline:
        stack = local.stack
        fleet = WorkerFleet(
            stack, options.capacities, options.log_path("workers"), options.workers
        ).start()  # they load while the rest starts
        environ = stack.distributor_environ(CACHE_TTL=f"{options.cache_ttl:g}")
        tally = DistributionTally()
        handler = distributor_handler(environ, local.session, tally)
        mapping = event_source_config(stack, options.pollers)
        rescue = RescueTimer(
            stack.rescue_environ(
                RESCUE_STALL_SECONDS=f"{options.rescue_stall:g}", RESCUE_MAX_AGE_SECONDS="0"
            ),
            local.session,
            interval=options.rescue_every or 1.0,
            function_name=stack.spec.rescue.name if stack.spec.rescue else "rescue",
            log=options.log_path("rescue.log"),
        )
        sampler = DepthSampler(watched_queues(local), options.sample_interval)
        poller = SqsPoller(local.sqs[stack.primary_region], mapping, handler)
        return cls(options, local, fleet, environ, tally, handler, mapping, rescue, sampler, poller)

    def describe(self) -> str:
        options, stack, w, mapping = (
            self.options,
            self.local.stack,
            self.options.workers,
            self.mapping,
        )
        rescue = (
            f"every {options.rescue_every:g} s (deployed: every minute), RESCUE_STALL_SECONDS "
            f"{options.rescue_stall:g}"
            if options.rescue_every > 0
            else "off"
        )
        return (
            f"local stack at {stack.endpoint_url} (moto), resources from infrastructure/*.yaml"
            + (
                ": a standard and a high-priority queue per region\n"
                if stack.high_priority_queues
                else "\n"
            )
            + f"distributor {stack.spec.function.handler}: {mapping.pollers} pollers, "
            f"batch {mapping.batch_size}, window {mapping.batching_window:g} s, "
            f"CACHE_TTL {options.cache_ttl:g} s, routing {self.environ.get('ROUTING_STRATEGY')} "
            "(live capacity from the workers' presence)\n"
            f"rescue {stack.spec.rescue.handler if stack.spec.rescue else '-'}: {rescue}\n"
            "GPU workers (orchestrator worker, one process per GPU): "
            + ", ".join(f"{r} x{n}" for r, n in options.capacities.items())
            + f"; batch {w.batch_size}, max wait {w.max_wait:g} s; simulated model "
            f"{w.call_ms:g} ms per call + {w.item_ms:g} ms per request"
        )

    def run(self, console: TextIO, began: float) -> tuple[list[Any], float, float | None]:
        """Start, send, wait: (what was sent, seconds sending, seconds until all done)."""
        options, stack = self.options, self.local.stack
        self.fleet.wait_ready()
        print(f"  workers ready {time.monotonic() - began:.1f} s after the start", file=console)
        plan = plan_traffic(
            options.count,
            options.duplicates,
            options.malformed,
            options.seed,
            f"demo{options.seed}",
            retryable=options.retryable,
            permanent=options.permanent,
            topic=stack.callback_topic_arn,
            high_share=options.high_share,
        )
        self.sampler.start()
        self.poller.start()
        if options.rescue_every > 0:
            self.rescue.start()
        self.sending, self.first_send_at = time.monotonic(), time.time()
        stopper = self._schedule_stop()
        try:
            sent = send_traffic(
                self.local.sqs[stack.primary_region],
                stack.master_queue_url,
                plan,
                rate=options.rate,
            )
            send_seconds = time.monotonic() - self.sending
            print(f"  sent {len(sent)} messages in {send_seconds:.1f} s", file=console, flush=True)
            expected = {m.request_id for m in plan if m.kind == "valid" and m.request_id}
            done = _wait(self, expected, _Progress(console, options.progress_every))
        finally:
            if stopper is not None:
                stopper.cancel()
                stopper.join()
        return sent, send_seconds, done

    def _schedule_stop(self) -> threading.Timer | None:
        if self.options.stop is None:
            return None
        region, after = self.options.stop
        self.stopped[region] = after
        stopper = threading.Timer(after, self.fleet.stop, args=([region],))
        stopper.start()
        return stopper

    def shut_down(self) -> None:
        """Everything but the workers, which get SIGTERM and drain meanwhile."""
        self.poller.stop()
        self.rescue.stop()
        self.sampler.stop()
        self.fleet.signal_stop()

    def fill(self, result: DemoResult) -> None:
        """What the pipeline itself counted."""
        options, stack, mapping = self.options, self.local.stack, self.mapping
        result.settings = {
            "endpoint": stack.endpoint_url,
            "function": stack.spec.function.name,
            "pollers": mapping.pollers,
            "batch_size": mapping.batch_size,
            "batching_window": mapping.batching_window,
            "cache_ttl": options.cache_ttl,
            "routing": self.environ.get("ROUTING_STRATEGY", ""),
            "rate": options.rate,
            "seed": options.seed,
            "worker_batch": options.workers.batch_size,
            "call_ms": options.workers.call_ms,
            "item_ms": options.workers.item_ms,
            "rescue_every": options.rescue_every,
            "high_share": options.high_share,
            "send_started_at": round(self.sending - self.sampler.started, 3),
            "logs": [
                str(options.log_path("distributor.log")),
                str(options.log_path("rescue.log")),
                str(options.log_path("workers")) + "/",
            ],
        }
        result.dispositions, result.forwarded = self.tally.snapshot()
        result.forwarded_to = self.tally.forwarded_to()
        result.forwarded_high = self.tally.forwarded_high()
        result.invocations = len(self.poller.invocations)
        result.failed_invocations = sum(1 for i in self.poller.invocations if i.error)
        result.cold_starts = self.handler.cold_starts
        result.rescue_runs = self.rescue.runs
        result.stopped, result.first_send_at = self.stopped, self.first_send_at
        result.worker_exits = self.fleet.exit_codes()
        result.thread_failures = [
            f"{what}: {failure}"
            for what, failure in (
                ("pollers", _named(self.poller.failure)),
                ("workers", self.fleet.failure),
                ("rescue", _named(self.rescue.failure)),
                ("depth sampler", _named(self.sampler.failure)),
            )
            if failure is not None
        ]


def run_demo(options: DemoOptions, console: TextIO) -> DemoResult:
    """Run the pipeline; the audit is in the result's `checks`. `WorkerFailure` when a
    worker process cannot start."""
    began = time.monotonic()
    with running_stack(name_suffix=options.name_suffix, regions=list(options.capacities)) as local:
        pipeline = _Pipeline.assemble(options, local)
        advertised = local.stack.advertised(options.stack_file) if options.stack_file else None
        claimed = advertised is not None and claim_stack_file(advertised)
        print(pipeline.describe(), file=console, flush=True)
        try:
            sent, send_seconds, done_seconds = pipeline.run(console, began)
        finally:
            pipeline.shut_down()
            if claimed and advertised is not None:
                release_stack_file(advertised)
        result = collect(options, local, pipeline.fleet, sent, pipeline.sampler.samples)
        pipeline.fleet.stop()
        result.final_depths = final_depths(local)
    pipeline.fill(result)
    result.send_seconds, result.done_seconds = send_seconds, done_seconds
    result.total_seconds = time.monotonic() - began
    result.checks = audit(result)
    return result


def _named(failure: BaseException | None) -> str | None:
    return None if failure is None else f"{type(failure).__name__}: {failure}"


def _wait(pipeline: _Pipeline, expected: set[str], progress: _Progress) -> float | None:
    """Seconds from the first send until everything is done; None on timeout or loss. The
    depths are the sampler's (every read is a request moto must answer)."""
    options, stack = pipeline.options, pipeline.local.stack
    notifications = (pipeline.local.sqs[stack.primary_region], stack.notification_queue_url)
    quiet_since: float | None = None
    while True:
        time.sleep(options.sample_interval)
        now = time.monotonic()
        latest = pipeline.sampler.latest()
        if latest is None:
            continue
        depths = latest.depths
        ran = pipeline.fleet.executions()
        done = {e.request_id for e in ran if e.outcome in (OK, PERMANENT_CODE)} & expected
        busy_queues = sum(d.total for name, d in depths.items() if name != DEAD_LETTERS)
        dead = depths[DEAD_LETTERS].visible
        noted = read_depth(*notifications).visible if notifications[1] else len(expected)
        queues = " · ".join(
            f"{name} {d.visible}+{d.in_flight}"
            for name, d in depths.items()
            if name != DEAD_LETTERS
        )
        progress.maybe(
            now - pipeline.sending,
            f"done {len(done)}/{len(expected)} · {queues} · dead-letter {dead} · notified {noted}",
        )
        if (
            done == expected
            and busy_queues == 0
            and dead >= options.malformed
            and noted >= len(expected)
        ):
            return now - pipeline.sending
        if pipeline.poller.failure or pipeline.fleet.failure or pipeline.rescue.failure:
            return None  # nothing more will move; the summary names the defect
        if busy_queues == 0 and pipeline.poller.busy == 0:
            quiet_since = quiet_since or now
            if now - quiet_since > QUIET_SECONDS:
                return None
        else:
            quiet_since = None
        if now - pipeline.sending > options.timeout:
            return None
