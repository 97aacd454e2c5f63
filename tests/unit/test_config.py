from __future__ import annotations

import json

import pytest

from orchestrator.distributor.config import ConfigError, Settings

URL = "https://sqs.us-east-1.amazonaws.com/123456789012/q"


def env(**overrides):
    base = {
        "REGION_QUEUES": json.dumps(
            {"us-east-1": URL, "us-west-2": URL.replace("east-1", "west-2")}
        ),
        "IDEMPOTENCY_TABLE_NAME": "inference-idempotency-dev",
        "DEAD_LETTER_QUEUE_URL": URL + "-dlq",
        "AWS_REGION": "us-east-1",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def test_defaults_match_the_published_names_and_values():
    settings = Settings.from_environ(env())
    assert settings.cache_ttl == 10.0
    assert settings.max_queue_depth_threshold == 5000
    assert settings.idempotency_ttl_days == 7
    assert settings.routing_strategy == "smooth-capacity"
    assert settings.log_level == "INFO"
    assert settings.enable_tracing is False
    assert list(settings.region_queues) == ["us-east-1", "us-west-2"]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("REGION_QUEUES", None),
        ("REGION_QUEUES", "not json"),
        ("REGION_QUEUES", "[]"),
        ("REGION_QUEUES", "{}"),
        ("REGION_QUEUES", json.dumps({"useast1": URL})),
        ("REGION_QUEUES", json.dumps({"us-east-1": "not a url"})),
        ("IDEMPOTENCY_TABLE_NAME", None),
        ("DEAD_LETTER_QUEUE_URL", "queue"),
        ("CACHE_TTL", "-1"),
        ("CACHE_TTL", "ten"),
        ("CACHE_TTL", "nan"),
        ("MAX_QUEUE_DEPTH_THRESHOLD", "0"),
        ("MAX_QUEUE_DEPTH_THRESHOLD", "1.5"),
        ("IDEMPOTENCY_TTL_DAYS", "0"),
        ("ROUTING_STRATEGY", "round-robin"),
        ("LOG_LEVEL", "LOUD"),
        ("ENABLE_TRACING", "maybe"),
        ("REGION_COOLDOWN_SECONDS", "-5"),
    ],
)
def test_bad_values_name_the_variable(variable, value):
    with pytest.raises(ConfigError) as error:
        Settings.from_environ(env(**{variable: value}))
    assert error.value.variable.startswith(variable)
    assert variable in str(error.value)


def test_region_comes_from_aws_region_or_default_region():
    assert (
        Settings.from_environ(env(AWS_REGION=None, AWS_DEFAULT_REGION="eu-west-1")).primary_region
        == "eu-west-1"
    )
    with pytest.raises(ConfigError, match="AWS_REGION"):
        Settings.from_environ(env(AWS_REGION=None))


def test_log_level_is_case_insensitive():
    assert Settings.from_environ(env(LOG_LEVEL="debug")).log_level == "DEBUG"
