"""compactarCompras locally: the same plan, state and maintenance SQL, executed by DuckDB over Parquet in the bucket.

On AWS the maintenance function runs its statements on Athena against the Iceberg table. Here
(`make demo`, the tests, the bench) :class:`DuckDbEngine` runs them on DuckDB:

* ``create``: the table's columns come from the same definition as the Athena DDL
  (lambdas.domain.compaction.table_columns), so the local table always exists;
* ``merge`` / ``purge``: the MERGE INTO / DELETE statements of lambdas.domain.compaction, transpiled by sqlglot
  like every other query (local.athena_duckdb.transpile), over the JSON documents of ``compras/`` and the rows of
  the last committed snapshot; then a *commit*: the table is written as Parquet (ZSTD, hive layout
  ``tenant_id=…/dia=…``) under ``<iceberg prefix>data/<snapshot id>/`` and the pointer object
  ``<iceberg prefix>local-snapshot.json`` is replaced last — readers see the old or the new snapshot, never a
  mix (what Iceberg's metadata commit gives on AWS);
* ``optimize``: every local commit already writes one file per partition, so there is nothing to bin-pack;
* ``vacuum``: the data files of older snapshots are deleted.

The state object (watermarks, last maintenance times) is the very S3StateStore the Lambda uses.
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pipeline_config as config
from lambdas.adapters.clients import AwsClients
from lambdas.compaction.service import S3StateStore
from lambdas.domain import compaction
from local.athena_duckdb import ICEBERG_TABLE, SNAPSHOT_POINTER, LocalAthena, iceberg_prefix


def settings() -> compaction.CompactionSettings:
    return compaction.CompactionSettings.from_config(config.function_settings("compaction"))


def table_names(bucket: str) -> compaction.TableNames:
    return compaction.TableNames(
        iceberg_table=ICEBERG_TABLE,
        location=f"s3://{bucket}/{iceberg_prefix()}",
        source_table=config.raw_config()["names"]["glueTable"],
    )


def state_store(aws: AwsClients, bucket: str) -> S3StateStore:
    return S3StateStore(aws, bucket, config.prefixes()["compaction"])


@dataclass
class DuckDbEngine:
    """Executes the maintenance statements on a LocalAthena loaded from the bucket (JSON + last snapshot)."""

    athena: LocalAthena
    aws: AwsClients
    bucket: str
    glue_database: str | None = None
    changed_rows: dict[str, int] = field(default_factory=dict)
    snapshot_id: str | None = None

    def execute(self, statement: compaction.Statement) -> compaction.StepResult:
        started = time.monotonic()
        if statement.step == "create" and self.glue_database:
            self.register_table()
        elif statement.step in ("merge", "purge"):
            self.changed_rows[statement.step] = self.athena.execute_maintenance(statement.sql, statement.step)
            self.commit()
        elif statement.step == "vacuum":
            self.vacuum()
        elif statement.step not in ("create", "optimize"):
            raise ValueError(f"unknown maintenance step {statement.step!r}")
        return compaction.StepResult(step=statement.step, seconds=time.monotonic() - started)

    def register_table(self) -> None:
        """What Athena's CREATE TABLE … 'table_type'='ICEBERG' leaves in Glue (moto keeps it for the checks)."""
        glue = self.aws.client("glue")
        try:
            glue.get_table(DatabaseName=self.glue_database, Name=ICEBERG_TABLE)
            return
        except glue.exceptions.EntityNotFoundException:
            pass
        columns = compaction.table_columns(config.catalog()["columns"])
        glue.create_table(
            DatabaseName=self.glue_database,
            TableInput={
                "Name": ICEBERG_TABLE,
                "TableType": "EXTERNAL_TABLE",
                "Parameters": {"table_type": "ICEBERG", "format": "parquet", "write_compression": "zstd"},
                "StorageDescriptor": {
                    "Columns": [{"Name": name, "Type": kind} for name, kind in columns],
                    "Location": table_names(self.bucket).location,
                },
            },
        )

    def commit(self) -> None:
        """Write the table as a new snapshot, then point the table at it (the commit)."""
        s3 = self.aws.client("s3")
        snapshot_id = f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}"
        data_prefix = f"{iceberg_prefix()}data/{snapshot_id}/"
        with tempfile.TemporaryDirectory(prefix="local-iceberg-") as tmp:
            root = Path(tmp) / "snapshot"
            files = []
            for path in self.athena.write_parquet(root):
                key = data_prefix + path.relative_to(root).as_posix()
                s3.put_object(Bucket=self.bucket, Key=key, Body=path.read_bytes())
                files.append({"key": key, "size": path.stat().st_size})
        pointer = {
            "snapshot_id": snapshot_id,
            "committed_at": datetime.now(UTC).isoformat(timespec="microseconds"),
            "data_prefix": data_prefix,
            "rows": self.athena.iceberg_rows(),
            "files": files,
        }
        s3.put_object(
            Bucket=self.bucket,
            Key=iceberg_prefix() + SNAPSHOT_POINTER,
            Body=json.dumps(pointer, indent=2).encode("utf-8"),
            ContentType="application/json",
        )
        self.snapshot_id = snapshot_id

    def vacuum(self) -> int:
        """Delete the data files no longer referenced by the current snapshot; how many."""
        s3 = self.aws.client("s3")
        current = current_snapshot(self.aws, self.bucket)
        keep = {f["key"] for f in current["files"]} if current else set()
        paginator = s3.get_paginator("list_objects_v2")
        doomed = [
            item["Key"]
            for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{iceberg_prefix()}data/")
            for item in page.get("Contents", [])
            if item["Key"] not in keep
        ]
        for start in range(0, len(doomed), 1000):
            chunk = doomed[start : start + 1000]
            s3.delete_objects(Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True})
        return len(doomed)


def current_snapshot(aws: AwsClients, bucket: str) -> dict[str, Any] | None:
    """The pointer of the last committed local snapshot, or None."""
    s3 = aws.client("s3")
    try:
        body = s3.get_object(Bucket=bucket, Key=iceberg_prefix() + SNAPSHOT_POINTER)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    return json.loads(body)


def run(
    aws: AwsClients,
    bucket: str,
    *,
    now: datetime | None = None,
    force_full: bool = False,
    glue_database: str | None = None,
    environment: dict[str, str] | None = None,
) -> tuple[compaction.RunResult, DuckDbEngine]:
    """One maintenance run over the bucket, exactly as compactarCompras plans it.

    ``environment``: the deployed function's (LocalStack.lambda_environment("compactarCompras")): its cadences
    then come from there, as in the Lambda (default: config/pipeline.yml). ``glue_database``: also register the
    table in that Glue database, as Athena's DDL does.
    """
    run_settings = compaction.CompactionSettings.from_env(environment) if environment else settings()
    with LocalAthena(bucket, config.prefixes()["compras"], aws=aws) as athena:
        athena.refresh()
        engine = DuckDbEngine(athena, aws, bucket, glue_database)
        result = compaction.run_maintenance(
            engine,
            state_store(aws, bucket),
            settings=run_settings,
            names=table_names(bucket),
            catalog_columns=config.catalog()["columns"],
            now=now or datetime.now(UTC),
            force_full=force_full,
        )
    return result, engine
