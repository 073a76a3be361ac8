"""The on-demand purchase report (generarReporteCompras): parameters, query plan and the report document.

Pure Python, no AWS: the numbers come from the named queries of athena-queries.sql, run by a `QueryRunner`
(Athena in the Lambda, DuckDB locally); this module only validates the request, asks the runner for the
queries it needs, bound to the tenant and the day range, and assembles their rows into one JSON document.
The only arithmetic done here is adding up the daily rows into totals and dividing revenue by purchases.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Protocol

from lambdas.domain import limits

# The named queries of athena-queries.sql the report is built from.
DAILY_QUERY = "tendencias_diarias"
TOP_PRODUCTS_QUERY = "top_productos"
TOP_CATEGORIES_QUERY = "top_categorias"
PAIRS_QUERY = "pares_productos"
REPORT_QUERIES = (DAILY_QUERY, TOP_PRODUCTS_QUERY, TOP_CATEGORIES_QUERY, PAIRS_QUERY)

PARAMETERS = ("tenant_id", "from", "to")
MAX_TENANT_ID_LENGTH = 256
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_CENT = Decimal("0.01")


class ReportParameterError(ValueError):
    """Bad report parameters (a 400): the message lists every problem found, each naming the parameter."""

    def __init__(self, problems: list[str]):
        super().__init__("invalid report parameters: " + "; ".join(problems))
        self.problems = problems


class ReportDataError(RuntimeError):
    """A query returned something the report cannot use (a bug or a schema drift, never the user's fault)."""


class QueryRunner(Protocol):
    """Runs one named query of athena-queries.sql bound to `params` and returns its rows as dicts.

    `params` holds `tenant_id` (str) and `date_from` / `date_to` ('YYYY-MM-DD', inclusive). Implemented by
    lambdas.adapters.athena.AthenaRunner (real Athena) and local.athena_duckdb (DuckDB over local JSON).
    """

    def run(self, name: str, params: Mapping[str, Any]) -> list[dict[str, Any]]: ...


class ConcurrentQueryRunner(QueryRunner, Protocol):
    """A runner that can run independent queries at the same time (Athena: start them all, then wait)."""

    def run_all(self, names: Sequence[str], params: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]: ...


@dataclass(frozen=True)
class ReportRequest:
    tenant_id: str
    date_from: date
    date_to: date

    @property
    def days(self) -> int:
        return (self.date_to - self.date_from).days + 1

    def query_params(self) -> dict[str, str]:
        return {
            "tenant_id": self.tenant_id,
            "date_from": self.date_from.isoformat(),
            "date_to": self.date_to.isoformat(),
        }


# ------------------------------------------------------------------------------------------------ parameters


def _parse_day(name: str, value: Any, problems: list[str]) -> date | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        problems.append(f"'{name}' is required (a day as YYYY-MM-DD)")
        return None
    if not isinstance(value, str) or not _DAY.fullmatch(value):
        problems.append(f"'{name}' must be a day as YYYY-MM-DD, got {value!r}")
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        problems.append(f"'{name}' is not a valid day: {value!r} ({exc})")
        return None


def parse_http_request(path_tenant: Any, query: Mapping[str, Any] | None, *, max_range_days: int) -> ReportRequest:
    """The request of `GET /reports/{tenant_id}?from=…&to=…`: the tenant is the path's, and only the path's.

    IAM scopes execute-api:Invoke by the route's resource path, so the tenant a caller may read is the one in
    the path; a `tenant_id` in the query string is refused (never merged, never preferred)."""
    query = dict(query or {})
    problems: list[str] = []
    if "tenant_id" in query:
        problems.append("'tenant_id' goes in the path (GET /reports/{tenant_id}?from=…&to=…), not in the query string")
        query.pop("tenant_id")
    try:
        request = parse_request({**query, "tenant_id": path_tenant}, max_range_days=max_range_days)
    except ReportParameterError as error:
        raise ReportParameterError(problems + error.problems) from None
    if problems:
        raise ReportParameterError(problems)
    return request


def parse_request(raw: Mapping[str, Any] | None, *, max_range_days: int) -> ReportRequest:
    """Validate `{"tenant_id", "from", "to"}`; raise ReportParameterError naming every problem."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ReportParameterError([f"parameters must be an object with {', '.join(PARAMETERS)}"])
    problems: list[str] = []
    unknown = sorted(str(k) for k in raw if k not in PARAMETERS)
    if unknown:
        problems.append(f"unknown parameter(s) {', '.join(map(repr, unknown))}: expected {', '.join(PARAMETERS)}")

    tenant = raw.get("tenant_id")
    if tenant is None or (isinstance(tenant, str) and not tenant.strip()):
        problems.append("'tenant_id' is required")
        tenant = None
    elif not isinstance(tenant, str):
        problems.append(f"'tenant_id' must be a string, got {type(tenant).__name__}")
        tenant = None
    elif len(tenant) > MAX_TENANT_ID_LENGTH:
        problems.append(f"'tenant_id' is {len(tenant)} characters long, more than {MAX_TENANT_ID_LENGTH}")
        tenant = None
    elif any(ord(ch) < 32 or ord(ch) == 127 for ch in tenant):
        problems.append("'tenant_id' contains control characters")
        tenant = None
    elif limits.encoded_length(tenant) >= limits.ID_BUDGET:
        # No purchase of such a store can be exported (lambdas/domain/limits.py), and its report key would not
        # fit S3's key length either.
        problems.append(
            f"'tenant_id' takes {limits.encoded_length(tenant)} characters once encoded for S3 keys; no store "
            f"with an id of {limits.ID_BUDGET} or more can have exported purchases"
        )
        tenant = None

    date_from = _parse_day("from", raw.get("from"), problems)
    date_to = _parse_day("to", raw.get("to"), problems)
    if date_from and date_to:
        if date_from > date_to:
            problems.append(f"'from' ({date_from}) is after 'to' ({date_to})")
        else:
            days = (date_to - date_from).days + 1
            if days > max_range_days:
                problems.append(
                    f"the range {date_from} to {date_to} covers {days} days, more than the maximum of "
                    f"{max_range_days} days"
                )
    if problems:
        raise ReportParameterError(problems)
    assert tenant is not None and date_from is not None and date_to is not None
    return ReportRequest(tenant_id=tenant, date_from=date_from, date_to=date_to)


# ------------------------------------------------------------------------------------------------ values


def _int(value: Any, where: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool):
        raise ReportDataError(f"{where}: expected a number, got {value!r}")
    try:
        as_decimal = Decimal(str(value))
    except ArithmeticError as exc:
        raise ReportDataError(f"{where}: expected a number, got {value!r}") from exc
    if as_decimal != as_decimal.to_integral_value():
        raise ReportDataError(f"{where}: expected a whole number, got {value!r}")
    return int(as_decimal)


def _decimal(value: Any, where: str) -> Decimal:
    if value is None:
        return Decimal(0)
    if isinstance(value, bool):
        raise ReportDataError(f"{where}: expected a number, got {value!r}")
    try:
        return Decimal(str(value))
    except ArithmeticError as exc:
        raise ReportDataError(f"{where}: expected a number, got {value!r}") from exc


def _float(value: Any, where: str) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise ReportDataError(f"{where}: expected a number, got {value!r}") from exc


def _money(value: Decimal) -> Decimal:
    return value.quantize(_CENT, rounding=ROUND_HALF_UP)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _day(value: Any, where: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise ReportDataError(f"{where}: expected a day as YYYY-MM-DD, got {value!r}") from exc


def _rows_of_tenant(name: str, rows: list[dict[str, Any]], request: ReportRequest) -> list[dict[str, Any]]:
    for i, row in enumerate(rows):
        tenant = row.get("tenant_id")
        if tenant is not None and tenant != request.tenant_id:
            raise ReportDataError(
                f"query {name} row {i}: tenant_id {tenant!r} in a report for {request.tenant_id!r} "
                "(the query was not bound to the tenant)"
            )
    return rows


def _ordered(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows by their `puesto` (rank) column when the query returns one, else as returned."""
    if rows and all("puesto" in row for row in rows):
        return sorted(rows, key=lambda row: _int(row["puesto"], "puesto"))
    return rows


# ------------------------------------------------------------------------------------------------ assembly


def build_report(
    request: ReportRequest, results: Mapping[str, list[dict[str, Any]]], *, generated_at: datetime
) -> dict[str, Any]:
    """The report document from the rows of REPORT_QUERIES (each bound to the request)."""
    missing = [name for name in REPORT_QUERIES if name not in results]
    if missing:
        raise ReportDataError(f"results of query(ies) {', '.join(missing)} are missing")

    by_day: dict[date, dict[str, Any]] = {}
    for i, row in enumerate(_rows_of_tenant(DAILY_QUERY, results[DAILY_QUERY], request)):
        where = f"query {DAILY_QUERY} row {i}"
        day = _day(row.get("dia"), f"{where} column dia")
        if not request.date_from <= day <= request.date_to:
            raise ReportDataError(f"{where}: day {day} is outside {request.date_from} to {request.date_to}")
        if day in by_day:
            raise ReportDataError(f"{where}: day {day} appears twice")
        by_day[day] = {
            "purchases": _int(row.get("compras"), f"{where} column compras"),
            "units": _int(row.get("unidades"), f"{where} column unidades"),
            "revenue": _decimal(row.get("ingresos"), f"{where} column ingresos"),
        }

    daily = []
    empty = {"purchases": 0, "units": 0, "revenue": Decimal(0)}
    for offset in range(request.days):
        day = request.date_from + timedelta(days=offset)
        values = by_day.get(day, empty)
        daily.append(
            {
                "date": day.isoformat(),
                "purchases": values["purchases"],
                "units": values["units"],
                "revenue": values["revenue"],
                "average_basket": _money(values["revenue"] / values["purchases"]) if values["purchases"] else None,
            }
        )

    purchases = sum(d["purchases"] for d in by_day.values())
    units = sum(d["units"] for d in by_day.values())
    revenue = sum((d["revenue"] for d in by_day.values()), Decimal(0))
    totals = {
        "purchases": purchases,
        "units": units,
        "revenue": revenue,
        "average_basket": _money(revenue / purchases) if purchases else None,
        "average_units_per_purchase": float(round(Decimal(units) / purchases, 2)) if purchases else None,
        "days_with_purchases": sum(1 for d in by_day.values() if d["purchases"]),
    }

    top_products = []
    for i, row in enumerate(_ordered(_rows_of_tenant(TOP_PRODUCTS_QUERY, results[TOP_PRODUCTS_QUERY], request))):
        where = f"query {TOP_PRODUCTS_QUERY} row {i}"
        top_products.append(
            {
                "rank": _int(row.get("puesto", i + 1), f"{where} column puesto"),
                "codigo": _text(row.get("codigo")),
                "nombre": _text(row.get("nombre")),
                "categoria": _text(row.get("categoria")),
                "units": _int(row.get("unidades"), f"{where} column unidades"),
                "revenue": _decimal(row.get("ingresos"), f"{where} column ingresos"),
                "purchases": _int(row.get("compras"), f"{where} column compras"),
            }
        )

    top_categories = []
    rows = _ordered(_rows_of_tenant(TOP_CATEGORIES_QUERY, results[TOP_CATEGORIES_QUERY], request))
    for i, row in enumerate(rows):
        where = f"query {TOP_CATEGORIES_QUERY} row {i}"
        top_categories.append(
            {
                "rank": _int(row.get("puesto", i + 1), f"{where} column puesto"),
                "categoria": _text(row.get("categoria")),
                "units": _int(row.get("unidades"), f"{where} column unidades"),
                "revenue": _decimal(row.get("ingresos"), f"{where} column ingresos"),
                "purchases": _int(row.get("compras"), f"{where} column compras"),
                "products": _int(row.get("productos"), f"{where} column productos"),
            }
        )

    top_pairs = []
    for i, row in enumerate(_ordered(_rows_of_tenant(PAIRS_QUERY, results[PAIRS_QUERY], request))):
        where = f"query {PAIRS_QUERY} row {i}"
        a, b = _text(row.get("producto_a")), _text(row.get("producto_b"))
        top_pairs.append(
            {
                "rank": _int(row.get("puesto", i + 1), f"{where} column puesto"),
                "producto_a": a,
                "producto_b": b,
                "nombre_a": _text(row.get("nombre_a")),
                "nombre_b": _text(row.get("nombre_b")),
                "purchases_together": _int(row.get("n_juntos"), f"{where} column n_juntos"),
                "support": _float(row.get("soporte"), f"{where} column soporte"),
                "confidence_a_b": _float(row.get("confianza_a_b"), f"{where} column confianza_a_b"),
                "confidence_b_a": _float(row.get("confianza_b_a"), f"{where} column confianza_b_a"),
                "lift": _float(row.get("lift"), f"{where} column lift"),
            }
        )

    return {
        "report": "compras",
        "tenant_id": request.tenant_id,
        "from": request.date_from.isoformat(),
        "to": request.date_to.isoformat(),
        "days": request.days,
        "generated_at": generated_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "queries": list(REPORT_QUERIES),
        "totals": totals,
        "daily": daily,
        "top_products": top_products,
        "top_categories": top_categories,
        "top_pairs": top_pairs,
    }


def generate_report(request: ReportRequest, runner: QueryRunner, *, generated_at: datetime) -> dict[str, Any]:
    """Run the report's queries through `runner` (bound to the request) and assemble the report.

    The queries do not depend on each other: a runner with `run_all` (Athena) runs them at the same time;
    otherwise they run one after the other."""
    params = request.query_params()
    run_all = getattr(runner, "run_all", None)
    if run_all is not None:
        results = run_all(REPORT_QUERIES, params)
    else:
        results = {name: runner.run(name, params) for name in REPORT_QUERIES}
    return build_report(request, results, generated_at=generated_at)


# ------------------------------------------------------------------------------------------------ output

# A report's id: its range, the UTC time it was requested (microseconds) and 8 random hex digits, e.g.
# 2024-05-01_2024-05-31_20240601T090000123456Z_9f86d081. It names the report object and its job status.
_REPORT_ID = re.compile(r"(\d{4}-\d{2}-\d{2})_(\d{4}-\d{2}-\d{2})_\d{8}T\d{12}Z_[0-9a-f]{8}")


def new_report_id(request: ReportRequest, requested_at: datetime, token: str | None = None) -> str:
    """A fresh report id (`token`: 8 hex digits, random unless given)."""
    token = secrets.token_hex(4) if token is None else token
    stamp = requested_at.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    report_id = f"{request.date_from.isoformat()}_{request.date_to.isoformat()}_{stamp}_{token}"
    if not _REPORT_ID.fullmatch(report_id):
        raise ValueError(f"token {token!r} must be 8 lower-case hex digits")
    return report_id


def check_report_id(value: Any) -> str:
    """A report id from a caller (the polling route); ReportParameterError unless it has the exact shape."""
    if not isinstance(value, str) or not _REPORT_ID.fullmatch(value):
        raise ReportParameterError(
            [f"'report_id' {value!r} is not a report id (YYYY-MM-DD_YYYY-MM-DD_YYYYMMDDTHHMMSSffffffZ_xxxxxxxx)"]
        )
    return value


def _safe_segment(encoded_tenant: str) -> str:
    if not encoded_tenant or "/" in encoded_tenant or encoded_tenant in (".", ".."):
        raise ValueError(f"tenant segment {encoded_tenant!r} is not a safe key segment")
    return encoded_tenant


def report_key(prefix: str, encoded_tenant: str, report_id: str) -> str:
    """`{prefix}{tenant}/{report_id}.json`; `encoded_tenant` must be a safe key segment
    (lambdas.domain.keys.encode_id)."""
    return f"{prefix}{_safe_segment(encoded_tenant)}/{check_report_id(report_id)}.json"


def status_key(prefix: str, encoded_tenant: str, report_id: str) -> str:
    """`{prefix}{tenant}/{report_id}.status.json`: the job status of a report started over HTTP."""
    return f"{prefix}{_safe_segment(encoded_tenant)}/{check_report_id(report_id)}.status.json"


# ------------------------------------------------------------------------------------------------ jobs

PENDING, DONE, FAILED = "pending", "done", "failed"


def _utc(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def job_payload(request: ReportRequest, report_id: str) -> dict[str, Any]:
    """The event of the asynchronous invocation that computes a report started over HTTP."""
    return {"report_job": {**request_parameters(request), "report_id": report_id}}


def request_parameters(request: ReportRequest) -> dict[str, str]:
    return {"tenant_id": request.tenant_id, "from": request.date_from.isoformat(), "to": request.date_to.isoformat()}


def parse_job(event: Mapping[str, Any], *, max_range_days: int) -> tuple[ReportRequest, str]:
    """(request, report_id) of a job event made by `job_payload`."""
    job = event.get("report_job")
    if not isinstance(job, Mapping):
        raise ReportParameterError(["'report_job' must be an object with tenant_id, from, to and report_id"])
    job = dict(job)
    report_id = job.pop("report_id", None)
    problems: list[str] = []
    try:
        check_report_id(report_id)
    except ReportParameterError as error:
        problems.extend(error.problems)
    try:
        request = parse_request(job, max_range_days=max_range_days)
    except ReportParameterError as error:
        raise ReportParameterError(problems + error.problems) from None
    if problems:
        raise ReportParameterError(problems)
    return request, report_id


def pending_status(request: ReportRequest, report_id: str, *, requested_at: datetime) -> dict[str, Any]:
    return {
        "report_id": report_id,
        **request_parameters(request),
        "status": PENDING,
        "requested_at": _utc(requested_at),
    }


def done_status(pending: Mapping[str, Any], *, location: str, finished_at: datetime) -> dict[str, Any]:
    return {**pending, "status": DONE, "location": location, "finished_at": _utc(finished_at)}


def failed_status(pending: Mapping[str, Any], *, reason: str, finished_at: datetime) -> dict[str, Any]:
    return {**pending, "status": FAILED, "reason": reason, "finished_at": _utc(finished_at)}


def effective_status(status: Mapping[str, Any], *, now: datetime, expiry_seconds: float) -> dict[str, Any]:
    """The status a caller sees: a job still pending `expiry_seconds` after it was requested can no longer
    finish (dropped before it ran, or killed by the function's timeout), so it is reported failed."""
    if status.get("status") != PENDING:
        return dict(status)
    requested_at = datetime.fromisoformat(str(status["requested_at"]).replace("Z", "+00:00"))
    if (now - requested_at).total_seconds() <= expiry_seconds:
        return dict(status)
    return failed_status(
        status,
        reason=(
            f"the report job did not finish within {expiry_seconds:g} s of the request (it was not started in "
            "time or ran out of time): start the report again"
        ),
        finished_at=now,
    )


def to_json(report: Mapping[str, Any], *, indent: int | None = None) -> str:
    """The report as JSON. Decimals (money) become JSON numbers showing their exact digits: a float's repr is
    the shortest text that reads back as the same float, so up to 15 significant digits print unchanged."""
    return json.dumps(_plain(report), ensure_ascii=False, indent=indent)


def plain(report: Mapping[str, Any]) -> dict[str, Any]:
    """The report with the JSON types ``to_json`` writes (Decimals as int/float): a response built from the
    same values, without writing and parsing the text again."""
    return _plain(report)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
