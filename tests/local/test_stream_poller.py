from __future__ import annotations

import json
import time
from decimal import Decimal

import pytest

import pipeline_config as config
from local.pipeline import build_function
from local.stack import STREAM
from local.stream_poller import StreamPoller, StreamPollerSettings
from tests.resources import purchases_table

pytestmark = pytest.mark.integration


def put(stack, *compra_ids, fecha="2026-03-07 10:15:00"):
    table = purchases_table(stack)
    for compra_id in compra_ids:
        table.put_item(
            Item={
                "tenant_id": "s",
                "compra_id": compra_id,
                # "bad…" purchases violate the item schema: the stream export can never write them
                "fecha": "not a date" if compra_id.startswith("bad") else fecha,
                "productos": [
                    {"codigo": "P", "nombre": "n", "categoria": "c", "cantidad": Decimal(1), "ticket_id": "T"}
                ],
            }
        )


def exported(stack) -> list[str]:
    s3 = stack.aws.client("s3")
    contents = s3.list_objects_v2(Bucket=stack.names.bucket, Prefix="compras/").get("Contents", [])
    return sorted(o["Key"].split("/")[-1].split("_")[1] for o in contents)


def failure_messages(stack) -> list[dict]:
    sqs = stack.aws.client("sqs")
    messages = sqs.receive_message(QueueUrl=stack.stream_failure_queue_url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


class Recorder:
    """Wraps the real function of ``stack``, records every invocation; optionally crashes on some compra ids."""

    def __init__(self, stack, crash_on=()):
        self.function = build_function(stack, STREAM)
        self.batches: list[list[str]] = []
        self.events: list[dict] = []
        self.contexts: list = []
        self.crash_on = set(crash_on)

    def __call__(self, event, context):
        ids = [r["dynamodb"]["Keys"]["compra_id"]["S"] for r in event["Records"]]
        self.batches.append(ids)
        self.events.append(event)
        self.contexts.append(context)
        if self.crash_on & set(ids):
            raise RuntimeError("simulated crash")
        return self.function(event, context)


def poller(stack, handler, **overrides):
    source = stack.event_source("actualizarComprasStream")
    return StreamPoller(source, handler, StreamPollerSettings.from_mapping(source, **overrides), aws=stack.aws)


def test_settings_come_from_the_template_stream_mapping(stack):
    """The poller honours the deployed template's mapping, and the context is the deployed function's."""
    (declared,) = [
        r["Properties"]
        for r in stack.template["Resources"].values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping" and "StartingPosition" in r["Properties"]
    ]
    source = stack.event_source("actualizarComprasStream")
    settings = StreamPollerSettings.from_mapping(source)
    assert (settings.batch_size, settings.starting_position) == (declared["BatchSize"], declared["StartingPosition"])
    assert settings.bisect_batch_on_function_error is declared["BisectBatchOnFunctionError"]
    assert settings.maximum_retry_attempts == declared["MaximumRetryAttempts"]
    assert settings.maximum_record_age_seconds == declared["MaximumRecordAgeInSeconds"]
    assert settings.report_batch_item_failures is ("ReportBatchItemFailures" in declared["FunctionResponseTypes"])
    poller = StreamPoller(source, Recorder(stack), aws=stack.aws)
    assert poller.stream_arn == stack.table_stream_arn
    assert poller.failure_queue_url == stack.stream_failure_queue_url
    assert source.function.name == f"compras-test-{config.function_settings('stream')['name']}"


def test_batches_in_order_with_the_lambda_event_shape(stack):
    put(stack, *[f"c{i}" for i in range(7)])
    recorder = Recorder(stack)
    stats = poller(stack, recorder, batch_size=3).run_until_idle()

    assert recorder.batches == [["c0", "c1", "c2"], ["c3", "c4", "c5"], ["c6"]]
    assert (stats.invocations, stats.records_succeeded, stats.records_discarded) == (3, 7, 0)
    assert exported(stack) == [f"c{i}" for i in range(7)]
    record = recorder.events[0]["Records"][0]
    assert record["eventSourceARN"] == stack.table_stream_arn
    assert (record["eventSource"], record["awsRegion"], record["eventName"]) == ("aws:dynamodb", "us-east-1", "INSERT")
    assert isinstance(record["dynamodb"]["ApproximateCreationDateTime"], int)
    assert record["dynamodb"]["SequenceNumber"].isdigit()
    context = recorder.contexts[0]
    assert context.function_name == "compras-test-actualizarComprasStream"  # the deployed function's name
    assert context.invoked_function_arn == stack.functions["actualizarComprasStream"].arn
    assert context.get_remaining_time_in_millis() > 0
    assert failure_messages(stack) == []


def test_poison_record_goes_to_the_failure_queue_after_capped_retries(stack):
    put(stack, "g0", "g1", "bad", "g3", "g4")
    recorder = Recorder(stack)
    stats = poller(stack, recorder, batch_size=10, maximum_retry_attempts=2).run_until_idle()

    # Partial failure: checkpoint before 'bad', retry from it (only the remaining records), twice.
    assert recorder.batches == [["g0", "g1", "bad", "g3", "g4"], ["bad", "g3", "g4"], ["bad", "g3", "g4"]]
    assert exported(stack) == ["g0", "g1", "g3", "g4"]
    assert (stats.records_succeeded, stats.records_discarded, stats.retries) == (2, 3, 2)
    [message] = failure_messages(stack)
    sequences = [r["dynamodb"]["SequenceNumber"] for r in recorder.events[0]["Records"]]
    info = message["DDBStreamBatchInfo"]
    assert info["startSequenceNumber"] == sequences[2] and info["endSequenceNumber"] == sequences[4]
    assert info["batchSize"] == 3
    assert info["streamArn"] == stack.table_stream_arn
    assert info["shardId"].startswith("shardId-")
    assert message["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert message["requestContext"]["approximateInvokeCount"] == 3
    assert message["requestContext"]["functionArn"] == stack.functions["actualizarComprasStream"].arn
    assert "functionError" not in message["responseContext"]


def test_function_error_bisects_down_to_the_poison_record(stack):
    put(stack, *[f"c{i}" for i in range(6)])
    recorder = Recorder(stack, crash_on={"c3"})
    stats = poller(stack, recorder, batch_size=6, maximum_retry_attempts=1).run_until_idle()

    assert recorder.batches == [
        ["c0", "c1", "c2", "c3", "c4", "c5"],
        ["c0", "c1", "c2"],
        ["c3", "c4", "c5"],
        ["c3"],
        ["c3"],  # the one retry of the single record
        ["c4", "c5"],
    ]
    assert exported(stack) == ["c0", "c1", "c2", "c4", "c5"]
    assert (stats.bisections, stats.function_errors, stats.records_discarded) == (2, 4, 1)
    [message] = failure_messages(stack)
    assert message["DDBStreamBatchInfo"]["batchSize"] == 1
    assert message["responseContext"]["functionError"] == "Unhandled"


def test_a_batch_that_is_entirely_poison_is_a_function_error_and_is_bisected(stack):
    put(stack, "bad1", "bad2")
    recorder = Recorder(stack)
    stats = poller(stack, recorder, batch_size=10, maximum_retry_attempts=0).run_until_idle()
    assert recorder.batches == [["bad1", "bad2"], ["bad1"], ["bad2"]]
    assert stats.records_discarded == 2
    assert sorted(m["DDBStreamBatchInfo"]["batchSize"] for m in failure_messages(stack)) == [1, 1]


def test_records_older_than_maximum_age_are_discarded_unprocessed(stack):
    put(stack, "old1", "old2")
    recorder = Recorder(stack)
    later = time.time() + 2 * 3600
    source = stack.event_source("actualizarComprasStream")
    stats = StreamPoller(
        source,
        recorder,
        StreamPollerSettings.from_mapping(source, maximum_record_age_seconds=3600),
        aws=stack.aws,
        clock=lambda: later,
    ).run_until_idle()
    assert recorder.batches == []
    assert stats.records_discarded == 2
    [message] = failure_messages(stack)
    assert message["requestContext"]["condition"] == "RecordAgeExceeded"
    assert message["DDBStreamBatchInfo"]["batchSize"] == 2


def test_latest_starting_position_skips_earlier_records(stack):
    put(stack, "before")
    recorder = Recorder(stack)
    latest = poller(stack, recorder, starting_position="LATEST")
    put(stack, "after")
    latest.run_until_idle()
    assert recorder.batches == [["after"]]


def test_invalid_item_identifier_fails_the_whole_batch(stack):
    put(stack, "c0", "c1")
    calls = []

    def handler(event, context):
        calls.append(len(event["Records"]))
        return {"batchItemFailures": [{"itemIdentifier": "999"}]} if len(calls) == 1 else {"batchItemFailures": []}

    stats = poller(stack, handler).run_until_idle()
    assert calls == [2, 2]
    assert (stats.retries, stats.records_succeeded) == (1, 2)


def test_continues_after_idle(stack):
    recorder = Recorder(stack)
    running = poller(stack, recorder)
    assert running.run_until_idle().invocations == 0
    put(stack, "c0")
    assert running.run_until_idle().invocations == 1
    assert exported(stack) == ["c0"]
