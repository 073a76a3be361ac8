"""Export one batch of DynamoDB stream records: documents -> parallel PUTs and, at the same time, Glue partitions.

The outcome is decided for every record BEFORE Powertools' BatchProcessor walks the batch, so the
processor only reports what happened (``BatchOutcome.check``). Every record whose object was not
written, or whose partition could not be ensured, is reported as failed; Lambda then checkpoints
before the lowest failed sequence number and retries from there. Records after it that were
written are simply written again on retry: a key is a pure function of its record, so a retry
overwrites and never duplicates.

The PUTs (lambdas.adapters.s3.put_objects_parallel, the lean PutObject path of lambdas.adapters.s3_put) and the
Glue round trips of the batch overlap: as soon as the documents are built, ``PartitionRegistry.ensure``
(BatchGetPartition, then BatchCreatePartition for the missing ones) runs in its own thread for the partitions of
every document of the batch, while the PUTs run. The reporting rule does not change: a record is reported failed
iff its object was not written or its partition could not be ensured. What does change: a partition may be
registered a few milliseconds before its first document is written, or, when every PUT into it failed, without
any document until the retry writes them. Such an empty partition is harmless (Athena reads no rows from it; the
records are retried into it), and it saves the batch one or two Glue round trips after the last PUT.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

from lambdas.adapters import s3
from lambdas.adapters.clients import AwsClients
from lambdas.adapters.glue import EnsureResult, PartitionRegistry, PartitionSpec
from lambdas.domain import documents, keys
from lambdas.shared.threads import io_pool
from lambdas.stream.changes import change_from_record


class ObjectWriteError(RuntimeError):
    """The document of a record could not be written to S3 (retriable)."""


class PartitionError(RuntimeError):
    """The Glue partition of a written document could not be ensured (retriable)."""


@dataclass
class BatchOutcome:
    records: int = 0
    objects_written: int = 0
    bytes_written: int = 0  # sum of the sizes of the objects written (the BytesWritten metric)
    partitions_created: int = 0
    malformed: int = 0
    not_started: int = 0  # PUTs not started near the invocation's deadline (reported failed, retried)
    failures: dict[str, Exception] = field(default_factory=dict)  # sequence number -> why
    written_keys: list[str] = field(default_factory=list)

    def check(self, record: DynamoDBRecord) -> str:
        """Record handler for the BatchProcessor: raises the failure decided for this record."""
        failure = self.failures.get(_sequence_of(record.raw_event))
        if failure is not None:
            raise failure
        return "written"


PutObjects = Callable[..., list[Exception | None]]
# No new PUT starts with less than this left of the invocation: in-flight PUTs (connect 5 s, read 30 s per
# attempt in lambdas.adapters.clients, usually milliseconds), the Glue calls and the response must still fit.
DEADLINE_MARGIN_MS = 10_000


class StreamExporter:
    """Per-container exporter (its PartitionRegistry caches known partitions)."""

    def __init__(
        self,
        aws: AwsClients,
        *,
        bucket: str,
        context: documents.ExportContext,
        partitions: PartitionRegistry,
        put_concurrency: int,
        logger: Logger,
        put_objects: PutObjects = s3.put_objects_parallel,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.aws = aws
        self.bucket = bucket
        self.context = context
        self.partitions = partitions
        self.put_concurrency = put_concurrency
        self.logger = logger
        self.put_objects = put_objects
        self.clock = clock

    def export(
        self, raw_records: Sequence[dict[str, Any]], remaining_ms: Callable[[], int] | None = None
    ) -> BatchOutcome:
        """Export a batch. ``remaining_ms`` (the Lambda context's get_remaining_time_in_millis) stops new PUTs
        once less than DEADLINE_MARGIN_MS is left: the records not started are reported failed (retried), so
        a timeout never hides which records were written."""
        outcome = BatchOutcome(records=len(raw_records))
        processed_at = self.clock()
        exports: list[documents.ExportDocument] = []
        for raw in raw_records:
            try:
                change = change_from_record(DynamoDBRecord(raw))
                exports.append(documents.build_export(change, self.context, processed_at))
            except documents.MalformedRecordError as exc:
                outcome.malformed += 1
                outcome.failures[_sequence_of(raw)] = exc
                self.logger.error(
                    "Malformed stream record: it cannot be exported and is reported as failed; after the "
                    "capped retries it goes to the stream failure queue",
                    extra={"sequence_number": _sequence_of(raw), "event_id": raw.get("eventID"), "reason": str(exc)},
                )

        started = time.perf_counter()
        may_start = None if remaining_ms is None else (lambda: remaining_ms() > DEADLINE_MARGIN_MS)
        prefix = self.context.compras_prefix
        specs = {
            e.partition: PartitionSpec(
                values=e.partition, location=f"s3://{self.bucket}/{keys.partition_prefix(*e.partition, prefix=prefix)}"
            )
            for e in exports
        }
        # The Glue round trips (BatchGetPartition, BatchCreatePartition) overlap the PUTs: see the module doc.
        ensuring = io_pool().submit(self.partitions.ensure, list(specs.values())) if specs else None
        try:
            results = self.put_objects(
                self.aws,
                self.bucket,
                [(e.key, e.body) for e in exports],
                concurrency=self.put_concurrency,
                may_start=may_start,
            )
        finally:
            ensured = ensuring.result() if ensuring is not None else EnsureResult()
        written: list[documents.ExportDocument] = []
        for export, error in zip(exports, results, strict=True):
            if error is None:
                written.append(export)
                outcome.objects_written += 1
                outcome.bytes_written += len(export.body)
                outcome.written_keys.append(export.key)
                continue
            if isinstance(error, s3.NotStarted):
                outcome.not_started += 1
            outcome.failures[export.sequence_number] = ObjectWriteError(
                f"could not write s3://{self.bucket}/{export.key} (sequence {export.sequence_number}): {error}"
            )
            self.logger.warning(
                "Object write failed; the record is reported as failed and will be retried",
                extra={"sequence_number": export.sequence_number, "key": export.key, "error": str(error)},
            )
        self.logger.debug("objects written", extra={"count": len(written), "ms": _ms_since(started)})
        outcome.partitions_created = len(ensured.created)
        for partition in ensured.created:
            self.logger.info("Glue partition created", extra={"partition": list(partition)})
        for export in written:
            reason = ensured.failed.get(export.partition)
            if reason is None:
                continue
            outcome.failures[export.sequence_number] = PartitionError(
                f"object s3://{self.bucket}/{export.key} written but its Glue partition "
                f"{list(export.partition)} could not be ensured: {reason}"
            )
            self.logger.warning(
                "Glue partition could not be ensured; the record is reported as failed and will be retried",
                extra={"sequence_number": export.sequence_number, "partition": list(export.partition), "error": reason},
            )
        return outcome


def _sequence_of(raw: dict[str, Any]) -> str:
    stream = raw.get("dynamodb")
    sequence = stream.get("SequenceNumber") if isinstance(stream, dict) else None
    return str(sequence) if sequence is not None else f"missing:{raw.get('eventID')}"


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
