"""One look at every region queue: depth (SQS), live capacity (worker presence, optional) and
the age of the oldest message (CloudWatch, only for queues with messages waiting).

Every queue of every region (its lanes: standard and high-priority) is observed, keyed by its
lane key (`orchestrator.rescue.lanes`). The same workers consume both of a region's queues,
so each lane's in-flight count is the region's total: a region busy with high-priority work
is not "nothing in flight" for its standard queue, nor the other way round.

Every read of every region runs in parallel. A region with a queue whose depth cannot be read
is unknown for this run (None for each of its lanes): it is neither judged stranded nor sent
rescued work. A failed presence or age read only leaves that figure unknown.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from orchestrator.core.errors import AWS_ERRORS, AwsUnavailableError, one_line
from orchestrator.core.sqs import read_depth
from orchestrator.core.stranding import QueueObservation
from orchestrator.rescue.lanes import Lane, lane_urls, region_of

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient

logger = logging.getLogger(__name__)

PresenceReader = Callable[[float], Mapping[str, float]]
"""``(now) -> {region: capacity of its live workers}``; a region left out has none."""
AgeReader = Callable[[str, float], float | None]
"""``(lane key, now) -> seconds since its oldest message was sent``, None when unknown."""

AGE_METRIC = "ApproximateAgeOfOldestMessage"
AGE_LOOKBACK_SECONDS = 600
"""SQS publishes the metric every minute, a few minutes late: look this far back."""


class CloudWatchAges:
    """`ApproximateAgeOfOldestMessage` of each region queue, from CloudWatch in its region.

    One GetMetricData call per queue asked, for one metric. The latest datapoint is used as
    it is (minutes old, so the true age is at least that: the rule fires late, never early).
    The figure counts messages in flight too. `queue_urls` is keyed by lane key, `clients`
    (CloudWatch, one per region) by region.
    """

    def __init__(self, queue_urls: Mapping[str, str], clients: Mapping[str, Any]) -> None:
        self._queue_names = {
            key: url.rstrip("/").rsplit("/", 1)[-1] for key, url in queue_urls.items()
        }
        self._clients = clients

    def __call__(self, key: str, now: float) -> float | None:
        response = self._clients[region_of(key)].get_metric_data(
            MetricDataQueries=[
                {
                    "Id": "age",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": "AWS/SQS",
                            "MetricName": AGE_METRIC,
                            "Dimensions": [{"Name": "QueueName", "Value": self._queue_names[key]}],
                        },
                        "Period": 60,
                        "Stat": "Maximum",
                    },
                    "ReturnData": True,
                }
            ],
            StartTime=datetime.fromtimestamp(now - AGE_LOOKBACK_SECONDS, UTC),
            EndTime=datetime.fromtimestamp(now, UTC),
            ScanBy="TimestampDescending",
        )
        for result in response.get("MetricDataResults", []):
            values = result.get("Values") or []
            if values:
                return float(values[0])
        return None


class Observer:
    def __init__(
        self,
        queue_urls: Mapping[str, str],
        sqs: Mapping[str, SQSClient],
        executor: Executor,
        ages: AgeReader | None = None,
        presence: PresenceReader | None = None,
        high_queue_urls: Mapping[str, str] | None = None,
    ) -> None:
        self._lanes = lane_urls(queue_urls, high_queue_urls)
        self._sqs = sqs
        self._executor = executor
        self._ages = ages
        self._presence = presence

    def observe(self, now: float) -> dict[str, QueueObservation | None]:
        """Every lane's observation, by lane key; None for the lanes of a region with a queue
        whose depth could not be read."""
        depth_futures = {
            lane: self._executor.submit(read_depth, self._sqs[lane.region], url)
            for lane, url in self._lanes.items()
        }
        presence_future = self._executor.submit(self._presence, now) if self._presence else None
        depths: dict[Lane, tuple[int, int] | None] = {}
        for lane, future in depth_futures.items():
            try:
                depth = future.result()
            except AWS_ERRORS as exc:
                logger.warning("depth of %s unreadable: %s", lane.key, one_line(exc))
                depths[lane] = None
            else:
                depths[lane] = (depth.visible, depth.in_flight)
        in_flight: dict[str, int | None] = {}
        for lane, figures in depths.items():
            known = in_flight.get(lane.region, 0)
            in_flight[lane.region] = (
                None if figures is None or known is None else known + figures[1]
            )
        observations: dict[str, QueueObservation | None] = {}
        for lane, figures in depths.items():
            region_in_flight = in_flight[lane.region]
            observations[lane.key] = (
                None
                if figures is None or region_in_flight is None
                else QueueObservation(figures[0], region_in_flight)
            )
        live = _presence(presence_future)
        if live is not None:
            for key, observation in observations.items():
                if observation is not None:
                    observations[key] = replace(
                        observation, live_capacity=float(live.get(region_of(key), 0.0))
                    )
        return self._with_ages(observations, now)

    def _with_ages(
        self, observations: dict[str, QueueObservation | None], now: float
    ) -> dict[str, QueueObservation | None]:
        if self._ages is None:
            return observations
        ages = self._ages
        # Only queues with messages waiting can be stranded: the others cost no metric read.
        futures = {
            key: self._executor.submit(ages, key, now)
            for key, observation in observations.items()
            if observation is not None and observation.visible > 0
        }
        for key, future in futures.items():
            try:
                age = future.result()
            except AWS_ERRORS as exc:
                logger.warning("oldest-message age of %s unreadable: %s", key, one_line(exc))
                continue
            observation = observations[key]
            if observation is not None and age is not None:
                observations[key] = replace(observation, oldest_age=age)
        return observations


def _presence(future: Any) -> Mapping[str, float] | None:
    if future is None:
        return None
    try:
        return dict(future.result())
    except (*AWS_ERRORS, AwsUnavailableError) as exc:
        logger.warning("worker presence unreadable; judging on queue counts: %s", one_line(exc))
        return None
