"""The queues the rescue watches: each region's standard queue and, when the regions have
them (`HIGH_PRIORITY_QUEUES`), its high-priority queue. A *lane* is one of the two.

A lane's key names it in the run's report, the stall memory and the age reader: the region
name for the standard queue, ``<region>:high`` for the high-priority one. Rescued messages stay
in their lane: a stranded high-priority queue's backlog goes to other regions' high-priority
queues, a standard one's to standard queues.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

HIGH_SUFFIX = ":high"


@dataclass(frozen=True, slots=True, order=True)
class Lane:
    region: str
    high: bool = False

    @property
    def key(self) -> str:
        return self.region + HIGH_SUFFIX if self.high else self.region

    def to(self, region: str) -> Lane:
        """The same lane in another region."""
        return Lane(region, self.high)

    @classmethod
    def from_key(cls, key: str) -> Lane:
        return cls(region_of(key), key.endswith(HIGH_SUFFIX))


def region_of(key: str) -> str:
    """The region of a lane key."""
    return key.removesuffix(HIGH_SUFFIX)


def lane_urls(
    region_queues: Mapping[str, str], high_queues: Mapping[str, str] | None = None
) -> dict[Lane, str]:
    """Every lane's queue URL: standard queues first, then the high-priority ones."""
    urls = {Lane(region): url for region, url in region_queues.items()}
    urls.update({Lane(region, True): url for region, url in (high_queues or {}).items()})
    return urls
