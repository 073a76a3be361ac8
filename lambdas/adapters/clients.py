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


# The hot-path clients skip botocore's client-side parameter validation. Profiled with yappi across all
# threads (bench --profile), it was over half of the ingestion's CPU time: BatchWriteItem requests are
# deep (25 items x nested products), and botocore walks every attribute value against the model before
# serialising it; for the stream export's small PutObject calls it is a smaller but per-request cost.
# Nothing is left unchecked: what these clients send is built and validated by our own code first --
# purchase items by lambdas.domain.purchases (every field checked, typed AttributeValues built by
# lambdas.adapters.dynamodb._attribute_value with TypeSerializer as the fallback, at most 25 requests
# per call), object keys by lambdas.domain.keys.object_key (non-empty, encoded) with bytes bodies -- and
# the services validate every request again (a ValidationException is handled per item). Everything
# else (reads, reports, Glue, Athena) keeps the validating shared client.
_HOT_CONFIG = _CONFIG.merge(Config(parameter_validation=False))


@cache
def client(service: str):
    """The shared client of one AWS service (s3, dynamodb, glue, athena, sqs, ...)."""
    return boto3.session.Session().client(service, config=_CONFIG)


@cache
def hot_client(service: str):
    """The dedicated client of a hot path whose requests our own code has already validated: the stream
    export's PutObject calls (s3) and the ingestion's BatchWriteItem calls (dynamodb). Same endpoint,
    retries and pool as :func:`client`, without botocore's parameter validation (see ``_HOT_CONFIG``)."""
    return boto3.session.Session().client(service, config=_HOT_CONFIG)


@cache
def presigning_client(service: str):
    """A client for presigned URLs: always Signature Version 4 (S3 still defaults to SigV2 for presigning,
    which buckets created since 2020 refuse)."""
    return boto3.session.Session().client(service, config=_CONFIG.merge(Config(signature_version="s3v4")))


def reset_clients() -> None:
    """Forget cached clients (tests that change AWS_ENDPOINT_URL between servers)."""
    client.cache_clear()
    hot_client.cache_clear()
    presigning_client.cache_clear()
