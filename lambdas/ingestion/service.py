"""Ingest one uploaded CSV object: S3 stream -> domain (parse, group) -> DynamoDB, plus its report.

The composition root of the ingestion function: ``build_ingestion(settings, aws)`` wires the S3 and DynamoDB adapters
to the domain (the handler, lambdas/ingestion/handler.py, stays an event-to-call wiring). Failure semantics of
``Ingestion.ingest_object``, relied on by the handler:

* returns normally when the file is done, including when it was rejected as a whole or some rows or
  purchases were rejected (a permanent problem with the file: retrying would not help);
* returns ``None`` when the announced object version no longer exists (deleted, a delete marker; logged,
  not retried);
* raises on retriable problems (``WriteRetriesExhausted``, S3/DynamoDB errors after botocore's retries, a
  read that breaks off): the SQS message fails and is redelivered. The object is read once, completely,
  before anything is written, so a failed read writes nothing.

Process model: this process reads, validates and groups the whole file; the purchases are then built and
written either here or, for a file big enough, by ``worker_plan(settings)``'s worker processes (one per vCPU
of the function, lambdas.shared.processes), each with its own ConditionalWriter and clients, each taking whole
spill partitions. The semantics above hold either way: a worker's exception is raised here (the same
exception), a worker that dies is ``WorkerFailed`` (retriable: the message fails), and their reports are merged
into the file's one report (docs/ingestion-design.md, "Process model").
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from lambdas.adapters import s3
from lambdas.adapters.clients import AwsClients
from lambdas.adapters.dynamodb import ConditionalWriter, WritePolicy
from lambdas.domain import limits, purchases
from lambdas.shared import processes
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


class _WorkerWriter:
    """``make_sink`` of the worker plan: called in a worker process, a ConditionalWriter of its own. ``aws`` is
    pickled or forked along: in the worker it builds its own clients (lambdas.adapters.clients.AwsClients)."""

    def __init__(self, aws: AwsClients, table_name: str, policy: WritePolicy) -> None:
        self.aws = aws
        self.table_name = table_name
        self.policy = policy

    def __call__(self) -> ConditionalWriter:
        return ConditionalWriter(self.aws, self.table_name, self.policy)


def worker_plan(
    settings: IngestionSettings, aws: AwsClients, policy: WritePolicy, cpus: int | None = None
) -> purchases.WorkerPlan | None:
    """How many worker processes write a file's purchases (None: one vCPU, everything in this process):
    lambdas.shared.processes.worker_count of the function's memory and the CPUs this process may use."""
    count = processes.worker_count(
        maximum=settings.max_worker_processes,
        memory_mb=settings.memory_mb,
        cpus=processes.available_cpus() if cpus is None else cpus,
    )
    if count <= 1:
        return None
    # writeConcurrency stays the function's requests in flight, shared among the workers (each is CPU-bound
    # long before its share of in-flight requests is the limit).
    shared = dataclasses.replace(policy, concurrency=math.ceil(policy.concurrency / count))
    return purchases.WorkerPlan(
        count,
        settings.rows_per_worker_process,
        _WorkerWriter(aws, settings.table_name, shared),
        processes.run_in_processes,
    )


class Ingestion:
    """The ingestion of one stage: its settings, clients, write policy and worker plan (see the module doc)."""

    def __init__(
        self,
        settings: IngestionSettings,
        aws: AwsClients,
        policy: WritePolicy,
        workers: purchases.WorkerPlan | None = None,
    ) -> None:
        self.settings = settings
        self.aws = aws
        self.policy = policy
        self.workers = workers

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
            info, chunks = s3.open_object(self.aws, bucket, key, version_id=version_id)
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
        with ConditionalWriter(self.aws, settings.table_name, self.policy) as writer:
            report = purchases.ingest(
                counted(chunks),
                source,
                writer,
                max_listed=settings.max_reported_rejections,
                memory_budget_bytes=settings.grouping_memory_mb * 1024 * 1024,
                workers=self.workers,
            )
        document = report.to_dict()
        target = report_key(settings, key)
        s3.put_json(self.aws, bucket, target, document)
        return FileOutcome(report=document, report_uri=f"s3://{bucket}/{target}", bytes_read=counted.total)


def build_ingestion(
    settings: IngestionSettings,
    aws: AwsClients,
    policy: WritePolicy | None = None,
    workers: purchases.WorkerPlan | None = None,
) -> Ingestion:
    """The ingestion function of one stage; ``policy`` overrides the settings' write policy and ``workers`` their
    worker plan (tests)."""
    policy = policy or write_policy(settings)
    return Ingestion(settings, aws, policy, workers or worker_plan(settings, aws, policy))
