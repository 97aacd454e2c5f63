"""Fixtures shared by every test layer."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import boto3
import pytest

# A shell that starts a job in the background (nohup ... &, some CI runners) makes it ignore
# SIGINT, and children inherit that: Python then never raises KeyboardInterrupt. The tests
# that press Ctrl-C (in-process and in subprocesses) need the terminal's usual behaviour.
signal.signal(signal.SIGINT, signal.default_int_handler)

# Never reach a real account from a test, whatever the developer's shell has.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
)
for _name in (
    "AWS_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_SQS",
    "AWS_ENDPOINT_URL_DYNAMODB",
):
    os.environ.pop(_name, None)


@pytest.fixture
def moto_session() -> Iterator[boto3.session.Session]:
    from moto import mock_aws

    with mock_aws():
        yield boto3.session.Session()
