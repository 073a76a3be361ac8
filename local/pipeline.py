"""The whole pipeline on the local AWS stand-in: real handlers driven by the local event-source pollers.

    S3 uploads/*.csv --(moto sends the notification)--> SQS --(local.sqs_poller)--> ingestion handler
      --> DynamoDB --(local.stream_poller over the table's stream)--> stream handler --> S3 compras/ + Glue

Nothing here replaces a part of the pipeline: the stack is the packaged serverless.yml deployed into moto's
CloudFormation (local/stack.py), the uploads go through moto's S3 -> SQS notification, the pollers honour the
template's event source mappings and the handlers are the Lambda code with the deployed functions' environment.
Used by local/demo.py (`make demo`, `make serve`), tests/local/test_pipeline.py and the report CLI.

API::

    pipeline = LocalPipeline(stack)                 # stack = local.stack.create_stack(aws.clients, stage)
    pipeline.upload(Path("tickets.csv"))            # -> uploads/tickets.csv
    pipeline.run_until_idle()                       # both pollers until nothing is left to do
    pipeline.delete_purchase("madrid-centro", "B000012")   # a removal (REMOVE record)
    summary = pipeline.summary()                    # files, rows, purchases, documents, partitions
    pipeline.compact()                              # compactarCompras (MERGE into the compacted table)
    athena = pipeline.athena()                      # local.athena_duckdb.LocalAthena over compras/ + the table
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from lambdas.adapters import glue, s3
from lambdas.shared.settings import (
    CompactionFunctionSettings,
    IngestionSettings,
    ReportSettings,
    StreamSettings,
)
from local.athena_duckdb import LocalAthena
from local.sqs_poller import SqsPoller
from local.stack import COMPACTION, INGESTION, REPORT, STREAM, LocalStack
from local.stream_poller import StreamPoller

Progress = Callable[[str], None]
Handler = Callable[[Any, Any], Any]

# Each function's handler module (its build_handler composition root) and settings type.
FUNCTIONS: dict[str, tuple[str, Any]] = {
    INGESTION: ("lambdas.ingestion.handler", IngestionSettings),
    STREAM: ("lambdas.stream.handler", StreamSettings),
    REPORT: ("lambdas.report.handler", ReportSettings),
    COMPACTION: ("lambdas.compaction.handler", CompactionFunctionSettings),
}


def function_settings(stack: LocalStack, key: str, **changes: Any) -> Any:
    """The settings object of the deployed function ``key``, parsed from its environment as on Lambda; ``changes``
    replace fields (a test's tuning, e.g. ``max_write_attempts=2``)."""
    settings = FUNCTIONS[key][1].from_env(stack.lambda_environment(key))
    return dataclasses.replace(settings, **changes) if changes else settings


def build_function(stack: LocalStack, key: str, **changes: Any) -> Handler:
    """The function ``key`` of the stack as Lambda would build it on a cold start: its composition root
    (``build_handler``) with the deployed function's settings (``function_settings``) and the clients of the
    stand-in (``stack.aws``). Nothing is read from, or written to, this process's environment."""
    module = importlib.import_module(FUNCTIONS[key][0])
    return module.build_handler(function_settings(stack, key, **changes), stack.aws)


@dataclass
class FileReport:
    key: str
    report_key: str
    status: str
    rows_read: int
    rows_loaded: int
    rows_rejected: int
    purchases_written: int
    reason: str | None
    rejected_rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Summary:
    files: list[FileReport]
    purchases_in_table: int
    documents: int
    partitions_in_s3: int
    partitions_in_glue: int
    ingest_dlq_messages: int
    stream_failure_messages: int

    @property
    def rows_loaded(self) -> int:
        return sum(f.rows_loaded for f in self.files)

    @property
    def rows_rejected(self) -> int:
        return sum(f.rows_rejected for f in self.files)


@dataclass
class RoundStats:
    messages: int = 0
    stream_records: int = 0

    @property
    def idle(self) -> bool:
        return self.messages == 0 and self.stream_records == 0


class LocalPipeline:
    """The stack's handlers, driven through the local SQS and DynamoDB Streams pollers."""

    def __init__(
        self, stack: LocalStack, *, progress: Progress | None = None, lambda_log: TextIO | None = None
    ) -> None:
        """``lambda_log``: where the handlers' JSON logs and EMF metrics go while they run (default: stdout,
        as in CloudWatch Logs); the demo sends them to a file so its own output stays readable."""
        self.stack = stack
        self.lambda_log = lambda_log
        self.names = stack.names
        self.aws = stack.aws
        ingestion_settings = function_settings(stack, INGESTION)
        stream_settings = function_settings(stack, STREAM)
        self.service_name = ingestion_settings.observability.service_name  # the functions' Powertools logger
        self.prefixes = {
            "uploads": ingestion_settings.uploads_prefix,
            "ingestReports": ingestion_settings.ingest_reports_prefix,
            "compras": stream_settings.compras_prefix,
        }
        self.progress = progress or (lambda _message: None)
        self.sqs_poller = SqsPoller(
            stack.event_source(INGESTION),
            build_function(stack, INGESTION),
            # Local shortcut: a failed message reappears after 1 s instead of the queue's visibility timeout
            # (30 min), so retries and the redrive to the DLQ happen while you watch.
            retry_visibility_seconds=1,
            aws=stack.aws,
        )
        self.stream_poller = StreamPoller(stack.event_source(STREAM), build_function(stack, STREAM), aws=stack.aws)

    # --- input ------------------------------------------------------------------------------------------------

    def upload(self, source: Path | bytes, name: str | None = None) -> str:
        """Put a CSV under uploads/ (S3 notifies the ingest queue); returns the key."""
        body = source if isinstance(source, bytes) else Path(source).read_bytes()
        file_name = name or (Path(source).name if not isinstance(source, bytes) else "upload.csv")
        key = f"{self.prefixes['uploads']}{file_name}"
        self.aws.client("s3").put_object(Bucket=self.names.bucket, Key=key, Body=body)
        self.progress(f"uploaded s3://{self.names.bucket}/{key} ({len(body):,} bytes)")
        return key

    def delete_purchase(self, tenant_id: str, compra_id: str) -> None:
        """Delete one purchase from the table, as a user or an operator would (the stream exports a REMOVE)."""
        self.aws.client("dynamodb").delete_item(
            TableName=self.names.table,
            Key={"tenant_id": {"S": tenant_id}, "compra_id": {"S": compra_id}},
        )
        self.progress(f"deleted purchase {tenant_id}/{compra_id} from {self.names.table}")

    # --- driving ----------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _lambda_output(self) -> Iterator[None]:
        if self.lambda_log is None:
            yield
            return
        # Powertools Logger writes through a StreamHandler on the service's logger; Metrics prints EMF.
        handlers = [h for h in logging.getLogger(self.service_name).handlers if isinstance(h, logging.StreamHandler)]
        previous = [h.setStream(self.lambda_log) for h in handlers]
        try:
            with contextlib.redirect_stdout(self.lambda_log):
                yield
        finally:
            for handler, stream in zip(handlers, previous, strict=True):
                if stream is not None:
                    handler.setStream(stream)
            self.lambda_log.flush()

    def run_once(self) -> RoundStats:
        """Drain the ingest queue, then the table's stream, once each."""
        with self._lambda_output():
            return self._run_once()

    def _run_once(self) -> RoundStats:
        stats = RoundStats()
        sqs_stats = self.sqs_poller.run_until_idle()
        stats.messages = sqs_stats.messages_received
        if stats.messages:
            failed = f", {sqs_stats.messages_failed} failed (retried)" if sqs_stats.messages_failed else ""
            self.progress(
                f"ingestion: {sqs_stats.messages_received} SQS message(s) in {sqs_stats.invocations} "
                f"invocation(s) of the ingestion handler{failed}"
            )
        before = self.stream_poller.stats.records_succeeded + self.stream_poller.stats.records_discarded
        self.stream_poller.run_until_idle()
        after = self.stream_poller.stats.records_succeeded + self.stream_poller.stats.records_discarded
        stats.stream_records = after - before
        if stats.stream_records:
            self.progress(
                f"stream export: {stats.stream_records} stream record(s) handled by actualizarComprasStream "
                f"({self.stream_poller.stats.invocations} invocation(s) so far)"
            )
        return stats

    def run_until_idle(self, max_rounds: int = 50) -> int:
        """Run rounds until a round finds nothing to do; returns the number of busy rounds."""
        for busy in range(max_rounds):
            if self.run_once().idle:
                return busy
        raise RuntimeError(f"the local pipeline is still busy after {max_rounds} rounds (messages looping?)")

    # --- results ----------------------------------------------------------------------------------------------

    def file_reports(self) -> list[FileReport]:
        s3 = self.aws.client("s3")
        reports = []
        paginator = s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.names.bucket, Prefix=self.prefixes["ingestReports"]):
            for item in page.get("Contents", []):
                body = json.loads(s3.get_object(Bucket=self.names.bucket, Key=item["Key"])["Body"].read())
                counts = body.get("counts", {})
                reports.append(
                    FileReport(
                        key=body.get("source", {}).get("key", "?"),
                        report_key=item["Key"],
                        status=body.get("status", "?"),
                        rows_read=int(counts.get("rows_read", 0)),
                        rows_loaded=int(counts.get("rows_loaded", 0)),
                        rows_rejected=int(counts.get("rows_rejected", 0)),
                        purchases_written=int(counts.get("purchases_written", 0)),
                        reason=body.get("file_rejection_reason"),
                        rejected_rows=list(body.get("rejected_rows", [])),
                    )
                )
        return reports

    def _queue_depth(self, url: str) -> int:
        attributes = self.aws.client("sqs").get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def summary(self) -> Summary:
        table_count = 0
        paginator = self.aws.client("dynamodb").get_paginator("scan")
        for page in paginator.paginate(TableName=self.names.table, Select="COUNT"):
            table_count += page["Count"]
        in_s3 = s3.document_partitions(self.aws, self.names.bucket, self.prefixes["compras"])
        glue_partitions = glue.get_partitions(self.aws, self.names.glue_database, self.names.glue_table)
        return Summary(
            files=self.file_reports(),
            purchases_in_table=table_count,
            documents=sum(in_s3.partitions.values()),
            partitions_in_s3=len(in_s3.partitions),
            partitions_in_glue=len(glue_partitions),
            ingest_dlq_messages=self._queue_depth(self.stack.ingest_dlq_url),
            stream_failure_messages=self._queue_depth(self.stack.stream_failure_queue_url),
        )

    def compact(self, *, full: bool = False) -> Any:
        """One compactarCompras run (local.compaction: same plan, state and MERGE SQL, on DuckDB + Parquet)."""
        from local import compaction

        result, engine = compaction.run(
            self.aws,
            self.names.bucket,
            force_full=full,
            glue_database=self.names.glue_database,
            environment=self.stack.lambda_environment(COMPACTION),
        )
        snapshot = compaction.current_snapshot(self.aws, self.names.bucket) or {"rows": 0, "files": []}
        self.progress(
            f"compactarCompras: {result.plan.mode} merge ({engine.changed_rows.get('merge', 0)} row(s) changed), "
            f"then {', '.join(s.step for s in result.steps if s.step not in ('create', 'merge')) or 'nothing else'}; "
            f"table {compaction.ICEBERG_TABLE}: {snapshot['rows']} row(s) in {len(snapshot['files'])} Parquet file(s)"
        )
        return result

    def athena(self) -> LocalAthena:
        """A local Athena over the documents written so far (call .refresh() to see later ones)."""
        return LocalAthena(self.names.bucket, self.prefixes["compras"], aws=self.aws)
