"""Run-time settings of the Lambda functions, read from the environment serverless.yml sets.

Names are never defaulted here: config/pipeline.yml is their only source (serverless.yml passes
them as environment variables; pipeline_config/ builds the same environment for local runs).
A missing variable fails fast with a message that names it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


class MissingSettingError(RuntimeError):
    pass


def _require(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise MissingSettingError(
            f"environment variable {name} is not set: it comes from serverless.yml "
            "(config/pipeline.yml) or, locally, from pipeline_config.lambda_environment()"
        )
    return value


@dataclass(frozen=True)
class Settings:
    stage: str
    table_name: str
    bucket_name: str
    glue_database: str
    glue_table: str
    athena_workgroup: str
    uploads_prefix: str
    compras_prefix: str
    ingest_reports_prefix: str
    reports_prefix: str
    default_currency: str
    region: str

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            stage=_require("STAGE"),
            table_name=_require("DYNAMODB_TABLE"),
            bucket_name=_require("BUCKET_NAME"),
            glue_database=_require("GLUE_DATABASE"),
            glue_table=_require("GLUE_TABLE"),
            athena_workgroup=_require("ATHENA_WORKGROUP"),
            uploads_prefix=_require("UPLOADS_PREFIX"),
            compras_prefix=_require("COMPRAS_PREFIX"),
            ingest_reports_prefix=_require("INGEST_REPORTS_PREFIX"),
            reports_prefix=_require("REPORTS_PREFIX"),
            default_currency=_require("DEFAULT_CURRENCY"),
            region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        )
