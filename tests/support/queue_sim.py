"""A discrete-time model of region queues and their GPU consumers, read through the real
`DepthCache` and routed by one real `Router` (a single container).

Each tick every region's consumers take up to `capacity` messages into service (in flight for
that tick), then `arrivals` new messages are routed, in batches of 10 as the distributor would.
Ticks stand for seconds (the cache's TTL and the routing's trust in old figures read them so).
The whole path with many containers is `orchestrator simulate`.
"""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from orchestrator.core.depth import DepthCache
from orchestrator.core.routing import DEFAULT_STRATEGY, Router


@dataclass
class SimRegion:
    capacity: int
    waiting: int = 0
    in_service: int = 0
    received: int = 0
    waits: list[float] = field(default_factory=list)


class SimSqs:
    """GetQueueAttributes over the simulated queues (one client serves every region here)."""

    def __init__(self, regions: dict[str, SimRegion]) -> None:
        self.regions = regions

    def get_queue_attributes(self, QueueUrl: str, AttributeNames: list[str]) -> dict:
        region = self.regions[QueueUrl]
        return {
            "Attributes": {
                "ApproximateNumberOfMessages": str(region.waiting),
                "ApproximateNumberOfMessagesNotVisible": str(region.in_service),
            }
        }


def simulate(
    capacities: dict[str, int],
    arrivals: int,
    ticks: int = 3000,
    *,
    strategy: str = DEFAULT_STRATEGY,
    ttl: float = 5.0,
    kill: tuple[str, int] | None = None,
    seed: int = 1,
) -> dict[str, SimRegion]:
    regions = {name: SimRegion(capacity) for name, capacity in capacities.items()}
    now = [0.0]
    sqs = SimSqs(regions)
    with ThreadPoolExecutor(4) as pool:
        cache = DepthCache(
            {name: name for name in regions},
            dict.fromkeys(regions, sqs),
            ttl,
            pool,
            clock=lambda: now[0],
            rng=random.Random(seed),
        )
        router = Router(strategy, 10**9, random.Random(seed))
        for tick in range(ticks):
            now[0] = float(tick)
            if kill and tick == kill[1]:
                regions[kill[0]].capacity = 0
            for region in regions.values():
                region.in_service = min(region.capacity, region.waiting)
                region.waiting -= region.in_service
            left = arrivals
            while left > 0:
                batch = min(10, left)
                left -= batch
                chosen = router.assign(cache.snapshot(), batch)
                for name in chosen:
                    assert name is not None
                    region = regions[name]
                    if tick >= ticks // 2:
                        region.waits.append(
                            (region.waiting + region.in_service) / max(region.capacity, 1)
                        )
                    region.waiting += 1
                    region.received += 1
                    cache.record_forwarded(name, 1)
    return regions
