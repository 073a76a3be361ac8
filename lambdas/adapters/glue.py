"""Glue adapter: make sure the partitions of exported documents exist in the catalog table.

Glue decides, never a cache: every ``ensure`` asks Glue which of the batch's partitions exist (one
BatchGetPartition per 1,000 partitions) and creates the missing ones with BatchCreatePartition (100 per
call, the API limit; AlreadyExistsException means someone else created it first, which is fine). So a table
recreated by a redeploy or a repair, or a partition deleted by hand, is registered again by the next batch of
a warm container. The only thing cached per container is the table's storage descriptor (the template of
every partition); it is dropped and fetched again on any "not found" from Glue and whenever a partition
this container saw is missing (the table may have been recreated with another descriptor). Partition
values are the REAL ids; each partition's StorageDescriptor is the table's, with Location pointing at the
encoded key prefix (lambdas.domain.keys.partition_prefix).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from lambdas.adapters.clients import AwsClients

BATCH_LIMIT = 100  # BatchCreatePartition accepts at most 100 partitions per call
GET_BATCH_LIMIT = 1000  # BatchGetPartition accepts at most 1,000 partitions per call
NOT_FOUND = "EntityNotFoundException"


class PartitionValuesError(ValueError):
    """The number of values does not match the table's partition keys (Glue itself may not check)."""


@dataclass(frozen=True)
class PartitionSpec:
    values: tuple[str, ...]
    location: str  # s3://bucket/prefix/ of the partition's objects


@dataclass
class EnsureResult:
    created: list[tuple[str, ...]] = field(default_factory=list)
    already_existed: list[tuple[str, ...]] = field(default_factory=list)
    failed: dict[tuple[str, ...], str] = field(default_factory=dict)  # values -> error message


class PartitionRegistry:
    """Ensures partitions exist in one Glue table; thread-safe; one instance per container."""

    def __init__(self, aws: AwsClients, database: str, table: str) -> None:
        self.aws = aws
        self.database = database
        self.table = table
        self._seen: set[tuple[str, ...]] = set()  # partitions this container found or created (a hint only)
        self._table: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def _table_description(self) -> dict[str, Any]:
        if self._table is None:
            self._table = self.aws.client("glue").get_table(DatabaseName=self.database, Name=self.table)["Table"]
        return self._table

    def _partition_input(self, spec: PartitionSpec) -> dict[str, Any]:
        descriptor = copy.deepcopy(self._table_description()["StorageDescriptor"])
        descriptor["Location"] = spec.location
        return {"Values": list(spec.values), "StorageDescriptor": descriptor}

    def ensure(self, specs: Iterable[PartitionSpec]) -> EnsureResult:
        """Make sure every partition exists. Per-partition failures are returned, not raised; a failure to
        read the table (or a call failing as a whole) marks every pending partition failed."""
        result = EnsureResult()
        with self._lock:
            pending: dict[tuple[str, ...], PartitionSpec] = {}
            for spec in specs:
                pending.setdefault(spec.values, spec)
            if not pending:
                return result
            try:
                keys = self._table_description().get("PartitionKeys") or []
            except Exception as exc:
                self._drop()
                reason = f"cannot read Glue table {self.database}.{self.table}: {exc}"
                result.failed.update(dict.fromkeys(pending, reason))
                return result
            for values in pending:
                if len(values) != len(keys):
                    raise PartitionValuesError(
                        f"partition values {values!r} do not match the {len(keys)} partition keys "
                        f"({', '.join(k['Name'] for k in keys)}) of {self.database}.{self.table}"
                    )
            try:
                existing = self._existing(list(pending))
            except Exception as exc:
                if _not_found(exc):
                    self._drop()  # the table is gone: nothing cached about it holds
                reason = f"cannot read the partitions of Glue table {self.database}.{self.table}: {exc}"
                result.failed.update(dict.fromkeys(pending, reason))
                return result
            result.already_existed.extend(values for values in pending if values in existing)
            self._seen.update(existing)
            missing = [spec for values, spec in pending.items() if values not in existing]
            if any(spec.values in self._seen for spec in missing):
                self._table = None  # a partition we saw is gone: the table may be a new one; re-read it
            for start in range(0, len(missing), BATCH_LIMIT):
                self._create(missing[start : start + BATCH_LIMIT], result)
        return result

    def _existing(self, values: list[tuple[str, ...]]) -> set[tuple[str, ...]]:
        found: set[tuple[str, ...]] = set()
        for start in range(0, len(values), GET_BATCH_LIMIT):
            chunk = values[start : start + GET_BATCH_LIMIT]
            response = self.aws.client("glue").batch_get_partition(
                DatabaseName=self.database,
                TableName=self.table,
                PartitionsToGet=[{"Values": list(v)} for v in chunk],
            )
            if response.get("UnprocessedKeys"):
                raise RuntimeError(
                    f"BatchGetPartition left {len(response['UnprocessedKeys'])} partition(s) unprocessed"
                )
            found.update(tuple(p["Values"]) for p in response.get("Partitions", []))
        return found

    def _create(self, chunk: list[PartitionSpec], result: EnsureResult) -> None:
        try:
            inputs = [self._partition_input(spec) for spec in chunk]
            response = self.aws.client("glue").batch_create_partition(
                DatabaseName=self.database, TableName=self.table, PartitionInputList=inputs
            )
        except Exception as exc:
            if _not_found(exc):
                self._drop()
            for spec in chunk:
                result.failed[spec.values] = f"BatchCreatePartition failed: {exc}"
            return
        errors = {tuple(e.get("PartitionValues", [])): e.get("ErrorDetail", {}) for e in response.get("Errors", [])}
        for spec in chunk:
            error = errors.get(spec.values)
            if error is None:
                result.created.append(spec.values)
                self._seen.add(spec.values)
            elif error.get("ErrorCode") == "AlreadyExistsException":
                result.already_existed.append(spec.values)
                self._seen.add(spec.values)
            else:
                if error.get("ErrorCode") == NOT_FOUND:
                    self._table = None
                result.failed[spec.values] = f"{error.get('ErrorCode')}: {error.get('ErrorMessage')}"

    def forget(self) -> None:
        """Drop the per-container caches (tests; ensure() does it itself on any "not found")."""
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        self._seen.clear()
        self._table = None


def _not_found(exc: Exception) -> bool:
    return isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") == NOT_FOUND


# -- catalog reads (verify_datacatalog.py, the local summary) -------------------------------------------------


def get_database(aws: AwsClients, name: str) -> dict[str, Any] | None:
    """The database, or None when it does not exist."""
    try:
        return aws.client("glue").get_database(Name=name)["Database"]
    except ClientError as error:
        if error.response["Error"]["Code"] == "EntityNotFoundException":
            return None
        raise


def get_table(aws: AwsClients, database: str, table: str) -> dict[str, Any] | None:
    """The table, or None when it (or its database) does not exist."""
    try:
        return aws.client("glue").get_table(DatabaseName=database, Name=table)["Table"]
    except ClientError as error:
        if error.response["Error"]["Code"] == "EntityNotFoundException":
            return None
        raise


def get_partitions(aws: AwsClients, database: str, table: str) -> list[dict[str, Any]]:
    """Every partition of the table."""
    paginator = aws.client("glue").get_paginator("get_partitions")
    return [
        partition
        for page in paginator.paginate(DatabaseName=database, TableName=table)
        for partition in page.get("Partitions", [])
    ]


def table_columns(aws: AwsClients, database: str, table: str) -> list[dict[str, str]]:
    """The table's (non-partition) columns as Glue has them: [{"Name": ..., "Type": ...}]."""
    description = aws.client("glue").get_table(DatabaseName=database, Name=table)["Table"]
    return [{"Name": c["Name"], "Type": c["Type"]} for c in description["StorageDescriptor"]["Columns"]]
