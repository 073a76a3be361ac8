"""boto3 clients shared by the adapters: created once per container, lazily, thread-safe to use.

Endpoint and region come from the environment (AWS_ENDPOINT_URL is honoured by boto3 itself, which
is how the local stack and the tests point the unchanged handlers at moto).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from typing import Any

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
    export's PutObject calls (s3) and the ingestion's TransactWriteItems calls (dynamodb). Same endpoint,
    retries and pool as :func:`client`, without botocore's parameter validation (see ``_HOT_CONFIG``);
    a JSON-protocol client also takes :class:`PreparedList` parameters."""
    hot = boto3.session.Session().client(service, config=_HOT_CONFIG)
    if hot.meta.service_model.protocol == "json":
        hot._serializer = PreparedJSONSerializer(hot._serializer)
    return hot


class PreparedList(list):
    """A list parameter whose wire JSON our code has already written, one JSON text per element.

    botocore's JSON serializer walks every nested value of a request against the service model (for a
    TransactWriteItems of 100 purchases, thousands of attribute values); json's C encoder writes the same
    bytes in a fraction of the time. Only :class:`PreparedJSONSerializer` reads ``texts``; the list's elements
    are ``stubs`` (e.g. ``{"Put": {"TableName": t}}``) for botocore's endpoint resolution, which reads the
    list of table names (DynamoDB's ``ResourceArnList`` operation context parameter, a JMESPath over every
    element). One stub per distinct table, in order of first appearance, gives the resolver the same first
    table (the only one DynamoDB's endpoint rules read) without walking every action: that walk was half of
    the client CPU of a 100-action request (profiled; issue 11). Each text must be ``json.dumps`` (default
    separators, ``ensure_ascii``) of one element's full parameters: the body, the endpoint and the signature
    are then botocore's own, byte for byte (tests/lambdas/adapters/test_clients.py checks them against a
    plain client given the full parameters).
    """

    def __init__(self, stubs: Sequence[Any], texts: Sequence[str]) -> None:
        if not 0 < len(stubs) <= len(texts) and not (len(stubs) == len(texts) == 0):
            raise ValueError("at least one stub and at most one per prepared JSON text")
        super().__init__(stubs)
        self.texts = list(texts)

    @classmethod
    def of(cls, actions: Sequence[Any], table_name: str) -> PreparedList:
        """Prepared TransactWriteItems Put actions (objects with a ``text`` attribute) on one table."""
        return cls([{"Put": {"TableName": table_name}}] if actions else [], [action.text for action in actions])


class PreparedJSONSerializer:
    """botocore's JSON-protocol serializer, except that top-level :class:`PreparedList` members are written
    from their prepared JSON texts. Requests without one go to botocore's serializer unchanged."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def serialize_to_request(self, parameters: dict[str, Any], operation_model: Any) -> dict[str, Any]:
        if not any(type(value) is PreparedList for value in parameters.values()):
            return self._inner.serialize_to_request(parameters, operation_model)
        rest = {name: value for name, value in parameters.items() if type(value) is not PreparedList}
        request = self._inner.serialize_to_request(rest, operation_model)  # headers, method, small members
        small = json.loads(request["body"]) if request["body"] else {}
        members = []
        for name, value in parameters.items():
            if type(value) is PreparedList:
                members.append(f"{json.dumps(name)}: [{', '.join(value.texts)}]")
            elif name in small:
                members.append(f"{json.dumps(name)}: {json.dumps(small[name])}")
        request["body"] = ("{" + ", ".join(members) + "}").encode("utf-8")
        return request


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
