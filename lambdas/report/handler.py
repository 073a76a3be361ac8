"""generarReporteCompras: the on-demand purchase report of one tenant and day range, computed on Athena.

Thin: wires the event to lambdas.domain.report (validation, assembly) with lambdas.adapters.athena as the
query runner, saves the report JSON under REPORTS_PREFIX and returns it with its location.

Two ways in:
* direct invoke (`serverless invoke -f generarReporteCompras --data '{"tenant_id": "...", "from": "YYYY-MM-DD",
  "to": "YYYY-MM-DD"}'`): returns `{"statusCode": 200, "location": "s3://...", "report": {...}}`, or
  `{"statusCode": 400, "message": ..., "problems": [...]}` for bad parameters. An Athena failure raises (a
  function error, with Athena's reason in the message).
* HTTP API GET (payload 2.0, AWS_IAM auth) with the same names as query string parameters: the same JSON as the
  response body, status 400 for bad parameters, 502 when a query fails and 504 when time runs out.

Environment: lambdas.shared.settings.Settings (BUCKET_NAME, ATHENA_WORKGROUP, GLUE_DATABASE, REPORTS_PREFIX ...)
and REPORT_MAX_RANGE_DAYS (config/pipeline.yml functions.report.maxRangeDays).
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from lambdas.adapters import s3
from lambdas.adapters.athena import AthenaQueryError, AthenaQueryTimeout, AthenaRunner
from lambdas.domain import queries, report
from lambdas.domain.keys import encode_id
from lambdas.shared.observability import logger_for, metrics_for
from lambdas.shared.settings import MissingSettingError, Settings

FUNCTION = "generarReporteCompras"
# Time kept back from the Lambda's remaining time for saving the report and answering.
SAVE_MARGIN_SECONDS = 10.0
logger = logger_for(FUNCTION)
metrics = metrics_for(FUNCTION)


def _max_range_days() -> int:
    raw = os.environ.get("REPORT_MAX_RANGE_DAYS")
    if not raw or not raw.isdigit() or int(raw) < 1:
        raise MissingSettingError(
            f"environment variable REPORT_MAX_RANGE_DAYS must be a positive whole number, got {raw!r}: it comes "
            "from serverless.yml (config/pipeline.yml functions.report.maxRangeDays) or local.config"
        )
    return int(raw)


@cache
def _query_file() -> queries.QueryFile:
    """athena-queries.sql at the package root, parsed once per container."""
    return queries.load()


def _is_http(event: Any) -> bool:
    return isinstance(event, dict) and event.get("version") == "2.0" and "requestContext" in event


def _answer(status: int, payload: dict[str, Any], http: bool) -> dict[str, Any]:
    if http:
        return {
            "statusCode": status,
            "headers": {"content-type": "application/json; charset=utf-8"},
            "body": json.dumps(payload, ensure_ascii=False),
        }
    return {"statusCode": status, **payload}


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: Any, context: Any) -> dict[str, Any]:
    started = time.monotonic()
    http = _is_http(event)
    raw = (APIGatewayProxyEventV2(event).query_string_parameters or {}) if http else event
    try:
        request = report.parse_request(raw, max_range_days=_max_range_days())
    except report.ReportParameterError as error:
        logger.warning("Report parameters rejected", extra={"problems": error.problems, "http": http})
        metrics.add_metric(name="ReportsRejected", unit=MetricUnit.Count, value=1)
        return _answer(400, {"message": str(error), "problems": error.problems}, http)

    settings = Settings.from_env()
    logger.append_keys(tenant_id=request.tenant_id, date_from=str(request.date_from), date_to=str(request.date_to))
    remaining = context.get_remaining_time_in_millis() / 1000 if context is not None else 60.0
    runner = AthenaRunner(
        query_file=_query_file(),
        workgroup=settings.athena_workgroup,
        database=settings.glue_database,
        deadline=started + remaining - SAVE_MARGIN_SECONDS,
    )
    generated_at = datetime.now(UTC)
    try:
        document = report.generate_report(request, runner, generated_at=generated_at)
    except (AthenaQueryError, AthenaQueryTimeout) as error:
        logger.exception("Report query failed")
        metrics.add_metric(name="ReportsFailed", unit=MetricUnit.Count, value=1)
        if not http:
            raise
        status = 504 if isinstance(error, AthenaQueryTimeout) else 502
        return _answer(status, {"message": f"the report could not be computed: {error}"}, http)

    key = report.report_key(settings.reports_prefix, encode_id(request.tenant_id), request, generated_at)
    body = report.to_json(document, indent=2).encode("utf-8")
    (failure,) = s3.put_objects_parallel(settings.bucket_name, [(key, body)], concurrency=1)
    if failure is not None:
        raise failure
    location = f"s3://{settings.bucket_name}/{key}"

    scanned = sum(result.data_scanned_bytes for result in runner.executions)
    metrics.add_metric(name="ReportsGenerated", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="ReportQueries", unit=MetricUnit.Count, value=len(runner.executions))
    metrics.add_metric(name="ReportDataScanned", unit=MetricUnit.Bytes, value=scanned)
    metrics.add_metric(name="ReportDuration", unit=MetricUnit.Milliseconds, value=(time.monotonic() - started) * 1000)
    logger.info(
        "Report generated",
        extra={
            "location": location,
            "purchases": document["totals"]["purchases"],
            "query_execution_ids": [result.query_execution_id for result in runner.executions],
            "data_scanned_bytes": scanned,
        },
    )
    return _answer(200, {"location": location, "report": json.loads(body)}, http)
