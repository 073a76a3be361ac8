"""A local DynamoDB Streams event-source poller: drives the real stream handler like Lambda's ESM.

The event source mappings of the template are withheld from moto (local/stack.py ``WITHHELD``: moto would run
the function in Docker and drain the stream), so this module reads the table's stream through the DynamoDB
Streams API and invokes the handler in-process with the exact Lambda event shape, honouring the properties of
the deployed template's stream mapping (``LocalStack.event_source("actualizarComprasStream")``):

* ``batchSize`` records per invocation, per shard, in order; ``startingPosition`` TRIM_HORIZON or
  LATEST (LATEST = records written after the poller was created).
* ReportBatchItemFailures: the lowest reported sequence number is the checkpoint; the records
  before it are done, the batch is retried from it (and only the remaining records are retried,
  which is also what ``bisectBatchOnFunctionError`` does with a partial response). An unknown or
  empty ``itemIdentifier`` makes the whole batch a failure, as in Lambda.
* A function error (exception; Powertools raises one when EVERY record failed): with
  ``bisectBatchOnFunctionError`` the batch is split in two halves, each retried separately
  (splitting does not consume a retry attempt); a single record, or any batch without bisect,
  consumes one retry attempt.
* ``maximumRetryAttempts`` (-1 = unlimited) and ``maximumRecordAgeInSeconds`` (-1 = unlimited):
  records that exhaust them are discarded to the on-failure destination, the stream failure SQS
  queue, as a message shaped like Lambda's (requestContext.condition, responseContext,
  DDBStreamBatchInfo with shard id, sequence range, arrival times, batch size and stream ARN), and
  the shard moves on.
* Not modelled: ``maximumBatchingWindow`` (we never wait for a batch to fill),
  ParallelizationFactor, tumbling windows, shard splits while running (shards are re-listed on
  every poll and read parent-first).

API::

    poller = StreamPoller(stack.event_source("actualizarComprasStream"), handler, aws=stack.aws)
    stats = poller.run_until_idle()
"""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from lambdas.adapters.clients import AwsClients
from local.lambda_context import LocalLambdaContext

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass(frozen=True)
class StreamPollerSettings:
    """The stream mapping's properties the poller honours (``from_mapping``; overrides for tests)."""

    batch_size: int
    starting_position: str
    report_batch_item_failures: bool
    bisect_batch_on_function_error: bool
    maximum_retry_attempts: int
    maximum_record_age_seconds: int

    @classmethod
    def from_mapping(cls, mapping: Any, **overrides: Any) -> StreamPollerSettings:
        """From a local.stack.EventSourceMapping (the template's, resolved)."""
        settings = cls(
            batch_size=mapping.batch_size,
            starting_position=mapping.starting_position or "TRIM_HORIZON",
            report_batch_item_failures=mapping.report_batch_item_failures,
            bisect_batch_on_function_error=mapping.bisect_batch_on_function_error,
            maximum_retry_attempts=mapping.maximum_retry_attempts,
            maximum_record_age_seconds=mapping.maximum_record_age_seconds,
        )
        return replace(settings, **overrides)


@dataclass
class StreamPollerStats:
    invocations: int = 0
    records_read: int = 0  # read from the stream
    records_delivered: int = 0  # sum of batch sizes over all invocations (retries included)
    records_succeeded: int = 0  # checkpointed after a successful processing
    records_discarded: int = 0  # sent to the on-failure destination (or dropped without one)
    function_errors: int = 0
    partial_failures: int = 0
    retries: int = 0
    bisections: int = 0
    failure_messages: list[dict[str, Any]] = field(default_factory=list)


def to_lambda_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """One record as Lambda delivers it: eventSourceARN added, ApproximateCreationDateTime as an epoch
    number, binary attribute values base64 text (boto3 hands them over as bytes and datetimes)."""
    stream = dict(record["dynamodb"])
    created = stream.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        stream["ApproximateCreationDateTime"] = int(created.timestamp())
    elif created is not None:
        stream["ApproximateCreationDateTime"] = int(float(created))
    for name in ("Keys", "NewImage", "OldImage"):
        if name in stream:
            stream[name] = _binary_as_base64(stream[name])
    return {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": record.get("eventVersion", "1.1"),
        "eventSource": record.get("eventSource", "aws:dynamodb"),
        "awsRegion": record["awsRegion"],
        "dynamodb": stream,
        "eventSourceARN": stream_arn,
    }


def read_lambda_records(aws: AwsClients, stream_arn: str, *, page_limit: int = 1000) -> list[dict[str, Any]]:
    """Every record now in the stream (all shards, from TRIM_HORIZON, in order), shaped as Lambda delivers them:
    what a test or a benchmark feeds a stream handler directly. The poller reads incrementally instead."""
    streams = aws.client("dynamodbstreams")
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=page_limit)
            if not page["Records"]:
                break
            records.extend(to_lambda_record(record, stream_arn) for record in page["Records"])
            iterator = page.get("NextShardIterator")
    return records


def _binary_as_base64(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {k: _binary_as_base64(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_binary_as_base64(v) for v in value]
    return value


@dataclass
class _Shard:
    shard_id: str
    iterator: str | None
    buffer: deque = field(default_factory=deque)  # read, not yet checkpointed
    closed: bool = False
    last_read: int = -1  # sequence number of the last record read from the shard


class StreamPoller:
    """Reads a DynamoDB stream and invokes `handler(event, context)` like Lambda's event-source mapping."""

    def __init__(
        self,
        source: Any,
        handler: Handler,
        settings: StreamPollerSettings | None = None,
        *,
        aws: AwsClients,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``source``: the stream's event source mapping (local.stack.EventSourceMapping): stream, function,
        on-failure destination; ``settings`` overrides its properties (default: ``from_mapping(source)``);
        ``aws``: the clients of the stand-in the stream lives in (local.stack.LocalStack.aws)."""
        self.source = source
        self.function = source.function
        self.stream_arn = source.source_arn
        self.handler = handler
        self.settings = settings or StreamPollerSettings.from_mapping(source)
        self.region = self.stream_arn.split(":")[3]
        self.function_arn = self.function.arn
        self.clock = clock
        self.stats = StreamPollerStats()
        self._streams = aws.client("dynamodbstreams")
        self._sqs = aws.client("sqs") if source.on_failure_arn else None
        self.failure_queue_url = (
            self._sqs.get_queue_url(QueueName=source.on_failure_arn.rsplit(":", 1)[-1])["QueueUrl"]
            if self._sqs is not None
            else None
        )
        self._shards: dict[str, _Shard] = {}
        self._refresh_shards()

    # -- reading ---------------------------------------------------------------------------------

    def _refresh_shards(self) -> None:
        description = self._streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]
        # The starting position applies to the shards open when the poller starts; shards that appear
        # later (after a split) are read from their start.
        position = self.settings.starting_position if not self._shards else "TRIM_HORIZON"
        for shard in description["Shards"]:
            shard_id = shard["ShardId"]
            if shard_id in self._shards:
                continue
            iterator = self._streams.get_shard_iterator(
                StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType=position
            )["ShardIterator"]
            self._shards[shard_id] = _Shard(shard_id=shard_id, iterator=iterator)

    def _fill(self, shard: _Shard) -> None:
        while len(shard.buffer) < self.settings.batch_size and shard.iterator:
            response = self._streams.get_records(ShardIterator=shard.iterator, Limit=1000)
            shard.iterator = response.get("NextShardIterator")
            if shard.iterator is None:
                shard.closed = True
            records = response.get("Records", [])
            for record in records:
                sequence = int(record["dynamodb"]["SequenceNumber"])
                if sequence <= shard.last_read:
                    # A shard's records come in strictly increasing order; reading one again would make
                    # run_until_idle() loop for ever, so stop with what the stand-in returned.
                    raise RuntimeError(
                        f"stream {self.stream_arn} shard {shard.shard_id}: record {sequence} read again "
                        f"after {shard.last_read} (the stream endpoint replayed records)"
                    )
                shard.last_read = sequence
            shard.buffer.extend(records)
            self.stats.records_read += len(records)
            if not records:
                break

    # -- driving -----------------------------------------------------------------------------------

    def poll_once(self) -> int:
        """One batch per shard (at most batch_size records), retried/bisected to completion.
        Returns how many records were taken off the shards (succeeded or discarded)."""
        self._refresh_shards()
        handled = 0
        for shard in self._shards.values():
            self._fill(shard)
            if not shard.buffer:
                continue
            batch = [shard.buffer.popleft() for _ in range(min(self.settings.batch_size, len(shard.buffer)))]
            self._deliver(shard, batch)
            handled += len(batch)
        return handled

    def run_until_idle(self, max_polls: int | None = None) -> StreamPollerStats:
        """Poll until no shard has records left (or max_polls batches); returns the cumulative stats."""
        polls = 0
        while max_polls is None or polls < max_polls:
            if self.poll_once() == 0:
                break
            polls += 1
        return self.stats

    def _deliver(self, shard: _Shard, batch: list[dict[str, Any]]) -> None:
        work: deque[tuple[list[dict[str, Any]], int]] = deque([(batch, 0)])
        while work:
            records, attempts = work.popleft()
            records = self._drop_expired(shard, records, attempts)
            if not records:
                continue
            failed_index, function_error = self._invoke(records)
            if failed_index is None:
                self.stats.records_succeeded += len(records)
                continue
            if function_error and self.settings.bisect_batch_on_function_error and len(records) > 1:
                middle = len(records) // 2
                self.stats.bisections += 1
                work.appendleft((records[middle:], attempts))
                work.appendleft((records[:middle], attempts))
                continue
            self.stats.records_succeeded += failed_index
            remaining = records[failed_index:]
            limit = self.settings.maximum_retry_attempts
            if limit >= 0 and attempts >= limit:
                self._discard(shard, remaining, "RetryAttemptsExhausted", attempts + 1, function_error)
                continue
            self.stats.retries += 1
            work.appendleft((remaining, attempts + 1))

    def _invoke(self, records: list[dict[str, Any]]) -> tuple[int | None, bool]:
        """Returns (index of the first record to retry or None when all succeeded, was it a function error)."""
        event = {"Records": [to_lambda_record(r, self.stream_arn) for r in records]}
        context = LocalLambdaContext.of(self.function)
        self.stats.invocations += 1
        self.stats.records_delivered += len(records)
        try:
            response = self.handler(event, context)
        except Exception as exc:
            self.stats.function_errors += 1
            log.warning("stream handler raised (function error) on %d records: %s", len(records), exc)
            return 0, True
        if not self.settings.report_batch_item_failures:
            return None, False
        failures = (response or {}).get("batchItemFailures") if isinstance(response, dict) else None
        if not failures:
            return None, False
        self.stats.partial_failures += 1
        positions = {r["dynamodb"]["SequenceNumber"]: i for i, r in enumerate(records)}
        indexes = []
        for failure in failures:
            identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
            if not identifier or identifier not in positions:
                log.warning("batchItemFailures has an invalid itemIdentifier %r: whole batch failed", identifier)
                return 0, False
            indexes.append(positions[identifier])
        return min(indexes), False

    def _drop_expired(self, shard: _Shard, records: list[dict[str, Any]], attempts: int) -> list[dict[str, Any]]:
        limit = self.settings.maximum_record_age_seconds
        if limit < 0:
            return records
        now = self.clock()
        expired = 0
        while expired < len(records) and now - _created(records[expired]) > limit:
            expired += 1
        if expired:
            self._discard(shard, records[:expired], "RecordAgeExceeded", attempts, False)
        return records[expired:]

    def _discard(
        self, shard: _Shard, records: list[dict[str, Any]], condition: str, invoke_count: int, function_error: bool
    ) -> None:
        self.stats.records_discarded += len(records)
        message: dict[str, Any] = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": self.function_arn,
                "condition": condition,
                "approximateInvokeCount": invoke_count,
            },
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST"},
            "version": "1.0",
            "timestamp": _iso(self.clock(), millis=True),
            "DDBStreamBatchInfo": {
                "shardId": shard.shard_id,
                "startSequenceNumber": records[0]["dynamodb"]["SequenceNumber"],
                "endSequenceNumber": records[-1]["dynamodb"]["SequenceNumber"],
                "approximateArrivalOfFirstRecord": _iso(_created(records[0])),
                "approximateArrivalOfLastRecord": _iso(_created(records[-1])),
                "batchSize": len(records),
                "streamArn": self.stream_arn,
            },
        }
        if function_error:
            message["responseContext"]["functionError"] = "Unhandled"
        self.stats.failure_messages.append(message)
        log.error(
            "%d stream records discarded (%s), sequence %s..%s",
            len(records),
            condition,
            records[0]["dynamodb"]["SequenceNumber"],
            records[-1]["dynamodb"]["SequenceNumber"],
        )
        if self._sqs is not None:
            self._sqs.send_message(QueueUrl=self.failure_queue_url, MessageBody=json.dumps(message))


def _created(record: dict[str, Any]) -> float:
    created = record["dynamodb"].get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        return created.timestamp()
    return float(created or 0)


def _iso(epoch: float, millis: bool = False) -> str:
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    if millis:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
