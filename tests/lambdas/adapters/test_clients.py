"""The composition's clients (lambdas/adapters/clients.py): the validating and the hot-path clients, explicit
configuration, one set per instance and per process, picklable."""

from __future__ import annotations

import multiprocessing
import pickle

import pytest
from botocore.exceptions import ParamValidationError

from lambdas.adapters import clients, s3
from lambdas.adapters.clients import AwsClients, Credentials
from tests.factories import write_policy

NOWHERE = "http://127.0.0.1:9"  # nothing is sent: validation happens first, or a hook stops the request


@pytest.fixture
def aws():
    return AwsClients(endpoint_url=NOWHERE, region="eu-west-3", credentials=Credentials("testing", "testing"))


class Sent(Exception):
    """Raised by a before-send hook: the request got past validation and serialisation."""


def _refuse_to_send(**_):
    raise Sent


def test_shared_client_validates_parameters_and_the_hot_client_does_not(aws):
    bad = {"RequestItems": {"t": [{"PutRequest": {"Item": {"k": {"S": 1}}}}]}}  # S must be a string
    for get in (aws.client, aws.hot_client):
        get("dynamodb").meta.events.register("before-send.dynamodb.BatchWriteItem", _refuse_to_send)
    with pytest.raises(ParamValidationError, match="Invalid type for parameter"):
        aws.client("dynamodb").batch_write_item(**bad)
    with pytest.raises(Sent):
        aws.hot_client("dynamodb").batch_write_item(**bad)


def test_hot_client_keeps_the_shared_settings_and_is_cached_separately(aws):
    shared, hot = aws.client("s3"), aws.hot_client("s3")
    assert hot is not shared
    assert hot is aws.hot_client("s3")
    assert hot.meta.config.retries == shared.meta.config.retries
    assert hot.meta.config.max_pool_connections == shared.meta.config.max_pool_connections
    assert hot.meta.config.request_checksum_calculation == "when_required"
    assert aws.presigning_client("s3").meta.config.signature_version == "s3v4"


def test_endpoint_region_and_credentials_are_the_ones_given_not_the_environments(aws, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    for get in (aws.client, aws.hot_client, aws.presigning_client):
        client = get("sqs")
        assert client.meta.endpoint_url == NOWHERE
        assert client.meta.region_name == "eu-west-3"
        assert client._request_signer._credentials.access_key == "testing"


def test_each_instance_has_its_own_clients(aws):
    other = AwsClients(endpoint_url=NOWHERE, region="eu-west-3", credentials=Credentials("testing", "testing"))
    assert other == aws and hash(other) == hash(aws)
    assert other.client("s3") is not aws.client("s3")
    assert other.hot_client("dynamodb") is not aws.hot_client("dynamodb")


def test_a_pickled_copy_keeps_the_configuration_and_builds_its_own_clients(aws):
    built = aws.client("s3")
    copy = pickle.loads(pickle.dumps(aws))
    assert copy == aws and repr(copy) == repr(aws)
    assert copy.client("s3") is not built
    assert copy.client("s3").meta.endpoint_url == NOWHERE
    assert isinstance(copy.hot_client("dynamodb")._serializer, clients.PreparedJSONSerializer)


def _in_forked_child(aws: AwsClients, results) -> None:
    inherited = aws._built.get(("hot", "dynamodb"))
    mine = aws.hot_client("dynamodb")
    results.put((inherited is not None, mine is not inherited, mine is aws.hot_client("dynamodb")))


def test_a_forked_child_never_uses_the_parents_clients(aws):
    aws.hot_client("dynamodb")  # built in the parent before the fork
    context = multiprocessing.get_context("fork")
    results = context.SimpleQueue()
    child = context.Process(target=_in_forked_child, args=(aws, results))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    assert results.get() == (True, True, True)  # it saw the parent's client, built its own, then kept that one


@pytest.mark.parametrize(
    ("key", "body"),
    [("", b"{}"), (None, b"{}"), ("compras/a.json", "not bytes")],
    ids=["empty-key", "no-key", "str-body"],
)
def test_put_objects_parallel_refuses_what_botocore_validation_would_have(aws, key, body):
    with pytest.raises(TypeError, match="non-empty str key, bytes body"):
        s3.put_objects_parallel(aws, "bucket", [("compras/ok.json", b"{}"), (key, body)], concurrency=4)


# -- prepared JSON: the hot DynamoDB client's request bodies, byte for byte botocore's ---------------


class Captured(Exception):
    def __init__(self, request):
        super().__init__("captured")
        self.request = request


def _sent_request(client, operation: str, **params):
    """The HTTP request botocore would send (signed), captured before it leaves."""

    def capture(request, **_):
        raise Captured(request)

    event = f"before-send.dynamodb.{operation}"
    client.meta.events.register_first(event, capture, unique_id="capture-test")
    try:
        getattr(client, _snake(operation))(**params)
    except Captured as captured:
        return captured.request
    finally:
        client.meta.events.unregister(event, unique_id="capture-test")
    raise AssertionError("nothing was sent")


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


def test_prepared_transact_write_items_body_is_byte_for_byte_botocores(aws, monkeypatch):
    import datetime
    import json
    from decimal import Decimal

    import botocore.auth

    frozen = datetime.datetime(2026, 12, 2, 19, 0, 0, tzinfo=datetime.UTC)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: frozen)  # one signing time for both

    from lambdas.adapters.dynamodb import ConditionalWriter

    items = [
        {
            "tenant_id": "tienda ñ/1",
            "compra_id": f"B{n}",
            "fecha": "2024-03-01 10:00:00",
            "productos": [
                {"codigo": 'p"\\', "nombre": "Café €", "cantidad": 2, "precio_unitario": Decimal("1.25")},
                {"codigo": "q", "nombre": "\u2028x", "cantidad": 1, "precio_unitario": None},
            ],
            "source_order": f"2026-01-01T00:00:0{n}Z 75706c6f616473 {'0' * 32} null",
        }
        for n in range(3)
    ]
    writer = ConditionalWriter(aws, "compras-t-purchases", write_policy(concurrency=1))
    try:
        for item in items:
            writer.put(item)
        actions = list(writer._buffer)
    finally:
        writer.close()
    token = "0b5c-token"
    hot = aws.hot_client("dynamodb")
    ours = _sent_request(
        hot,
        "TransactWriteItems",
        TransactItems=clients.PreparedList.of(actions, "compras-t-purchases"),
        ClientRequestToken=token,
    )
    plain = boto3_client_without_preparation(aws)
    theirs = _sent_request(
        plain,
        "TransactWriteItems",
        TransactItems=[ConditionalWriter.action("compras-t-purchases", item) for item in items],
        ClientRequestToken=token,
    )
    assert ours.body == theirs.body
    assert json.loads(ours.body)["TransactItems"][0]["Put"]["Item"]["productos"]["L"][0]["M"]["cantidad"] == {"N": "2"}
    for header in ("X-Amz-Target", "Content-Type", "Content-Length"):
        assert ours.headers[header] == theirs.headers[header]
    assert ours.headers["Authorization"] == theirs.headers["Authorization"]  # the same SigV4 signature
    assert ours.url == theirs.url


def boto3_client_without_preparation(aws: AwsClients):
    import boto3

    return boto3.session.Session().client("dynamodb", config=clients._HOT_CONFIG, **aws.connection_options())


def test_requests_without_prepared_members_are_botocores_own(aws):
    hot, plain = aws.hot_client("dynamodb"), boto3_client_without_preparation(aws)
    params = {"TableName": "t", "Item": {"k": {"S": "ü"}, "n": {"N": "1"}}}
    assert _sent_request(hot, "PutItem", **params).body == _sent_request(plain, "PutItem", **params).body


@pytest.mark.parametrize(
    "table",
    ["compras-t-purchases", "arn:aws:dynamodb:us-east-1:123456789012:table/compras-t-purchases"],
    ids=["name", "arn"],
)
def test_prepared_list_resolves_botocores_endpoint_with_one_stub(monkeypatch, table):
    """PreparedList.of gives endpoint resolution one stub per table, not one per action: with AWS's own
    endpoints (no endpoint override) the URL — account-based for a table ARN — and the signed request must be
    exactly those of a plain client given all the actions."""
    import datetime

    import botocore.auth

    from lambdas.adapters.dynamodb import ConditionalWriter

    aws = AwsClients(region="us-east-1", credentials=Credentials("testing", "testing"))  # AWS's own endpoints
    frozen = datetime.datetime(2026, 12, 2, 19, 0, 0, tzinfo=datetime.UTC)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: frozen)
    items = [{"tenant_id": "s", "compra_id": f"B{n}", "productos": [], "source_order": f"2026 {n}"} for n in range(150)]
    writer = ConditionalWriter(aws, table, write_policy(concurrency=1))
    try:
        for item in items:
            writer.put(item)
        actions = list(writer._buffer)  # the second request's 50 actions
    finally:
        writer.close()
    prepared = clients.PreparedList.of(actions, table)
    assert len(prepared) == 1 and len(prepared.texts) == 50
    token = "0b5c-token"  # botocore would otherwise generate a random one per request
    ours = _sent_request(
        aws.hot_client("dynamodb"), "TransactWriteItems", TransactItems=prepared, ClientRequestToken=token
    )
    theirs = _sent_request(
        boto3_client_without_preparation(aws),
        "TransactWriteItems",
        TransactItems=[ConditionalWriter.action(table, item) for item in items[100:]],
        ClientRequestToken=token,
    )
    assert ours.url == theirs.url
    assert ("123456789012.ddb." in ours.url) is table.startswith("arn:")
    assert ours.body == theirs.body
    assert ours.headers["Authorization"] == theirs.headers["Authorization"]


def test_prepared_list_needs_a_stub_for_its_texts():
    with pytest.raises(ValueError, match="at least one stub"):
        clients.PreparedList([], ['{"Put": {}}'])
    with pytest.raises(ValueError, match="at most one per"):
        clients.PreparedList([{}, {}], ['{"Put": {}}'])
