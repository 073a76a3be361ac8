"""The fault matrix: faults injected at the boto3 HTTP layer (tests/reliability/faults.py) while the real
handlers run behind the local event-source pollers. After the retries the table must hold exactly the
expected purchases and S3 exactly the expected objects: nothing lost, nothing duplicated; what can never
succeed ends in its queue (docs/operations.md describes the same semantics for operators).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote, unquote_plus

import pytest

import pipeline_config as config
from lambdas.adapters import s3_put
from lambdas.domain import keys, purchases
from lambdas.ingestion import service
from local.pipeline import build_function, function_settings
from local.sqs_poller import SqsPoller
from local.stack import INGESTION, STREAM
from local.stream_poller import StreamPoller, StreamPollerSettings
from tests.data.bad_inputs import build
from tests.factories import INGEST_LIMITS, producto, purchase_item
from tests.reliability import faults
from tests.resources import purchases_table

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
def fast_retries(fast_botocore_retries):
    """botocore's retries without their sleeps (see tests/reliability/conftest.py); the ingestion's own backoff
    is shortened by ``ingestion_function``."""


def ingestion_function(stack):
    """The deployed ingestion function with its own backoff between retries shortened (same attempts)."""
    return build_function(stack, INGESTION, backoff_base_seconds=0.001, backoff_cap_seconds=0.01)


# --- helpers --------------------------------------------------------------------------------------


def purchase(tenant_id: str, compra_id: str, fecha: str = "2024-03-01 10:00:00", **overrides) -> dict:
    overrides.setdefault("productos", [producto("P1", "Pan", "bakery", precio="1.25", ticket_id=f"T-{compra_id}")])
    return purchase_item(tenant_id, compra_id, fecha, ingested_at="2024-03-01T10:00:00Z", **overrides)


def put_items(stack, items: list[dict]) -> None:
    table = purchases_table(stack)
    for item in items:
        table.put_item(Item=item)


def stream_poller(stack, **overrides) -> StreamPoller:
    source = stack.event_source("actualizarComprasStream")
    return StreamPoller(
        source,
        lambda_runtime(build_function(stack, STREAM)),
        StreamPollerSettings.from_mapping(source, **overrides),
        aws=stack.aws,
    )


def exported(stack) -> list[keys.ObjectKey]:
    s3 = stack.aws.client("s3")
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
    sqs = stack.aws.client("sqs")
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
    s3 = stack.aws.hot_client("s3")
    with faults.inject(s3, "PutObject", faults.slow_down(), times=4) as fault:
        stats = stream_poller(stack).run_until_idle()

    assert fault.fired == 4
    assert stats.records_discarded == 0
    assert_exported_exactly(stack, {("INSERT", "S1", f"B{i}") for i in range(8)})
    assert failure_messages(stack) == []


def test_put_failing_past_retries_half_way_through_a_batch_is_retried_from_the_checkpoint(stack):
    """Record B4's PUT answers 500 more often than the PUT path tries (the lean attempt, then botocore's 6): the
    handler reports it, the poller retries from B4, the records after it are written again under the same keys."""
    put_items(stack, [purchase("S1", f"B{i}") for i in range(8)])
    s3 = stack.aws.hot_client("s3")
    attempts = s3_put.LEAN_ATTEMPTS + s3.meta.config.retries["total_max_attempts"]
    with faults.inject(
        s3, "PutObject", faults.internal_error(), times=attempts, match=faults.url_contains(compra_in_url("B4"))
    ) as fault:
        stats = stream_poller(stack).run_until_idle()

    assert fault.fired == attempts == 7
    assert stats.partial_failures == 1 and stats.retries == 1
    assert stats.records_discarded == 0
    assert_exported_exactly(stack, {("INSERT", "S1", f"B{i}") for i in range(8)})
    assert failure_messages(stack) == []


def test_function_crash_half_way_through_a_batch_is_bisected_and_retried(stack):
    """The process dies while writing B5's object (twice): Lambda sees function errors, bisects the batch
    and retries the halves; in the end every record is exported exactly once."""
    put_items(stack, [purchase("S1", f"B{i}") for i in range(8)])
    s3 = stack.aws.hot_client("s3")
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
    glue = stack.aws.client("glue")
    with faults.inject(glue, "BatchCreatePartition", faults.server_error(), times=6) as fault:
        stats = stream_poller(stack).run_until_idle()

    assert fault.fired == 6
    assert stats.records_discarded == 0
    assert_exported_exactly(stack, {("INSERT", "S1", "B1"), ("INSERT", "S2", "B2")})
    partitions = stack.aws.client("glue").get_partitions(
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
    retries = stack.event_source("actualizarComprasStream").maximum_retry_attempts
    assert messages[0]["requestContext"]["approximateInvokeCount"] == retries + 1
    streams = stack.aws.client("dynamodbstreams")
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


# --- ingestion ------------------------------------------------------------------------------------

UPLOAD_KEY = "uploads/faults/tickets 2024-03-01.csv"


def tickets_csv(baskets: int = 80, product: str = "Producto") -> bytes:
    """A file of `baskets` purchases over three stores (1-4 lines each), plus two bad rows."""
    rows = []
    for b in range(baskets):
        store = f"S{b % 3}"
        for line in range(1 + b % 4):
            rows.append(
                build.row(
                    f"T{b:03d}-{line}",
                    f"{product} {line}",
                    f"B{b:03d}",
                    timestamp=f"2024-03-01 {8 + b % 10:02d}:{line:02d}:00",
                    quantity=str(1 + line),
                    store=store,
                    unit_price=f"{line}.{b % 100:02d}",
                    user_id=f"u{b}",
                )
            )
    rows.insert(10, build.row("BAD1", "Pan", "B001", quantity="-1"))
    rows.insert(20, build.row("BAD2", "Pan", "", store="S1"))
    return build.lines(*rows).encode()


class MemorySink:
    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict] = {}

    def put(self, item: dict) -> None:
        self.items[(item["tenant_id"], item["compra_id"])] = item

    def flush(self) -> purchases.WriteOutcome:
        return purchases.WriteOutcome()


VOLATILE = ("source_etag", "ingested_at", "source_version_id", "source_order")  # depend on the upload


def expected_purchases(data: bytes, bucket: str, key: str) -> dict[tuple[str, str], dict]:
    """What the table must hold: the pure domain's result for this file (unit-tested on its own)."""
    sink = MemorySink()
    source = purchases.SourceInfo(bucket=bucket, key=key, etag="-", ingested_at="-")
    purchases.ingest(iter([data]), source, sink, **INGEST_LIMITS)
    return {k: {n: v for n, v in item.items() if n not in VOLATILE} for k, item in sink.items.items()}


def table_items(stack) -> dict[tuple[str, str], dict]:
    table = purchases_table(stack)
    items = []
    response = table.scan()
    items.extend(response["Items"])
    while "LastEvaluatedKey" in response:
        response = table.scan(ExclusiveStartKey=response["LastEvaluatedKey"])
        items.extend(response["Items"])
    return {(i["tenant_id"], i["compra_id"]): i for i in items}


def assert_table_exactly(stack, data: bytes, key: str = UPLOAD_KEY) -> None:
    expected = expected_purchases(data, stack.names.bucket, key)
    actual = table_items(stack)
    assert set(actual) == set(expected)
    etag = stack.aws.client("s3").head_object(Bucket=stack.names.bucket, Key=key)["ETag"].strip('"')
    for k, item in actual.items():
        assert item["source_etag"] == etag
        assert {n: v for n, v in item.items() if n not in VOLATILE} == expected[k], k


def bucket_keys(stack) -> set[str]:
    s3 = stack.aws.client("s3")
    keys_found: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=stack.names.bucket):
        keys_found.update(o["Key"] for o in page.get("Contents", []))
    return keys_found


def report_of(stack, key: str = UPLOAD_KEY) -> dict:
    name = key[len("uploads/") :]
    body = stack.aws.client("s3").get_object(Bucket=stack.names.bucket, Key=f"ingest-reports/{name}.report.json")[
        "Body"
    ]
    return json.loads(body.read())


def assert_bucket_exactly(stack, key: str = UPLOAD_KEY) -> None:
    """The upload and its one report; nothing else (no export ran in these tests)."""
    name = key[len("uploads/") :]
    assert bucket_keys(stack) == {key, f"ingest-reports/{name}.report.json"}
    report = report_of(stack, key)
    assert report["status"] == "loaded_with_rejections"
    assert [r["line"] for r in report["rejected_rows"]] == [12, 22]


def sqs_poller(stack) -> SqsPoller:
    # Failed messages reappear at once instead of after the 1,800 s visibility timeout.
    return SqsPoller(
        stack.event_source("ingestarTickets"),
        lambda_runtime(ingestion_function(stack)),
        retry_visibility_seconds=0,
        aws=stack.aws,
    )


def upload(stack, data: bytes, key: str = UPLOAD_KEY) -> None:
    stack.aws.client("s3").put_object(Bucket=stack.names.bucket, Key=key, Body=data)


def queue_depth(stack, url: str) -> int:
    attributes = stack.aws.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


def drain_test_events(stack) -> None:
    """Drop the s3:TestEvent moto sends when the notification is configured (the handler skips it too)."""
    SqsPoller(stack.event_source("ingestarTickets"), build_function(stack, INGESTION), aws=stack.aws).run_until_idle()


@pytest.fixture
def ingest_stack(stack):
    drain_test_events(stack)
    return stack


def test_dynamodb_throttling_is_absorbed_by_retries(ingest_stack):
    stack, data = ingest_stack, tickets_csv()
    upload(stack, data)
    ddb = ingest_stack.aws.hot_client("dynamodb")
    with faults.inject(ddb, "TransactWriteItems", faults.throttle(), times=4) as fault:
        stats = sqs_poller(stack).run_until_idle()

    assert fault.fired == 4
    assert (stats.messages_deleted, stats.messages_failed) == (1, 0)
    assert_table_exactly(stack, data)
    assert_bucket_exactly(stack)


def test_throttling_outlasting_every_retry_fails_the_message_and_the_redelivery_loads_it(ingest_stack):
    stack, data = ingest_stack, tickets_csv()
    upload(stack, data)
    poller = sqs_poller(stack)
    ddb = ingest_stack.aws.hot_client("dynamodb")
    with faults.inject(ddb, "TransactWriteItems", faults.throttle(), times=None) as fault:
        first = poller.poll_once()
    assert fault.fired > 0
    # The only message failed (Powertools raises when every record of the batch failed: Lambda retries it all).
    assert (first.messages_received, first.messages_failed) == (1, 1)
    assert not any(k.startswith("ingest-reports/") for k in bucket_keys(stack))  # no report for a failed try

    second = poller.run_until_idle()
    assert second.messages_deleted == 1
    assert_table_exactly(stack, data)
    assert_bucket_exactly(stack)


def test_cancelled_transactions_are_resent_until_written(ingest_stack):
    stack, data = ingest_stack, tickets_csv()
    upload(stack, data)
    ddb = ingest_stack.aws.hot_client("dynamodb")
    with faults.inject(ddb, "TransactWriteItems", faults.transaction_conflict(), times=3) as fault:
        stats = sqs_poller(stack).run_until_idle()

    assert fault.fired == 3
    assert (stats.messages_deleted, stats.messages_failed) == (1, 0)
    assert_table_exactly(stack, data)
    assert_bucket_exactly(stack)


def test_s3_slow_down_on_get_is_absorbed_by_retries(ingest_stack):
    stack, data = ingest_stack, tickets_csv()
    upload(stack, data)
    with faults.inject(ingest_stack.aws.client("s3"), "GetObject", faults.slow_down(), times=3) as fault:
        stats = sqs_poller(stack).run_until_idle()

    assert fault.fired == 3
    assert (stats.messages_deleted, stats.messages_failed) == (1, 0)
    assert_table_exactly(stack, data)
    assert_bucket_exactly(stack)


@pytest.mark.parametrize(
    ("operation", "match"),
    [("GetObject", faults.url_contains("/uploads/")), ("PutObject", faults.url_contains("/ingest-reports/"))],
    ids=["get-upload", "put-report"],
)
def test_s3_500_outlasting_retries_fails_the_message_and_the_redelivery_loads_it(ingest_stack, operation, match):
    stack, data = ingest_stack, tickets_csv()
    upload(stack, data)
    poller = sqs_poller(stack)
    attempts = ingest_stack.aws.client("s3").meta.config.retries["total_max_attempts"]
    with faults.inject(
        ingest_stack.aws.client("s3"), operation, faults.internal_error(), times=attempts, match=match
    ) as fault:
        first = poller.poll_once()
    assert fault.fired == attempts
    assert (first.messages_received, first.messages_failed) == (1, 1)

    second = poller.run_until_idle()
    assert second.messages_deleted == 1
    assert_table_exactly(stack, data)
    assert_bucket_exactly(stack)


def assert_every_item_whole(stack, data: bytes, key: str = UPLOAD_KEY) -> int:
    """Never partial: every purchase in the table is exactly its complete version from the file (never a
    subset of its lines). Returns how many there are."""
    expected = expected_purchases(data, stack.names.bucket, key)
    actual = table_items(stack)
    for k, item in actual.items():
        assert {n: v for n, v in item.items() if n not in VOLATILE} == expected[k], k
    return len(actual)


def test_function_crash_half_way_through_a_file_and_the_redelivery(ingest_stack):
    stack, data = ingest_stack, tickets_csv(baskets=450)  # 450 purchases: 5 transactions of 100
    upload(stack, data)
    poller = sqs_poller(stack)
    ddb = ingest_stack.aws.hot_client("dynamodb")
    with faults.inject(ddb, "TransactWriteItems", faults.crash(), after=2, times=1) as fault:
        first = poller.poll_once()
    assert fault.fired == 1
    assert (first.handler_errors, first.messages_failed) == (1, 1)
    assert 0 < assert_every_item_whole(stack, data) < len(expected_purchases(data, stack.names.bucket, UPLOAD_KEY))
    assert not any(k.startswith("ingest-reports/") for k in bucket_keys(stack))

    second = poller.run_until_idle()
    assert second.messages_deleted == 1
    assert_table_exactly(stack, data)
    assert_bucket_exactly(stack)


def test_a_read_that_breaks_off_mid_object_writes_nothing_and_is_retried(ingest_stack):
    stack, data = ingest_stack, tickets_csv(baskets=300)
    upload(stack, data)
    poller = sqs_poller(stack)
    s3_client = ingest_stack.aws.client("s3")
    with faults.inject(s3_client, "GetObject", faults.body_breaks_off(after_bytes=len(data) // 2)) as fault:
        first = poller.poll_once()
    assert fault.fired == 1 and first.messages_failed == 1
    assert table_items(stack) == {}  # nothing is written before the whole object was read

    assert poller.run_until_idle().messages_deleted == 1
    assert_table_exactly(stack, data)


def test_an_object_deleted_while_its_message_waits_or_fails_writes_nothing_and_is_not_retried(ingest_stack):
    stack, data = ingest_stack, tickets_csv()
    upload(stack, data)
    poller = sqs_poller(stack)
    with faults.inject(ingest_stack.aws.client("s3"), "GetObject", faults.body_breaks_off(after_bytes=1000)):
        assert poller.poll_once().messages_failed == 1  # the read broke off...
    s3 = ingest_stack.aws.client("s3")
    for version in s3.list_object_versions(Bucket=stack.names.bucket, Prefix=UPLOAD_KEY)["Versions"]:
        s3.delete_object(Bucket=stack.names.bucket, Key=UPLOAD_KEY, VersionId=version["VersionId"])  # ...then gone
    stats = poller.run_until_idle()
    assert (stats.messages_deleted, stats.messages_failed) == (1, 0)  # reported in the logs, not retried
    assert table_items(stack) == {}
    assert queue_depth(stack, stack.ingest_dlq_url) == 0


def test_an_object_overwritten_while_read_ingests_each_version_whole_and_the_newer_wins(ingest_stack):
    stack = ingest_stack
    old, new = tickets_csv(product="Antiguo"), tickets_csv(product="Nuevo")
    upload(stack, old)
    poller = sqs_poller(stack)
    s3_client = ingest_stack.aws.client("s3")
    overwritten = []

    def overwrite_during_the_read(request):
        if (
            not overwritten and "versionId=" in request.url
        ):  # the new version lands while the old one's message is being processed
            time.sleep(1.1)  # LastModified has one-second resolution
            ingest_stack.aws.client("s3").put_object(Bucket=stack.names.bucket, Key=UPLOAD_KEY, Body=new)
            overwritten.append(1)
        return None

    with faults.inject(s3_client, "GetObject", overwrite_during_the_read, times=1):
        poller.poll_once()
    assert_every_item_whole(stack, old)  # the old version, read whole at its exact version id
    assert poller.run_until_idle().messages_deleted == 1
    assert_table_exactly(stack, new)


def test_an_older_version_redelivered_after_the_newer_one_never_replaces_it(ingest_stack):
    stack = ingest_stack
    old, new = tickets_csv(product="Antiguo"), tickets_csv(product="Nuevo")
    sqs = ingest_stack.aws.client("sqs")
    upload(stack, old)
    old_message = sqs.receive_message(QueueUrl=stack.ingest_queue_url)["Messages"][0]
    time.sleep(1.1)
    upload(stack, new)
    poller = sqs_poller(stack)
    assert poller.run_until_idle().messages_deleted == 1  # the new version, while the old one's message waits
    sqs.send_message(QueueUrl=stack.ingest_queue_url, MessageBody=old_message["Body"])  # redelivered late
    sqs.delete_message(QueueUrl=stack.ingest_queue_url, ReceiptHandle=old_message["ReceiptHandle"])
    assert poller.run_until_idle().messages_deleted == 1
    assert_table_exactly(stack, new)
    report = report_of(stack)
    assert report["counts"]["purchases_superseded"] == len(table_items(stack))
    assert report["counts"]["purchases_written"] == 0


def test_two_files_racing_leave_the_newer_ones_purchases(ingest_stack):
    stack = ingest_stack
    old, new = tickets_csv(product="Antiguo"), tickets_csv(product="Nuevo")
    upload(stack, old, key="uploads/faults/old.csv")
    time.sleep(1.1)
    upload(stack, new, key="uploads/faults/new.csv")
    messages = ingest_stack.aws.client("sqs").receive_message(QueueUrl=stack.ingest_queue_url, MaxNumberOfMessages=10)
    event = sqs_poller(stack).build_event(messages["Messages"])
    assert len(event["Records"]) == 2
    ingestion = service.build_ingestion(function_settings(stack, INGESTION), stack.aws)
    barrier = threading.Barrier(2)

    def ingest(record):
        body = json.loads(record["body"])["Records"][0]["s3"]
        barrier.wait()
        ingestion.ingest_object(
            body["bucket"]["name"], unquote_plus(body["object"]["key"]), version_id=body["object"].get("versionId")
        )

    with ThreadPoolExecutor(2) as pool:  # both files' writes interleave
        list(pool.map(ingest, event["Records"]))
    assert_table_exactly(stack, new, key="uploads/faults/new.csv")


def test_the_same_s3_event_delivered_twice(ingest_stack):
    stack, data = ingest_stack, tickets_csv()
    upload(stack, data)
    sqs = ingest_stack.aws.client("sqs")
    message = sqs.receive_message(QueueUrl=stack.ingest_queue_url, VisibilityTimeout=0)["Messages"][0]
    sqs.send_message(QueueUrl=stack.ingest_queue_url, MessageBody=message["Body"])

    stats = sqs_poller(stack).run_until_idle()
    assert (stats.messages_deleted, stats.messages_failed) == (2, 0)
    assert_table_exactly(stack, data)
    assert_bucket_exactly(stack)
    assert report_of(stack)["counts"]["purchases_written"] == len(table_items(stack))


def test_a_message_failing_every_delivery_reaches_the_dlq_and_redrives_cleanly(ingest_stack):
    stack, data = ingest_stack, tickets_csv()
    upload(stack, data)
    poller = sqs_poller(stack)
    max_receives = config.queue_settings()["maxReceiveCount"]
    with faults.inject(ingest_stack.aws.hot_client("dynamodb"), "TransactWriteItems", faults.throttle(), times=None):
        stats = poller.run_until_idle()
    assert stats.messages_failed == max_receives
    assert queue_depth(stack, stack.ingest_queue_url) == 0
    assert queue_depth(stack, stack.ingest_dlq_url) == 1
    assert table_items(stack) == {}

    # The redrive of docs/operations.md. On AWS: aws sqs start-message-move-task (moto 5.2.5 lacks it), which
    # moves the messages unchanged, as this does.
    sqs = ingest_stack.aws.client("sqs")
    for message in sqs.receive_message(QueueUrl=stack.ingest_dlq_url, MaxNumberOfMessages=10)["Messages"]:
        sqs.send_message(QueueUrl=stack.ingest_queue_url, MessageBody=message["Body"])
        sqs.delete_message(QueueUrl=stack.ingest_dlq_url, ReceiptHandle=message["ReceiptHandle"])
    stats = poller.run_until_idle()
    assert stats.messages_deleted == 1
    assert_table_exactly(stack, data)
    assert_bucket_exactly(stack)


def test_a_message_in_the_dlq_after_part_of_its_file_was_written_leaves_only_whole_purchases(ingest_stack):
    stack, data = ingest_stack, tickets_csv(baskets=250)  # 3 transactions
    upload(stack, data)
    poller = sqs_poller(stack)
    with faults.inject(
        ingest_stack.aws.hot_client("dynamodb"), "TransactWriteItems", faults.throttle(), after=1, times=None
    ):
        stats = poller.run_until_idle()
    assert stats.messages_failed == config.queue_settings()["maxReceiveCount"]
    assert queue_depth(stack, stack.ingest_dlq_url) == 1
    written = assert_every_item_whole(stack, data)  # what a reader sees meanwhile: whole purchases only
    assert 0 < written < len(expected_purchases(data, stack.names.bucket, UPLOAD_KEY))
    sqs = ingest_stack.aws.client("sqs")
    for message in sqs.receive_message(QueueUrl=stack.ingest_dlq_url, MaxNumberOfMessages=10)["Messages"]:
        sqs.send_message(QueueUrl=stack.ingest_queue_url, MessageBody=message["Body"])
        sqs.delete_message(QueueUrl=stack.ingest_dlq_url, ReceiptHandle=message["ReceiptHandle"])
    assert poller.run_until_idle().messages_deleted == 1
    assert_table_exactly(stack, data)


def test_ingestion_then_export_under_faults_gives_one_object_per_stream_record(ingest_stack):
    """Both halves under faults at once: every purchase exported, each object in its own partition."""
    stack, data = ingest_stack, tickets_csv(baskets=30)
    upload(stack, data)
    with (
        faults.inject(
            ingest_stack.aws.hot_client("dynamodb"), "TransactWriteItems", faults.transaction_conflict(), times=2
        ),
        faults.inject(
            ingest_stack.aws.hot_client("s3"),
            "PutObject",
            faults.slow_down(),
            times=5,
            match=faults.url_contains("/compras/"),
        ),
    ):
        sqs_poller(stack).run_until_idle()
        stream_stats = stream_poller(stack).run_until_idle()

    assert stream_stats.records_discarded == 0
    assert_table_exactly(stack, data)
    items = table_items(stack)
    objects = exported(stack)
    assert {(o.tenant_id, o.compra_id) for o in objects if o.event_name == "INSERT"} == set(items)
    assert len({o.sequence_number for o in objects}) == len(objects) == stream_stats.records_read
    for o in objects:
        fecha = items[(o.tenant_id, o.compra_id)]["fecha"]
        assert (o.year, o.month, o.day) == (fecha[:4], fecha[5:7], fecha[8:10])


def test_poison_record_fixed_in_the_table_is_exported(stack):
    """docs/operations.md, stream failure queue, step 4: correct the item; the new MODIFY is exported."""
    put_items(stack, [purchase("S1", "OK"), purchase("S1", "POISON", fecha="yesterday")])
    poller = stream_poller(stack)
    poller.run_until_idle()
    assert len(failure_messages(stack)) == 1
    assert_exported_exactly(stack, {("INSERT", "S1", "OK")})

    purchases_table(stack).update_item(
        Key={"tenant_id": "S1", "compra_id": "POISON"},
        UpdateExpression="SET fecha = :fecha, export_requested_at = :now",
        ExpressionAttributeValues={":fecha": "2024-03-01 10:00:00", ":now": "2024-03-02T00:00:00Z"},
    )
    stats = poller.run_until_idle()
    assert stats.records_discarded == 1  # only the original poison, earlier
    assert failure_messages(stack) == []
    assert_exported_exactly(stack, {("INSERT", "S1", "OK"), ("MODIFY", "S1", "POISON")})
