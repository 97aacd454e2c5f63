"""Lambda entry point of the rescue function: the composition root.

Run by an EventBridge schedule every minute (the event's content is not used). The
application owns the structured Logger and the EMF Metrics; the library modules log through
`logging.getLogger(__name__)`. Clients and the thread pool are built on a container's first
invocation (`build_rescue`), from the environment, and reused after it.
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

from orchestrator.core.aws import CLIENT_CONFIG, MAX_POOL_CONNECTIONS, dynamodb_client, sqs_clients
from orchestrator.core.presence import live_capacity
from orchestrator.rescue.config import Settings
from orchestrator.rescue.lanes import lane_urls
from orchestrator.rescue.memory import StallMemory
from orchestrator.rescue.mover import Mover
from orchestrator.rescue.observe import AgeReader, CloudWatchAges, Observer, PresenceReader
from orchestrator.rescue.records import RequestRecords
from orchestrator.rescue.rescue import Rescue, RunReport

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "rescue")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "InferenceOrchestrator")

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)


class App:
    """A rescue with its Lambda-facing behaviour: logs, metrics, the returned summary."""

    def __init__(self, rescue: Rescue, settings: Settings) -> None:
        self.rescue = rescue
        self.settings = settings

    def handle(self, event: Mapping[str, Any] | None = None, context: Any = None) -> dict[str, Any]:
        try:
            report = self.rescue.run(_time_left(context))
        except Exception:
            # A defect: fail the run loudly. Messages received and not sent come back to
            # their queue after the visibility timeout; the next run starts afresh.
            logger.exception("rescue run failed")
            raise
        _log_and_measure(report)
        return report.as_dict()


def build_rescue(
    environ: Mapping[str, str] | None = None,
    session: Any = None,
    clock: Callable[[], float] = time.time,
    ages: AgeReader | None = None,
) -> App:
    """Read the configuration (raising `ConfigError` naming a bad variable) and build clients.

    `session` is a boto3 Session (or anything with its `client()`); `clock` gives wall-clock
    seconds; `ages` replaces the CloudWatch reader of the oldest-message age (tests).
    """
    settings = Settings.from_environ(os.environ if environ is None else environ)
    logging_utils.copy_config_to_registered_loggers(
        source_logger=logger, log_level=settings.log_level, include={"orchestrator"}
    )
    logger.setLevel(settings.log_level)
    session = session or boto3.session.Session()
    regions = sorted(settings.region_queues)
    sqs = sqs_clients(session, regions)
    dynamodb = dynamodb_client(session, settings.primary_region)
    executor = ThreadPoolExecutor(max_workers=MAX_POOL_CONNECTIONS, thread_name_prefix="rescue")
    if ages is None and settings.max_age_seconds is not None:
        cloudwatch = {
            region: session.client("cloudwatch", region_name=region, config=CLIENT_CONFIG)
            for region in regions
        }
        lanes = lane_urls(settings.region_queues, settings.high_priority_queues)
        ages = CloudWatchAges({lane.key: url for lane, url in lanes.items()}, cloudwatch)
    presence = None
    if settings.workers_table_name is not None:
        presence = _presence_reader(dynamodb, settings.workers_table_name, regions)
    rescue = Rescue(
        memory=StallMemory(settings.idempotency_table_name, dynamodb),
        observer=Observer(
            settings.region_queues,
            sqs,
            executor,
            ages,
            presence,
            high_queue_urls=settings.high_priority_queues,
        ),
        mover=Mover(
            settings.region_queues,
            sqs,
            RequestRecords(settings.idempotency_table_name, dynamodb),
            settings.visibility_timeout,
            clock,
            high_queue_urls=settings.high_priority_queues,
            placement=settings.placement,
        ),
        executor=executor,
        thresholds=settings.thresholds,
        strategy=settings.routing_strategy,
        max_depth=settings.max_queue_depth_threshold,
        max_messages=settings.max_messages,
        clock=clock,
    )
    return App(rescue, settings)


_app: App | None = None


@metrics.log_metrics(raise_on_empty_metrics=False)
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global _app
    if _app is None:
        _app = build_rescue()
        metrics.add_metric(name="ColdStart", unit=MetricUnit.Count, value=1)
    return _app.handle(event, context)


def _presence_reader(dynamodb: Any, table: str, regions: list[str]) -> PresenceReader:
    def read(now: float) -> Mapping[str, float]:
        capacities = live_capacity(dynamodb, table, regions, now)
        return {region: float(capacity) for region, capacity in capacities.items()}

    return read


def _time_left(context: Any) -> Callable[[], float]:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(remaining):
        return lambda: float("inf")
    return lambda: remaining() / 1000


def _log_and_measure(report: RunReport) -> None:
    summary = report.as_dict()
    log = logger.warning if report.stranded or report.skipped else logger.info
    log("rescue run", extra={"rescue": summary})
    if is_metrics_disabled():
        return
    metrics.add_metric(name="StrandedRegions", unit=MetricUnit.Count, value=len(report.stranded))
    metrics.add_metric(name="Rescued", unit=MetricUnit.Count, value=report.moved)
    superseded = sum(o.superseded for o in report.outcomes.values())
    handed_back = sum(o.handed_back + o.left_hidden for o in report.outcomes.values())
    metrics.add_metric(name="RescueSuperseded", unit=MetricUnit.Count, value=superseded)
    metrics.add_metric(name="RescueNotMoved", unit=MetricUnit.Count, value=handed_back)
    for region, outcome in report.outcomes.items():
        with single_metric(
            name="RescuedFrom",
            unit=MetricUnit.Count,
            value=outcome.moved_total + outcome.unrecorded,
            namespace=NAMESPACE,
        ) as metric:
            metric.add_dimension(name="region", value=region)
