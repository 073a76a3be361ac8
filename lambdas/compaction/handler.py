"""compactarCompras: keep the compacted Iceberg table (compras_iceberg) up to date with the JSON changes.

Thin: an EventBridge schedule (config/pipeline.yml functions.compaction.schedule) invokes it; ``build_handler``
wires the settings (lambdas.shared.settings.CompactionFunctionSettings, parsed once) to
lambdas.domain.compaction.run_maintenance with the Athena engine and the S3 state store
(lambdas.compaction.service). What a run does — CREATE TABLE IF NOT EXISTS, MERGE INTO of the changes not merged
yet, then OPTIMIZE / VACUUM / tombstone purge when due — and why it is idempotent, restartable and safe when
concurrent is documented in lambdas/domain/compaction.py and docs/compaction.md.

Invoked with ``{"full": true}`` (e.g. `serverless invoke -f compactarCompras --data '{"full": true}'`) the run
reads every partition whatever the cadence. A failing statement raises (a function error: the failure alarm
fires, the next scheduled run repeats what did not commit). Metrics (EMF): CompactionRuns, CompactionFailures,
CompactionMerges, CompactionDataScanned, CompactionDuration; logs name every statement with its Athena query id.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from lambdas.adapters import glue
from lambdas.adapters.clients import AwsClients
from lambdas.compaction.service import AthenaEngine, S3StateStore
from lambdas.domain import compaction
from lambdas.shared.observability import logger_for, metrics_for
from lambdas.shared.settings import CompactionFunctionSettings

FUNCTION = "compactarCompras"
# Time kept back from the Lambda's remaining time to save the state and log.
MARGIN_SECONDS = 15.0


def build_handler(settings: CompactionFunctionSettings, aws: AwsClients) -> Callable[[Any, Any], dict[str, Any]]:
    """The whole function for one composition (settings parsed once; ``aws``: its clients)."""
    names = compaction.TableNames(
        iceberg_table=settings.iceberg_table,
        location=f"s3://{settings.bucket_name}/{settings.iceberg_prefix}{settings.iceberg_table}/",
        source_table=settings.glue_table,
    )
    logger = logger_for(settings.observability)
    metrics = metrics_for(FUNCTION, settings.observability)
    store = S3StateStore(aws, settings.bucket_name, settings.compaction_prefix)

    @metrics.log_metrics
    @logger.inject_lambda_context(clear_state=True)
    def handle(event: Any, context: Any) -> dict[str, Any]:
        started = time.monotonic()
        remaining = context.get_remaining_time_in_millis() / 1000 if context is not None else 900.0
        engine = AthenaEngine(
            aws=aws,
            workgroup=settings.athena_workgroup,
            database=settings.glue_database,
            deadline=started + remaining - MARGIN_SECONDS,
        )
        metrics.add_metric(name="CompactionRuns", unit=MetricUnit.Count, value=1)
        try:
            result = compaction.run_maintenance(
                engine,
                store,
                settings=settings.cadences,
                names=names,
                # The JSON table's columns as Glue has them: the compacted table copies them.
                catalog_columns=glue.table_columns(aws, settings.glue_database, settings.glue_table),
                now=datetime.now(UTC),
                force_full=isinstance(event, dict) and event.get("full") is True,
            )
        except Exception:
            logger.exception("Compaction run failed: the state keeps the last committed step, the next run repeats")
            metrics.add_metric(name="CompactionFailures", unit=MetricUnit.Count, value=1)
            raise
        scanned = sum(step.data_scanned_bytes for step in result.steps)
        metrics.add_metric(name="CompactionMerges", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="CompactionDataScanned", unit=MetricUnit.Bytes, value=scanned)
        metrics.add_metric(
            name="CompactionDuration", unit=MetricUnit.Milliseconds, value=(time.monotonic() - started) * 1000
        )
        summary = {
            "mode": result.plan.mode,
            "since": result.plan.since.isoformat() if result.plan.since else None,
            "from_day": result.plan.from_day,
            "steps": [
                {"step": s.step, "query_execution_id": s.query_id, "data_scanned_bytes": s.data_scanned_bytes}
                for s in result.steps
            ],
            "watermark": result.state.recent_watermark.isoformat() if result.state.recent_watermark else None,
        }
        logger.info("Compaction run committed", extra=summary)
        return summary

    return handle


_handler: Callable[[Any, Any], dict[str, Any]] | None = None


def handler(event: Any, context: Any) -> dict[str, Any]:
    """The Lambda entry point: builds the function from the environment on the first invocation."""
    global _handler
    if _handler is None:
        _handler = build_handler(CompactionFunctionSettings.from_env(os.environ), AwsClients())
    return _handler(event, context)
