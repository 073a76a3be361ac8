"""lambdas/adapters/dynamodb.py against moto: parallel batches, UnprocessedItems/throttling retries,
items refused for good, the write policy from the environment."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from botocore.awsrequest import AWSResponse

from lambdas.adapters import clients
from lambdas.adapters.dynamodb import ParallelBatchWriter, WritePolicy, WriteRetriesExhausted

pytestmark = pytest.mark.integration


def item(n: int, **extra) -> dict:
    return {
        "tenant_id": "S1",
        "compra_id": f"B{n:04d}",
        "fecha": "2024-03-01 10:00:00",
        "productos": [
            {"codigo": "p", "nombre": "p", "categoria": "c", "cantidad": 2, "precio_unitario": Decimal("1.25")},
            {"codigo": "q", "nombre": "q", "categoria": "c", "cantidad": 1, "precio_unitario": None},
        ],
        **extra,
    }


def scan(table: str) -> dict[tuple[str, str], dict]:
    from boto3.dynamodb.types import TypeDeserializer

    des = TypeDeserializer()
    pages = clients.client("dynamodb").get_paginator("scan").paginate(TableName=table)
    out = {}
    for page in pages:
        for raw in page["Items"]:
            value = {k: des.deserialize(v) for k, v in raw.items()}
            out[(value["tenant_id"], value["compra_id"])] = value
    return out


class BatchWriteFaults:
    """botocore before-call hook on the shared client: the next `unprocessed` BatchWriteItem calls
    process only their first request (the rest comes back as UnprocessedItems, as DynamoDB does under
    load), the next `throttled` calls fail with ProvisionedThroughputExceededException."""

    def __init__(self, unprocessed: int = 0, throttled: int = 0) -> None:
        self.unprocessed = unprocessed
        self.throttled = throttled
        self.calls = 0
        self.ddb = clients.hot_client("dynamodb")  # the writer's BatchWriteItem client

    def __call__(self, params, **_):
        self.calls += 1
        body = json.loads(params["body"])
        if self.throttled:
            self.throttled -= 1
            error = {"__type": "ProvisionedThroughputExceededException", "message": "slow down"}
            return _response(400, error), {
                "Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"},
                "ResponseMetadata": {"HTTPStatusCode": 400},
            }
        if self.unprocessed:
            self.unprocessed -= 1
            ((table, requests),) = body["RequestItems"].items()
            if len(requests) > 1:
                from boto3.dynamodb.types import TypeDeserializer

                first = requests[0]["PutRequest"]["Item"]
                des = TypeDeserializer()
                self._put_directly(table, {k: des.deserialize(v) for k, v in first.items()})
                # The wire JSON of the requests is also botocore's parsed shape (N values are strings).
                parsed = {"UnprocessedItems": {table: requests[1:]}}
                return _response(200, parsed), parsed
        return None

    @staticmethod
    def _put_directly(table, value):
        import boto3

        boto3.resource("dynamodb").Table(table).put_item(Item=value)

    def __enter__(self):
        self.ddb.meta.events.register_first("before-call.dynamodb.BatchWriteItem", self)
        return self

    def __exit__(self, *exc):
        self.ddb.meta.events.unregister("before-call.dynamodb.BatchWriteItem", self)


def _response(status: int, body: dict) -> AWSResponse:
    return AWSResponse("http://fault", status, {}, _Raw(json.dumps(body).encode()))


class _Raw:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_):
        yield self.data


@pytest.fixture
def table(stack):
    clients.reset_clients()
    yield stack.names.table
    clients.reset_clients()


def no_sleep(_seconds: float) -> None:
    return None


def test_writes_many_items_in_parallel_batches(table):
    with ParallelBatchWriter(table, WritePolicy(concurrency=4)) as writer:
        for n in range(260):
            writer.put(item(n))
        assert writer.flush() == []
        assert writer.requests_sent == 11  # ceil(260 / 25)
    stored = scan(table)
    assert len(stored) == 260
    assert stored[("S1", "B0007")]["productos"][0]["precio_unitario"] == Decimal("1.25")
    assert stored[("S1", "B0007")]["productos"][1]["precio_unitario"] is None


def test_delete_removes_items(table):
    with ParallelBatchWriter(table) as writer:
        writer.put(item(1))
        writer.put(item(2))
        writer.flush()
        writer.delete(("S1", "B0001"))
        writer.flush()
    assert list(scan(table)) == [("S1", "B0002")]


def test_unprocessed_items_are_retried_with_backoff(table):
    sleeps: list[float] = []
    with (
        BatchWriteFaults(unprocessed=3) as faults,
        ParallelBatchWriter(
            table, WritePolicy(concurrency=1, max_attempts=8), sleep=sleeps.append, rand=lambda: 1.0
        ) as writer,
    ):
        for n in range(25):
            writer.put(item(n))
        assert writer.flush() == []
    assert len(scan(table)) == 25
    assert faults.calls == 4
    assert sleeps == [0.1, 0.2, 0.4]  # full jitter upper bounds base * 2**attempt (rand() = 1.0)


def test_throttling_that_outlasts_the_attempts_raises(table):
    with (
        BatchWriteFaults(throttled=100),
        ParallelBatchWriter(table, WritePolicy(concurrency=2, max_attempts=3), sleep=no_sleep) as writer,
    ):
        writer.put(item(1))
        with pytest.raises(WriteRetriesExhausted, match="after 3 attempts"):
            writer.flush()


def test_throttling_that_ends_is_absorbed(table):
    with BatchWriteFaults(throttled=2), ParallelBatchWriter(table, WritePolicy(max_attempts=3), sleep=no_sleep) as w:
        w.put(item(1))
        assert w.flush() == []
    assert len(scan(table)) == 1


def test_an_item_dynamodb_refuses_is_returned_and_its_batch_neighbours_are_written(table):
    too_big = item(5, blob="x" * 410_000)
    with ParallelBatchWriter(table) as writer:
        for n in range(10):
            writer.put(too_big if n == 5 else item(n))
        refused = writer.flush()
    assert [(i["compra_id"], "size" in reason.lower()) for i, reason in refused] == [("B0005", True)]
    assert len(scan(table)) == 9


def test_backoff_is_full_jitter_capped():
    policy = WritePolicy(backoff_base_seconds=0.05, backoff_cap_seconds=5)
    assert policy.backoff(1, lambda: 1.0) == pytest.approx(0.1)
    assert policy.backoff(20, lambda: 1.0) == 5
    assert policy.backoff(3, lambda: 0.0) == 0


def test_fast_serialisation_matches_type_serializer():
    from boto3.dynamodb.types import TypeSerializer

    writer = ParallelBatchWriter("unused", WritePolicy(concurrency=1))
    try:
        sample = item(3, user_id="ü", flag=True, tags={"a", "b"}, nested={"x": [1, Decimal("0.0001"), None]})
        expected = {k: TypeSerializer().serialize(v) for k, v in sample.items()}
        assert {k: writer._attribute_value(v) for k, v in sample.items()} == expected
    finally:
        writer.close()
