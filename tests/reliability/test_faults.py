"""The fault matrix: faults injected at the boto3 HTTP layer (tests/reliability/faults.py) while the real
handlers run behind the local event-source pollers. After the retries the table must hold exactly the
expected purchases and S3 exactly the expected objects: nothing lost, nothing duplicated; what can never
succeed ends in its queue (docs/operations.md describes the same semantics for operators).
"""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from urllib.parse import quote

import boto3
import pytest

from lambdas.adapters import clients
from lambdas.domain import keys
from lambdas.stream import handler as stream_handler
from local.stream_poller import StreamPoller, StreamPollerSettings
from tests.reliability import faults

pytestmark = pytest.mark.integration


class FunctionCrashed(RuntimeError):
    """What the Lambda service reports when the function process dies mid-invocation."""


def lambda_runtime(handler):
    """Run a handler the way the Lambda runtime does: a process that dies (SimulatedCrash) is a failed
    invocation, which the event source sees as a function error."""

    def invoke(event, context):
        try:
            return handler(event, context)
        except faults.SimulatedCrash as exc:
            raise FunctionCrashed(str(exc)) from exc

    return invoke


@pytest.fixture(autouse=True)
def cold_containers(fast_botocore_retries):
    clients.reset_clients()
    stream_handler.reset_container_state()
    yield
    stream_handler.reset_container_state()
    clients.reset_clients()


# --- helpers --------------------------------------------------------------------------------------


def purchase(tenant_id: str, compra_id: str, fecha: str = "2024-03-01 10:00:00", **overrides) -> dict:
    item = {
        "tenant_id": tenant_id,
        "compra_id": compra_id,
        "user_id": "u-1",
        "fecha": fecha,
        "productos": [
            {
                "codigo": "P1",
                "nombre": "Pan",
                "categoria": "bakery",
                "cantidad": Decimal(2),
                "precio_unitario": Decimal("1.25"),
                "ticket_id": f"T-{compra_id}",
            }
        ],
        "source_bucket": "b",
        "source_key": "uploads/x.csv",
        "source_etag": "e",
        "ingested_at": "2024-03-01T10:00:00Z",
    }
    item.update(overrides)
    return item


def put_items(stack, items: list[dict]) -> None:
    table = boto3.resource("dynamodb").Table(stack.names.table)
    for item in items:
        table.put_item(Item=item)


def stream_poller(stack, **overrides) -> StreamPoller:
    return StreamPoller(
        stack.table_stream_arn,
        lambda_runtime(stream_handler.handler),
        StreamPollerSettings.from_config(**overrides),
        failure_queue_url=stack.stream_failure_queue_url,
    )


def exported(stack) -> list[keys.ObjectKey]:
    s3 = boto3.client("s3")
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=stack.names.bucket, Prefix="compras/"):
        found.extend(keys.parse_object_key(o["Key"]) for o in page.get("Contents", []))
    return found


def assert_exported_exactly(stack, expected: set[tuple[str, str, str]]) -> None:
    """One object per stream record of the expected (event, tenant, compra) changes, no other object."""
    objects = exported(stack)
    counts = Counter((o.event_name, o.tenant_id, o.compra_id) for o in objects)
    assert set(counts) == expected
    assert all(n == 1 for n in counts.values()), f"duplicated objects: {counts}"


def failure_messages(stack) -> list[dict]:
    sqs = boto3.client("sqs")
    messages = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=stack.stream_failure_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        ).get("Messages", [])
        if not batch:
            return messages
        for message in batch:
            messages.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=stack.stream_failure_queue_url, ReceiptHandle=message["ReceiptHandle"])


def compra_in_url(compra_id: str) -> str:
    """The URL-encoded fragment by which a PUT of this purchase's object can be recognised."""
    return quote(f"_{keys.encode_id(compra_id)}_", safe="~")


# --- stream export --------------------------------------------------------------------------------


def test_s3_slow_down_on_stream_puts_is_absorbed_by_retries(stack):
    put_items(stack, [purchase("S1", f"B{i}") for i in range(8)])
    s3 = clients.client("s3")
    with faults.inject(s3, "PutObject", faults.slow_down(), times=4) as fault:
        stats = stream_poller(stack).run_until_idle()

    assert fault.fired == 4
    assert stats.records_discarded == 0
    assert_exported_exactly(stack, {("INSERT", "S1", f"B{i}") for i in range(8)})
    assert failure_messages(stack) == []


def test_put_failing_past_retries_half_way_through_a_batch_is_retried_from_the_checkpoint(stack):
    """Record B4's PUT answers 500 more often than botocore retries (6 attempts): the handler reports it,
    the poller retries from B4, the records after it are written again under the same keys."""
    put_items(stack, [purchase("S1", f"B{i}") for i in range(8)])
    s3 = clients.client("s3")
    with faults.inject(
        s3, "PutObject", faults.internal_error(), times=6, match=faults.url_contains(compra_in_url("B4"))
    ) as fault:
        stats = stream_poller(stack).run_until_idle()

    assert fault.fired == 6
    assert stats.partial_failures == 1 and stats.retries == 1
    assert stats.records_discarded == 0
    assert_exported_exactly(stack, {("INSERT", "S1", f"B{i}") for i in range(8)})
    assert failure_messages(stack) == []


def test_function_crash_half_way_through_a_batch_is_bisected_and_retried(stack):
    """The process dies while writing B5's object (twice): Lambda sees function errors, bisects the batch
    and retries the halves; in the end every record is exported exactly once."""
    put_items(stack, [purchase("S1", f"B{i}") for i in range(8)])
    s3 = clients.client("s3")
    with faults.inject(
        s3, "PutObject", faults.crash(), times=2, match=faults.url_contains(compra_in_url("B5"))
    ) as fault:
        stats = stream_poller(stack).run_until_idle()

    assert fault.fired == 2
    assert stats.function_errors == 2 and stats.bisections >= 1
    assert stats.records_discarded == 0
    assert_exported_exactly(stack, {("INSERT", "S1", f"B{i}") for i in range(8)})


def test_glue_failure_is_retried_until_the_partition_exists(stack):
    put_items(stack, [purchase("S1", "B1"), purchase("S2", "B2", fecha="2024-03-02 09:00:00")])
    glue = clients.client("glue")
    with faults.inject(glue, "BatchCreatePartition", faults.server_error(), times=6) as fault:
        stats = stream_poller(stack).run_until_idle()

    assert fault.fired == 6
    assert stats.records_discarded == 0
    assert_exported_exactly(stack, {("INSERT", "S1", "B1"), ("INSERT", "S2", "B2")})
    partitions = boto3.client("glue").get_partitions(
        DatabaseName=stack.names.glue_database, TableName=stack.names.glue_table
    )["Partitions"]
    assert sorted(p["Values"] for p in partitions) == [["S1", "2024", "03", "01"], ["S2", "2024", "03", "02"]]


def test_poison_record_goes_to_the_failure_queue_and_the_shard_moves_on(stack):
    good_before = [purchase("S1", f"A{i}") for i in range(3)]
    poison = purchase("S1", "POISON", productos="not a list of products")
    good_after = [purchase("S1", f"Z{i}") for i in range(3)]
    put_items(stack, [*good_before, poison, *good_after])

    poller = stream_poller(stack)
    poller.run_until_idle()
    # A later change is not blocked by the poison: the same event source mapping moves on to it.
    put_items(stack, [purchase("S2", "LATER")])
    stats = poller.run_until_idle()

    messages = failure_messages(stack)
    assert len(messages) == 1
    info = messages[0]["DDBStreamBatchInfo"]
    assert messages[0]["requestContext"]["condition"] == "RetryAttemptsExhausted"
    retries = StreamPollerSettings.from_config().maximum_retry_attempts
    assert messages[0]["requestContext"]["approximateInvokeCount"] == retries + 1
    streams = boto3.client("dynamodbstreams")
    shard = streams.describe_stream(StreamArn=stack.table_stream_arn)["StreamDescription"]["Shards"][0]
    iterator = streams.get_shard_iterator(
        StreamArn=stack.table_stream_arn,
        ShardId=shard["ShardId"],
        ShardIteratorType="AT_SEQUENCE_NUMBER",
        SequenceNumber=info["startSequenceNumber"],
    )["ShardIterator"]
    first = streams.get_records(ShardIterator=iterator, Limit=1)["Records"][0]
    assert first["dynamodb"]["Keys"]["compra_id"] == {"S": "POISON"}  # the pointer leads to the poison

    assert stats.records_discarded >= 1
    expected = {("INSERT", "S1", i["compra_id"]) for i in [*good_before, *good_after]} | {("INSERT", "S2", "LATER")}
    assert_exported_exactly(stack, expected)
