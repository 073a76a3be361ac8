from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from botocore.exceptions import ClientError

from lambdas.shared.settings import MissingSettingError, StreamSettings
from lambdas.stream import handler as stream_handler
from local.lambda_context import LocalLambdaContext
from local.pipeline import build_function, function_settings
from local.stack import STREAM, create_stack
from local.stream_poller import read_lambda_records
from tests.factories import purchase_item
from tests.resources import purchases_table

pytestmark = pytest.mark.integration


def purchase(tenant_id, compra_id, fecha="2026-03-07 10:15:00", **overrides):
    return purchase_item(tenant_id, compra_id, fecha, **overrides)


def table(stack):
    return purchases_table(stack)


def stream_event(stack) -> dict:
    """Every record currently in the table's stream, as Lambda would deliver them."""
    return {"Records": read_lambda_records(stack.aws, stack.table_stream_arn)}


@pytest.fixture
def function(stack):
    """The deployed stream function, built once per test as on a cold start; warm for the rest of the test."""
    return build_function(stack, STREAM)


def context():
    return LocalLambdaContext(
        function_name="actualizarComprasStream",
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:actualizarComprasStream",
        memory_limit_in_mb=512,
        timeout_seconds=60,
    )


def objects(stack) -> dict[str, bytes]:
    s3 = stack.aws.client("s3")
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=stack.names.bucket, Prefix="compras/")
        for o in page.get("Contents", [])
    ]
    return {k: s3.get_object(Bucket=stack.names.bucket, Key=k)["Body"].read() for k in keys}


def partitions(stack) -> dict[tuple[str, ...], str]:
    glue = stack.aws.client("glue")
    pages = glue.get_paginator("get_partitions").paginate(
        DatabaseName=stack.names.glue_database, TableName=stack.names.glue_table
    )
    return {tuple(p["Values"]): p["StorageDescriptor"]["Location"] for page in pages for p in page["Partitions"]}


def seq(event, index):
    return event["Records"][index]["dynamodb"]["SequenceNumber"]


def stamp(event, index):
    created = event["Records"][index]["dynamodb"]["ApproximateCreationDateTime"]
    return datetime.fromtimestamp(created, tz=UTC).strftime("%Y%m%d_%H%M%S")


def test_insert_modify_remove_become_documents_and_partitions(stack, capsys, function):
    t = table(stack)
    t.put_item(Item=purchase("store-1", "B1"))
    t.put_item(Item=purchase("../tienda ñ", "a/b", fecha="2026-12-31 23:59:59"))
    t.put_item(Item=purchase("store-1", "B1", user_id="u-2"))
    t.delete_item(Key={"tenant_id": "store-1", "compra_id": "B1"})
    event = stream_event(stack)
    assert [r["eventName"] for r in event["Records"]] == ["INSERT", "INSERT", "MODIFY", "REMOVE"]

    capsys.readouterr()
    assert function(event, context()) == {"batchItemFailures": []}

    bucket = stack.names.bucket
    written = objects(stack)
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    (emf,) = [entry for entry in printed if "_aws" in entry]
    assert emf["BytesWritten"] == [float(sum(len(body) for body in written.values()))]
    assert {"Name": "BytesWritten", "Unit": "Bytes"} in emf["_aws"]["CloudWatchMetrics"][0]["Metrics"]
    expected_keys = {
        f"compras/store-1/2026/03/07/insert_B1_{stamp(event, 0)}_{seq(event, 0)}.json",
        f"compras/~2E~2E~2Ftienda~20~C3~B1/2026/12/31/insert_a~2Fb_{stamp(event, 1)}_{seq(event, 1)}.json",
        f"compras/store-1/2026/03/07/modify_B1_{stamp(event, 2)}_{seq(event, 2)}.json",
        f"compras/store-1/2026/03/07/remove_B1_{stamp(event, 3)}_{seq(event, 3)}.json",
    }
    assert set(written) == expected_keys
    for body in written.values():
        assert body.endswith(b"\n") and body.count(b"\n") == 1

    modify = json.loads(written[sorted(k for k in written if "/modify_" in k)[0]], parse_float=Decimal)
    remove = json.loads(written[sorted(k for k in written if "/remove_" in k)[0]], parse_float=Decimal)
    assert modify["user_id"] == "u-2"
    assert remove["user_id"] == "u-2"  # REMOVE exports the old image: the last state of the purchase
    assert remove["resumen"] == {
        "total_productos": 1,
        "total_cantidad": 2,
        "total_precio": Decimal("199.98"),
        "moneda": "EUR",
    }
    assert remove["metadata"]["event_name"] == "REMOVE"
    assert remove["metadata"]["sequence_number"] == seq(event, 3)
    assert remove["metadata"]["stage"] == "test"
    assert remove["metadata"]["processed_by"] == "actualizarComprasStream"
    assert remove["metadata"]["aws_region"] == "us-east-1"

    unsafe = json.loads(written[next(k for k in written if "/insert_a~2Fb_" in k)])
    assert (unsafe["tenant_id"], unsafe["compra_id"]) == ("../tienda ñ", "a/b")

    assert partitions(stack) == {
        ("store-1", "2026", "03", "07"): f"s3://{bucket}/compras/store-1/2026/03/07/",
        ("../tienda ñ", "2026", "12", "31"): f"s3://{bucket}/compras/~2E~2E~2Ftienda~20~C3~B1/2026/12/31/",
    }


def test_rerunning_the_same_batch_leaves_the_same_objects(stack, function):
    t = table(stack)
    for i in range(5):
        t.put_item(Item=purchase(f"s{i % 2}", f"B{i}"))
    event = stream_event(stack)
    function(event, context())
    first = set(objects(stack))
    first_partitions = partitions(stack)
    retry = build_function(stack, STREAM)  # a retry may land on a fresh container
    assert retry(event, context()) == {"batchItemFailures": []}
    assert set(objects(stack)) == first
    assert len(first) == 5
    assert partitions(stack) == first_partitions


def test_malformed_record_is_reported_and_the_rest_is_written(stack, caplog, function):
    t = table(stack)
    t.put_item(Item=purchase("s", "good-1"))
    t.put_item(Item=purchase("s", "bad", fecha="07/03/2026"))
    t.put_item(Item=purchase("s", "good-2"))
    event = stream_event(stack)

    response = function(event, context())

    assert response == {"batchItemFailures": [{"itemIdentifier": seq(event, 1)}]}
    assert sorted(k.split("/")[-1].split("_")[1] for k in objects(stack)) == ["good-1", "good-2"]
    malformed = [r for r in caplog.records if r.getMessage().startswith("Malformed stream record")]
    assert len(malformed) == 1
    assert malformed[0].sequence_number == seq(event, 1)
    assert "attribute 'fecha'" in malformed[0].reason
    assert malformed[0].levelname == "ERROR"


def test_parallel_put_failures_are_reported_per_record(stack, function):
    t = table(stack)
    for name in ["ok-0", "fail-1", "ok-2", "fail-3", "ok-4"]:
        t.put_item(Item=purchase("s", name))
    event = stream_event(stack)

    def refuse(request, **_):  # on the wire: both the lean PUT path and put_object emit before-send
        if "_fail-" in request.url:
            raise ClientError({"Error": {"Code": "SlowDown", "Message": "Reduce your request rate"}}, "PutObject")

    s3 = stack.aws.hot_client("s3")  # the stream export's PutObject client
    s3.meta.events.register("before-send.s3.PutObject", refuse)
    try:
        response = function(event, context())
    finally:
        s3.meta.events.unregister("before-send.s3.PutObject", refuse)

    # Every unwritten record is reported; Lambda checkpoints before the lowest one (fail-1), so no
    # record after an unwritten one is checkpointed, and the written ones after it are rewritten.
    assert response == {"batchItemFailures": [{"itemIdentifier": seq(event, 1)}, {"itemIdentifier": seq(event, 3)}]}
    assert sorted(k.split("/")[-1].split("_")[1] for k in objects(stack)) == ["ok-0", "ok-2", "ok-4"]

    retry = {"Records": event["Records"][1:]}
    assert function(retry, context()) == {"batchItemFailures": []}
    assert len(objects(stack)) == 5


def test_partition_failure_fails_the_records_of_that_partition(stack, function):
    t = table(stack)
    t.put_item(Item=purchase("s", "B1", fecha="2026-03-07 10:00:00"))
    assert function(stream_event(stack), context()) == {"batchItemFailures": []}
    t.put_item(Item=purchase("s", "B2", fecha="2026-03-08 10:00:00"))
    event = stream_event(stack)  # B1 again (partition known to this container) and B2 (new partition)

    def refuse(params, **_):
        raise ClientError({"Error": {"Code": "InternalServiceException", "Message": "boom"}}, "BatchCreatePartition")

    glue = stack.aws.client("glue")
    glue.meta.events.register("before-parameter-build.glue.BatchCreatePartition", refuse)
    try:
        response = function(event, context())
    finally:
        glue.meta.events.unregister("before-parameter-build.glue.BatchCreatePartition", refuse)
    assert response == {"batchItemFailures": [{"itemIdentifier": seq(event, 1)}]}
    assert set(partitions(stack)) == {("s", "2026", "03", "07")}

    assert function({"Records": event["Records"][1:]}, context()) == {"batchItemFailures": []}
    assert set(partitions(stack)) == {("s", "2026", "03", "07"), ("s", "2026", "03", "08")}


def test_a_batch_where_every_record_fails_is_a_function_error(stack, function):
    table(stack).put_item(Item=purchase("s", "bad", productos="not a list"))
    event = stream_event(stack)
    with pytest.raises(BatchProcessingError, match="All records failed"):
        function(event, context())
    assert objects(stack) == {}


def test_missing_put_concurrency_fails_fast(stack):
    environment = stack.lambda_environment(STREAM)
    assert function_settings(stack, STREAM).put_concurrency == int(environment.pop("PUT_CONCURRENCY"))
    with pytest.raises(MissingSettingError, match="PUT_CONCURRENCY"):
        StreamSettings.from_env(environment)


EVENTS = Path(stream_handler.__file__).parent / "events"


@pytest.mark.parametrize("name", ["insert.json", "modify.json", "remove.json", "batch.json"])
def test_sample_events_are_exported(stack, name, function):
    event = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    assert function(event, context()) == {"batchItemFailures": []}
    written = objects(stack)
    assert len(written) == len(event["Records"])
    for key, body in written.items():
        assert key.startswith("compras/tienda-centro/2026/11/20/")
        document = json.loads(body, parse_float=Decimal)
        assert document["resumen"]["moneda"] == "EUR"
        assert document["resumen"]["total_precio"] in (Decimal("199.98"), Decimal("203.73"))
    assert set(partitions(stack)) == {("tienda-centro", "2026", "11", "20")}


def test_new_aws_clients_start_with_a_cold_partition_cache(stack, aws, function):
    table(stack).put_item(Item=purchase("s", "B1"))
    function(stream_event(stack), context())
    assert set(partitions(stack)) == {("s", "2026", "03", "07")}

    aws.reset()  # same names, fresh resources and new clients: what a local pipeline re-run sees
    recreated = create_stack(aws.clients, stage="test")
    table(recreated).put_item(Item=purchase("s", "B1"))
    assert build_function(recreated, STREAM)(stream_event(recreated), context()) == {"batchItemFailures": []}
    assert set(partitions(recreated)) == {("s", "2026", "03", "07")}


# -- issue 15: items written by other producers (the original design's item schema) -----------------------


@pytest.mark.parametrize("name", ["original_design.json"])
def test_original_design_sample_events_are_exported(stack, name, function):
    """The original design's documented INSERT/MODIFY/REMOVE records (no ticket_id, categoria, moneda nor source
    attributes; an ISO 8601 fecha), kept beside the handler for `serverless invoke local`."""
    event = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    assert function(event, context()) == {"batchItemFailures": []}
    written = objects(stack)
    assert sorted(k.rsplit("/", 1)[1].split("_")[0] for k in written) == ["insert", "modify", "remove"]
    for key, body in written.items():
        assert key.startswith("compras/tenant-abc/2024/01/15/")
        document = json.loads(body, parse_float=Decimal)
        assert document["fecha"] == "2024-01-15 10:30:00"
        assert document["resumen"]["moneda"] == "EUR"
        assert {p["ticket_id"] for p in document["productos"]} == {None}
    assert set(partitions(stack)) == {("tenant-abc", "2024", "01", "15")}


def test_items_of_another_producer_are_exported_end_to_end(stack, function):
    """put_item / update_item / delete_item of original-design items (as an app or the console would write
    them) -> DynamoDB Streams -> the handler -> documents and partitions, nothing failed."""
    t = table(stack)
    original = {
        "compra_id": "C-1",
        "user_id": "app-user",
        "tenant_id": "app-tenant",
        "fecha": "2024-05-02T23:30:00-02:00",
        "productos": [{"codigo": "X", "nombre": "Agua", "precio_unitario": Decimal("0.5"), "cantidad": 4}],
    }
    t.put_item(Item=original)
    t.update_item(
        Key={"tenant_id": "app-tenant", "compra_id": "C-1"},
        UpdateExpression="SET productos = list_append(productos, :p)",
        ExpressionAttributeValues={":p": [{"codigo": "Y", "nombre": "Pan", "precio_unitario": None, "cantidad": 1}]},
    )
    t.delete_item(Key={"tenant_id": "app-tenant", "compra_id": "C-1"})
    event = stream_event(stack)
    assert [r["eventName"] for r in event["Records"]] == ["INSERT", "MODIFY", "REMOVE"]
    assert function(event, context()) == {"batchItemFailures": []}
    written = {k.rsplit("/", 1)[1].split("_")[0]: json.loads(v, parse_float=Decimal) for k, v in objects(stack).items()}
    assert set(written) == {"insert", "modify", "remove"}
    assert written["insert"]["fecha"] == "2024-05-03 01:30:00"  # converted to UTC: the partition is the 3rd
    assert written["insert"]["resumen"] == {
        "total_productos": 1,
        "total_cantidad": 4,
        "total_precio": Decimal("2.0"),
        "moneda": "EUR",
    }
    assert written["modify"]["resumen"]["total_productos"] == 2
    assert written["remove"]["resumen"]["total_cantidad"] == 5
    assert set(partitions(stack)) == {("app-tenant", "2024", "05", "03")}


def test_glue_table_recreated_under_a_warm_container_gets_its_partitions_again(stack, function):
    """The issue-15 case: a warm container exported partition P; the Glue table is deleted and recreated (a
    redeploy, a repair); the next records of P must register P again, not be reported done while invisible."""
    t = table(stack)
    t.put_item(Item=purchase("s", "B1"))
    first = stream_event(stack)
    assert function(first, context()) == {"batchItemFailures": []}
    glue = stack.aws.client("glue")
    names = stack.names
    definition = glue.get_table(DatabaseName=names.glue_database, Name=names.glue_table)["Table"]
    glue.delete_table(DatabaseName=names.glue_database, Name=names.glue_table)
    glue.create_table(
        DatabaseName=names.glue_database,
        TableInput={
            k: definition[k] for k in ("Name", "StorageDescriptor", "PartitionKeys", "TableType", "Parameters")
        },
    )
    assert partitions(stack) == {}

    t.put_item(Item=purchase("s", "B2"))
    everything = stream_event(stack)
    second = {"Records": everything["Records"][len(first["Records"]) :]}
    assert function(second, context()) == {"batchItemFailures": []}  # same (warm) exporter
    assert set(partitions(stack)) == {("s", "2026", "03", "07")}


class ShortOnTime(LocalLambdaContext):
    """A context whose remaining time drops under the export's margin after ``calls`` questions."""

    def __init__(self, calls: int) -> None:
        super().__init__(
            function_name="actualizarComprasStream",
            invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:actualizarComprasStream",
            memory_limit_in_mb=512,
            timeout_seconds=60,
        )
        self.calls = calls

    def get_remaining_time_in_millis(self) -> int:
        self.calls -= 1
        return 50_000 if self.calls >= 0 else 9_000


def test_no_put_starts_near_the_deadline_and_the_rest_is_reported_failed(stack):
    function = build_function(stack, STREAM, put_concurrency=1)  # one PUT at a time: which ones start is deterministic
    t = table(stack)
    for i in range(5):
        t.put_item(Item=purchase("s", f"B{i}"))
    event = stream_event(stack)
    response = function(event, ShortOnTime(calls=2))
    failed = [f["itemIdentifier"] for f in response["batchItemFailures"]]
    assert failed == [seq(event, i) for i in (2, 3, 4)]  # two PUTs started in time, three never started
    written = objects(stack)
    assert sorted(k.split("_")[1] for k in written) == ["B0", "B1"]
    assert set(partitions(stack)) == {("s", "2026", "03", "07")}  # the written ones are registered
    # the retry (a fresh invocation with time) writes the rest
    assert function(event, context()) == {"batchItemFailures": []}
    assert len(objects(stack)) == 5


def test_glue_partitions_are_ensured_while_the_puts_run(stack):
    """The PUTs wait (on the wire) until Glue has been asked about the batch's partitions: a sequential export
    (Glue after the last PUT) would never get there, and the PUTs would fail after the timeout."""
    function = build_function(stack, STREAM, put_concurrency=1)
    t = table(stack)
    for i in range(3):
        t.put_item(Item=purchase("s", f"B{i}", fecha=f"2026-03-0{i + 1} 10:00:00"))
    event = stream_event(stack)
    glue_asked = threading.Event()

    def seen_by_glue(**_):
        glue_asked.set()

    def wait_for_glue(request, **_):
        if not glue_asked.wait(timeout=3):
            raise ClientError({"Error": {"Code": "Timeout", "Message": "Glue was not asked yet"}}, "PutObject")

    glue, s3 = stack.aws.client("glue"), stack.aws.hot_client("s3")
    glue.meta.events.register("before-send.glue.BatchGetPartition", seen_by_glue)
    s3.meta.events.register("before-send.s3.PutObject", wait_for_glue)
    try:
        response = function(event, context())
    finally:
        glue.meta.events.unregister("before-send.glue.BatchGetPartition", seen_by_glue)
        s3.meta.events.unregister("before-send.s3.PutObject", wait_for_glue)
    assert response == {"batchItemFailures": []}
    assert len(objects(stack)) == 3
    assert set(partitions(stack)) == {("s", "2026", "03", f"0{i + 1}") for i in range(3)}
