"""Ingest one uploaded CSV object: S3 stream -> domain (parse, group) -> DynamoDB, plus its report.

The composition root of the ingestion function: ``build_ingestion(settings)`` wires the S3 and DynamoDB adapters
to the domain (the handler, lambdas/ingestion/handler.py, stays an event-to-call wiring). Failure semantics of
``Ingestion.ingest_object``, relied on by the handler:

* returns normally when the file is done, including when it was rejected as a whole or some rows or
  purchases were rejected (a permanent problem with the file: retrying would not help);
* returns ``None`` when the announced object version no longer exists (deleted, a delete marker; logged,
  not retried);
* raises on retriable problems (``WriteRetriesExhausted``, S3/DynamoDB errors after botocore's retries, a
  read that breaks off): the SQS message fails and is redelivered. The object is read once, completely,
  before anything is written, so a failed read writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from lambdas.adapters import s3
from lambdas.adapters.dynamodb import ConditionalWriter, WritePolicy
from lambdas.domain import limits, purchases
from lambdas.shared.settings import IngestionSettings


@dataclass(frozen=True)
class FileOutcome:
    report: dict[str, Any]
    report_uri: str
    # Bytes of the object read from S3 (it is read once).
    bytes_read: int = 0


class _CountingReads:
    """Counts the bytes of every chunk read through it (the BytesRead metric)."""

    def __init__(self) -> None:
        self.total = 0

    def __call__(self, chunks: Iterable[bytes]) -> Iterable[bytes]:
        for chunk in chunks:
            self.total += len(chunk)
            yield chunk


def report_key(settings: IngestionSettings, key: str) -> str:
    """ingest-reports/<key without the uploads/ prefix>.report.json (never matches the upload filter); a key
    too long for that is shortened with a hash (lambdas.domain.limits.report_key), so every file gets a report."""
    return limits.report_key(key, settings.uploads_prefix, settings.ingest_reports_prefix)


def write_policy(settings: IngestionSettings) -> WritePolicy:
    return WritePolicy(
        concurrency=settings.write_concurrency,
        max_attempts=settings.max_write_attempts,
        backoff_base_seconds=settings.backoff_base_seconds,
        backoff_cap_seconds=settings.backoff_cap_seconds,
    )


class Ingestion:
    """The ingestion of one stage: its settings and write policy (see the module doc)."""

    def __init__(self, settings: IngestionSettings, policy: WritePolicy) -> None:
        self.settings = settings
        self.policy = policy

    def ingest_object(
        self,
        bucket: str,
        key: str,
        *,
        version_id: str | None = None,
        sequencer: str | None = None,
        event_time: str | None = None,
    ) -> FileOutcome | None:
        """Ingest version ``version_id`` of s3://bucket/key (the one the notification announced; None: the
        current object of an unversioned bucket) into the purchases table and write its report (module doc)."""
        settings = self.settings
        try:
            info, chunks = s3.open_object(bucket, key, version_id=version_id)
        except s3.ObjectNotFound:
            return None
        source = purchases.SourceInfo(
            bucket=bucket,
            key=key,
            etag=info.etag,
            ingested_at=info.last_modified.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            version_id=info.version_id,
            sequencer=sequencer,
            event_time=event_time,
        )
        counted = _CountingReads()
        with ConditionalWriter(settings.table_name, self.policy) as writer:
            report = purchases.ingest(
                counted(chunks),
                source,
                writer,
                max_listed=settings.max_reported_rejections,
                memory_budget_bytes=settings.grouping_memory_mb * 1024 * 1024,
            )
        document = report.to_dict()
        target = report_key(settings, key)
        s3.put_json(bucket, target, document)
        return FileOutcome(report=document, report_uri=f"s3://{bucket}/{target}", bytes_read=counted.total)


def build_ingestion(settings: IngestionSettings, policy: WritePolicy | None = None) -> Ingestion:
    """The ingestion function of one stage; ``policy`` overrides the settings' write policy (tests)."""
    return Ingestion(settings, policy or write_policy(settings))
