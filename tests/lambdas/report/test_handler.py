"""lambdas/report/handler.py through the `stack` fixture: direct invoke and HTTP API GET (payload 2.0).

moto's Athena executes no SQL, so each test queues the rows the report's queries return (in the order the
report runs them); what is checked here is the wiring: parameters, the queries sent to the workgroup,
the saved report object, the responses. The numbers of the SQL itself are checked through the local DuckDB
runner in tests/local/test_report.py.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from lambdas.adapters import athena
from lambdas.adapters.clients import client
from lambdas.domain import report
from lambdas.report import handler as report_handler
from tests.lambdas.adapters.test_athena import athena_column, athena_row, queue_results

EVENTS = Path(report_handler.__file__).parent / "events"


@dataclass
class LambdaContext:
    function_name: str = "compras-test-generarReporteCompras"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:compras-test-generarReporteCompras"
    aws_request_id: str = "5f1e6a2b-0000-4000-8000-000000000001"
    remaining_ms: int = 300_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def sample(name: str) -> dict:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


def http_event(**params) -> dict:
    event = copy.deepcopy(sample("http_get.json"))
    event["queryStringParameters"] = params or None
    event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in params.items())
    return event


def queue_report_rows(aws, tenant: str) -> None:
    """What the four report queries return, in the order generate_report runs them."""
    text, integer, money, ratio = "varchar", "bigint", "decimal", "double"
    results = {
        report.DAILY_QUERY: (
            [("tenant_id", text), ("dia", text), ("compras", integer), ("unidades", integer), ("ingresos", money)],
            [(tenant, "2024-05-02", "2", "7", "12.5000"), (tenant, "2024-05-04", "1", "1", "0.9900")],
        ),
        report.TOP_PRODUCTS_QUERY: (
            [("tenant_id", text), ("puesto", integer), ("codigo", text), ("nombre", text), ("categoria", text),
             ("unidades", integer), ("ingresos", money), ("compras", integer)],
            [(tenant, "1", "LAC-002", "Leche semidesnatada 1 L", "Lácteos", "5", "4.9500", "2")],
        ),
        report.TOP_CATEGORIES_QUERY: (
            [("tenant_id", text), ("puesto", integer), ("categoria", text), ("unidades", integer),
             ("ingresos", money), ("compras", integer)],
            [(tenant, "1", "Lácteos", "5", "4.9500", "2")],
        ),
        report.PAIRS_QUERY: (
            [("tenant_id", text), ("puesto", integer), ("producto_a", text), ("producto_b", text),
             ("nombre_a", text), ("nombre_b", text), ("n_juntos", integer), ("soporte", ratio),
             ("confianza_a_b", ratio), ("confianza_b_a", ratio),
             ("lift", ratio)],
            [(tenant, "1", "LAC-002", "PAN-001", "Leche semidesnatada 1 L", "Pan de barra", "2", "0.6667", "1.0",
              "0.6667", "1.5")],
        ),
    }  # fmt: skip
    for name in report.REPORT_QUERIES:
        columns, rows = results[name]
        header = athena_row(*(c for c, _ in columns))
        queue_results(aws, [header, *(athena_row(*r) for r in rows)], [athena_column(c, t) for c, t in columns])


def saved_object(location: str) -> bytes:
    bucket, key = location.removeprefix("s3://").split("/", 1)
    return client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


def report_keys(bucket: str) -> list[str]:
    listing = client("s3").list_objects_v2(Bucket=bucket, Prefix="reports/")
    return [item["Key"] for item in listing.get("Contents", [])]


@pytest.mark.integration
def test_http_get_returns_the_report_and_saves_it(stack, aws):
    queue_report_rows(aws, "valencia-ruzafa")
    response = report_handler.handler(sample("http_get.json"), LambdaContext())
    assert response["statusCode"] == 200
    assert response["headers"]["content-type"].startswith("application/json")
    body = json.loads(response["body"], parse_float=Decimal)
    location = body["location"]
    assert location.startswith(f"s3://{stack.names.bucket}/reports/valencia-ruzafa/2024-05-01_2024-05-31_")
    assert location.endswith(".json")
    assert json.loads(saved_object(location), parse_float=Decimal) == body["report"]

    doc = body["report"]
    assert (doc["tenant_id"], doc["from"], doc["to"], doc["days"]) == (
        "valencia-ruzafa",
        "2024-05-01",
        "2024-05-31",
        31,
    )
    assert doc["totals"]["purchases"] == 3
    assert doc["totals"]["units"] == 8
    assert doc["totals"]["revenue"] == Decimal("13.49")
    assert doc["totals"]["average_basket"] == Decimal("4.50")
    assert doc["daily"][1] == {
        "date": "2024-05-02",
        "purchases": 2,
        "units": 7,
        "revenue": Decimal("12.5"),
        "average_basket": Decimal("6.25"),
    }
    assert doc["top_categories"][0]["categoria"] == "Lácteos"
    assert doc["top_pairs"][0]["nombre_a"] == "Leche semidesnatada 1 L"


@pytest.mark.integration
def test_queries_run_in_the_stage_workgroup_bound_to_the_tenant_and_range(stack, aws):
    queue_report_rows(aws, "valencia-ruzafa")
    report_handler.handler(sample("invoke.json"), LambdaContext())
    athena_client = client("athena")
    ids = athena_client.list_query_executions(WorkGroup=stack.names.athena_workgroup)["QueryExecutionIds"]
    executions = [athena_client.get_query_execution(QueryExecutionId=i)["QueryExecution"] for i in ids]
    assert len(executions) == len(report.REPORT_QUERIES)
    for execution in executions:
        sql = execution["Query"]
        assert execution["QueryExecutionContext"]["Database"] == stack.names.glue_database
        assert "CAST('valencia-ruzafa' AS VARCHAR) AS tenant_id" in sql
        assert "'2024-05-01' AS date_from" in sql and "'2024-05-31' AS date_to" in sql


@pytest.mark.integration
def test_direct_invoke_returns_a_plain_object(stack, aws):
    queue_report_rows(aws, "valencia-ruzafa")
    response = report_handler.handler(sample("invoke.json"), LambdaContext())
    assert response["statusCode"] == 200
    assert response["report"]["totals"]["purchases"] == 3
    assert response["report"]["totals"]["revenue"] == 13.49
    assert json.loads(saved_object(response["location"]))["totals"]["revenue"] == 13.49


@pytest.mark.integration
def test_unsafe_tenant_stays_in_its_own_key_segment(stack, aws):
    tenant = "../otra tienda/ñ"
    queue_report_rows(aws, tenant)
    response = report_handler.handler({"tenant_id": tenant, "from": "2024-05-01", "to": "2024-05-31"}, LambdaContext())
    assert response["statusCode"] == 200
    (key,) = report_keys(stack.names.bucket)
    segments = key.split("/")
    assert segments[0] == "reports" and len(segments) == 3
    assert segments[1] == "~2E~2E~2Fotra~20tienda~2F~C3~B1"
    assert response["report"]["tenant_id"] == tenant


@pytest.mark.integration
@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"from": "2024-05-01", "to": "2024-05-31"}, "'tenant_id' is required"),
        ({"tenant_id": "t", "from": "2024-05-31", "to": "2024-05-01"}, "'from' (2024-05-31) is after 'to'"),
        ({"tenant_id": "t", "from": "2023-01-01", "to": "2024-12-31"}, "more than the maximum of 366 days"),
        ({"tenant_id": "t", "from": "mayo", "to": "2024-05-31"}, "'from' must be a day as YYYY-MM-DD"),
    ],
)
def test_bad_parameters_are_400_with_the_reason(stack, params, problem):
    direct = report_handler.handler(params, LambdaContext())
    assert direct["statusCode"] == 400
    assert any(problem in p for p in direct["problems"])
    assert problem in direct["message"]

    http = report_handler.handler(http_event(**params), LambdaContext())
    assert http["statusCode"] == 400
    assert json.loads(http["body"])["problems"] == direct["problems"]
    assert report_keys(stack.names.bucket) == []


@pytest.mark.integration
def test_http_get_without_query_string_is_400(stack):
    response = report_handler.handler(http_event(), LambdaContext())
    assert response["statusCode"] == 400
    assert "'tenant_id' is required" in json.loads(response["body"])["message"]


@pytest.mark.integration
def test_running_out_of_time_is_504_over_http_and_an_error_on_invoke(stack):
    short = LambdaContext(remaining_ms=int(report_handler.SAVE_MARGIN_SECONDS * 1000) - 1)
    response = report_handler.handler(sample("http_get.json"), short)
    assert response["statusCode"] == 504
    assert "no time left to start Athena query" in json.loads(response["body"])["message"]
    with pytest.raises(athena.AthenaQueryTimeout):
        report_handler.handler(sample("invoke.json"), short)
    assert report_keys(stack.names.bucket) == []
