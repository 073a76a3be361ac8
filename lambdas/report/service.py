"""The report function's use cases over its composition: ``build_reports(settings, aws)`` (no event parsing).

* ``Reports.compute_and_save``: run the report's queries (concurrently, through a QueryRunner), save the report
  JSON under ``{reports prefix}{tenant}/{report_id}.json``; used by direct invoke and by report jobs.
* ``Reports.start_job``: the HTTP route's start: write the job's ``pending`` status and queue an asynchronous
  invocation of the function itself that computes the report (``run_job``).
* ``Reports.run_job``: compute a started report and record ``done`` (with its location) or ``failed`` (with the
  reason) in the job's status object.
* ``Reports.job_status``: what the polling route answers: ``pending``, ``done`` with a presigned URL, ``failed``
  with the reason (a job that can no longer finish is reported failed), or None for an unknown report.
* ``Reports.runner``: the Athena QueryRunner of one invocation (the stage's workgroup and Glue database).

The settings are lambdas.shared.settings.ReportSettings (parsed once); the handler (lambdas/report/handler.py) only
maps events to these calls and results to responses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from lambdas.adapters import awslambda, s3
from lambdas.adapters.athena import AthenaRunner
from lambdas.adapters.clients import AwsClients
from lambdas.domain import queries, report
from lambdas.domain.keys import encode_id
from lambdas.shared.settings import ReportSettings


@cache
def query_file() -> queries.QueryFile:
    """athena-queries.sql at the package root, parsed once per container."""
    return queries.load()


@dataclass(frozen=True)
class SavedReport:
    report_id: str
    location: str  # s3://bucket/key
    key: str
    document: dict[str, Any]  # the saved JSON, parsed back (plain numbers)


class JobNotStartedError(RuntimeError):
    """The asynchronous invocation of a report job was refused; the job's status records it as failed."""


@dataclass(frozen=True)
class Reports:
    """The report function of one stage: its settings and clients (see the module doc)."""

    settings: ReportSettings
    aws: AwsClients
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def runner(self, deadline: float) -> AthenaRunner:
        """Named queries of athena-queries.sql on Athena; every query must finish before ``deadline``
        (a time.monotonic() value)."""
        return AthenaRunner(
            self.aws,
            query_file=query_file(),
            workgroup=self.settings.athena_workgroup,
            database=self.settings.glue_database,
            deadline=deadline,
        )

    def compute_and_save(
        self, request: report.ReportRequest, runner: report.QueryRunner, *, report_id: str, generated_at: datetime
    ) -> SavedReport:
        """Generate the report (queries through `runner`) and save it as `{prefix}{tenant}/{report_id}.json`."""
        bucket = self.settings.bucket_name
        document = report.generate_report(request, runner, generated_at=generated_at)
        key = report.report_key(self.settings.reports_prefix, encode_id(request.tenant_id), report_id)
        s3.put_object(self.aws, bucket, key, report.to_json(document, indent=2).encode("utf-8"))
        return SavedReport(
            report_id=report_id, location=f"s3://{bucket}/{key}", key=key, document=report.plain(document)
        )

    def _status_key(self, tenant_id: str, report_id: str) -> str:
        return report.status_key(self.settings.reports_prefix, encode_id(tenant_id), report_id)

    def start_job(self, request: report.ReportRequest, *, function: str, requested_at: datetime) -> dict[str, Any]:
        """Record a pending job and queue its asynchronous invocation of `function`; the pending status.

        The status is written first, so a job that starts at once always finds it. When Lambda refuses the
        invocation the status becomes failed (with the reason) and JobNotStartedError is raised."""
        bucket = self.settings.bucket_name
        report_id = report.new_report_id(request, requested_at)
        pending = report.pending_status(request, report_id, requested_at=requested_at)
        key = self._status_key(request.tenant_id, report_id)
        s3.put_json(self.aws, bucket, key, pending)
        try:
            awslambda.invoke_async(self.aws, function, report.job_payload(request, report_id))
        except Exception as exc:
            reason = f"the report job could not be started: {exc}"
            s3.put_json(self.aws, bucket, key, report.failed_status(pending, reason=reason, finished_at=self.clock()))
            raise JobNotStartedError(reason) from exc
        return pending

    def run_job(
        self, request: report.ReportRequest, report_id: str, runner: report.QueryRunner
    ) -> tuple[dict[str, Any], SavedReport | None, Exception | None]:
        """Compute a started report; write and return its final status, the saved report, or the error.

        Every error becomes a `failed` status with the reason (the job is not retried, see serverless.yml); only
        a failure to write the status itself raises."""
        bucket = self.settings.bucket_name
        key = self._status_key(request.tenant_id, report_id)
        pending = s3.get_json(self.aws, bucket, key)
        if not isinstance(pending, dict) or pending.get("status") != report.PENDING:
            # Started by hand (or its status object was removed): record it from the job itself.
            pending = report.pending_status(request, report_id, requested_at=self.clock())
        error: Exception | None = None
        saved: SavedReport | None = None
        try:
            saved = self.compute_and_save(request, runner, report_id=report_id, generated_at=self.clock())
            status = report.done_status(pending, location=saved.location, finished_at=self.clock())
        except Exception as exc:  # recorded for the caller who polls; the handler logs it
            error = exc
            reason = f"the report could not be computed: {exc}"
            status = report.failed_status(pending, reason=reason, finished_at=self.clock())
        s3.put_json(self.aws, bucket, key, status)
        return status, saved, error

    def job_status(self, tenant_id: str, report_id: str, *, now: datetime) -> dict[str, Any] | None:
        """The status a poller sees (None: no such report of this tenant). A finished report comes with a
        presigned URL (`url`, valid `presigned_url_seconds`, until `url_expires_at`)."""
        settings, bucket = self.settings, self.settings.bucket_name
        stored = s3.get_json(self.aws, bucket, self._status_key(tenant_id, report_id))
        if not isinstance(stored, dict) or stored.get("tenant_id") != tenant_id:
            return None
        status = report.effective_status(stored, now=now, expiry_seconds=settings.job_expiry_seconds)
        if status["status"] == report.DONE:
            key = report.report_key(settings.reports_prefix, encode_id(tenant_id), report_id)
            status["url"] = s3.presigned_get_url(self.aws, bucket, key, expires_in=settings.presigned_url_seconds)
            expires = now + timedelta(seconds=settings.presigned_url_seconds)
            status["url_expires_at"] = expires.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return status


def build_reports(settings: ReportSettings, aws: AwsClients) -> Reports:
    """The report function's composition root: its settings and clients wired to the adapters and the domain."""
    return Reports(settings, aws)
