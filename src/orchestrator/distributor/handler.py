"""Lambda entry point: the composition root of the distributor.

The application owns the structured Logger and the EMF Metrics; the library modules log
through `logging.getLogger(__name__)`. Clients and the thread pool are built on the first
invocation of a container (`build_distributor`), from the environment, and reused after it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import utils as logging_utils
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

from orchestrator.core.aws import MAX_POOL_CONNECTIONS, dynamodb_client, sqs_clients
from orchestrator.core.dead_letter import DeadLetterQueue
from orchestrator.core.depth import DepthCache, PresenceReader
from orchestrator.core.health import RegionHealth
from orchestrator.core.presence import live_capacity
from orchestrator.distributor.config import Settings
from orchestrator.distributor.distributor import Distributor
from orchestrator.distributor.forwarder import Forwarder
from orchestrator.distributor.ledger import Ledger
from orchestrator.distributor.outcome import BatchReport, Disposition

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "distributor")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "InferenceOrchestrator")
# Without a Lambda context (local tools, tests) the lease covers Lambda's longest timeout.
DEFAULT_REMAINING_SECONDS = 900.0
LEASE_MARGIN_SECONDS = 10.0

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)


class App:
    """A distributor with its Lambda-facing behaviour: response shape, logs and metrics."""

    def __init__(
        self,
        distributor: Distributor,
        settings: Settings,
        tracer: Any = None,
        on_report: Callable[[BatchReport], None] | None = None,
    ) -> None:
        self.distributor = distributor
        self.settings = settings
        self._tracer = tracer
        self._on_report = on_report

    def process_event(self, event: Mapping[str, Any], context: Any = None) -> BatchReport:
        """Distribute an SQS event's records; never raises for a per-record problem."""
        records = event.get("Records") or []
        if self._tracer is not None:
            with self._tracer.provider.in_subsegment("## distribute"):
                report = self.distributor.process(records, _lease_seconds(context))
        else:
            report = self.distributor.process(records, _lease_seconds(context))
        if self._on_report is not None:
            self._on_report(report)
        return report

    def handle(self, event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
        started = time.perf_counter()
        records = event.get("Records") or []
        try:
            report = self.process_event(event, context)
        except Exception:
            # A defect, not a bad record: hand every record back rather than lose any.
            logger.exception("batch failed as a whole; every record will be retried")
            metrics.add_metric(name="Failed", unit=MetricUnit.Count, value=len(records))
            return {
                "batchItemFailures": [{"itemIdentifier": r.get("messageId", "")} for r in records]
            }
        elapsed_ms = (time.perf_counter() - started) * 1000
        _log_and_measure(report, elapsed_ms)
        return {"batchItemFailures": [{"itemIdentifier": mid} for mid in report.failed_message_ids]}


def build_distributor(
    environ: Mapping[str, str] | None = None,
    session: boto3.session.Session | None = None,
    clock: Callable[[], float] = time.time,
    on_report: Callable[[BatchReport], None] | None = None,
) -> App:
    """Read the configuration (raising `ConfigError` naming a bad variable) and build clients.

    `session` is a boto3 Session (or anything with its `client()`); `clock` gives wall-clock
    seconds for leases and TTLs; `on_report` receives each batch's per-record outcomes (the
    local tools use it to show where every message went).
    """
    settings = Settings.from_environ(os.environ if environ is None else environ)
    logging_utils.copy_config_to_registered_loggers(
        source_logger=logger, log_level=settings.log_level, include={"orchestrator"}
    )
    logger.setLevel(settings.log_level)
    tracer = None
    if settings.enable_tracing:
        from aws_lambda_powertools import Tracer  # about 260 ms of cold start: only on demand

        tracer = Tracer(service=SERVICE)
    session = session or boto3.session.Session()
    regions = {*settings.region_queues, settings.primary_region}
    sqs = sqs_clients(session, sorted(regions))
    executor = ThreadPoolExecutor(
        max_workers=MAX_POOL_CONNECTIONS, thread_name_prefix="distributor"
    )
    health = RegionHealth(settings.region_cooldown_seconds)
    distributor = Distributor(
        ledger=Ledger(
            settings.idempotency_table_name,
            dynamodb_client(session, settings.primary_region),
            settings.idempotency_ttl_days,
            clock,
        ),
        depths=DepthCache(
            settings.region_queues,
            sqs,
            settings.cache_ttl,
            executor,
            presence=_presence_reader(session, settings, clock),
            high_queue_urls=settings.high_priority_queues,
        ),
        forwarder=Forwarder(settings.region_queues, sqs, executor, settings.high_priority_queues),
        dead_letters=DeadLetterQueue(settings.dead_letter_queue_url, sqs[settings.primary_region]),
        health=health,
        executor=executor,
        strategy=settings.routing_strategy,
        max_depth=settings.max_queue_depth_threshold,
        clock=clock,
        placement=settings.placement,
    )
    return App(distributor, settings, tracer, on_report)


def _presence_reader(
    session: Any, settings: Settings, clock: Callable[[], float]
) -> PresenceReader | None:
    """Live capacity per region from the workers' presence table, when one is configured."""
    table = settings.workers_table_name
    if table is None:
        return None
    client = dynamodb_client(session, settings.primary_region)
    regions = sorted(settings.region_queues)

    def read() -> dict[str, float]:
        return {r: float(c) for r, c in live_capacity(client, table, regions, clock()).items()}

    return read


_app: App | None = None


@metrics.log_metrics(raise_on_empty_metrics=False)
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global _app
    if _app is None:
        _app = build_distributor()
        metrics.add_metric(name="ColdStart", unit=MetricUnit.Count, value=1)
    return _app.handle(event, context)


def _lease_seconds(context: Any) -> float:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    seconds = remaining() / 1000 if callable(remaining) else DEFAULT_REMAINING_SECONDS
    return max(seconds, 0.0) + LEASE_MARGIN_SECONDS


def _log_and_measure(report: BatchReport, elapsed_ms: float) -> None:
    counts = report.counts()
    for outcome in report.outcomes.values():
        if outcome.disposition is Disposition.FORWARDED:
            continue
        log = logger.warning if outcome.disposition is Disposition.FAILED else logger.info
        log(
            f"record {outcome.disposition.value}",
            extra={
                "message_id": outcome.message_id,
                "request_id": outcome.request_id,
                "reason": outcome.reason,
                "detail": outcome.detail,
                "region": outcome.region,
            },
        )
    per_region = report.forwarded_per_region()
    logger.info(
        "batch distributed",
        extra={
            "counts": dict(counts),
            "forwarded_per_region": dict(per_region),
            "elapsed_ms": round(elapsed_ms, 1),
        },
    )
    if is_metrics_disabled():
        return
    for region, count in per_region.items():
        with single_metric(
            name="Forwarded", unit=MetricUnit.Count, value=count, namespace=NAMESPACE
        ) as metric:
            metric.add_dimension(name="region", value=region)
    dead = report.with_disposition(Disposition.DEAD_LETTERED)
    conflicts = sum(1 for o in dead if o.reason == "PAYLOAD_CONFLICT")
    not_permitted = sum(1 for o in dead if o.reason == "NO_PERMITTED_REGION")
    forwarded = report.with_disposition(Disposition.FORWARDED)
    rerouted = sum(1 for o in forwarded if o.attempt == 2)
    metrics.add_metric(name="Duplicates", unit=MetricUnit.Count, value=counts["duplicate"])
    metrics.add_metric(
        name="Invalid", unit=MetricUnit.Count, value=len(dead) - conflicts - not_permitted
    )
    metrics.add_metric(name="Conflicts", unit=MetricUnit.Count, value=conflicts)
    metrics.add_metric(name="NoPermittedRegion", unit=MetricUnit.Count, value=not_permitted)
    metrics.add_metric(
        name="ForwardedHighPriority",
        unit=MetricUnit.Count,
        value=sum(1 for o in forwarded if o.high_priority),
    )
    metrics.add_metric(name="Failed", unit=MetricUnit.Count, value=counts["failed"])
    metrics.add_metric(name="Rerouted", unit=MetricUnit.Count, value=rerouted)
    metrics.add_metric(name="BatchLatency", unit=MetricUnit.Milliseconds, value=elapsed_ms)
