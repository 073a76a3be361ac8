"""boto3 clients shared by the adapters: created once per container, lazily, thread-safe to use.

Endpoint and region come from the environment (AWS_ENDPOINT_URL is honoured by boto3 itself, which
is how the local stack and the tests point the unchanged handlers at moto).
"""

from __future__ import annotations

from functools import cache

import boto3
from botocore.config import Config

# Standard retry mode (throttling/5xx with backoff) and a pool big enough for our parallel calls.
_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    max_pool_connections=32,
    connect_timeout=5,
    read_timeout=30,
    request_checksum_calculation="when_required",
    response_checksum_validation="when_required",
)


@cache
def client(service: str):
    """The shared client of one AWS service (s3, dynamodb, glue, athena, sqs, ...)."""
    return boto3.session.Session().client(service, config=_CONFIG)


def reset_clients() -> None:
    """Forget cached clients (tests that change AWS_ENDPOINT_URL between servers)."""
    client.cache_clear()
