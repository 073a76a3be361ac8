"""The Python view of config/pipeline.yml, the one source of truth for names and settings.

serverless.yml reads the same file through ``${file(./config/pipeline.yml):...}``; this package
resolves the few placeholders that file may contain (``${sls:stage}`` and, in the bucket name,
``${AWS::AccountId}`` / ``${AWS::Region}``) so verify_datacatalog.py (a tool for deployed stages), the tests,
the benchmarks and the local stand-in use exactly the names and settings a deployment gets. Neutral: it imports
nothing of lambdas/ or local/.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
CONFIG_PATH = ROOT / "config" / "pipeline.yml"

_PLACEHOLDER = re.compile(r"\$\{([^}]+)\}")


@cache
def raw_config() -> dict[str, Any]:
    """The parsed YAML, placeholders untouched."""
    with CONFIG_PATH.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def resolve(value: str, *, stage: str, account_id: str, region: str) -> str:
    """Substitute the placeholders config/pipeline.yml may use; anything else is an error."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        known = {"sls:stage": stage, "AWS::AccountId": account_id, "AWS::Region": region}
        if name not in known:
            raise ValueError(f"config/pipeline.yml: unsupported placeholder ${{{name}}} in {value!r}")
        return known[name]

    return _PLACEHOLDER.sub(substitute, value)


@dataclass(frozen=True)
class StackNames:
    """Resolved resource names of one stage in one account and region."""

    stage: str
    account_id: str
    region: str
    table: str
    bucket: str
    ingest_queue: str
    ingest_dlq: str
    stream_failure_queue: str
    glue_database: str
    glue_table: str
    athena_workgroup: str
    alarm_topic: str


def stack_names(stage: str, account_id: str = "123456789012", region: str | None = None) -> StackNames:
    cfg = raw_config()
    region = region or cfg["region"]
    names = {k: resolve(v, stage=stage, account_id=account_id, region=region) for k, v in cfg["names"].items()}
    return StackNames(
        stage=stage,
        account_id=account_id,
        region=region,
        table=names["table"],
        bucket=names["bucket"],
        ingest_queue=names["ingestQueue"],
        ingest_dlq=names["ingestDlq"],
        stream_failure_queue=names["streamFailureQueue"],
        glue_database=names["glueDatabase"],
        glue_table=names["glueTable"],
        athena_workgroup=names["athenaWorkgroup"],
        alarm_topic=names["alarmTopic"],
    )


def prefixes() -> dict[str, str]:
    return dict(raw_config()["prefixes"])


def function_settings(function: str) -> dict[str, Any]:
    """Settings of one function block: 'ingestion', 'stream' or 'report'."""
    return dict(raw_config()["functions"][function])


def queue_settings() -> dict[str, Any]:
    return dict(raw_config()["queues"])


def catalog() -> dict[str, Any]:
    return raw_config()["catalog"]


def table_keys() -> dict[str, str]:
    """Key schema of the purchases table: {'partitionKey': ..., 'sortKey': ...}."""
    return dict(raw_config()["table"])


def observability() -> dict[str, Any]:
    return dict(raw_config()["observability"])


def athena_settings() -> dict[str, Any]:
    return dict(raw_config()["athena"])


def lambda_environment(names: StackNames) -> dict[str, str]:
    """The environment every function gets: exactly the variables serverless.yml sets in
    ``provider.environment`` (tests/infra checks the packaged template against this).

    Names and prefixes, the Powertools settings, and the tuning values the handlers read
    (ingestion: WRITE_CONCURRENCY, MAX_WRITE_ATTEMPTS, BACKOFF_BASE_SECONDS, BACKOFF_CAP_SECONDS,
    MAX_REPORTED_REJECTIONS, GROUPING_MEMORY_MB, MAX_WORKER_PROCESSES, ROWS_PER_WORKER_PROCESS;
    stream: PUT_CONCURRENCY; report: REPORT_MAX_RANGE_DAYS, REPORT_TIMEOUT_SECONDS,
    REPORT_JOB_MAX_EVENT_AGE_SECONDS, REPORT_PRESIGNED_URL_SECONDS). All values are strings, as Lambda
    passes them.
    """
    cfg = raw_config()
    p = prefixes()
    obs = cfg["observability"]
    ingestion = cfg["functions"]["ingestion"]
    stream = cfg["functions"]["stream"]
    report = cfg["functions"]["report"]
    return {
        "STAGE": names.stage,
        "DYNAMODB_TABLE": names.table,
        "BUCKET_NAME": names.bucket,
        "GLUE_DATABASE": names.glue_database,
        "GLUE_TABLE": names.glue_table,
        "ATHENA_WORKGROUP": names.athena_workgroup,
        "UPLOADS_PREFIX": p["uploads"],
        "COMPRAS_PREFIX": p["compras"],
        "INGEST_REPORTS_PREFIX": p["ingestReports"],
        "REPORTS_PREFIX": p["reports"],
        "DEFAULT_CURRENCY": cfg["defaults"]["currency"],
        "POWERTOOLS_SERVICE_NAME": cfg["service"],
        "POWERTOOLS_METRICS_NAMESPACE": obs["metricsNamespace"],
        "POWERTOOLS_LOG_LEVEL": obs["logLevel"],
        "WRITE_CONCURRENCY": str(ingestion["writeConcurrency"]),
        "MAX_WRITE_ATTEMPTS": str(ingestion["maxWriteAttempts"]),
        "BACKOFF_BASE_SECONDS": str(ingestion["backoffBaseSeconds"]),
        "BACKOFF_CAP_SECONDS": str(ingestion["backoffCapSeconds"]),
        "MAX_REPORTED_REJECTIONS": str(ingestion["maxReportedRejections"]),
        "GROUPING_MEMORY_MB": str(ingestion["groupingMemoryMB"]),
        "MAX_WORKER_PROCESSES": str(ingestion["maxWorkerProcesses"]),
        "ROWS_PER_WORKER_PROCESS": str(ingestion["rowsPerWorkerProcess"]),
        "PUT_CONCURRENCY": str(stream["putConcurrency"]),
        "REPORT_MAX_RANGE_DAYS": str(report["maxRangeDays"]),
        "REPORT_TIMEOUT_SECONDS": str(report["timeout"]),
        "REPORT_JOB_MAX_EVENT_AGE_SECONDS": str(report["jobMaxEventAgeSeconds"]),
        "REPORT_PRESIGNED_URL_SECONDS": str(report["presignedUrlSeconds"]),
    }


def function_environment(function: str) -> dict[str, str]:
    """The variables serverless.yml adds for one function on top of :func:`lambda_environment` (strings).

    Only compactarCompras has its own: the Iceberg table's name and prefixes, and its cadences.
    """
    if function != "compaction":
        return {}
    cfg = raw_config()
    settings = cfg["functions"]["compaction"]
    return {
        "ICEBERG_TABLE": cfg["names"]["icebergTable"],
        "ICEBERG_PREFIX": cfg["prefixes"]["iceberg"],
        "COMPACTION_PREFIX": cfg["prefixes"]["compaction"],
        "COMPACTION_SAFETY_LAG_MINUTES": str(settings["safetyLagMinutes"]),
        "COMPACTION_RECENT_DAYS": str(settings["recentDays"]),
        "COMPACTION_FULL_MERGE_EVERY_HOURS": str(settings["fullMergeEveryHours"]),
        "COMPACTION_OPTIMIZE_EVERY_HOURS": str(settings["optimizeEveryHours"]),
        "COMPACTION_VACUUM_EVERY_HOURS": str(settings["vacuumEveryHours"]),
        "COMPACTION_TOMBSTONE_RETENTION_DAYS": str(settings["tombstoneRetentionDays"]),
    }
