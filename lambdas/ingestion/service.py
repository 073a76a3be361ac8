"""Ingest one uploaded CSV object: S3 stream -> domain (parse, group) -> DynamoDB, plus its report.

The composition root of the ingestion function (the handler stays an event-to-call wiring). Failure
semantics, relied on by the handler:

* returns normally when the file is done, including when it was rejected as a whole or some rows or
  purchases were rejected (a permanent problem with the file: retrying would not help);
* returns ``None`` when the object no longer exists (logged, not retried);
* raises on retriable problems (``WriteRetriesExhausted``, S3/DynamoDB errors after botocore's retries,
  the object changing between the two reads): the SQS message fails and is redelivered.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from lambdas.adapters import s3
from lambdas.adapters.dynamodb import ParallelBatchWriter, WritePolicy
from lambdas.domain import limits, purchases
from lambdas.shared.settings import Settings

MAX_REPORTED_ENV = "MAX_REPORTED_REJECTIONS"


@dataclass(frozen=True)
class FileOutcome:
    report: dict[str, Any]
    report_uri: str
    # Bytes of the object read from S3 (every read: a file that must be read twice counts twice).
    bytes_read: int = 0


class _CountingReads:
    """Counts the bytes of every chunk read through it (the BytesRead metric)."""

    def __init__(self) -> None:
        self.total = 0

    def __call__(self, chunks: Iterable[bytes]) -> Iterable[bytes]:
        for chunk in chunks:
            self.total += len(chunk)
            yield chunk


def report_key(settings: Settings, key: str) -> str:
    """ingest-reports/<key without the uploads/ prefix>.report.json (never matches the upload filter); a key
    too long for that is shortened with a hash (lambdas.domain.limits.report_key), so every file gets a report."""
    return limits.report_key(key, settings.uploads_prefix, settings.ingest_reports_prefix)


def max_reported() -> int:
    raw = os.environ.get(MAX_REPORTED_ENV)
    if not raw:
        return purchases.DEFAULT_MAX_LISTED
    value = int(raw)
    if value < 0:
        raise ValueError(f"{MAX_REPORTED_ENV} must be >= 0, got {raw!r}")
    return value


def ingest_object(bucket: str, key: str, settings: Settings, policy: WritePolicy | None = None) -> FileOutcome | None:
    """Ingest s3://bucket/key into the purchases table and write its report (see module doc)."""
    try:
        info, chunks = s3.open_object(bucket, key)
    except s3.ObjectNotFound:
        return None
    source = purchases.SourceInfo(
        bucket=bucket,
        key=key,
        etag=info.etag,
        ingested_at=info.last_modified.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    counted = _CountingReads()
    first_read: list[Iterable[bytes]] = [chunks]

    def open_chunks() -> Iterable[bytes]:
        if first_read:
            return counted(first_read.pop())
        _, again = s3.open_object(bucket, key, if_match=info.etag)  # the same version, or ObjectChanged
        return counted(again)

    with ParallelBatchWriter(settings.table_name, policy or WritePolicy.from_env()) as writer:
        report = purchases.ingest(open_chunks, source, writer, max_listed=max_reported())
    document = report.to_dict()
    target = report_key(settings, key)
    s3.put_json(bucket, target, document)
    return FileOutcome(report=document, report_uri=f"s3://{bucket}/{target}", bytes_read=counted.total)
