"""Model placement and data residency narrow the regions a request may run in."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.core.placement import (
    Placement,
    no_permitted_region,
    parse_model_regions,
    queued_permitted,
)

REGIONS = ("us-east-1", "us-west-2", "us-west-1", "eu-west-1")


def test_without_configuration_every_region_serves_every_model():
    assert Placement().permitted("any-model", None, REGIONS) == frozenset(REGIONS)


def test_a_named_model_is_served_only_where_configured_and_others_fall_back_to_star():
    placement = parse_model_regions(
        '{"llama-70b": ["us-east-1"], "*": ["us-west-2", "us-west-1"]}', REGIONS
    )
    assert placement.permitted("llama-70b", None, REGIONS) == {"us-east-1"}
    assert placement.permitted("small", None, REGIONS) == {"us-west-2", "us-west-1"}


def test_without_a_star_entry_unnamed_models_may_go_anywhere():
    placement = parse_model_regions('{"llama-70b": ["us-east-1"]}', REGIONS)
    assert placement.permitted("small", None, REGIONS) == frozenset(REGIONS)


def test_residency_and_placement_both_apply():
    placement = parse_model_regions('{"llama-70b": ["us-east-1", "eu-west-1"]}', REGIONS)
    assert placement.permitted("llama-70b", ["eu-west-1", "us-west-2"], REGIONS) == {"eu-west-1"}
    assert placement.permitted("llama-70b", ["us-west-2"], REGIONS) == frozenset()


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("[1]", "JSON object"),
        ("{nope", "not JSON"),
        ('{"m": []}', "non-empty list"),
        ('{"m": ["mars"]}', "not an AWS region name"),
        ('{"m": ["ap-south-1"]}', "no queue in REGION_QUEUES"),
    ],
)
def test_bad_configuration_says_what_is_wrong(raw, problem):
    with pytest.raises(ValueError, match=problem):
        parse_model_regions(raw, REGIONS)


@given(
    allowed=st.one_of(st.none(), st.lists(st.sampled_from(REGIONS), unique=True, min_size=1)),
    serving=st.lists(st.sampled_from(REGIONS), unique=True, min_size=1),
)
def test_permitted_regions_are_always_configured_serving_and_allowed(allowed, serving):
    placement = Placement({"m": frozenset(serving)})
    permitted = placement.permitted("m", allowed, REGIONS)
    assert permitted <= set(serving) <= set(REGIONS)
    if allowed is not None:
        assert permitted <= set(allowed)


# ---------------------------------------------------------------------- queued messages (rescue)
LLAMA = parse_model_regions(
    '{"llama-70b": ["us-east-1", "eu-west-1"], "*": ["us-west-2"]}', REGIONS
)


def _body(**fields):
    return json.dumps({"request_id": "r", "model_name": "llama-70b", **fields})


def test_a_queued_request_is_permitted_by_its_model_and_its_allowed_regions():
    assert queued_permitted(LLAMA, _body(), REGIONS) == {"us-east-1", "eu-west-1"}
    assert queued_permitted(LLAMA, _body(allowed_regions=["eu-west-1"]), REGIONS) == {"eu-west-1"}
    assert queued_permitted(LLAMA, _body(model_name="small"), REGIONS) == {"us-west-2"}
    assert queued_permitted(LLAMA, _body(allowed_regions=None), REGIONS) == {
        "us-east-1",
        "eu-west-1",
    }


@pytest.mark.parametrize("allowed", ["eu-west-1", [1], {"eu-west-1": True}, [None]])
def test_a_malformed_allowed_regions_permits_nothing(allowed):
    """Fail closed: residency that cannot be read must not be taken for none."""
    assert queued_permitted(LLAMA, _body(allowed_regions=allowed), REGIONS) == frozenset()


def test_a_body_that_is_not_a_request_falls_back_to_the_model_attribute():
    assert queued_permitted(LLAMA, "busy", REGIONS, "llama-70b") == {"us-east-1", "eu-west-1"}
    assert queued_permitted(LLAMA, "[1, 2]", REGIONS) == {"us-west-2"}  # the "*" entry
    assert queued_permitted(Placement(), "not json", REGIONS) == frozenset(REGIONS)
    assert queued_permitted(LLAMA, json.dumps({"x": 1}), REGIONS, "llama-70b") == {
        "us-east-1",
        "eu-west-1",
    }


def test_the_dead_letter_message_names_model_allowed_and_serving_regions():
    assert no_permitted_region("llama-70b", ["eu-west-1"], {"us-east-1"}) == (
        "no region serves model 'llama-70b' within allowed_regions [eu-west-1] (serving: us-east-1)"
    )
    assert "allowed_regions [none]" in no_permitted_region("m", [], {"us-east-1"})
