"""lambdas/report/handler.py through the `stack` fixture: direct invoke and HTTP API GET (payload 2.0).

moto's Athena executes no SQL, so each test queues the rows the report's queries return (in the order the
report runs them); what is checked here is the wiring: parameters, the queries sent to the workgroup,
the saved report object, the responses. The numbers of the SQL itself are checked through the local DuckDB
runner in tests/local/test_report.py.
"""

from __future__ import annotations

import copy
import json
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from botocore.stub import ANY, Stubber

from lambdas.adapters import athena
from lambdas.domain import report
from lambdas.report import handler as report_handler
from lambdas.report import service
from local.pipeline import build_function, function_settings
from local.stack import REPORT
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


@pytest.fixture
def function(stack):
    """The deployed report function, built once per test as on a cold start (local.pipeline.build_function)."""
    return build_function(stack, REPORT)


def sample(name: str) -> dict:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


def http_event(tenant: str | None = None, **params) -> dict:
    """GET /reports/{tenant_id}?… (the start route) with `tenant` in the path and `params` in the query."""
    event = copy.deepcopy(sample("http_get.json"))
    event["queryStringParameters"] = params or None
    event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in params.items())
    event["pathParameters"] = {"tenant_id": tenant} if tenant is not None else None
    return event


def status_event(tenant: str, report_id: str) -> dict:
    """GET /reports/{tenant_id}/{report_id} (the polling route)."""
    event = copy.deepcopy(sample("http_status.json"))
    event["pathParameters"] = {"tenant_id": tenant, "report_id": report_id}
    return event


class SelfInvocations:
    """Lambda cannot run in moto: stubs lambda:Invoke on the function's client (``aws``: the clients it is built
    with) and records each request's parameters (the payload decoded), answering like Lambda does for a queued
    event (202), or refusing."""

    def __init__(self, aws, refuse: bool = False) -> None:
        self.calls: list[dict] = []
        self.refuse = refuse
        self._client = aws.client("lambda")
        self._stubber = Stubber(self._client)

    def _record(self, params, **_):
        self.calls.append({**params, "Payload": json.loads(params["Payload"])})

    def __enter__(self):
        self._client.meta.events.register("before-parameter-build.lambda.Invoke", self._record)
        for _ in range(5):
            if self.refuse:
                self._stubber.add_client_error("invoke", "TooManyRequestsException", "Rate exceeded", 429)
            else:
                expected = {"FunctionName": LambdaContext.invoked_function_arn, "InvocationType": "Event"}
                self._stubber.add_response("invoke", {"StatusCode": 202}, {**expected, "Payload": ANY})
        self._stubber.activate()
        return self

    def __exit__(self, *exc):
        self._stubber.deactivate()
        self._client.meta.events.unregister("before-parameter-build.lambda.Invoke", self._record)


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


def saved_object(stack, location: str) -> bytes:
    bucket, key = location.removeprefix("s3://").split("/", 1)
    return stack.aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


def report_keys(stack) -> list[str]:
    listing = stack.aws.client("s3").list_objects_v2(Bucket=stack.names.bucket, Prefix="reports/")
    return [item["Key"] for item in listing.get("Contents", [])]


@pytest.mark.integration
def test_direct_invoke_returns_the_report_and_saves_it(stack, aws, function):
    queue_report_rows(aws, "valencia-ruzafa")
    response = function(sample("invoke.json"), LambdaContext())
    assert response["statusCode"] == 200
    location = response["location"]
    assert location == f"s3://{stack.names.bucket}/reports/valencia-ruzafa/{response['report_id']}.json"
    assert response["report_id"].startswith("2024-05-01_2024-05-31_")
    assert json.loads(saved_object(stack, location), parse_float=Decimal) == json.loads(
        json.dumps(response["report"]), parse_float=Decimal
    )

    doc = json.loads(json.dumps(response["report"]), parse_float=Decimal)
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
def test_http_get_starts_a_job_that_the_caller_polls_until_a_presigned_url(stack, aws, function):
    with SelfInvocations(stack.aws) as invocations:
        started = function(sample("http_get.json"), LambdaContext())
    assert started["statusCode"] == 202
    body = json.loads(started["body"])
    report_id = body["report_id"]
    assert body["status"] == "pending"
    assert body["location"] == started["headers"]["location"] == f"/reports/valencia-ruzafa/{report_id}"
    assert body["status_url"] == f"https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com{body['location']}"
    # The job is an asynchronous invocation of the function itself, carrying the validated request.
    (call,) = invocations.calls
    assert call["FunctionName"] == LambdaContext.invoked_function_arn
    assert call["InvocationType"] == "Event"
    assert call["Payload"] == {
        "report_job": {"tenant_id": "valencia-ruzafa", "from": "2024-05-01", "to": "2024-05-31", "report_id": report_id}
    }
    assert athena_executions(stack) == []  # nothing computed before the job runs

    pending = function(status_event("valencia-ruzafa", report_id), LambdaContext())
    assert pending["statusCode"] == 200 and pending["headers"]["retry-after"] == "5"
    assert json.loads(pending["body"])["status"] == "pending"

    # What Lambda would run: the worker, with the payload that was queued.
    queue_report_rows(aws, "valencia-ruzafa")
    finished = function(call["Payload"], LambdaContext())
    assert finished["statusCode"] == 200 and finished["status"] == "done"
    assert len(athena_executions(stack)) == len(report.REPORT_QUERIES)

    done = json.loads(function(status_event("valencia-ruzafa", report_id), LambdaContext())["body"])
    assert done["status"] == "done"
    assert done["location"] == f"s3://{stack.names.bucket}/reports/valencia-ruzafa/{report_id}.json"
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in done["url"] and "X-Amz-Signature=" in done["url"]
    assert f"X-Amz-Expires={function_settings(stack, REPORT).presigned_url_seconds}" in done["url"]
    with urllib.request.urlopen(done["url"], timeout=10) as response:  # no credentials: the URL is the grant
        fetched = json.loads(response.read(), parse_float=Decimal)
    assert fetched["tenant_id"] == "valencia-ruzafa"
    assert fetched["totals"]["revenue"] == Decimal("13.49")


@pytest.mark.integration
def test_a_failed_job_is_polled_as_failed_with_the_reason(stack, aws, function):
    with SelfInvocations(stack.aws) as invocations:
        started = json.loads(function(sample("http_get.json"), LambdaContext())["body"])
    short = LambdaContext(remaining_ms=int(report_handler.SAVE_MARGIN_SECONDS * 1000) - 1)
    worker = function(invocations.calls[0]["Payload"], short)
    assert worker["statusCode"] == 500 and worker["status"] == "failed"
    polled = json.loads(function(status_event("valencia-ruzafa", started["report_id"]), LambdaContext())["body"])
    assert polled["status"] == "failed"
    assert "no time left to start Athena query" in polled["reason"]
    assert "url" not in polled


@pytest.mark.integration
def test_a_job_lambda_refuses_to_queue_is_503_and_recorded_failed(stack, function):
    with SelfInvocations(stack.aws, refuse=True):
        response = function(sample("http_get.json"), LambdaContext())
    assert response["statusCode"] == 503
    assert "Rate exceeded" in json.loads(response["body"])["message"]
    (status_key,) = [k for k in report_keys(stack) if k.endswith(".status.json")]
    status = json.loads(stack.aws.client("s3").get_object(Bucket=stack.names.bucket, Key=status_key)["Body"].read())
    assert status["status"] == "failed" and "could not be started" in status["reason"]


@pytest.mark.integration
def test_a_job_still_pending_after_it_could_have_finished_is_reported_failed(stack, monkeypatch, function):
    with SelfInvocations(stack.aws):
        started = json.loads(function(sample("http_get.json"), LambdaContext())["body"])
    settings = function_settings(stack, REPORT)
    expiry = settings.job_max_event_age_seconds + settings.timeout_seconds
    assert settings.job_expiry_seconds == expiry
    reports = service.build_reports(settings, stack.aws)
    requested = datetime.fromisoformat(started["requested_at"].replace("Z", "+00:00"))
    at_expiry = reports.job_status("valencia-ruzafa", started["report_id"], now=requested + timedelta(seconds=expiry))
    assert at_expiry["status"] == "pending"
    later = reports.job_status("valencia-ruzafa", started["report_id"], now=requested + timedelta(seconds=expiry + 1))
    assert later["status"] == "failed" and f"did not finish within {expiry} s" in later["reason"]


@pytest.mark.integration
def test_polling_another_tenant_or_an_unknown_id_is_404_and_a_bad_id_400(stack, function):
    with SelfInvocations(stack.aws):
        started = json.loads(function(sample("http_get.json"), LambdaContext())["body"])
    report_id = started["report_id"]
    other = function(status_event("madrid-centro", report_id), LambdaContext())
    assert other["statusCode"] == 404
    unknown = report_id[:-8] + ("0" * 8 if not report_id.endswith("0" * 8) else "1" * 8)
    assert function(status_event("valencia-ruzafa", unknown), LambdaContext())["statusCode"] == 404
    for bad in ("../x", "latest", report_id + ".json"):
        response = function(status_event("valencia-ruzafa", bad), LambdaContext())
        assert response["statusCode"] == 400
        assert "is not a report id" in json.loads(response["body"])["message"]


@pytest.mark.integration
def test_http_tenant_comes_from_the_path_only(stack, function):
    with SelfInvocations(stack.aws) as invocations:
        refused = function(
            http_event("valencia-ruzafa", tenant_id="madrid-centro", **{"from": "2024-05-01", "to": "2024-05-31"}),
            LambdaContext(),
        )
        assert refused["statusCode"] == 400
        assert "'tenant_id' goes in the path" in json.loads(refused["body"])["message"]
        assert invocations.calls == [] and report_keys(stack) == []
        accepted = function(http_event("madrid-centro", **{"from": "2024-05-01", "to": "2024-05-31"}), LambdaContext())
    assert accepted["statusCode"] == 202
    assert invocations.calls[0]["Payload"]["report_job"]["tenant_id"] == "madrid-centro"
    assert all(key.startswith("reports/madrid-centro/") for key in report_keys(stack))


def athena_executions(stack) -> list[str]:
    return stack.aws.client("athena").list_query_executions(WorkGroup=stack.names.athena_workgroup)["QueryExecutionIds"]


@pytest.mark.integration
def test_queries_run_in_the_stage_workgroup_bound_to_the_tenant_and_range(stack, aws, function):
    queue_report_rows(aws, "valencia-ruzafa")
    function(sample("invoke.json"), LambdaContext())
    athena_client = stack.aws.client("athena")
    ids = athena_client.list_query_executions(WorkGroup=stack.names.athena_workgroup)["QueryExecutionIds"]
    executions = [athena_client.get_query_execution(QueryExecutionId=i)["QueryExecution"] for i in ids]
    assert len(executions) == len(report.REPORT_QUERIES)
    for execution in executions:
        sql = execution["Query"]
        assert execution["QueryExecutionContext"]["Database"] == stack.names.glue_database
        assert "CAST('valencia-ruzafa' AS VARCHAR) AS tenant_id" in sql
        assert "'2024-05-01' AS date_from" in sql and "'2024-05-31' AS date_to" in sql


@pytest.mark.integration
def test_direct_invoke_returns_a_plain_object(stack, aws, function):
    queue_report_rows(aws, "valencia-ruzafa")
    response = function(sample("invoke.json"), LambdaContext())
    assert response["statusCode"] == 200
    assert response["report"]["totals"]["purchases"] == 3
    assert response["report"]["totals"]["revenue"] == 13.49
    assert json.loads(saved_object(stack, response["location"]))["totals"]["revenue"] == 13.49


@pytest.mark.integration
def test_unsafe_tenant_stays_in_its_own_key_segment(stack, aws, function):
    tenant = "../otra tienda/ñ"
    queue_report_rows(aws, tenant)
    response = function({"tenant_id": tenant, "from": "2024-05-01", "to": "2024-05-31"}, LambdaContext())
    assert response["statusCode"] == 200
    (key,) = report_keys(stack)
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
def test_bad_parameters_are_400_with_the_reason(stack, params, problem, function):
    direct = function(params, LambdaContext())
    assert direct["statusCode"] == 400
    assert any(problem in p for p in direct["problems"])
    assert problem in direct["message"]

    query = {k: v for k, v in params.items() if k != "tenant_id"}
    with SelfInvocations(stack.aws) as invocations:
        http = function(http_event(params.get("tenant_id"), **query), LambdaContext())
    assert http["statusCode"] == 400
    assert json.loads(http["body"])["problems"] == direct["problems"]
    assert invocations.calls == []
    assert report_keys(stack) == []


@pytest.mark.integration
def test_http_get_without_query_string_is_400(stack, function):
    response = function(http_event("valencia-ruzafa"), LambdaContext())
    assert response["statusCode"] == 400
    assert "'from' is required" in json.loads(response["body"])["message"]


@pytest.mark.integration
def test_running_out_of_time_on_direct_invoke_is_an_error(stack, function):
    short = LambdaContext(remaining_ms=int(report_handler.SAVE_MARGIN_SECONDS * 1000) - 1)
    with pytest.raises(athena.AthenaQueryTimeout, match="no time left to start Athena query"):
        function(sample("invoke.json"), short)
    assert report_keys(stack) == []
