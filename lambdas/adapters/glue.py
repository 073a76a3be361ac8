"""Glue adapter: make sure the partitions of exported documents exist in the catalog table.

``PartitionRegistry`` keeps, per container, the table's storage descriptor (fetched once) and the
partitions already known to exist, so a warm container calls Glue only for partitions it has not
seen. New partitions are created with BatchCreatePartition (100 per call, the API limit);
AlreadyExistsException means someone else created it first, which is fine. Partition values are the
REAL ids; each partition's StorageDescriptor is the table's, with Location pointing at the encoded
key prefix (lambdas.domain.keys.partition_prefix).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from lambdas.adapters.clients import client

BATCH_LIMIT = 100  # BatchCreatePartition accepts at most 100 partitions per call


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

    def __init__(self, database: str, table: str) -> None:
        self.database = database
        self.table = table
        self._known: set[tuple[str, ...]] = set()
        self._table: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def _table_description(self) -> dict[str, Any]:
        if self._table is None:
            self._table = client("glue").get_table(DatabaseName=self.database, Name=self.table)["Table"]
        return self._table

    def _partition_input(self, spec: PartitionSpec) -> dict[str, Any]:
        descriptor = copy.deepcopy(self._table_description()["StorageDescriptor"])
        descriptor["Location"] = spec.location
        return {"Values": list(spec.values), "StorageDescriptor": descriptor}

    def ensure(self, specs: Iterable[PartitionSpec]) -> EnsureResult:
        """Create the partitions not known yet. Per-partition failures are returned, not raised;
        a failure to read the table (or a call failing as a whole) marks every pending partition failed."""
        result = EnsureResult()
        with self._lock:
            pending: dict[tuple[str, ...], PartitionSpec] = {}
            for spec in specs:
                if spec.values not in self._known:
                    pending.setdefault(spec.values, spec)
            if not pending:
                return result
            try:
                keys = self._table_description().get("PartitionKeys") or []
            except Exception as exc:
                reason = f"cannot read Glue table {self.database}.{self.table}: {exc}"
                result.failed.update(dict.fromkeys(pending, reason))
                return result
            for values in pending:
                if len(values) != len(keys):
                    raise PartitionValuesError(
                        f"partition values {values!r} do not match the {len(keys)} partition keys "
                        f"({', '.join(k['Name'] for k in keys)}) of {self.database}.{self.table}"
                    )
            specs_list = list(pending.values())
            for start in range(0, len(specs_list), BATCH_LIMIT):
                self._create(specs_list[start : start + BATCH_LIMIT], result)
        return result

    def _create(self, chunk: list[PartitionSpec], result: EnsureResult) -> None:
        try:
            response = client("glue").batch_create_partition(
                DatabaseName=self.database,
                TableName=self.table,
                PartitionInputList=[self._partition_input(spec) for spec in chunk],
            )
        except Exception as exc:
            for spec in chunk:
                result.failed[spec.values] = f"BatchCreatePartition failed: {exc}"
            return
        errors = {tuple(e.get("PartitionValues", [])): e.get("ErrorDetail", {}) for e in response.get("Errors", [])}
        for spec in chunk:
            error = errors.get(spec.values)
            if error is None:
                result.created.append(spec.values)
                self._known.add(spec.values)
            elif error.get("ErrorCode") == "AlreadyExistsException":
                result.already_existed.append(spec.values)
                self._known.add(spec.values)
            else:
                result.failed[spec.values] = f"{error.get('ErrorCode')}: {error.get('ErrorMessage')}"

    def forget(self) -> None:
        """Drop the per-container caches (tests; or after the table was recreated)."""
        with self._lock:
            self._known.clear()
            self._table = None
