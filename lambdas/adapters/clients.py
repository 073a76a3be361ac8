"""The AWS clients of one composition: ``AwsClients``, passed explicitly to every adapter.

Who makes one: each function's composition root (``build_handler(settings, aws)`` in lambdas/*/handler.py). On
Lambda the entry point passes ``AwsClients()``: endpoint, region and credentials are boto3's defaults, i.e. the
Lambda environment. Local runs and tests pass the stand-in explicitly, e.g. ``AwsClients(endpoint_url=moto,
region="us-east-1", credentials=FAKE)`` (local.moto_server.LocalAws.clients): nothing reads or writes
``AWS_ENDPOINT_URL``/``AWS_REGION`` in ``os.environ`` to point code at a stand-in.

How adapters take it: the module functions of lambdas/adapters/{s3,glue,athena,awslambda}.py take it as their
first argument (``s3.open_object(aws, bucket, key)``); the adapter classes (``ConditionalWriter``,
``PartitionRegistry``, ``AthenaRunner``) in their constructor. Nothing in the adapters caches a client at module
level.

What it holds: plain configuration only (endpoint URL, region, optional static credentials; the botocore
``Config`` is chosen here). Clients are built lazily, once per instance and per process, thread-safely, and are
thread-safe to use. It is picklable, and neither a pickled copy nor a forked child ever uses a client of the
process it came from (boto3 clients and their connection pools must not cross processes): each builds its own on
first use. Three kinds per service: ``client`` (the validating client of every ordinary call), ``hot_client``
(the stream export's PutObject and the ingestion's TransactWriteItems: no parameter validation,
PreparedJSONSerializer; see ``_HOT_CONFIG``) and ``presigning_client`` (SigV4 presigned URLs).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
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
# lambdas.adapters.dynamodb.item_json with TypeSerializer as the fallback, at most 100 actions
# per call), object keys by lambdas.domain.keys.object_key (non-empty, encoded) with bytes bodies -- and
# the services validate every request again (a ValidationException is handled per item). Everything
# else (reads, reports, Glue, Athena) keeps the validating shared client.
_HOT_CONFIG = _CONFIG.merge(Config(parameter_validation=False))


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


_PRESIGNING_CONFIG = _CONFIG.merge(Config(signature_version="s3v4"))


@dataclass(frozen=True)
class Credentials:
    """Static credentials (the local stand-in's fake ones); on AWS, leave them to boto3's credential chain."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


class AwsClients:
    """The boto3 clients of one composition (see the module doc)."""

    def __init__(
        self, *, endpoint_url: str | None = None, region: str | None = None, credentials: Credentials | None = None
    ) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self.credentials = credentials
        self._init_cache()

    def _init_cache(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._built: dict[tuple[str, str], Any] = {}

    # -- the three kinds ------------------------------------------------------------------------------

    def client(self, service: str) -> Any:
        """The validating client of one AWS service (s3, dynamodb, glue, athena, sqs, lambda, ...)."""
        return self._get("plain", service)

    def hot_client(self, service: str) -> Any:
        """The client of a hot path whose requests our own code has already validated: the stream export's
        PutObject calls (s3) and the ingestion's TransactWriteItems calls (dynamodb). Same endpoint, retries and
        pool as :meth:`client`, without botocore's parameter validation (see ``_HOT_CONFIG``); a JSON-protocol
        client also takes :class:`PreparedList` parameters."""
        return self._get("hot", service)

    def presigning_client(self, service: str) -> Any:
        """A client for presigned URLs: always Signature Version 4 (S3 still defaults to SigV2 for presigning,
        which buckets created since 2020 refuse)."""
        return self._get("presigning", service)

    # -- construction ---------------------------------------------------------------------------------

    def _get(self, kind: str, service: str) -> Any:
        if self._pid != os.getpid():  # a forked child: never use the parent's clients (nor its lock)
            self._init_cache()
        found = self._built.get((kind, service))
        if found is not None:
            return found
        with self._lock:  # boto3 sessions are not thread-safe to create clients from; clients are
            found = self._built.get((kind, service))
            if found is None:
                found = self._built[(kind, service)] = self._build(kind, service)
        return found

    def connection_options(self) -> dict[str, Any]:
        """The keyword arguments of boto3's ``client``/``resource`` that every client of this instance is built
        with (endpoint, region, credentials; only those given): for a client with another botocore ``Config``
        or a boto3 resource over the same account and endpoint (e.g. in tests)."""
        options: dict[str, Any] = {}
        if self.endpoint_url is not None:
            options["endpoint_url"] = self.endpoint_url
        if self.region is not None:
            options["region_name"] = self.region
        if self.credentials is not None:
            options["aws_access_key_id"] = self.credentials.access_key_id
            options["aws_secret_access_key"] = self.credentials.secret_access_key
            options["aws_session_token"] = self.credentials.session_token
        return options

    def _build(self, kind: str, service: str) -> Any:
        config = {"plain": _CONFIG, "hot": _HOT_CONFIG, "presigning": _PRESIGNING_CONFIG}[kind]
        built = boto3.session.Session().client(service, config=config, **self.connection_options())
        if kind == "hot" and built.meta.service_model.protocol == "json":
            built._serializer = PreparedJSONSerializer(built._serializer)
        return built

    # -- plain configuration only: pickling and comparing ---------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        return {"endpoint_url": self.endpoint_url, "region": self.region, "credentials": self.credentials}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_cache()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AwsClients) and self.__getstate__() == other.__getstate__()

    def __hash__(self) -> int:
        return hash((self.endpoint_url, self.region, self.credentials))

    def __repr__(self) -> str:
        where = self.endpoint_url or "boto3's default endpoint"
        return f"AwsClients({where}, region={self.region or 'default'})"
