"""local/sqs_poller.py against moto's SQS (the stack's ingest queue and its DLQ)."""

from __future__ import annotations

import json

import pytest

import pipeline_config as config
from local.sqs_poller import SqsPoller

pytestmark = pytest.mark.integration


class Recorder:
    """A handler that records its events and fails the messages whose body is in `fail`."""

    def __init__(self, fail: set[str] = frozenset(), raise_error: bool = False, bogus: bool = False) -> None:
        self.events: list[dict] = []
        self.contexts: list = []
        self.fail = fail
        self.raise_error = raise_error
        self.bogus = bogus

    def __call__(self, event, context):
        self.events.append(event)
        self.contexts.append(context)
        if self.raise_error:
            raise RuntimeError("function crashed")
        if self.bogus:
            return {"batchItemFailures": [{"itemIdentifier": "not-a-message-of-this-batch"}]}
        return {
            "batchItemFailures": [
                {"itemIdentifier": r["messageId"]} for r in self.events[-1]["Records"] if r["body"] in self.fail
            ]
        }


@pytest.fixture
def queue(stack):
    sqs = stack.aws.client("sqs")
    sqs.purge_queue(QueueUrl=stack.ingest_queue_url)  # the s3:TestEvent of the notification set-up
    return stack


def send(stack, *bodies: str, **attributes) -> None:
    sqs = stack.aws.client("sqs")
    for body in bodies:
        sqs.send_message(
            QueueUrl=stack.ingest_queue_url,
            MessageBody=body,
            MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
        )


def counts(stack, url: str) -> tuple[int, int]:
    attributes = stack.aws.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])


def test_batch_size_comes_from_the_template_mapping_and_is_honoured(queue):
    send(queue, *[f"m{i}" for i in range(12)])
    handler = Recorder()
    poller = SqsPoller(queue.event_source("ingestarTickets"), handler, aws=queue.aws)
    (declared,) = [
        r["Properties"]
        for r in queue.template["Resources"].values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping" and "StartingPosition" not in r["Properties"]
    ]
    assert poller.batch_size == declared["BatchSize"] == config.function_settings("ingestion")["batchSize"] == 5
    assert poller.queue_url == queue.ingest_queue_url
    stats = poller.run_until_idle()
    assert [len(e["Records"]) for e in handler.events] == [5, 5, 2]
    assert (stats.invocations, stats.messages_deleted, stats.messages_failed) == (3, 12, 0)
    assert counts(queue, queue.ingest_queue_url) == (0, 0)


def test_batches_over_ten_take_several_receives(queue):
    send(queue, *[f"m{i}" for i in range(23)])
    handler = Recorder()
    SqsPoller(queue.event_source("ingestarTickets"), handler, batch_size=20, aws=queue.aws).run_until_idle()
    assert [len(e["Records"]) for e in handler.events] == [20, 3]


def test_event_has_the_lambda_sqs_shape(queue):
    send(queue, '{"hello": "ñ"}', origin="test")
    handler = Recorder()
    SqsPoller(queue.event_source("ingestarTickets"), handler, aws=queue.aws).run_until_idle()
    [record] = handler.events[0]["Records"]
    assert set(record) == {
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfBody",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    }
    assert record["body"] == '{"hello": "ñ"}' and json.loads(record["body"]) == {"hello": "ñ"}
    assert record["eventSource"] == "aws:sqs" and record["eventSourceARN"] == queue.ingest_queue_arn
    assert record["awsRegion"] == "us-east-1"
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert {"SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"} <= set(record["attributes"])
    assert record["messageAttributes"]["origin"]["stringValue"] == "test"
    assert record["messageAttributes"]["origin"]["dataType"] == "String"
    context = handler.contexts[0]
    deployed = queue.functions["ingestarTickets"]  # the function as moto's Lambda holds it after the deployment
    assert context.function_name == deployed.name == "compras-test-ingestarTickets"
    assert context.invoked_function_arn == deployed.arn
    assert context.memory_limit_in_mb == deployed.memory_mb == int(config.function_settings("ingestion")["memorySize"])
    assert 0 < context.get_remaining_time_in_millis() <= deployed.timeout_seconds * 1000


def test_only_successful_messages_are_deleted_and_failed_ones_come_back(queue):
    send(queue, "ok-1", "bad", "ok-2")
    handler = Recorder(fail={"bad"})
    poller = SqsPoller(queue.event_source("ingestarTickets"), handler, retry_visibility_seconds=0, aws=queue.aws)
    first = poller.poll_once()
    assert (first.messages_deleted, first.messages_failed) == (2, 1)
    handler.fail = set()
    second = poller.poll_once()
    [record] = handler.events[-1]["Records"]
    assert record["body"] == "bad" and record["attributes"]["ApproximateReceiveCount"] == "2"
    assert second.messages_deleted == 1
    assert counts(queue, queue.ingest_queue_url) == (0, 0)


def test_without_a_visibility_override_failed_messages_stay_invisible(queue):
    send(queue, "bad")
    stats = SqsPoller(queue.event_source("ingestarTickets"), Recorder(fail={"bad"}), aws=queue.aws).run_until_idle()
    assert stats.messages_failed == 1
    assert counts(queue, queue.ingest_queue_url) == (0, 1)  # back after the queue's visibility timeout (1,800 s)


@pytest.mark.parametrize("handler", [Recorder(raise_error=True), Recorder(bogus=True)], ids=["raises", "unknown-id"])
def test_a_failed_invocation_returns_the_whole_batch(queue, handler):
    send(queue, "a", "b")
    stats = SqsPoller(
        queue.event_source("ingestarTickets"), handler, retry_visibility_seconds=0, aws=queue.aws
    ).poll_once()
    assert (stats.handler_errors, stats.messages_deleted, stats.messages_failed) == (1, 0, 2)
    assert stats.last_error
    assert counts(queue, queue.ingest_queue_url)[0] == 2


def test_poison_message_goes_to_the_dlq_after_max_receive_count(queue):
    send(queue, "poison", "fine")
    handler = Recorder(fail={"poison"})
    stats = SqsPoller(
        queue.event_source("ingestarTickets"), handler, retry_visibility_seconds=0, aws=queue.aws
    ).run_until_idle(max_seconds=30)
    max_receives = config.queue_settings()["maxReceiveCount"]
    poison_deliveries = [r for e in handler.events for r in e["Records"] if r["body"] == "poison"]
    assert len(poison_deliveries) == max_receives
    assert stats.messages_deleted == 1
    assert counts(queue, queue.ingest_queue_url) == (0, 0)
    dlq = queue.aws.client("sqs").receive_message(QueueUrl=queue.ingest_dlq_url, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in dlq] == ["poison"]
