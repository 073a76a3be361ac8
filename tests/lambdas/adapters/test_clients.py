"""The shared and the hot-path clients (lambdas/adapters/clients.py)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ParamValidationError

from lambdas.adapters import clients, s3


@pytest.fixture(autouse=True)
def fresh_clients(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing is sent: validation happens first
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    clients.reset_clients()
    yield
    clients.reset_clients()


class Sent(Exception):
    """Raised by a before-send hook: the request got past validation and serialisation."""


def _refuse_to_send(**_):
    raise Sent


def test_shared_client_validates_parameters_and_the_hot_client_does_not():
    bad = {"RequestItems": {"t": [{"PutRequest": {"Item": {"k": {"S": 1}}}}]}}  # S must be a string
    for get in (clients.client, clients.hot_client):
        get("dynamodb").meta.events.register("before-send.dynamodb.BatchWriteItem", _refuse_to_send)
    with pytest.raises(ParamValidationError, match="Invalid type for parameter"):
        clients.client("dynamodb").batch_write_item(**bad)
    with pytest.raises(Sent):
        clients.hot_client("dynamodb").batch_write_item(**bad)


def test_hot_client_keeps_the_shared_settings_and_is_cached_separately():
    shared, hot = clients.client("s3"), clients.hot_client("s3")
    assert hot is not shared
    assert hot is clients.hot_client("s3")
    assert hot.meta.config.retries == shared.meta.config.retries
    assert hot.meta.config.max_pool_connections == shared.meta.config.max_pool_connections
    assert hot.meta.config.request_checksum_calculation == "when_required"
    clients.reset_clients()
    assert clients.hot_client("s3") is not hot


@pytest.mark.parametrize(
    ("key", "body"),
    [("", b"{}"), (None, b"{}"), ("compras/a.json", "not bytes")],
    ids=["empty-key", "no-key", "str-body"],
)
def test_put_objects_parallel_refuses_what_botocore_validation_would_have(key, body):
    with pytest.raises(TypeError, match="non-empty str key, bytes body"):
        s3.put_objects_parallel("bucket", [("compras/ok.json", b"{}"), (key, body)], concurrency=4)
