"""The rescue function's configuration: defaults, and a ConfigError naming each bad variable."""

from __future__ import annotations

import json

import pytest

from orchestrator.core.routing import DEFAULT_STRATEGY
from orchestrator.core.settings import ConfigError
from orchestrator.rescue.config import Settings

QUEUES = {
    "us-east-1": "https://sqs.us-east-1.amazonaws.com/123456789012/inference-queue-us-east-1",
    "us-west-2": "https://sqs.us-west-2.amazonaws.com/123456789012/inference-queue-us-west-2",
}
BASE = {
    "REGION_QUEUES": json.dumps(QUEUES),
    "IDEMPOTENCY_TABLE_NAME": "requests",
    "AWS_REGION": "us-east-1",
}


def test_defaults() -> None:
    settings = Settings.from_environ(BASE)
    assert settings.region_queues == QUEUES
    assert settings.primary_region == "us-east-1"
    assert settings.stall_seconds == 120
    assert settings.max_age_seconds == 600
    assert settings.max_messages == 500
    assert settings.visibility_timeout == 60
    assert settings.routing_strategy == DEFAULT_STRATEGY
    assert settings.max_queue_depth_threshold == 5000
    assert settings.workers_table_name is None


def test_every_variable_is_read() -> None:
    settings = Settings.from_environ(
        {
            **BASE,
            "RESCUE_STALL_SECONDS": "90",
            "RESCUE_MAX_AGE_SECONDS": "0",
            "RESCUE_MAX_MESSAGES": "40",
            "RESCUE_VISIBILITY_TIMEOUT": "120",
            "ROUTING_STRATEGY": "inverse-depth",
            "MAX_QUEUE_DEPTH_THRESHOLD": "300",
            "WORKERS_TABLE_NAME": "workers",
            "LOG_LEVEL": "debug",
        }
    )
    assert settings.stall_seconds == 90
    assert settings.max_age_seconds is None, "0 turns the oldest-message rule off"
    assert settings.thresholds.max_age_seconds is None
    assert settings.max_messages == 40
    assert settings.visibility_timeout == 120
    assert settings.routing_strategy == "inverse-depth"
    assert settings.max_queue_depth_threshold == 300
    assert settings.workers_table_name == "workers"
    assert settings.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("REGION_QUEUES", ""),
        ("REGION_QUEUES", "not json"),
        ("REGION_QUEUES", "{}"),
        ("REGION_QUEUES", '{"mars": "https://sqs.x.amazonaws.com/1/q"}'),
        ("IDEMPOTENCY_TABLE_NAME", " "),
        ("AWS_REGION", "us-east"),
        ("RESCUE_STALL_SECONDS", "-1"),
        ("RESCUE_STALL_SECONDS", "soon"),
        ("RESCUE_MAX_AGE_SECONDS", "nan"),
        ("RESCUE_MAX_MESSAGES", "0"),
        ("RESCUE_MAX_MESSAGES", "2.5"),
        ("RESCUE_VISIBILITY_TIMEOUT", "43201"),
        ("ROUTING_STRATEGY", "fastest"),
        ("MAX_QUEUE_DEPTH_THRESHOLD", "0"),
        ("LOG_LEVEL", "LOUD"),
    ],
)
def test_a_bad_value_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as error:
        Settings.from_environ({**BASE, variable: value})
    assert error.value.variable == variable
    assert str(error.value).startswith(variable)


def test_a_bad_queue_url_names_its_region() -> None:
    with pytest.raises(ConfigError) as error:
        Settings.from_environ({**BASE, "REGION_QUEUES": json.dumps({"us-east-1": "queue"})})
    assert error.value.variable == "REGION_QUEUES[us-east-1]"
