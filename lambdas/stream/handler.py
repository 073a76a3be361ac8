"""actualizarComprasStream: DynamoDB Streams (purchases table) -> one JSON document per change in S3.

Thin: wires the stream event to lambdas.stream.export and reports per-record failures through
Powertools' BatchProcessor for DynamoDB Streams (Lambda checkpoints before the lowest failed
sequence number). Environment: STAGE, BUCKET_NAME, GLUE_DATABASE, GLUE_TABLE, COMPRAS_PREFIX,
DEFAULT_CURRENCY, PUT_CONCURRENCY (and the others of lambdas.shared.settings.Settings).
"""

from __future__ import annotations

import os
import time
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

from lambdas.adapters.clients import client
from lambdas.adapters.glue import PartitionRegistry
from lambdas.domain.documents import ExportContext
from lambdas.shared.observability import logger_for, metrics_for
from lambdas.shared.settings import MissingSettingError, Settings
from lambdas.stream.export import StreamExporter

FUNCTION = "actualizarComprasStream"
logger = logger_for(FUNCTION)
metrics = metrics_for(FUNCTION)
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


def _put_concurrency() -> int:
    raw = os.environ.get("PUT_CONCURRENCY")
    if not raw:
        raise MissingSettingError(
            "environment variable PUT_CONCURRENCY is not set: it comes from serverless.yml "
            "(config/pipeline.yml functions.stream.putConcurrency) or pipeline_config.lambda_environment()"
        )
    value = int(raw)
    if value < 1:
        raise MissingSettingError(f"PUT_CONCURRENCY must be >= 1, got {raw!r}")
    return value


@cache
def _exporter(settings: Settings, put_concurrency: int, processed_by: str, glue_client: Any) -> StreamExporter:
    """One exporter per container and configuration: the Glue table and known partitions are cached.
    ``glue_client`` is part of the cache key only, so local runs that call
    ``lambdas.adapters.clients.reset_clients()`` (a new endpoint/stack) also start with a cold cache."""
    return StreamExporter(
        bucket=settings.bucket_name,
        context=ExportContext(
            stage=settings.stage,
            default_currency=settings.default_currency,
            processed_by=processed_by,
            compras_prefix=settings.compras_prefix,
        ),
        partitions=PartitionRegistry(settings.glue_database, settings.glue_table),
        put_concurrency=put_concurrency,
        logger=logger,
    )


def reset_container_state() -> None:
    """Forget the per-container caches (known Glue partitions, table descriptor): a new 'cold start'.
    Tests and local runs call it when the stack behind the same names was recreated."""
    _exporter.cache_clear()


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    started = time.perf_counter()
    processed_by = getattr(context, "function_name", None) or os.environ.get("AWS_LAMBDA_FUNCTION_NAME") or FUNCTION
    exporter = _exporter(Settings.from_env(), _put_concurrency(), processed_by, client("glue"))
    records = event.get("Records") or []
    outcome = exporter.export(records, getattr(context, "get_remaining_time_in_millis", None))
    metrics.add_metric(name="RecordsReceived", unit=MetricUnit.Count, value=outcome.records)
    metrics.add_metric(name="ObjectsWritten", unit=MetricUnit.Count, value=outcome.objects_written)
    metrics.add_metric(name="BytesWritten", unit=MetricUnit.Bytes, value=outcome.bytes_written)
    metrics.add_metric(name="PartitionsCreated", unit=MetricUnit.Count, value=outcome.partitions_created)
    metrics.add_metric(name="RecordsFailed", unit=MetricUnit.Count, value=len(outcome.failures))
    metrics.add_metric(name="MalformedRecords", unit=MetricUnit.Count, value=outcome.malformed)
    metrics.add_metric(name="RecordsNotStarted", unit=MetricUnit.Count, value=outcome.not_started)
    metrics.add_metric(name="BatchDuration", unit=MetricUnit.Milliseconds, value=(time.perf_counter() - started) * 1000)
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
