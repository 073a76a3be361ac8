"""generarReporteCompras: the on-demand purchase report of one tenant and day range, computed on Athena.

Thin: maps each kind of event to lambdas.report.service and the result to a response.

* Direct invoke (`serverless invoke -f generarReporteCompras --data '{"tenant_id": "...", "from": "YYYY-MM-DD",
  "to": "YYYY-MM-DD"}'`): synchronous; returns `{"statusCode": 200, "report_id", "location": "s3://...",
  "report": {...}}`, or `{"statusCode": 400, "message": ..., "problems": [...]}` for bad parameters. An Athena
  failure raises (a function error, with Athena's reason in the message).
* HTTP API (payload 2.0, AWS_IAM auth), asynchronous because API Gateway cuts requests at 30 s:
  `GET /reports/{tenant_id}?from=&to=` records a pending job, invokes this function asynchronously with
  `{"report_job": {...}}` and answers 202 with the report id and its status location;
  `GET /reports/{tenant_id}/{report_id}` answers the job's status: pending, done (presigned URL) or failed
  (reason); 404 for an unknown report. The tenant is the path's only (IAM scopes the route by path).
* `{"report_job": {"tenant_id", "from", "to", "report_id"}}` (the asynchronous invocation): computes the
  report and records done / failed in the job's status.

``build_handler(settings, aws)`` is the whole function for one composition (lambdas.report.service.build_reports);
the module's ``handler`` (the Lambda entry point) builds it once per container from the environment
(lambdas.shared.settings.ReportSettings: BUCKET_NAME, ATHENA_WORKGROUP, GLUE_DATABASE, REPORTS_PREFIX and
REPORT_MAX_RANGE_DAYS, REPORT_TIMEOUT_SECONDS, REPORT_JOB_MAX_EVENT_AGE_SECONDS, REPORT_PRESIGNED_URL_SECONDS of
config/pipeline.yml functions.report) with boto3's default clients (lambdas.adapters.clients.AwsClients).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from lambdas.adapters.athena import AthenaQueryError, AthenaQueryTimeout, AthenaRunner
from lambdas.adapters.clients import AwsClients
from lambdas.domain import report
from lambdas.report import service
from lambdas.shared.observability import logger_for, metrics_for
from lambdas.shared.settings import ReportSettings

FUNCTION = "generarReporteCompras"
# Time kept back from the Lambda's remaining time for saving the report and answering.
SAVE_MARGIN_SECONDS = 10.0
# How long a poller of a pending report is told to wait before asking again (Retry-After).
POLL_AFTER_SECONDS = 5


def _is_http(event: Any) -> bool:
    return isinstance(event, dict) and event.get("version") == "2.0" and "requestContext" in event


def _answer(status: int, payload: dict[str, Any], http: bool, headers: dict[str, str] | None = None) -> dict[str, Any]:
    if http:
        return {
            "statusCode": status,
            "headers": {"content-type": "application/json; charset=utf-8", **(headers or {})},
            "body": json.dumps(payload, ensure_ascii=False),
        }
    return {"statusCode": status, **payload}


def build_handler(settings: ReportSettings, aws: AwsClients) -> Callable[[Any, Any], dict[str, Any]]:
    """The report function of one composition (lambdas.report.service.build_reports)."""
    reports = service.build_reports(settings, aws)
    logger = logger_for(settings.observability)
    metrics = metrics_for(FUNCTION, settings.observability)
    out = (logger, metrics)

    @metrics.log_metrics
    @logger.inject_lambda_context(clear_state=True)
    def handle(event: Any, context: Any) -> dict[str, Any]:
        if _is_http(event):
            http_event = APIGatewayProxyEventV2(event)
            path = http_event.path_parameters or {}
            if "report_id" in path:
                return _http_status(path, reports, *out)
            return _http_start(http_event, path, reports, context, *out)
        if isinstance(event, dict) and "report_job" in event:
            return _run_job(event, reports, context, *out)
        return _direct(event, reports, context, *out)

    return handle


_handler: Callable[[Any, Any], dict[str, Any]] | None = None


def handler(event: Any, context: Any) -> dict[str, Any]:
    """The Lambda entry point: the function is built from the environment on the container's first event."""
    global _handler
    if _handler is None:
        _handler = build_handler(ReportSettings.from_env(os.environ), AwsClients())
    return _handler(event, context)


def _rejected(
    error: report.ReportParameterError, http: bool, logger: Logger, metrics: EphemeralMetrics
) -> dict[str, Any]:
    logger.warning("Report parameters rejected", extra={"problems": error.problems, "http": http})
    metrics.add_metric(name="ReportsRejected", unit=MetricUnit.Count, value=1)
    return _answer(400, {"message": str(error), "problems": error.problems}, http)


def _runner(reports: service.Reports, context: Any, started: float) -> AthenaRunner:
    remaining = context.get_remaining_time_in_millis() / 1000 if context is not None else 60.0
    return reports.runner(deadline=started + remaining - SAVE_MARGIN_SECONDS)


def _generated(
    runner: AthenaRunner, saved: service.SavedReport, started: float, logger: Logger, metrics: EphemeralMetrics
) -> None:
    scanned = sum(result.data_scanned_bytes for result in runner.executions)
    metrics.add_metric(name="ReportsGenerated", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="ReportQueries", unit=MetricUnit.Count, value=len(runner.executions))
    metrics.add_metric(name="ReportDataScanned", unit=MetricUnit.Bytes, value=scanned)
    metrics.add_metric(name="ReportDuration", unit=MetricUnit.Milliseconds, value=(time.monotonic() - started) * 1000)
    logger.info(
        "Report generated",
        extra={
            "report_id": saved.report_id,
            "location": saved.location,
            "purchases": saved.document["totals"]["purchases"],
            "query_execution_ids": [result.query_execution_id for result in runner.executions],
            "data_scanned_bytes": scanned,
        },
    )


def _direct(
    event: Any, reports: service.Reports, context: Any, logger: Logger, metrics: EphemeralMetrics
) -> dict[str, Any]:
    """Direct invoke: compute the report now and return it (synchronous)."""
    started = time.monotonic()
    try:
        request = report.parse_request(event, max_range_days=reports.settings.max_range_days)
    except report.ReportParameterError as error:
        return _rejected(error, False, logger, metrics)
    logger.append_keys(tenant_id=request.tenant_id, date_from=str(request.date_from), date_to=str(request.date_to))
    runner = _runner(reports, context, started)
    generated_at = datetime.now(UTC)
    try:
        saved = reports.compute_and_save(
            request, runner, report_id=report.new_report_id(request, generated_at), generated_at=generated_at
        )
    except (AthenaQueryError, AthenaQueryTimeout):
        logger.exception("Report query failed")
        metrics.add_metric(name="ReportsFailed", unit=MetricUnit.Count, value=1)
        raise
    _generated(runner, saved, started, logger, metrics)
    return _answer(200, {"report_id": saved.report_id, "location": saved.location, "report": saved.document}, False)


def _status_path(tenant_id: str, report_id: str) -> str:
    return f"/reports/{quote(tenant_id, safe='')}/{report_id}"


def _http_start(
    http_event: APIGatewayProxyEventV2,
    path: dict[str, str],
    reports: service.Reports,
    context: Any,
    logger: Logger,
    metrics: EphemeralMetrics,
) -> dict[str, Any]:
    """GET /reports/{tenant_id}?from=&to=: record the job, start it asynchronously, answer 202."""
    try:
        request = report.parse_http_request(
            path.get("tenant_id"), http_event.query_string_parameters, max_range_days=reports.settings.max_range_days
        )
    except report.ReportParameterError as error:
        return _rejected(error, True, logger, metrics)
    logger.append_keys(tenant_id=request.tenant_id, date_from=str(request.date_from), date_to=str(request.date_to))
    try:
        pending = reports.start_job(request, function=context.invoked_function_arn, requested_at=datetime.now(UTC))
    except service.JobNotStartedError as error:
        logger.exception("Report job not started")
        metrics.add_metric(name="ReportsFailed", unit=MetricUnit.Count, value=1)
        return _answer(503, {"message": str(error)}, True)
    metrics.add_metric(name="ReportsStarted", unit=MetricUnit.Count, value=1)
    location = _status_path(request.tenant_id, pending["report_id"])
    domain = http_event.request_context.domain_name
    logger.info("Report job started", extra={"report_id": pending["report_id"]})
    payload = {
        "report_id": pending["report_id"],
        "status": pending["status"],
        "requested_at": pending["requested_at"],
        "location": location,
        "status_url": f"https://{domain}{location}" if domain else None,
    }
    return _answer(202, payload, True, {"location": location, "retry-after": str(POLL_AFTER_SECONDS)})


def _http_status(
    path: dict[str, str], reports: service.Reports, logger: Logger, metrics: EphemeralMetrics
) -> dict[str, Any]:
    """GET /reports/{tenant_id}/{report_id}: pending, done (presigned URL) or failed (reason); 404 if unknown."""
    tenant_id = path.get("tenant_id")
    problems: list[str] = []
    if not isinstance(tenant_id, str) or not tenant_id:
        problems.append("'tenant_id' is required (GET /reports/{tenant_id}/{report_id})")
    try:
        report_id = report.check_report_id(path.get("report_id"))
    except report.ReportParameterError as error:
        problems.extend(error.problems)
    if problems:
        return _rejected(report.ReportParameterError(problems), True, logger, metrics)
    status = reports.job_status(tenant_id, report_id, now=datetime.now(UTC))
    metrics.add_metric(name="ReportPolls", unit=MetricUnit.Count, value=1)
    if status is None:
        return _answer(404, {"message": f"no report {report_id!r} of tenant {tenant_id!r}"}, True)
    headers = {"retry-after": str(POLL_AFTER_SECONDS)} if status["status"] == report.PENDING else None
    return _answer(200, status, True, headers)


def _run_job(
    event: dict[str, Any], reports: service.Reports, context: Any, logger: Logger, metrics: EphemeralMetrics
) -> dict[str, Any]:
    """The asynchronous invocation of a job started over HTTP: compute it, record done / failed."""
    started = time.monotonic()
    try:
        request, report_id = report.parse_job(event, max_range_days=reports.settings.max_range_days)
    except report.ReportParameterError as error:
        # Only this function makes job events: a malformed one has no status to record.
        return _rejected(error, False, logger, metrics)
    logger.append_keys(tenant_id=request.tenant_id, report_id=report_id)
    runner = _runner(reports, context, started)
    status, saved, error = reports.run_job(request, report_id, runner)
    if saved is None:
        logger.error("Report job failed", exc_info=error, extra={"reason": status["reason"]})
        metrics.add_metric(name="ReportsFailed", unit=MetricUnit.Count, value=1)
        return {"statusCode": 500, **status}
    _generated(runner, saved, started, logger, metrics)
    return {"statusCode": 200, **status}
