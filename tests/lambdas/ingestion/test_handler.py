"""The ingestion handler end to end on moto: upload -> S3 notification in SQS (sent by moto) -> handler
(through local.sqs_poller or with the SQS event built from the queue) -> items, report, batch failures."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote_plus

import pytest
from boto3.dynamodb.types import TypeDeserializer

from lambdas.ingestion import handler as ingestion
from local.lambda_context import LocalLambdaContext
from local.pipeline import build_function
from local.sqs_poller import SqsPoller
from local.stack import INGESTION

pytestmark = pytest.mark.integration

EVENTS = Path(ingestion.__file__).parent / "events"
HEADER = "ticket_id,product,basket_id,timestamp,category,quantity,store,unit_price,user_id\n"
GOOD = HEADER + (
    "T1,Leche,B1,2024-03-01 10:00:00,Lácteos,2,S1,1.10,u1\n"
    "T2,Pan,B1,2024-03-01 09:00:00,Panadería,1,S1,,u1\n"
    "T3,Café,B2,2024-03-01T12:00:00+01:00,Bebidas,1,S2,3.5,\n"
    "T4,Té,B3,not-a-date,Bebidas,1,S2,3.5,\n"
)


@pytest.fixture
def env(stack):
    """The stack with an empty ingest queue (create_stack's notification set-up sent an s3:TestEvent)."""
    drain_test_event(stack)
    return stack


def put(stack, key: str, body: str | bytes) -> None:
    data = body.encode("utf-8") if isinstance(body, str) else body
    stack.aws.client("s3").put_object(Bucket=stack.names.bucket, Key=key, Body=data)


def table_items(stack) -> dict[tuple[str, str], dict]:
    des = TypeDeserializer()
    items = stack.aws.client("dynamodb").scan(TableName=stack.names.table)["Items"]
    out = {}
    for raw in items:
        value = {k: des.deserialize(v) for k, v in raw.items()}
        out[(value["tenant_id"], value["compra_id"])] = value
    return out


def report_of(stack, key: str) -> dict:
    name = key.removeprefix("uploads/")
    obj = stack.aws.client("s3").get_object(Bucket=stack.names.bucket, Key=f"ingest-reports/{name}.report.json")
    return json.loads(obj["Body"].read())


def poller(stack) -> SqsPoller:
    return SqsPoller(stack.event_source(INGESTION), function(stack), retry_visibility_seconds=0, aws=stack.aws)


def function(stack):
    """The deployed ingestion function, built as on a cold start (local.pipeline.build_function)."""
    return build_function(stack, INGESTION)


def context() -> LocalLambdaContext:
    return LocalLambdaContext(function_name="ingestarTickets", memory_limit_in_mb=1024, timeout_seconds=120)


def s3_event_message(bucket: str, key: str, event_name: str = "ObjectCreated:Put", version_id: str = "") -> dict:
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": "2026-01-01T00:00:00.000Z",
        "eventName": event_name,
        "s3": {"bucket": {"name": bucket}, "object": {"key": quote_plus(key), "size": 1, "eTag": "x"}},
    }
    if version_id:
        record["s3"]["object"]["versionId"] = version_id
    return {"Records": [record]}


def sqs_event(stack, bodies: list[str]) -> dict:
    """Send the bodies to the ingest queue and build the Lambda event from what SQS hands back."""
    sqs = stack.aws.client("sqs")
    for body in bodies:
        sqs.send_message(QueueUrl=stack.ingest_queue_url, MessageBody=body)
    p = SqsPoller(stack.event_source(INGESTION), function(stack), batch_size=10, aws=stack.aws)
    return p.build_event(p.receive_batch())


def drain_test_event(stack) -> None:
    """create_stack's notification configuration made S3 send an s3:TestEvent: consume it first."""
    stats = poller(stack).run_until_idle()
    assert stats.messages_deleted == 1 and stats.messages_failed == 0


def test_upload_is_ingested_end_to_end(env, capsys, caplog):
    capsys.readouterr()
    put(env, "uploads/2024/tickets.csv", GOOD)
    stats = poller(env).run_until_idle()
    assert (stats.messages_deleted, stats.messages_failed) == (1, 0)

    items = table_items(env)
    assert sorted(items) == [("S1", "B1"), ("S2", "B2")]
    b1 = items[("S1", "B1")]
    assert b1["fecha"] == "2024-03-01 09:00:00" and b1["user_id"] == "u1"
    assert [p["ticket_id"] for p in b1["productos"]] == ["T1", "T2"]
    assert b1["source_key"] == "uploads/2024/tickets.csv" and b1["ingested_at"].endswith("Z")
    assert items[("S2", "B2")]["fecha"] == "2024-03-01 11:00:00"

    report = report_of(env, "uploads/2024/tickets.csv")
    assert report["status"] == "loaded_with_rejections"
    assert report["counts"]["rows_read"] == 4 and report["counts"]["purchases_written"] == 2
    assert report["rejected_rows"] == [{"line": 5, "reason": report["rejected_rows"][0]["reason"]}]
    assert "timestamp 'not-a-date'" in report["rejected_rows"][0]["reason"]

    ingested = [record for record in caplog.records if record.getMessage() == "file ingested"]
    bucket = env.names.bucket
    assert ingested[0].report == f"s3://{bucket}/ingest-reports/2024/tickets.csv.report.json"
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    emf = [entry for entry in printed if "_aws" in entry]
    assert emf[0]["RowsRead"] == [4.0] and emf[0]["RowsRejected"] == [1.0] and emf[0]["PurchasesWritten"] == [2.0]
    assert emf[0]["BytesRead"] == [float(len(GOOD.encode("utf-8")))]
    assert {"Name": "BytesRead", "Unit": "Bytes"} in emf[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"]
    [rejections] = [r for r in caplog.records if "rejected: reasons below" in r.getMessage()]
    assert rejections.levelname == "WARNING" and rejections.report == ingested[0].report
    assert rejections.rejected_rows == report["rejected_rows"]  # line and reason, in the logs too


def test_reingesting_the_same_object_changes_nothing_and_a_later_file_corrects(env):
    put(env, "uploads/a.csv", GOOD)
    poller(env).run_until_idle()
    first = table_items(env)
    put(env, "uploads/a.csv", GOOD)  # same bytes again: a new version and LastModified, the same purchases
    poller(env).run_until_idle()
    again = table_items(env)
    volatile = {"ingested_at": None, "source_version_id": None, "source_order": None}
    assert {k: {**v, **volatile} for k, v in again.items()} == {k: {**v, **volatile} for k, v in first.items()}
    put(env, "uploads/b.csv", HEADER + "T9,Agua,B1,2024-03-02 10:00:00,Bebidas,6,S1,0.40,u1\n")
    poller(env).run_until_idle()
    corrected = table_items(env)[("S1", "B1")]
    assert [p["ticket_id"] for p in corrected["productos"]] == ["T9"] and corrected["source_key"] == "uploads/b.csv"


def test_url_encoded_key_with_spaces_and_non_ascii(env):
    key = "uploads/tienda norte/año 2024 + ñandú €.csv"
    put(env, key, GOOD)
    stats = poller(env).run_until_idle()
    assert stats.messages_deleted == 1
    assert report_of(env, key)["source"]["key"] == key
    assert table_items(env)[("S1", "B1")]["source_key"] == key


def test_test_event_is_skipped(env, caplog):
    event = json.loads((EVENTS / "sqs_s3_test_event.json").read_text())
    assert function(env)(event, context()) == {"batchItemFailures": []}
    assert "s3:TestEvent skipped" in caplog.messages
    assert table_items(env) == {}


def test_partial_batch_failure_reports_only_the_bad_messages(env):
    put(env, "uploads/ok.csv", GOOD)  # moto sends its notification to the queue
    bucket = env.names.bucket
    event = sqs_event(env, ["this is not json", json.dumps({"no": "records"})])
    assert len(event["Records"]) == 3
    ids = {r["body"][:1]: r["messageId"] for r in event["Records"]}
    response = function(env)(event, context())
    failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
    good = next(r["messageId"] for r in event["Records"] if bucket in r["body"])
    assert good not in failed and len(failed) == 2 and ids["t"] in failed
    assert sorted(table_items(env)) == [("S1", "B1"), ("S2", "B2")]


def test_file_rejected_as_a_whole_succeeds_with_a_report(env):
    put(env, "uploads/bad.csv", "ticket_id,product\nT1,x\n")
    stats = poller(env).run_until_idle()
    assert (stats.messages_deleted, stats.messages_failed) == (1, 0)
    report = report_of(env, "uploads/bad.csv")
    assert report["status"] == "rejected" and "lacks required column" in report["file_rejection_reason"]
    assert table_items(env) == {}


def test_missing_key_is_logged_and_not_retried(env, caplog):
    event = sqs_event(env, [json.dumps(s3_event_message(env.names.bucket, "uploads/deleted meanwhile.csv"))])
    assert function(env)(event, context()) == {"batchItemFailures": []}
    [warning] = [r for r in caplog.records if "object version no longer exists" in r.getMessage()]
    assert warning.key == "uploads/deleted meanwhile.csv" and warning.levelname == "WARNING"


def test_the_version_the_notification_announces_is_ingested_even_after_an_overwrite(env):
    s3_client = env.aws.client("s3")
    first = s3_client.put_object(Bucket=env.names.bucket, Key="uploads/v.csv", Body=GOOD.encode())["VersionId"]
    s3_client.put_object(
        Bucket=env.names.bucket, Key="uploads/v.csv", Body=GOOD.replace("Pan", "Pan integral").encode()
    )
    env.aws.client("sqs").purge_queue(QueueUrl=env.ingest_queue_url)  # only our hand-made message below
    event = sqs_event(env, [json.dumps(s3_event_message(env.names.bucket, "uploads/v.csv", version_id=first))])
    assert function(env)(event, context()) == {"batchItemFailures": []}
    item = table_items(env)[("S1", "B1")]
    assert item["source_version_id"] == first
    assert {p["nombre"] for p in item["productos"]} >= {"Pan"}


@pytest.mark.parametrize(
    ("key", "event_name"),
    [
        ("uploads/notes.txt", "ObjectCreated:Put"),
        ("ingest-reports/x.csv", "ObjectCreated:Put"),
        ("uploads/a.csv", "ObjectRemoved:Delete"),
    ],
)
def test_other_keys_and_events_are_skipped_with_a_log_line(env, caplog, key, event_name):
    event = sqs_event(env, [json.dumps(s3_event_message(env.names.bucket, key, event_name))])
    response = function(env)(event, context())
    assert response == {"batchItemFailures": []}
    assert any("skipped" in message for message in caplog.messages)
    assert table_items(env) == {}


def test_every_object_created_kind_is_accepted(env):
    key = "uploads/multipart.csv"
    put(env, key, GOOD)
    bodies = [
        json.dumps(s3_event_message(env.names.bucket, key, name))
        for name in ("ObjectCreated:CompleteMultipartUpload", "ObjectCreated:Copy")
    ]
    response = function(env)(sqs_event(env, bodies), context())
    assert response == {"batchItemFailures": []}
    assert len(table_items(env)) == 2


def test_the_sample_event_runs_against_the_stack(env):
    event = json.loads((EVENTS / "sqs_s3_put.json").read_text())
    body = json.loads(event["Records"][0]["body"])
    body["Records"][0]["s3"]["bucket"]["name"] = env.names.bucket
    event["Records"][0]["body"] = json.dumps(body)
    put(env, "uploads/tienda norte/enero 2026 ñ.csv", GOOD)
    assert function(env)(event, context()) == {"batchItemFailures": []}
    assert len(table_items(env)) == 2
