"""lambdas/ingestion/service.py on moto: one read of the announced version, never an older source over a newer
one, vanished versions, retriable failures that make the SQS message fail and succeed on redelivery."""

from __future__ import annotations

import dataclasses
import json
import os
import time

import pytest
from boto3.dynamodb.types import TypeDeserializer

from lambdas.adapters.dynamodb import WritePolicy, WriteRetriesExhausted
from lambdas.domain import purchases
from lambdas.ingestion import service
from lambdas.shared.processes import run_in_processes
from lambdas.shared.settings import IngestionSettings, MissingSettingError
from local.pipeline import build_function, function_settings
from local.sqs_poller import SqsPoller
from local.stack import INGESTION
from tests.factories import write_policy

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
    stack.aws.client("sqs").purge_queue(QueueUrl=stack.ingest_queue_url)
    return stack


def items(stack) -> dict:
    des = TypeDeserializer()
    out = {}
    for raw in stack.aws.client("dynamodb").scan(TableName=stack.names.table)["Items"]:
        value = {k: des.deserialize(v) for k, v in raw.items()}
        out[(value["tenant_id"], value["compra_id"])] = value
    return out


def ingestion_of(stack, policy: WritePolicy | None = None) -> service.Ingestion:
    return service.build_ingestion(function_settings(stack, INGESTION), stack.aws, policy)


def upload(stack, key: str, text: str) -> None:
    # A separate client: the notification lands in the queue, the shared client keeps its hooks clean.
    stack.aws.client("s3").put_object(Bucket=stack.names.bucket, Key=key, Body=text.encode("utf-8"))


def test_split_basket_is_one_purchase_from_a_single_read(env):
    upload(env, "uploads/split.csv", SPLIT)
    s3_client, gets = env.aws.client("s3"), []
    s3_client.meta.events.register("before-call.s3.GetObject", lambda **_: gets.append(1), unique_id="count-gets")
    try:
        outcome = ingestion_of(env).ingest_object(env.names.bucket, "uploads/split.csv")
    finally:
        s3_client.meta.events.unregister("before-call.s3.GetObject", unique_id="count-gets")
    assert len(gets) == 1
    assert outcome.report_uri.endswith("/ingest-reports/split.csv.report.json")
    assert outcome.report["counts"]["purchases_written"] == 3
    b1 = items(env)[("S1", "B1")]
    assert [p["ticket_id"] for p in b1["productos"]] == ["T1", "T3", "T5"]
    assert b1["fecha"] == "2024-03-01 10:01:00"


def put_version(stack, key: str, text: str) -> str:
    response = stack.aws.client("s3").put_object(Bucket=stack.names.bucket, Key=key, Body=text.encode("utf-8"))
    return response["VersionId"]


def test_the_announced_version_is_read_and_an_older_one_never_replaces_a_newer_one(env):
    ingest = ingestion_of(env)
    v1 = put_version(env, "uploads/v.csv", SPLIT)
    time.sleep(1.1)  # LastModified has one-second resolution
    v2 = put_version(env, "uploads/v.csv", SPLIT.replace("Pan", "Pan integral"))
    first = ingest.ingest_object(env.names.bucket, "uploads/v.csv", version_id=v1)
    assert first.report["source"]["version_id"] == v1
    assert items(env)[("S1", "B1")]["productos"][0]["nombre"] == "Pan"  # v1, although v2 is the current object
    assert items(env)[("S1", "B1")]["source_version_id"] == v1
    ingest.ingest_object(env.names.bucket, "uploads/v.csv", version_id=v2)
    again = ingest.ingest_object(env.names.bucket, "uploads/v.csv", version_id=v1)  # redelivered
    assert again.report["status"] == "loaded"
    assert again.report["counts"]["purchases_superseded"] == 3 and again.report["counts"]["purchases_written"] == 0
    b1 = items(env)[("S1", "B1")]
    assert b1["productos"][0]["nombre"] == "Pan integral" and b1["source_version_id"] == v2


def test_a_version_that_no_longer_exists_is_not_ingested(env):
    ingest = ingestion_of(env)
    version = put_version(env, "uploads/gone.csv", SPLIT)
    s3_client = env.aws.client("s3")
    marker = s3_client.delete_object(Bucket=env.names.bucket, Key="uploads/gone.csv")["VersionId"]
    assert ingest.ingest_object(env.names.bucket, "uploads/gone.csv", version_id=marker) is None
    s3_client.delete_object(Bucket=env.names.bucket, Key="uploads/gone.csv", VersionId=version)
    assert ingest.ingest_object(env.names.bucket, "uploads/gone.csv", version_id=version) is None
    assert items(env) == {}


def test_throttling_past_the_retries_fails_the_message_and_redelivery_succeeds(env):
    settings = function_settings(env, INGESTION, max_write_attempts=2, backoff_base_seconds=0.0)
    throttled = {"left": 10_000}
    ddb = env.aws.hot_client("dynamodb")  # the client of the ingestion's TransactWriteItems calls

    def throttle(**_):
        if throttled["left"] > 0:
            throttled["left"] -= 1
            from botocore.exceptions import ClientError

            error = {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}
            raise ClientError(error, "TransactWriteItems")

    ddb.meta.events.register("before-call.dynamodb.TransactWriteItems", throttle)
    function = build_function(env, INGESTION, max_write_attempts=2, backoff_base_seconds=0.0)
    poller = SqsPoller(env.event_source(INGESTION), function, retry_visibility_seconds=0, aws=env.aws)
    try:
        upload(env, "uploads/a.csv", SPLIT)
        first = poller.poll_once()
        assert (first.messages_failed, first.messages_deleted) == (1, 0)
        assert items(env) == {}
        throttled["left"] = 0  # the table recovers
        second = poller.poll_once()
        assert second.messages_deleted == 1
    finally:
        ddb.meta.events.unregister("before-call.dynamodb.TransactWriteItems", throttle)
    assert sorted(items(env)) == [("S1", "B1"), ("S1", "B2"), ("S1", "B3")]
    assert service.write_policy(settings).max_attempts == 2


def test_retriable_failure_propagates_from_the_service(env):
    from tests.reliability import faults

    upload(env, "uploads/a.csv", SPLIT)
    ddb = env.aws.hot_client("dynamodb")  # the client of the ingestion's TransactWriteItems calls
    conflict = faults.json_error(400, "TransactionConflictException", "Transaction is ongoing for the item")
    with (
        faults.inject(ddb, "TransactWriteItems", conflict, times=None),
        pytest.raises(WriteRetriesExhausted, match="after 3 attempts"),
    ):
        ingestion_of(env, write_policy(max_attempts=3, backoff_base_seconds=0)).ingest_object(
            env.names.bucket, "uploads/a.csv"
        )


def test_report_key_mirrors_the_upload_path(env):
    settings = function_settings(env, INGESTION)
    assert service.report_key(settings, "uploads/a/b ñ.csv") == "ingest-reports/a/b ñ.csv.report.json"


def test_an_upload_key_too_long_for_the_mirrored_report_key_still_gets_a_report(env):
    key = "uploads/" + "carpeta/" * 120 + "x" * 40 + ".csv"  # 1,012 bytes: the mirrored report key would be 1,031
    upload(env, key, SPLIT)
    outcome = ingestion_of(env).ingest_object(env.names.bucket, key)
    target = outcome.report_uri.removeprefix(f"s3://{env.names.bucket}/")
    assert len(target.encode("utf-8")) <= 1024 and target.endswith(".report.json") and "~" in target
    stored = env.aws.client("s3").get_object(Bucket=env.names.bucket, Key=target)
    assert json.loads(stored["Body"].read())["source"]["key"] == key
    assert outcome.report["counts"]["purchases_written"] == 3


def test_settings_come_from_the_deployed_function_and_fail_fast(env):
    """The ingestion's settings: parsed once from the deployed function's environment (config values)."""
    import pipeline_config as config

    cfg = config.function_settings("ingestion")
    settings = IngestionSettings.from_env(env.lambda_environment("ingestarTickets"))
    assert settings.max_reported_rejections == cfg["maxReportedRejections"]
    assert settings.grouping_memory_mb == cfg["groupingMemoryMB"]
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


def many_baskets(baskets: int) -> str:
    """Interleaved lines of ``baskets`` purchases (2 lines each, the second far from the first)."""
    first = [f"T{b}a,Pan,B{b:04d},2024-03-01 10:00:00,c,1,S{b % 3}\n" for b in range(baskets)]
    second = [f"T{b}b,Sal,B{b:04d},2024-03-01 10:01:00,c,2,S{b % 3}\n" for b in range(baskets)]
    return HEADER + "".join(first + second)


def test_worker_processes_write_every_purchase_once_with_their_own_clients(env):
    settings = function_settings(env, INGESTION)
    policy = service.write_policy(settings)
    plan = service.worker_plan(
        dataclasses.replace(settings, max_worker_processes=2, rows_per_worker_process=1), env.aws, policy, cpus=2
    )
    assert plan is not None and plan.processes == 2
    upload(env, "uploads/many.csv", many_baskets(300))
    sent = []
    env.aws.hot_client("dynamodb").meta.events.register(
        "before-call.dynamodb.TransactWriteItems", lambda **_: sent.append(1), unique_id="count-parent-writes"
    )
    try:
        outcome = service.build_ingestion(settings, env.aws, policy, plan).ingest_object(
            env.names.bucket, "uploads/many.csv"
        )
    finally:
        env.aws.hot_client("dynamodb").meta.events.unregister(
            "before-call.dynamodb.TransactWriteItems", unique_id="count-parent-writes"
        )
    assert sent == []  # the parent's client wrote nothing: the workers did, with clients of their own
    counts = outcome.report["counts"]
    assert (counts["rows_loaded"], counts["purchases_written"], counts["purchases_superseded"]) == (600, 300, 0)
    stored = items(env)
    assert len(stored) == 300 and all(len(item["productos"]) == 2 for item in stored.values())
    again = service.build_ingestion(settings, env.aws, policy, plan).ingest_object(env.names.bucket, "uploads/many.csv")
    assert again.report["counts"]["purchases_written"] == 300  # the same version again: idempotent
    assert items(env) == stored


def test_a_worker_process_failing_fails_the_file_retriably_and_writes_no_report(env):
    from botocore.exceptions import ClientError

    settings = dataclasses.replace(
        function_settings(env, INGESTION), table_name="no-such-table", rows_per_worker_process=1
    )
    policy = write_policy(max_attempts=1)
    plan = service.worker_plan(dataclasses.replace(settings, max_worker_processes=2), env.aws, policy, cpus=2)
    upload(env, "uploads/lost.csv", many_baskets(50))
    with pytest.raises(ClientError, match="ResourceNotFoundException") as raised:
        service.build_ingestion(settings, env.aws, policy, plan).ingest_object(env.names.bucket, "uploads/lost.csv")
    assert any("worker process" in note for note in raised.value.__notes__)
    reports = env.aws.client("s3").list_objects_v2(Bucket=env.names.bucket, Prefix=settings.ingest_reports_prefix)
    assert "lost.csv" not in json.dumps(reports.get("Contents", []), default=str)


def test_the_worker_count_follows_the_functions_memory_and_the_settings(env):
    settings = IngestionSettings.from_env(
        {**env.lambda_environment(INGESTION), "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1769"}
    )
    policy = service.write_policy(settings)
    assert settings.memory_mb == 1769 and service.worker_plan(settings, env.aws, policy, cpus=2) is None  # one vCPU
    bigger = IngestionSettings.from_env(
        {**env.lambda_environment(INGESTION), "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "10240"}
    )
    plan = service.worker_plan(bigger, env.aws, policy, cpus=6)
    assert plan is not None and plan.processes == min(6, bigger.max_worker_processes)
    assert plan.rows_per_process == bigger.rows_per_worker_process
    assert plan.make_sink.policy.concurrency == -(-policy.concurrency // plan.processes)  # shared, not multiplied


class _DyingWriter:
    """A worker's writer that writes some purchases, then its process dies (killed, out of memory) — once."""

    def __init__(self, inner, flag, after: int) -> None:
        self.inner, self.flag, self.after, self.puts = inner, flag, after, 0

    def put(self, item) -> None:
        self.inner.put(item)
        self.puts += 1
        if self.puts == self.after and not self.flag.exists():
            self.flag.write_text("died")
            self.inner.flush()  # what it sent so far is in the table
            os._exit(137)

    def flush(self):
        return self.inner.flush()

    def close(self) -> None:
        self.inner.close()


def test_a_worker_process_dying_mid_file_leaves_only_whole_purchases_and_the_redelivery_writes_the_rest(env, tmp_path):
    from lambdas.shared.processes import WorkerFailed

    settings = function_settings(env, INGESTION)
    policy = service.write_policy(settings)
    writer = service._WorkerWriter(env.aws, settings.table_name, policy)
    flag = tmp_path / "died"
    plan = purchases.WorkerPlan(2, 1, lambda: _DyingWriter(writer(), flag, after=120), run_in_processes)
    upload(env, "uploads/crash.csv", many_baskets(300))
    with pytest.raises(WorkerFailed, match="exit code 137"):
        service.build_ingestion(settings, env.aws, policy, plan).ingest_object(env.names.bucket, "uploads/crash.csv")
    partial = items(env)
    assert flag.exists() and 0 < len(partial) < 300
    assert all(len(item["productos"]) == 2 for item in partial.values())  # whole purchases only
    again = service.build_ingestion(settings, env.aws, policy, plan).ingest_object(
        env.names.bucket, "uploads/crash.csv"
    )
    assert again.report["counts"]["purchases_written"] == 300 and again.report["status"] == "loaded"
    stored = items(env)
    assert len(stored) == 300 and all(len(item["productos"]) == 2 for item in stored.values())
