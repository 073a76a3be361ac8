"""ingestarTickets: SQS (S3 event notifications of uploads/*.csv) -> purchases in DynamoDB.

Thin: Powertools' BatchProcessor reports each failed message in ``batchItemFailures`` (the SQS event
source uses ReportBatchItemFailures), so one bad message never fails its neighbours. Each message body
is an S3 event notification; every ObjectCreated:* record of a CSV under the uploads prefix is handed to
lambdas.ingestion.service. ``build_handler(settings, aws)`` is the whole function for one composition; the
module's ``handler`` (the Lambda entry point) builds it once per container from the environment
(lambdas.shared.settings.IngestionSettings) with boto3's default clients (lambdas.adapters.clients.AwsClients).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes import S3Event
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from lambdas.adapters.clients import AwsClients
from lambdas.ingestion import service
from lambdas.shared.observability import logger_for, metrics_for
from lambdas.shared.settings import IngestionSettings

FUNCTION = "ingestarTickets"
LOGGED_REJECTIONS = 20  # per file, in one log line; the report object lists up to MAX_REPORTED_REJECTIONS


class NotAnS3Notification(ValueError):
    """The message is neither an S3 event notification nor an s3:TestEvent (it ends in the DLQ)."""


def record_handler(record: SQSRecord, ingestion: service.Ingestion, logger: Logger, metrics: EphemeralMetrics) -> None:
    try:
        body = record.json_body
    except ValueError as exc:
        raise NotAnS3Notification(f"message {record.message_id}: body is not JSON ({exc})") from None
    if not isinstance(body, dict):
        raise NotAnS3Notification(f"message {record.message_id}: body is not a JSON object")
    if body.get("Event") == "s3:TestEvent":
        logger.info("s3:TestEvent skipped", extra={"message_id": record.message_id, "bucket": body.get("Bucket")})
        return
    if not isinstance(body.get("Records"), list):
        raise NotAnS3Notification(f"message {record.message_id}: no 'Records' list (not an S3 event notification)")
    for s3_record in S3Event(body).records:
        _handle_s3_record(s3_record, ingestion, record.message_id, logger, metrics)


def _handle_s3_record(
    s3_record: Any, ingestion: service.Ingestion, message_id: str, logger: Logger, metrics: EphemeralMetrics
) -> None:
    settings = ingestion.settings
    bucket = s3_record.s3.bucket.name
    key = unquote_plus(s3_record.s3.get_object.key)
    where = {"message_id": message_id, "bucket": bucket, "key": key, "event_name": s3_record.event_name}
    if not s3_record.event_name.startswith("ObjectCreated:"):
        logger.info("not an ObjectCreated event: skipped", extra=where)
        return
    if not key.startswith(settings.uploads_prefix) or not key.lower().endswith(".csv"):
        logger.info(f"not a CSV under {settings.uploads_prefix}: skipped", extra=where)
        return
    started = time.monotonic()
    obj = s3_record.s3.get_object
    version_id, sequencer = obj.version_id, obj.get("sequencer")
    where["version_id"] = version_id
    outcome = ingestion.ingest_object(
        bucket, key, version_id=version_id, sequencer=sequencer, event_time=s3_record.get("eventTime")
    )
    if outcome is None:
        logger.warning("object version no longer exists: nothing to ingest (not retried)", extra=where)
        metrics.add_metric(name="FilesMissing", unit=MetricUnit.Count, value=1)
        return
    report = outcome.report
    counts = report["counts"]
    metrics.add_metric(name="Files", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="RowsRead", unit=MetricUnit.Count, value=counts["rows_read"])
    metrics.add_metric(name="RowsRejected", unit=MetricUnit.Count, value=counts["rows_rejected"])
    metrics.add_metric(name="PurchasesWritten", unit=MetricUnit.Count, value=counts["purchases_written"])
    metrics.add_metric(name="PurchasesRejected", unit=MetricUnit.Count, value=counts["purchases_rejected"])
    metrics.add_metric(name="FileDuration", unit=MetricUnit.Seconds, value=round(time.monotonic() - started, 3))
    metrics.add_metric(name="BytesRead", unit=MetricUnit.Bytes, value=outcome.bytes_read)
    if report["status"] == "rejected":
        metrics.add_metric(name="FilesRejected", unit=MetricUnit.Count, value=1)
        logger.warning(
            f"file rejected: {report['file_rejection_reason']}",
            extra={**where, "report": outcome.report_uri, "status": report["status"]},
        )
        return
    logger.info(
        "file ingested",
        extra={**where, "report": outcome.report_uri, "status": report["status"], "counts": counts},
    )
    _log_rejections(report, where, outcome.report_uri, logger)


def _log_rejections(report: dict[str, Any], where: dict[str, Any], report_uri: str, logger: Logger) -> None:
    """One WARNING line with the first rejections (line + reason, never the row itself); the rest are in
    the report object."""
    rows, purchases = report["rejected_rows"], report["rejected_purchases"]
    if not rows and not purchases:
        return
    counts = report["counts"]
    logger.warning(
        f"{counts['rows_rejected']} row(s) and {counts['purchases_rejected']} purchase(s) rejected: "
        f"reasons below, all of them in {report_uri}",
        extra={
            **where,
            "report": report_uri,
            "rejected_rows": rows[:LOGGED_REJECTIONS],
            "rejected_purchases": [
                {"compra_id": p["compra_id"], "lines": p["lines"], "reason": p["reason"]}
                for p in purchases[:LOGGED_REJECTIONS]
            ],
        },
    )


def build_handler(settings: IngestionSettings, aws: AwsClients) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """The ingestion function of one composition (lambdas.ingestion.service.build_ingestion)."""
    ingestion = service.build_ingestion(settings, aws)
    logger = logger_for(settings.observability)
    metrics = metrics_for(FUNCTION, settings.observability)
    processor = BatchProcessor(event_type=EventType.SQS)

    def handle_record(record: SQSRecord) -> None:
        record_handler(record, ingestion, logger, metrics)

    @logger.inject_lambda_context
    @metrics.log_metrics
    def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
        metrics.add_metric(name="Messages", unit=MetricUnit.Count, value=len(event.get("Records", [])))
        return process_partial_response(event=event, record_handler=handle_record, processor=processor, context=context)

    return handle


_handler: Callable[[dict[str, Any], Any], dict[str, Any]] | None = None


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entry point: the function is built from the environment on the container's first event."""
    global _handler
    if _handler is None:
        _handler = build_handler(IngestionSettings.from_env(os.environ), AwsClients())
    return _handler(event, context)
