"""actualizarComprasStream: DynamoDB Streams (purchases table) -> one JSON document per change in S3.

Thin: wires the stream event to lambdas.stream.export and reports per-record failures through
Powertools' BatchProcessor for DynamoDB Streams (Lambda checkpoints before the lowest failed
sequence number). ``build_handler(settings, aws)`` is the whole function for one composition; the module's
``handler`` (the Lambda entry point) builds it once per container from the environment
(lambdas.shared.settings.StreamSettings) with boto3's default clients (lambdas.adapters.clients.AwsClients).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

from lambdas.adapters.clients import AwsClients
from lambdas.adapters.glue import PartitionRegistry
from lambdas.domain.documents import ExportContext
from lambdas.shared.observability import logger_for, metrics_for
from lambdas.shared.settings import StreamSettings
from lambdas.stream.export import StreamExporter

FUNCTION = "actualizarComprasStream"


def build_exporter(settings: StreamSettings, aws: AwsClients, processed_by: str, logger: Logger) -> StreamExporter:
    """The stream function's composition root: documents (domain) -> S3 puts and Glue partitions (adapters).
    The exporter lives as long as its container (its PartitionRegistry keeps the table's descriptor)."""
    return StreamExporter(
        aws,
        bucket=settings.bucket_name,
        context=ExportContext(
            stage=settings.stage,
            default_currency=settings.default_currency,
            processed_by=processed_by,
            compras_prefix=settings.compras_prefix,
        ),
        partitions=PartitionRegistry(aws, settings.glue_database, settings.glue_table),
        put_concurrency=settings.put_concurrency,
        logger=logger,
    )


def build_handler(settings: StreamSettings, aws: AwsClients) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """The stream function of one composition. Its exporter is built on the first event: documents record the
    function's name (from the Lambda context) as processed_by, and a container only ever runs one function."""
    logger = logger_for(settings.observability)
    metrics = metrics_for(FUNCTION, settings.observability)
    processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
    built: list[StreamExporter] = []  # the one exporter, built on the first event

    @metrics.log_metrics
    @logger.inject_lambda_context(clear_state=True)
    def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
        started = time.perf_counter()
        if not built:
            built.append(build_exporter(settings, aws, getattr(context, "function_name", None) or FUNCTION, logger))
        exporter = built[0]
        records = event.get("Records") or []
        outcome = exporter.export(records, getattr(context, "get_remaining_time_in_millis", None))
        metrics.add_metric(name="RecordsReceived", unit=MetricUnit.Count, value=outcome.records)
        metrics.add_metric(name="ObjectsWritten", unit=MetricUnit.Count, value=outcome.objects_written)
        metrics.add_metric(name="BytesWritten", unit=MetricUnit.Bytes, value=outcome.bytes_written)
        metrics.add_metric(name="PartitionsCreated", unit=MetricUnit.Count, value=outcome.partitions_created)
        metrics.add_metric(name="RecordsFailed", unit=MetricUnit.Count, value=len(outcome.failures))
        metrics.add_metric(name="MalformedRecords", unit=MetricUnit.Count, value=outcome.malformed)
        metrics.add_metric(name="RecordsNotStarted", unit=MetricUnit.Count, value=outcome.not_started)
        metrics.add_metric(
            name="BatchDuration", unit=MetricUnit.Milliseconds, value=(time.perf_counter() - started) * 1000
        )
        logger.info(
            "Stream batch exported",
            extra={
                "records": outcome.records,
                "objects_written": outcome.objects_written,
                "bytes_written": outcome.bytes_written,
                "partitions_created": outcome.partitions_created,
                "failed": len(outcome.failures),
                "malformed": outcome.malformed,
                "not_started_near_deadline": outcome.not_started,
            },
        )
        # Raises BatchProcessingError when every record failed: a function error, so Lambda bisects the batch.
        return process_partial_response(event=event, record_handler=outcome.check, processor=processor, context=context)

    return handle


_handler: Callable[[dict[str, Any], Any], dict[str, Any]] | None = None


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entry point: the function is built from the environment on the container's first event."""
    global _handler
    if _handler is None:
        _handler = build_handler(StreamSettings.from_env(os.environ), AwsClients())
    return _handler(event, context)
