"""Multi-Region Inference Orchestrator: the distributor Lambda and what it is made of."""

from orchestrator.request import ErrorCode, InferenceRequest, InvalidRequestError, parse_request
from orchestrator.routing import RegionLoad, region_weights, select_region

__all__ = [
    "ErrorCode",
    "InferenceRequest",
    "InvalidRequestError",
    "RegionLoad",
    "parse_request",
    "region_weights",
    "select_region",
]
