"""lambdas/adapters/dynamodb.py against moto: parallel conditional transactions, never an older source over a
newer one, cancellation reasons, throttling retries, items refused for good, the write policy."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from boto3.dynamodb.types import TypeSerializer

from lambdas.adapters.clients import AwsClients
from lambdas.adapters.dynamodb import ConditionalWriter, WritePolicy, WriteRetriesExhausted
from lambdas.domain.purchases import WriteOutcome
from tests.factories import write_policy
from tests.reliability import faults

pytestmark = pytest.mark.integration


def item(n: int, **extra) -> dict:
    extra.setdefault("source_order", ORDER_OLD)
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


def scan(aws, table: str) -> dict[tuple[str, str], dict]:
    from boto3.dynamodb.types import TypeDeserializer

    des = TypeDeserializer()
    pages = aws.client("dynamodb").get_paginator("scan").paginate(TableName=table)
    out = {}
    for page in pages:
        for raw in page["Items"]:
            value = {k: des.deserialize(v) for k, v in raw.items()}
            out[(value["tenant_id"], value["compra_id"])] = value
    return out


@pytest.fixture
def table(stack):
    return stack.names.table


@pytest.fixture
def clients(stack):
    """The clients of the stand-in (what the ingestion's composition root would pass)."""
    return stack.aws


@pytest.fixture
def fast_botocore_retries(monkeypatch):
    """botocore's own retries, without their sleeps (the decisions stay botocore's)."""
    from botocore.retries import standard

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0.0)


def no_sleep(_seconds: float) -> None:
    return None


ORDER_OLD = "2026-01-01T00:00:00Z 75706c6f6164732f612e637376 " + "0" * 32 + " null"
ORDER_NEW = "2026-01-01T00:00:05Z 75706c6f6164732f612e637376 " + "0" * 32 + " null"


def test_writes_many_items_in_parallel_transactions(table, clients):
    with ConditionalWriter(clients, table, write_policy(concurrency=4)) as writer:
        for n in range(260):
            writer.put(item(n))
        assert writer.flush() == WriteOutcome()
        assert writer.requests_sent == 3  # ceil(260 / 100)
        assert writer.items_written == 260
    stored = scan(clients, table)
    assert len(stored) == 260
    assert stored[("S1", "B0007")]["productos"][0]["precio_unitario"] == Decimal("1.25")
    assert stored[("S1", "B0007")]["productos"][1]["precio_unitario"] is None
    assert stored[("S1", "B0007")]["source_order"] == ORDER_OLD


def test_an_older_source_never_replaces_a_newer_one_and_the_same_source_rewrites(table, clients):
    with ConditionalWriter(clients, table, write_policy()) as writer:
        writer.put(item(1, source_order=ORDER_NEW, fecha="2024-03-02 00:00:00"))
        writer.put(item(2, source_order=ORDER_OLD))
        assert writer.flush() == WriteOutcome()
        # One transaction mixing a stale item, a newer one and a rewrite of the same source.
        writer.put(item(1, source_order=ORDER_OLD))  # stale: the table has B0001 from ORDER_NEW
        writer.put(item(2, source_order=ORDER_NEW, fecha="2024-03-09 00:00:00"))  # newer: replaces
        writer.put(item(3, source_order=ORDER_OLD))  # new purchase
        writer.put(item(1, source_order=ORDER_NEW, fecha="2024-03-02 00:00:00"))  # same source: idempotent
        outcome = writer.flush()
    assert outcome == WriteOutcome(superseded=1, superseded_lines=2)
    stored = scan(clients, table)
    assert stored[("S1", "B0001")]["fecha"] == "2024-03-02 00:00:00"
    assert stored[("S1", "B0001")]["source_order"] == ORDER_NEW
    assert stored[("S1", "B0002")]["fecha"] == "2024-03-09 00:00:00"
    assert ("S1", "B0003") in stored


def test_an_item_without_source_order_written_by_others_is_replaced(table, clients):
    legacy = item(4)
    legacy.pop("source_order")
    serializer = TypeSerializer()
    clients.client("dynamodb").put_item(TableName=table, Item={k: serializer.serialize(v) for k, v in legacy.items()})
    with ConditionalWriter(clients, table, write_policy()) as writer:
        writer.put(item(4, fecha="2024-05-05 00:00:00"))
        assert writer.flush() == WriteOutcome()
    assert scan(clients, table)[("S1", "B0004")]["fecha"] == "2024-05-05 00:00:00"


def cancelled(*codes: str):
    """A TransactionCanceledException with one cancellation reason per action, as DynamoDB answers."""

    def respond(request):
        reasons = [{"Code": code, **({"Message": code} if code != "None" else {})} for code in codes]
        body = json.dumps(
            {
                "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                "Message": f"Transaction cancelled, please refer cancellation reasons [{', '.join(codes)}]",
                "CancellationReasons": reasons,
            }
        ).encode()
        return faults.response(request, 400, body, {"Content-Type": "application/x-amz-json-1.0"})

    return respond


def test_conflicts_and_actions_cancelled_alongside_are_sent_again(table, clients):
    ddb = clients.hot_client("dynamodb")
    sleeps: list[float] = []
    with (
        faults.inject(ddb, "TransactWriteItems", cancelled("None", "TransactionConflict", "None"), times=1) as fault,
        ConditionalWriter(clients, table, write_policy(concurrency=1), sleep=sleeps.append, rand=lambda: 1.0) as writer,
    ):
        for n in range(3):
            writer.put(item(n))
        assert writer.flush() == WriteOutcome()
    assert fault.fired == 1 and writer.requests_sent == 2 and sleeps == [0.1]
    assert len(scan(clients, table)) == 3


def test_throttling_that_outlasts_the_attempts_raises(table, clients, fast_botocore_retries):
    ddb = clients.hot_client("dynamodb")
    with (
        faults.inject(ddb, "TransactWriteItems", faults.throttle(), times=None),
        ConditionalWriter(clients, table, write_policy(concurrency=2, max_attempts=3), sleep=no_sleep) as writer,
    ):
        writer.put(item(1))
        with pytest.raises(WriteRetriesExhausted, match="after 3 attempts"):
            writer.flush()
    assert scan(clients, table) == {}


def test_throttling_that_ends_is_absorbed(table, clients, fast_botocore_retries):
    ddb = clients.hot_client("dynamodb")
    with (
        faults.inject(ddb, "TransactWriteItems", faults.throttle(), times=7),  # > botocore's own 5 attempts
        ConditionalWriter(clients, table, write_policy(max_attempts=3), sleep=no_sleep) as writer,
    ):
        writer.put(item(1))
        assert writer.flush() == WriteOutcome()
    assert len(scan(clients, table)) == 1


def test_an_item_dynamodb_refuses_is_returned_and_its_neighbours_are_written(table, clients):
    too_big = item(5, blob="x" * 410_000)
    with ConditionalWriter(clients, table, write_policy()) as writer:
        for n in range(10):
            writer.put(too_big if n == 5 else item(n))
        outcome = writer.flush()
    assert [(i["compra_id"], "size" in reason.lower()) for i, reason in outcome.refused] == [("B0005", True)]
    assert len(scan(clients, table)) == 9


def test_requests_stay_under_the_transaction_size_limit(table, clients):
    big = "y" * 300_000  # 14 of these exceed the 4 MB of one transaction
    with ConditionalWriter(clients, table, write_policy(concurrency=2)) as writer:
        for n in range(14):
            writer.put(item(n, blob=big))
        assert writer.flush() == WriteOutcome()
        assert writer.requests_sent == 2
    assert len(scan(clients, table)) == 14


def test_the_write_policy_has_no_defaults_of_its_own():
    """Its values are the function's settings (config/pipeline.yml functions.ingestion): none is copied here."""
    with pytest.raises(TypeError, match="missing 4 required positional arguments"):
        WritePolicy()
    with pytest.raises(TypeError, match="policy"):
        ConditionalWriter(AwsClients(), "unused")


def test_backoff_is_full_jitter_capped():
    policy = write_policy(backoff_base_seconds=0.05, backoff_cap_seconds=5)
    assert policy.backoff(1, lambda: 1.0) == pytest.approx(0.1)
    assert policy.backoff(20, lambda: 1.0) == 5
    assert policy.backoff(3, lambda: 0.0) == 0


def test_fast_serialisation_matches_type_serializer():
    from lambdas.adapters.dynamodb import item_json

    sample = item(
        3,
        user_id='ü\u2028"\\\x00',
        flag=True,
        tags={"a", "b"},
        nested={"x": [1, Decimal("0.0001"), Decimal("1E+2"), None, -7]},
        big=10**30,
        blob_like=[{"k": "v"}, []],
    )
    expected = {k: TypeSerializer().serialize(v) for k, v in sample.items()}
    assert item_json(sample) == json.dumps(expected)  # byte for byte, so the request body is botocore's
    assert json.loads(item_json(sample)) == json.loads(json.dumps(expected))


def test_the_client_is_built_once_before_the_threads_start_on_a_cold_cache(table, clients, monkeypatch):
    """In a fresh process (a worker, a cold container) the pool's threads must not each build a client on their
    first request (~0.1 s of CPU each): the writer builds it once, in the thread that submits."""
    import pickle
    import threading

    cold = pickle.loads(pickle.dumps(clients))  # the same configuration, no client built yet
    built = []
    real = cold._build

    def counting(kind, service):
        built.append((kind, service, threading.current_thread().name))
        return real(kind, service)

    monkeypatch.setattr(cold, "_build", counting)
    with ConditionalWriter(cold, table, write_policy(concurrency=8)) as writer:
        for n in range(800):
            writer.put(item(n))
        assert writer.flush() == WriteOutcome() and writer.requests_sent == 8
    assert built == [("hot", "dynamodb", threading.current_thread().name)]
    assert len(scan(clients, table)) == 800
