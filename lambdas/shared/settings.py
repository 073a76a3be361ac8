"""Run-time settings of the Lambda functions: one typed object per function, parsed and validated once.

On Lambda the handler module builds its function from ``<Function>Settings.from_env(os.environ)`` on the first
invocation (the variables serverless.yml sets in ``provider.environment``; config/pipeline.yml is their only
source, so nothing is defaulted here). Local runs build the same object from the deployed function's environment
(local/stack.py ``DeployedFunction.environment``) and tests from a mapping or the constructor: nobody mutates the
process environment. A missing or invalid variable fails fast with a message that names it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from lambdas.domain.compaction import CompactionConfigError, CompactionSettings


class MissingSettingError(RuntimeError):
    """A variable of the function's environment is missing or invalid."""


class _Env:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ

    def text(self, name: str) -> str:
        value = self.environ.get(name)
        if not value:
            raise MissingSettingError(
                f"environment variable {name} is not set: it comes from serverless.yml provider.environment "
                "(config/pipeline.yml)"
            )
        return value

    def integer(self, name: str, minimum: int) -> int:
        raw = self.text(name)
        try:
            value = int(raw)
        except ValueError:
            raise MissingSettingError(f"environment variable {name}={raw!r} is not a whole number") from None
        if value < minimum:
            raise MissingSettingError(f"environment variable {name} must be >= {minimum}, got {raw!r}")
        return value

    def number(self, name: str, minimum: float) -> float:
        raw = self.text(name)
        try:
            value = float(raw)
        except ValueError:
            raise MissingSettingError(f"environment variable {name}={raw!r} is not a number") from None
        if not value >= minimum:
            raise MissingSettingError(f"environment variable {name} must be >= {minimum}, got {raw!r}")
        return value


@dataclass(frozen=True)
class Observability:
    """Powertools' configuration of a function (lambdas.shared.observability): POWERTOOLS_SERVICE_NAME,
    POWERTOOLS_METRICS_NAMESPACE, POWERTOOLS_LOG_LEVEL of its environment (config/pipeline.yml observability)."""

    service_name: str
    metrics_namespace: str
    log_level: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Observability:
        env = _Env(environ)
        return cls(
            service_name=env.text("POWERTOOLS_SERVICE_NAME"),
            metrics_namespace=env.text("POWERTOOLS_METRICS_NAMESPACE"),
            log_level=env.text("POWERTOOLS_LOG_LEVEL"),
        )


@dataclass(frozen=True)
class IngestionSettings:
    """ingestarTickets."""

    stage: str
    table_name: str
    uploads_prefix: str
    ingest_reports_prefix: str
    write_concurrency: int
    max_write_attempts: int
    backoff_base_seconds: float
    backoff_cap_seconds: float
    max_reported_rejections: int
    grouping_memory_mb: int
    observability: Observability
    # Worker processes that build and write a file's purchases (lambdas.shared.processes.worker_count): at most
    # max_worker_processes, one per vCPU of memory_mb (AWS_LAMBDA_FUNCTION_MEMORY_SIZE, set by Lambda from the
    # function's memorySize; None outside Lambda), at least rows_per_worker_process valid rows each.
    max_worker_processes: int
    rows_per_worker_process: int
    memory_mb: int | None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> IngestionSettings:
        env = _Env(environ)
        return cls(
            stage=env.text("STAGE"),
            table_name=env.text("DYNAMODB_TABLE"),
            uploads_prefix=env.text("UPLOADS_PREFIX"),
            ingest_reports_prefix=env.text("INGEST_REPORTS_PREFIX"),
            write_concurrency=env.integer("WRITE_CONCURRENCY", 1),
            max_write_attempts=env.integer("MAX_WRITE_ATTEMPTS", 1),
            backoff_base_seconds=env.number("BACKOFF_BASE_SECONDS", 0.0),
            backoff_cap_seconds=env.number("BACKOFF_CAP_SECONDS", 0.0),
            max_reported_rejections=env.integer("MAX_REPORTED_REJECTIONS", 0),
            grouping_memory_mb=env.integer("GROUPING_MEMORY_MB", 1),
            observability=Observability.from_env(environ),
            max_worker_processes=env.integer("MAX_WORKER_PROCESSES", 1),
            rows_per_worker_process=env.integer("ROWS_PER_WORKER_PROCESS", 1),
            memory_mb=env.integer("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", 128)
            if "AWS_LAMBDA_FUNCTION_MEMORY_SIZE" in environ
            else None,
        )


@dataclass(frozen=True)
class StreamSettings:
    """actualizarComprasStream."""

    stage: str
    bucket_name: str
    glue_database: str
    glue_table: str
    compras_prefix: str
    default_currency: str
    put_concurrency: int
    observability: Observability

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> StreamSettings:
        env = _Env(environ)
        return cls(
            stage=env.text("STAGE"),
            bucket_name=env.text("BUCKET_NAME"),
            glue_database=env.text("GLUE_DATABASE"),
            glue_table=env.text("GLUE_TABLE"),
            compras_prefix=env.text("COMPRAS_PREFIX"),
            default_currency=env.text("DEFAULT_CURRENCY"),
            put_concurrency=env.integer("PUT_CONCURRENCY", 1),
            observability=Observability.from_env(environ),
        )


@dataclass(frozen=True)
class ReportSettings:
    """generarReporteCompras: names, and its own tuning (config/pipeline.yml functions.report)."""

    bucket_name: str
    glue_database: str
    athena_workgroup: str
    reports_prefix: str
    max_range_days: int
    timeout_seconds: int
    job_max_event_age_seconds: int
    presigned_url_seconds: int
    observability: Observability

    @property
    def job_expiry_seconds(self) -> int:
        """After this long a pending job can no longer finish: not started within the maximum event age, then
        at most one function timeout of work."""
        return self.job_max_event_age_seconds + self.timeout_seconds

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ReportSettings:
        env = _Env(environ)
        return cls(
            bucket_name=env.text("BUCKET_NAME"),
            glue_database=env.text("GLUE_DATABASE"),
            athena_workgroup=env.text("ATHENA_WORKGROUP"),
            reports_prefix=env.text("REPORTS_PREFIX"),
            max_range_days=env.integer("REPORT_MAX_RANGE_DAYS", 1),
            timeout_seconds=env.integer("REPORT_TIMEOUT_SECONDS", 1),
            job_max_event_age_seconds=env.integer("REPORT_JOB_MAX_EVENT_AGE_SECONDS", 1),
            presigned_url_seconds=env.integer("REPORT_PRESIGNED_URL_SECONDS", 1),
            observability=Observability.from_env(environ),
        )


@dataclass(frozen=True)
class CompactionFunctionSettings:
    """compactarCompras: names, the Iceberg table's place, and its cadences (lambdas.domain.compaction)."""

    bucket_name: str
    glue_database: str
    glue_table: str
    athena_workgroup: str
    iceberg_table: str
    iceberg_prefix: str
    compaction_prefix: str
    cadences: CompactionSettings
    observability: Observability

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> CompactionFunctionSettings:
        env = _Env(environ)
        try:
            cadences = CompactionSettings.from_env(environ)
        except CompactionConfigError as error:
            raise MissingSettingError(str(error)) from None
        return cls(
            bucket_name=env.text("BUCKET_NAME"),
            glue_database=env.text("GLUE_DATABASE"),
            glue_table=env.text("GLUE_TABLE"),
            athena_workgroup=env.text("ATHENA_WORKGROUP"),
            iceberg_table=env.text("ICEBERG_TABLE"),
            iceberg_prefix=env.text("ICEBERG_PREFIX"),
            compaction_prefix=env.text("COMPACTION_PREFIX"),
            cadences=cadences,
            observability=Observability.from_env(environ),
        )
