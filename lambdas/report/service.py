"""The report function's use cases, each a plain function over explicit dependencies (no event parsing).

* ``compute_and_save``: run the report's queries (concurrently, through a QueryRunner), save the report JSON
  under ``{reports prefix}{tenant}/{report_id}.json``; used by direct invoke and by report jobs.
* ``start_job``: the HTTP route's start: write the job's ``pending`` status and queue an asynchronous
  invocation of the function itself that computes the report (``run_job``).
* ``run_job``: compute a started report and record ``done`` (with its location) or ``failed`` (with the
  reason) in the job's status object.
* ``job_status``: what the polling route answers: ``pending``, ``done`` with a presigned URL, ``failed`` with
  the reason (a job that can no longer finish is reported failed), or None for an unknown report.

The handler (lambdas/report/handler.py) only maps events to these calls and results to responses.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from lambdas.adapters import awslambda, s3
from lambdas.domain import report
from lambdas.domain.keys import encode_id
from lambdas.shared.settings import MissingSettingError


def _positive_int(name: str, source: str) -> int:
    raw = os.environ.get(name)
    if not raw or not raw.isdigit() or int(raw) < 1:
        raise MissingSettingError(
            f"environment variable {name} must be a positive whole number, got {raw!r}: it comes from "
            f"serverless.yml (config/pipeline.yml functions.report.{source}) or pipeline_config"
        )
    return int(raw)


@dataclass(frozen=True)
class ReportConfig:
    """The report function's own settings (config/pipeline.yml functions.report, passed as environment)."""

    max_range_days: int
    timeout_seconds: int
    job_max_event_age_seconds: int
    presigned_url_seconds: int

    @property
    def job_expiry_seconds(self) -> int:
        """After this long a pending job can no longer finish: not started within the maximum event age, then
        at most one function timeout of work."""
        return self.job_max_event_age_seconds + self.timeout_seconds

    @classmethod
    def from_env(cls) -> ReportConfig:
        return cls(
            max_range_days=_positive_int("REPORT_MAX_RANGE_DAYS", "maxRangeDays"),
            timeout_seconds=_positive_int("REPORT_TIMEOUT_SECONDS", "timeout"),
            job_max_event_age_seconds=_positive_int("REPORT_JOB_MAX_EVENT_AGE_SECONDS", "jobMaxEventAgeSeconds"),
            presigned_url_seconds=_positive_int("REPORT_PRESIGNED_URL_SECONDS", "presignedUrlSeconds"),
        )


@dataclass(frozen=True)
class SavedReport:
    report_id: str
    location: str  # s3://bucket/key
    key: str
    document: dict[str, Any]  # the saved JSON, parsed back (plain numbers)


class JobNotStartedError(RuntimeError):
    """The asynchronous invocation of a report job was refused; the job's status records it as failed."""


def compute_and_save(
    request: report.ReportRequest,
    runner: report.QueryRunner,
    *,
    bucket: str,
    reports_prefix: str,
    report_id: str,
    generated_at: datetime,
) -> SavedReport:
    """Generate the report (queries through `runner`) and save it as `{prefix}{tenant}/{report_id}.json`."""
    document = report.generate_report(request, runner, generated_at=generated_at)
    key = report.report_key(reports_prefix, encode_id(request.tenant_id), report_id)
    s3.put_object(bucket, key, report.to_json(document, indent=2).encode("utf-8"))
    return SavedReport(report_id=report_id, location=f"s3://{bucket}/{key}", key=key, document=report.plain(document))


def _status_key(reports_prefix: str, tenant_id: str, report_id: str) -> str:
    return report.status_key(reports_prefix, encode_id(tenant_id), report_id)


def start_job(
    request: report.ReportRequest,
    *,
    bucket: str,
    reports_prefix: str,
    function: str,
    requested_at: datetime,
    invoke: Callable[[str, Any], None] = awslambda.invoke_async,
) -> dict[str, Any]:
    """Record a pending job and queue its asynchronous invocation of `function`; the pending status.

    The status is written first, so a job that starts at once always finds it. When Lambda refuses the
    invocation the status becomes failed (with the reason) and JobNotStartedError is raised."""
    report_id = report.new_report_id(request, requested_at)
    pending = report.pending_status(request, report_id, requested_at=requested_at)
    key = _status_key(reports_prefix, request.tenant_id, report_id)
    s3.put_json(bucket, key, pending)
    try:
        invoke(function, report.job_payload(request, report_id))
    except Exception as exc:
        reason = f"the report job could not be started: {exc}"
        s3.put_json(bucket, key, report.failed_status(pending, reason=reason, finished_at=datetime.now(UTC)))
        raise JobNotStartedError(reason) from exc
    return pending


def run_job(
    request: report.ReportRequest,
    report_id: str,
    runner: report.QueryRunner,
    *,
    bucket: str,
    reports_prefix: str,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> tuple[dict[str, Any], SavedReport | None, Exception | None]:
    """Compute a started report; write and return its final status, the saved report, or the error.

    Every error becomes a `failed` status with the reason (the job is not retried, see serverless.yml); only a
    failure to write the status itself raises."""
    key = _status_key(reports_prefix, request.tenant_id, report_id)
    pending = s3.get_json(bucket, key)
    if not isinstance(pending, dict) or pending.get("status") != report.PENDING:
        # Started by hand (or its status object was removed): record it from the job itself.
        started = datetime.now(UTC)
        pending = report.pending_status(request, report_id, requested_at=started)
    error: Exception | None = None
    saved: SavedReport | None = None
    try:
        saved = compute_and_save(
            request, runner, bucket=bucket, reports_prefix=reports_prefix, report_id=report_id, generated_at=clock()
        )
        status = report.done_status(pending, location=saved.location, finished_at=clock())
    except Exception as exc:  # recorded for the caller who polls; the handler logs it
        error = exc
        status = report.failed_status(pending, reason=f"the report could not be computed: {exc}", finished_at=clock())
    s3.put_json(bucket, key, status)
    return status, saved, error


def job_status(
    tenant_id: str,
    report_id: str,
    *,
    bucket: str,
    reports_prefix: str,
    config: ReportConfig,
    now: datetime,
) -> dict[str, Any] | None:
    """The status a poller sees (None: no such report of this tenant). A finished report comes with a
    presigned URL (`url`, valid `presigned_url_seconds`, until `url_expires_at`)."""
    stored = s3.get_json(bucket, _status_key(reports_prefix, tenant_id, report_id))
    if not isinstance(stored, dict) or stored.get("tenant_id") != tenant_id:
        return None
    status = report.effective_status(stored, now=now, expiry_seconds=config.job_expiry_seconds)
    if status["status"] == report.DONE:
        key = report.report_key(reports_prefix, encode_id(tenant_id), report_id)
        status["url"] = s3.presigned_get_url(bucket, key, expires_in=config.presigned_url_seconds)
        expires = now + timedelta(seconds=config.presigned_url_seconds)
        status["url_expires_at"] = expires.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return status
