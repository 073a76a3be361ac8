"""A local SQS event-source poller: drives a real Lambda handler the way Lambda's SQS ESM does.

The event source mappings of the template are withheld from moto (local/stack.py ``WITHHELD``: moto would run
the function in Docker), so this stands in for the mapping, with its properties as deployed
(``LocalStack.event_source(...)``: queue, batch size, response types) and the deployed function's name, memory
and timeout in the context:

* receives up to ``batch_size`` messages (the mapping's BatchSize; several ReceiveMessage calls when it is
  over 10) and builds the exact SQS Lambda event (messageId,
  receiptHandle, body, attributes incl. ApproximateReceiveCount, messageAttributes, md5OfBody,
  eventSource ``aws:sqs``, eventSourceARN, awsRegion);
* ReportBatchItemFailures: only the messages not listed in ``batchItemFailures`` are deleted. A handler
  exception, or a response naming an unknown message, fails the whole batch (as Lambda does);
* failed messages stay in the queue and reappear after the visibility timeout. For local runs
  ``retry_visibility_seconds`` shortens that with ChangeMessageVisibility;
* the queue's RedrivePolicy moves a message to the DLQ once it was received more than maxReceiveCount
  times (moto implements this on ReceiveMessage, like SQS).

Usage::

    poller = SqsPoller(stack.event_source("ingestarTickets"), handler, retry_visibility_seconds=0, aws=stack.aws)
    stats = poller.run_until_idle()
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lambdas.adapters.clients import AwsClients
from local.lambda_context import LocalLambdaContext

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class SqsPollerStats:
    invocations: int = 0
    messages_received: int = 0
    messages_deleted: int = 0  # succeeded
    messages_failed: int = 0  # reported in batchItemFailures or part of a failed invocation
    handler_errors: int = 0  # invocations that raised or answered with an invalid response
    last_error: str | None = None
    failed_message_ids: list[str] = field(default_factory=list)

    def add(self, other: SqsPollerStats) -> None:
        self.invocations += other.invocations
        self.messages_received += other.messages_received
        self.messages_deleted += other.messages_deleted
        self.messages_failed += other.messages_failed
        self.handler_errors += other.handler_errors
        self.last_error = other.last_error or self.last_error
        self.failed_message_ids.extend(other.failed_message_ids)


class SqsPoller:
    def __init__(
        self,
        source: Any,
        handler: Handler,
        *,
        batch_size: int | None = None,
        retry_visibility_seconds: int | None = None,
        aws: AwsClients,
    ) -> None:
        """``source``: the SQS event source mapping (local.stack.EventSourceMapping); ``batch_size`` overrides
        its BatchSize; ``aws``: the clients of the stand-in the queue lives in (local.stack.LocalStack.aws)."""
        self.source = source
        self.function = source.function
        self.queue_arn = source.source_arn
        self.handler = handler
        self.batch_size = batch_size or source.batch_size
        if not 1 <= self.batch_size <= 10000:
            raise ValueError(f"batch_size must be 1..10000 (Lambda's SQS limit), got {self.batch_size}")
        self.report_batch_item_failures = source.report_batch_item_failures
        self.retry_visibility_seconds = retry_visibility_seconds
        self.region = self.queue_arn.split(":")[3]
        self.sqs = aws.client("sqs")
        self.queue_url = self.sqs.get_queue_url(QueueName=self.queue_arn.rsplit(":", 1)[-1])["QueueUrl"]

    # -- one batch ------------------------------------------------------------------------------------

    def receive_batch(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        while len(messages) < self.batch_size:
            response = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(10, self.batch_size - len(messages)),
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
                WaitTimeSeconds=0,
            )
            received = response.get("Messages", [])
            if not received:
                break
            messages.extend(received)
        return messages

    def build_event(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """The event Lambda's SQS event source passes to the function."""
        return {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": dict(m.get("Attributes", {})),
                    "messageAttributes": {
                        name: _lambda_message_attribute(value) for name, value in m.get("MessageAttributes", {}).items()
                    },
                    "md5OfBody": m.get("MD5OfBody", ""),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.queue_arn,
                    "awsRegion": self.region,
                }
                for m in messages
            ]
        }

    def poll_once(self) -> SqsPollerStats:
        """Receive one batch, invoke the handler, delete what succeeded; empty stats when no message."""
        stats = SqsPollerStats()
        messages = self.receive_batch()
        if not messages:
            return stats
        stats.messages_received = len(messages)
        stats.invocations = 1
        context = LocalLambdaContext.of(self.function)
        ids = {m["MessageId"] for m in messages}
        failed: set[str]
        try:
            response = self.handler(self.build_event(messages), context)
            failed = _failed_ids(response, ids) if self.report_batch_item_failures else set()
        except Exception as exc:  # the invocation failed: every message of the batch returns to the queue
            stats.handler_errors = 1
            stats.last_error = f"{type(exc).__name__}: {exc}"
            failed = ids
        succeeded = [m for m in messages if m["MessageId"] not in failed]
        retry = [m for m in messages if m["MessageId"] in failed]
        self._delete(succeeded)
        self._release(retry)
        stats.messages_deleted = len(succeeded)
        stats.messages_failed = len(retry)
        stats.failed_message_ids = [m["MessageId"] for m in retry]
        return stats

    # -- until the queue is drained -------------------------------------------------------------------

    def run_until_idle(self, *, max_seconds: float = 120.0, idle_sleep: float = 0.05) -> SqsPollerStats:
        """Poll until no message is visible or in flight (in flight only counts when failed messages were
        made to reappear quickly with ``retry_visibility_seconds``), or ``max_seconds`` passed."""
        total = SqsPollerStats()
        deadline = time.monotonic() + max_seconds
        while time.monotonic() < deadline:
            stats = self.poll_once()
            total.add(stats)
            if stats.messages_received:
                continue
            if not self._waiting_for_retries():
                break
            time.sleep(idle_sleep)
        return total

    def _waiting_for_retries(self) -> bool:
        if self.retry_visibility_seconds is None:
            return False
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return any(int(attributes.get(name, "0")) for name in attributes)

    # -- internals ------------------------------------------------------------------------------------

    def _delete(self, messages: list[dict[str, Any]]) -> None:
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            response = self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
            if response.get("Failed"):
                raise RuntimeError(f"DeleteMessageBatch failed: {response['Failed']}")

    def _release(self, messages: list[dict[str, Any]]) -> None:
        if self.retry_visibility_seconds is None or not messages:
            return  # they reappear after the queue's visibility timeout, as with Lambda
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            self.sqs.change_message_visibility_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {
                        "Id": str(i),
                        "ReceiptHandle": m["ReceiptHandle"],
                        "VisibilityTimeout": self.retry_visibility_seconds,
                    }
                    for i, m in enumerate(chunk)
                ],
            )


def _failed_ids(response: Any, ids: set[str]) -> set[str]:
    """The failed message ids of a ReportBatchItemFailures response; an invalid one fails the batch."""
    if response is None:
        return set()
    if not isinstance(response, dict):
        raise ValueError(f"handler returned {type(response).__name__}, expected a dict with batchItemFailures")
    failures = response.get("batchItemFailures") or []
    failed = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in ids:
            raise ValueError(f"batchItemFailures names an unknown message {identifier!r}: the whole batch fails")
        failed.add(identifier)
    return failed


def _lambda_message_attribute(value: dict[str, Any]) -> dict[str, Any]:
    """SQS API message attribute -> the camelCase shape Lambda puts in the event."""
    converted: dict[str, Any] = {
        "dataType": value.get("DataType"),
        "stringListValues": value.get("StringListValues", []),
        "binaryListValues": value.get("BinaryListValues", []),
    }
    if "StringValue" in value:
        converted["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        converted["binaryValue"] = value["BinaryValue"]
    return converted
