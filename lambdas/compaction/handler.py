"""compactarCompras: keep the compacted Iceberg table (compras_iceberg) up to date with the JSON changes.

Thin: an EventBridge schedule (config/pipeline.yml functions.compaction.schedule) invokes it; it wires the
settings to lambdas.domain.compaction.run_maintenance with the Athena engine and the S3 state store
(lambdas.compaction.service). What a run does — CREATE TABLE IF NOT EXISTS, MERGE INTO of the changes not merged
yet, then OPTIMIZE / VACUUM / tombstone purge when due — and why it is idempotent, restartable and safe when
concurrent is documented in lambdas/domain/compaction.py and docs/compaction.md.

Invoked with ``{"full": true}`` (e.g. `serverless invoke -f compactarCompras --data '{"full": true}'`) the run
reads every partition whatever the cadence. A failing statement raises (a function error: the failure alarm
fires, the next scheduled run repeats what did not commit). Metrics (EMF): CompactionRuns, CompactionFailures,
CompactionMerges, CompactionDataScanned, CompactionDuration; logs name every statement with its Athena query id.

Environment: BUCKET_NAME, GLUE_DATABASE, ATHENA_WORKGROUP (every function), and ICEBERG_TABLE, ICEBERG_PREFIX,
COMPACTION_PREFIX, COMPACTION_* (this function, from config/pipeline.yml functions.compaction).
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from lambdas.adapters import glue
from lambdas.compaction.service import AthenaEngine, S3StateStore
from lambdas.domain import compaction
from lambdas.shared.observability import logger_for, metrics_for
from lambdas.shared.settings import MissingSettingError

FUNCTION = "compactarCompras"
# Time kept back from the Lambda's remaining time to save the state and log.
MARGIN_SECONDS = 15.0
logger = logger_for(FUNCTION)
metrics = metrics_for(FUNCTION)


def _require(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise MissingSettingError(
            f"environment variable {name} is not set: serverless.yml sets it from config/pipeline.yml "
            "(functions.compaction, names, prefixes)"
        )
    return value


def _catalog_columns() -> list[dict[str, str]]:
    """The JSON table's columns as Glue sees them: the compacted table copies them (lambdas/domain/compaction)."""
    return glue.table_columns(_require("GLUE_DATABASE"), _require("GLUE_TABLE"))


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: Any, context: Any) -> dict[str, Any]:
    started = time.monotonic()
    bucket = _require("BUCKET_NAME")
    settings = compaction.CompactionSettings.from_env(os.environ)
    names = compaction.TableNames(
        iceberg_table=_require("ICEBERG_TABLE"),
        location=f"s3://{bucket}/{_require('ICEBERG_PREFIX')}{_require('ICEBERG_TABLE')}/",
        source_table=_require("GLUE_TABLE"),
    )
    remaining = context.get_remaining_time_in_millis() / 1000 if context is not None else 900.0
    engine = AthenaEngine(
        workgroup=_require("ATHENA_WORKGROUP"),
        database=_require("GLUE_DATABASE"),
        deadline=started + remaining - MARGIN_SECONDS,
    )
    store = S3StateStore(bucket, _require("COMPACTION_PREFIX"))
    metrics.add_metric(name="CompactionRuns", unit=MetricUnit.Count, value=1)
    try:
        result = compaction.run_maintenance(
            engine,
            store,
            settings=settings,
            names=names,
            catalog_columns=_catalog_columns(),
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
