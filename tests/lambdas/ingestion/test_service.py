"""lambdas/ingestion/service.py on moto: split baskets (second read), retriable failures that make the SQS
message fail and succeed on redelivery, an object replaced between the two reads."""

from __future__ import annotations

import json
import os

import boto3
import pytest
from boto3.dynamodb.types import TypeDeserializer

from lambdas.adapters import clients, s3
from lambdas.adapters.dynamodb import WritePolicy, WriteRetriesExhausted
from lambdas.ingestion import handler as ingestion
from lambdas.ingestion import service
from lambdas.shared.settings import IngestionSettings, MissingSettingError
from local.sqs_poller import SqsPoller

pytestmark = pytest.mark.integration

HEADER = "ticket_id,product,basket_id,timestamp,category,quantity,store\n"
SPLIT = HEADER + (
    "T1,Pan,B1,2024-03-01 10:05:00,c,1,S1\n"
    "T2,Sal,B2,2024-03-01 10:00:00,c,1,S1\n"
    "T3,Té,B1,2024-03-01 10:01:00,c,1,S1\n"
    "T4,Ron,B3,2024-03-01 10:00:00,c,1,S1\n"
    "T5,Ajo,B1,2024-03-01 10:09:00,c,1,S1\n"
)


@pytest.fixture
def env(stack):
    clients.reset_clients()
    clients.client("sqs").purge_queue(QueueUrl=stack.ingest_queue_url)
    yield stack
    clients.reset_clients()


def items(stack) -> dict:
    des = TypeDeserializer()
    out = {}
    for raw in clients.client("dynamodb").scan(TableName=stack.names.table)["Items"]:
        value = {k: des.deserialize(v) for k, v in raw.items()}
        out[(value["tenant_id"], value["compra_id"])] = value
    return out


def upload(stack, key: str, text: str) -> None:
    # A separate client: the notification lands in the queue, the shared client keeps its hooks clean.
    boto3.client("s3").put_object(Bucket=stack.names.bucket, Key=key, Body=text.encode("utf-8"))


def test_split_basket_is_rebuilt_from_a_second_read(env):
    upload(env, "uploads/split.csv", SPLIT)
    outcome = service.build_ingestion(IngestionSettings.from_env(os.environ)).ingest_object(
        env.names.bucket, "uploads/split.csv"
    )
    assert outcome.report_uri.endswith("/ingest-reports/split.csv.report.json")
    assert outcome.report["counts"]["split_purchases_rebuilt"] == 1
    assert outcome.report["counts"]["purchases_written"] == 3
    b1 = items(env)[("S1", "B1")]
    assert [p["ticket_id"] for p in b1["productos"]] == ["T1", "T3", "T5"]
    assert b1["fecha"] == "2024-03-01 10:01:00"


def test_object_replaced_between_the_two_reads_fails_the_file(env):
    upload(env, "uploads/split.csv", SPLIT)
    s3_client = clients.client("s3")
    calls = []

    def replace_before_second_get(**_):
        calls.append(1)
        if len(calls) == 2:
            upload(env, "uploads/split.csv", SPLIT.replace("Pan", "Pan integral"))

    s3_client.meta.events.register("before-call.s3.GetObject", replace_before_second_get)
    try:
        with pytest.raises(s3.ObjectChanged):
            service.build_ingestion(IngestionSettings.from_env(os.environ)).ingest_object(
                env.names.bucket, "uploads/split.csv"
            )
    finally:
        s3_client.meta.events.unregister("before-call.s3.GetObject", replace_before_second_get)


def test_throttling_past_the_retries_fails_the_message_and_redelivery_succeeds(env, monkeypatch):
    monkeypatch.setenv("MAX_WRITE_ATTEMPTS", "2")
    monkeypatch.setenv("BACKOFF_BASE_SECONDS", "0")
    throttled = {"left": 10_000}
    ddb = clients.hot_client("dynamodb")  # the client of the ingestion's BatchWriteItem calls

    def throttle(**_):
        if throttled["left"] > 0:
            throttled["left"] -= 1
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "BatchWriteItem")

    ddb.meta.events.register("before-call.dynamodb.BatchWriteItem", throttle)
    poller = SqsPoller(env.event_source("ingestarTickets"), ingestion.handler, retry_visibility_seconds=0)
    try:
        upload(env, "uploads/a.csv", SPLIT)
        first = poller.poll_once()
        assert (first.messages_failed, first.messages_deleted) == (1, 0)
        assert items(env) == {}
        throttled["left"] = 0  # the table recovers
        second = poller.poll_once()
        assert second.messages_deleted == 1
    finally:
        ddb.meta.events.unregister("before-call.dynamodb.BatchWriteItem", throttle)
    assert sorted(items(env)) == [("S1", "B1"), ("S1", "B2"), ("S1", "B3")]
    assert service.write_policy(IngestionSettings.from_env(os.environ)).max_attempts == 2


def test_retriable_failure_propagates_from_the_service(env, monkeypatch):
    upload(env, "uploads/a.csv", SPLIT)
    ddb = clients.hot_client("dynamodb")  # the client of the ingestion's BatchWriteItem calls

    def unprocessed(params, **_):
        from botocore.awsrequest import AWSResponse

        body = json.loads(params["body"])
        parsed = {"UnprocessedItems": body["RequestItems"]}

        class Raw:
            def stream(self, **_):
                yield json.dumps(parsed).encode()

        return AWSResponse("http://fault", 200, {}, Raw()), parsed

    ddb.meta.events.register_first("before-call.dynamodb.BatchWriteItem", unprocessed)
    try:
        with pytest.raises(WriteRetriesExhausted, match="UnprocessedItems"):
            service.build_ingestion(
                IngestionSettings.from_env(os.environ), WritePolicy(max_attempts=3, backoff_base_seconds=0)
            ).ingest_object(env.names.bucket, "uploads/a.csv")
    finally:
        ddb.meta.events.unregister("before-call.dynamodb.BatchWriteItem", unprocessed)


def test_report_key_mirrors_the_upload_path(env):
    settings = IngestionSettings.from_env(os.environ)
    assert service.report_key(settings, "uploads/a/b ñ.csv") == "ingest-reports/a/b ñ.csv.report.json"


def test_settings_come_from_the_deployed_function_and_fail_fast(env):
    """The ingestion's settings: parsed once from the deployed function's environment (config values)."""
    import pipeline_config as config

    cfg = config.function_settings("ingestion")
    settings = IngestionSettings.from_env(env.lambda_environment("ingestarTickets"))
    assert settings.max_reported_rejections == cfg["maxReportedRejections"]
    assert service.write_policy(settings) == WritePolicy(
        concurrency=cfg["writeConcurrency"],
        max_attempts=cfg["maxWriteAttempts"],
        backoff_base_seconds=cfg["backoffBaseSeconds"],
        backoff_cap_seconds=cfg["backoffCapSeconds"],
    )
    broken = {**env.lambda_environment("ingestarTickets"), "WRITE_CONCURRENCY": "many"}
    with pytest.raises(MissingSettingError, match="WRITE_CONCURRENCY='many'"):
        IngestionSettings.from_env(broken)
    del broken["MAX_REPORTED_REJECTIONS"]
    with pytest.raises(MissingSettingError, match="MAX_REPORTED_REJECTIONS is not set"):
        IngestionSettings.from_env({**broken, "WRITE_CONCURRENCY": "3"})
