"""Amazon Athena: run one SQL statement in a workgroup and return typed rows.

StartQueryExecution in the workgroup (its enforced result location and encryption are respected: we only pass
an output location when the workgroup has none), GetQueryExecution polled with exponential backoff until a
deadline (the query is stopped when the deadline passes), a clear error for FAILED / CANCELLED carrying
Athena's reason, GetQueryResults paginated, and every value converted from Athena's strings to a Python type
chosen by the column type (bigint -> int, decimal -> Decimal, date -> date, ...; NULL -> None).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from lambdas.adapters.clients import AwsClients

if TYPE_CHECKING:  # sqlglot (imported by queries) ships only in the report function's package
    from lambdas.domain.queries import QueryFile

TERMINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})


class AthenaQueryError(RuntimeError):
    """A query ended FAILED or CANCELLED; the message names the query and carries Athena's reason."""

    def __init__(self, message: str, *, query_execution_id: str, state: str, reason: str, error_type: str | None):
        super().__init__(message)
        self.query_execution_id = query_execution_id
        self.state = state
        self.reason = reason
        self.error_type = error_type


class AthenaQueryTimeout(TimeoutError):
    """A query did not finish before its deadline (it has been asked to stop)."""

    def __init__(self, message: str, *, query_execution_id: str, last_state: str):
        super().__init__(message)
        self.query_execution_id = query_execution_id
        self.last_state = last_state


@dataclass(frozen=True)
class Backoff:
    """Polling delays: initial, doubled each time, capped at `maximum`."""

    initial: float = 0.25
    maximum: float = 5.0
    factor: float = 2.0

    def delays(self) -> Iterator[float]:
        delay = self.initial
        while True:
            yield delay
            delay = min(self.maximum, delay * self.factor)


@dataclass(frozen=True)
class QueryResult:
    query_execution_id: str
    columns: list[str]
    types: list[str]
    rows: list[dict[str, Any]]
    output_location: str | None = None
    data_scanned_bytes: int = 0
    statistics: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------- values

_INTEGER_TYPES = frozenset({"tinyint", "smallint", "integer", "int", "bigint"})
_FLOAT_TYPES = frozenset({"double", "float", "real"})


def convert_value(athena_type: str, text: str | None) -> Any:
    """One value of GetQueryResults (always a string, or absent for NULL) as a Python value.

    Complex types (array, map, row, json) and anything unknown stay strings: Athena renders them in a
    display format that cannot be parsed back unambiguously.
    """
    if text is None:
        return None
    base = athena_type.lower().split("(", 1)[0].strip()
    try:
        if base in _INTEGER_TYPES:
            return int(text)
        if base in _FLOAT_TYPES:
            return float(text)
        if base == "decimal":
            return Decimal(text)
        if base == "boolean":
            if text.lower() not in ("true", "false"):
                raise ValueError("expected true or false")
            return text.lower() == "true"
        if base == "date":
            return date.fromisoformat(text)
        if base == "timestamp" and "with time zone" not in athena_type.lower():
            return datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"Athena returned {text!r} for a column of type {athena_type}: {exc}") from exc
    return text


def _row_values(row: dict[str, Any]) -> list[str | None]:
    return [datum.get("VarCharValue") for datum in row.get("Data", [])]


def rows_from_pages(pages: Sequence[dict[str, Any]] | Iterator[dict[str, Any]], *, has_header: bool):
    """Columns, types and typed rows from GetQueryResults pages.

    For SELECT (DML) statements Athena repeats the column labels as the first row of the first page; that
    row is dropped when `has_header` and it matches the labels.
    """
    columns: list[str] | None = None
    types: list[str] = []
    rows: list[dict[str, Any]] = []
    first = True
    for page in pages:
        result_set = page.get("ResultSet", {})
        if columns is None:
            info = result_set.get("ResultSetMetadata", {}).get("ColumnInfo", [])
            columns = [c.get("Label") or c["Name"] for c in info]
            types = [c.get("Type", "varchar") for c in info]
        for raw in result_set.get("Rows", []):
            values = _row_values(raw)
            if first:
                first = False
                if has_header and values == columns:
                    continue
            if len(values) != len(columns):
                raise ValueError(f"Athena returned a row of {len(values)} values for {len(columns)} columns")
            rows.append(
                {name: convert_value(kind, value) for name, kind, value in zip(columns, types, values, strict=True)}
            )
    return columns or [], types, rows


# ---------------------------------------------------------------------------------------------------- calls


def workgroup_output_location(aws: AwsClients, workgroup: str) -> str | None:
    """The result location the workgroup configures (None when it has none)."""
    config = aws.client("athena").get_work_group(WorkGroup=workgroup)["WorkGroup"].get("Configuration", {})
    return config.get("ResultConfiguration", {}).get("OutputLocation")


def start_query(
    aws: AwsClients,
    sql: str,
    *,
    workgroup: str,
    database: str,
    catalog: str = "AwsDataCatalog",
    execution_parameters: Sequence[str] | None = None,
    fallback_output_location: str | None = None,
) -> str:
    """Start `sql` in `workgroup` with `database` as the default database; the QueryExecutionId.

    The workgroup's own result configuration wins: `fallback_output_location` is sent only when the workgroup
    defines no output location (an enforced workgroup would override it anyway).
    """
    request: dict[str, Any] = {
        "QueryString": sql,
        "WorkGroup": workgroup,
        "QueryExecutionContext": {"Database": database, "Catalog": catalog},
    }
    if execution_parameters:
        request["ExecutionParameters"] = list(execution_parameters)
    if fallback_output_location and not workgroup_output_location(aws, workgroup):
        request["ResultConfiguration"] = {"OutputLocation": fallback_output_location}
    return aws.client("athena").start_query_execution(**request)["QueryExecutionId"]


def wait_for_query(
    aws: AwsClients,
    query_execution_id: str,
    *,
    timeout_seconds: float,
    backoff: Backoff | None = None,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
    label: str = "query",
) -> dict[str, Any]:
    """Poll GetQueryExecution until the query is SUCCEEDED; its QueryExecution.

    Raises AthenaQueryError for FAILED / CANCELLED (with Athena's StateChangeReason and error type), and
    AthenaQueryTimeout after asking Athena to stop the query when `timeout_seconds` pass first.
    """
    athena = aws.client("athena")
    deadline = monotonic() + timeout_seconds
    delays = (backoff or Backoff()).delays()
    while True:
        execution = athena.get_query_execution(QueryExecutionId=query_execution_id)["QueryExecution"]
        status = execution.get("Status", {})
        state = status.get("State", "UNKNOWN")
        if state == "SUCCEEDED":
            return execution
        if state in TERMINAL_STATES:
            reason = status.get("StateChangeReason") or "no reason given"
            error = status.get("AthenaError", {})
            error_type = error.get("ErrorType")
            detail = f" [{_category(error.get('ErrorCategory'))} error, type {error_type}]" if error_type else ""
            raise AthenaQueryError(
                f"Athena {label} {query_execution_id} ended {state}: {reason}{detail}",
                query_execution_id=query_execution_id,
                state=state,
                reason=reason,
                error_type=error_type,
            )
        remaining = deadline - monotonic()
        if remaining <= 0:
            athena.stop_query_execution(QueryExecutionId=query_execution_id)
            raise AthenaQueryTimeout(
                f"Athena {label} {query_execution_id} still {state} after {timeout_seconds:g} s: stopped it",
                query_execution_id=query_execution_id,
                last_state=state,
            )
        sleep(min(next(delays), remaining))


def _stop_quietly(aws: AwsClients, query_execution_id: str) -> None:
    """Ask Athena to stop a query we no longer need; a query that already ended cannot be stopped (ignored)."""
    with contextlib.suppress(Exception):  # best effort while another error is being raised
        aws.client("athena").stop_query_execution(QueryExecutionId=query_execution_id)


def _category(code: int | None) -> str:
    return {1: "system", 2: "user", 3: "other"}.get(code or 0, "unknown")


def fetch_results(aws: AwsClients, query_execution_id: str, *, has_header: bool = True, page_size: int = 1000):
    """Columns, types and typed rows of a finished query, every page of GetQueryResults."""
    paginator = aws.client("athena").get_paginator("get_query_results")
    pages = paginator.paginate(QueryExecutionId=query_execution_id, PaginationConfig={"PageSize": page_size})
    return rows_from_pages(pages, has_header=has_header)


def run_query(
    aws: AwsClients,
    sql: str,
    *,
    workgroup: str,
    database: str,
    timeout_seconds: float,
    execution_parameters: Sequence[str] | None = None,
    fallback_output_location: str | None = None,
    backoff: Backoff | None = None,
    sleep: Callable[[float], None] = time.sleep,
    label: str = "query",
) -> QueryResult:
    """Start, wait for and fetch one query."""
    query_execution_id = start_query(
        aws,
        sql,
        workgroup=workgroup,
        database=database,
        execution_parameters=execution_parameters,
        fallback_output_location=fallback_output_location,
    )
    execution = wait_for_query(
        aws, query_execution_id, timeout_seconds=timeout_seconds, backoff=backoff, sleep=sleep, label=label
    )
    return result_of(aws, query_execution_id, execution)


def result_of(aws: AwsClients, query_execution_id: str, execution: Mapping[str, Any]) -> QueryResult:
    """The rows and statistics of a finished query (``execution`` is its QueryExecution)."""
    has_header = execution.get("StatementType", "DML") == "DML"
    columns, types, rows = fetch_results(aws, query_execution_id, has_header=has_header)
    statistics = execution.get("Statistics", {})
    return QueryResult(
        query_execution_id=query_execution_id,
        columns=columns,
        types=types,
        rows=rows,
        output_location=execution.get("ResultConfiguration", {}).get("OutputLocation"),
        data_scanned_bytes=int(statistics.get("DataScannedInBytes", 0) or 0),
        statistics=statistics,
    )


class AthenaRunner:
    """The report's QueryRunner on real Athena: named queries of athena-queries.sql, bound and run in the
    workgroup with the Glue database as default database.

    The views of the file are inlined as CTEs (`inline_views=True`), so nothing has to be created in the
    catalog first and the function needs no DDL permissions. Every query must finish before `deadline`
    (a time.monotonic() value, e.g. derived from the Lambda's remaining time).
    """

    def __init__(
        self,
        aws: AwsClients,
        *,
        query_file: QueryFile,
        workgroup: str,
        database: str,
        deadline: float,
        fallback_output_location: str | None = None,
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.aws = aws
        self.query_file = query_file
        self.workgroup = workgroup
        self.database = database
        self.deadline = deadline
        self.fallback_output_location = fallback_output_location
        self.backoff = backoff
        self.sleep = sleep
        self.monotonic = monotonic
        self.executions: list[QueryResult] = []

    def run_all(self, names: Sequence[str], params: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
        """Run independent named queries at the same time: start every one (in the order given), then wait
        for each and fetch its rows. The wall time is that of the slowest query, not the sum. When one fails
        or time runs out, the queries still running are stopped (no Athena work left behind)."""
        from lambdas.domain.queries import QueryParams

        started: list[tuple[str, str]] = []
        for name in names:
            sql = self.query_file.bind(name, QueryParams.of(**params), inline_views=True)
            self._check_time_left(name)
            started.append(
                (
                    name,
                    start_query(
                        self.aws,
                        sql,
                        workgroup=self.workgroup,
                        database=self.database,
                        fallback_output_location=self.fallback_output_location,
                    ),
                )
            )
        results: dict[str, list[dict[str, Any]]] = {}
        finished: set[str] = set()
        try:
            for name, query_execution_id in started:
                result = self._finish(name, query_execution_id)
                finished.add(query_execution_id)
                self.executions.append(result)
                results[name] = result.rows
        except BaseException:
            for _, query_execution_id in started:
                if query_execution_id not in finished:
                    _stop_quietly(self.aws, query_execution_id)
            raise
        return results

    def _check_time_left(self, name: str) -> float:
        remaining = self.deadline - self.monotonic()
        if remaining <= 0:
            raise AthenaQueryTimeout(
                f"no time left to start Athena query {name}", query_execution_id="", last_state="NOT_STARTED"
            )
        return remaining

    def _finish(self, name: str, query_execution_id: str) -> QueryResult:
        execution = wait_for_query(
            self.aws,
            query_execution_id,
            timeout_seconds=max(self.deadline - self.monotonic(), 0.0),
            backoff=self.backoff,
            sleep=self.sleep,
            monotonic=self.monotonic,
            label=f"query {name}",
        )
        return result_of(self.aws, query_execution_id, execution)

    def run(self, name: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        from lambdas.domain.queries import QueryParams

        sql = self.query_file.bind(name, QueryParams.of(**params), inline_views=True)
        remaining = self._check_time_left(name)
        result = run_query(
            self.aws,
            sql,
            workgroup=self.workgroup,
            database=self.database,
            timeout_seconds=remaining,
            fallback_output_location=self.fallback_output_location,
            backoff=self.backoff,
            sleep=self.sleep,
            label=f"query {name}",
        )
        self.executions.append(result)
        return result.rows
