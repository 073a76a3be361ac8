"""lambdas/domain/report.py: parameter validation (400 messages), report assembly, key and JSON."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from lambdas.domain import report
from lambdas.domain.report import ReportDataError, ReportParameterError, ReportRequest

MAX_DAYS = 366
NOW = datetime(2024, 3, 1, 12, 0, 5, 123456, tzinfo=UTC)


def parse(raw):
    return report.parse_request(raw, max_range_days=MAX_DAYS)


# ------------------------------------------------------------------------------------------- validation


def test_valid_request():
    request = parse({"tenant_id": "tienda-1", "from": "2024-01-01", "to": "2024-01-31"})
    assert request == ReportRequest("tienda-1", date(2024, 1, 1), date(2024, 1, 31))
    assert request.days == 31
    assert request.query_params() == {"tenant_id": "tienda-1", "date_from": "2024-01-01", "date_to": "2024-01-31"}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"from": "2024-01-01", "to": "2024-01-02"}, "'tenant_id' is required"),
        ({"tenant_id": "  ", "from": "2024-01-01", "to": "2024-01-02"}, "'tenant_id' is required"),
        ({"tenant_id": 7, "from": "2024-01-01", "to": "2024-01-02"}, "'tenant_id' must be a string, got int"),
        ({"tenant_id": "a\nb", "from": "2024-01-01", "to": "2024-01-02"}, "'tenant_id' contains control characters"),
        ({"tenant_id": "x" * 300, "from": "2024-01-01", "to": "2024-01-02"}, "300 characters long, more than 256"),
        ({"tenant_id": "t", "to": "2024-01-02"}, "'from' is required (a day as YYYY-MM-DD)"),
        ({"tenant_id": "t", "from": "2024-01-01", "to": ""}, "'to' is required"),
        (
            {"tenant_id": "t", "from": "01/02/2024", "to": "2024-01-02"},
            "got '01/02/2024'",
        ),
        ({"tenant_id": "t", "from": "20240101", "to": "2024-01-02"}, "'from' must be a day as YYYY-MM-DD"),
        ({"tenant_id": "t", "from": "2024-01-01", "to": 20240102}, "'to' must be a day as YYYY-MM-DD, got 20240102"),
        ({"tenant_id": "t", "from": "2023-02-29", "to": "2024-01-02"}, "'from' is not a valid day: '2023-02-29'"),
        (
            {"tenant_id": "t", "from": "2024-02-01", "to": "2024-01-31"},
            "'from' (2024-02-01) is after 'to'",
        ),
        (
            {"tenant_id": "t", "from": "2023-01-01", "to": "2024-01-02"},
            "the range 2023-01-01 to 2024-01-02 covers 367 days, more than the maximum of 366 days",
        ),
        ({"tenant_id": "t", "from": "2024-01-01", "to": "2024-01-02", "form": "x"}, "unknown parameter(s) 'form'"),
        (None, "'tenant_id' is required"),
    ],
)
def test_bad_parameters_say_what_is_wrong(raw, message):
    with pytest.raises(ReportParameterError) as raised:
        parse(raw)
    assert message in str(raised.value)
    assert str(raised.value).startswith("invalid report parameters: ")


def test_every_problem_is_reported_at_once():
    with pytest.raises(ReportParameterError) as raised:
        parse({"from": "2024-13-01", "to": "yesterday"})
    assert len(raised.value.problems) == 3
    assert "'tenant_id' is required" in raised.value.problems[0]
    assert "'from' is not a valid day" in raised.value.problems[1]
    assert "'to' must be a day" in raised.value.problems[2]


def test_parameters_must_be_an_object():
    with pytest.raises(ReportParameterError, match="parameters must be an object"):
        parse(["t", "2024-01-01", "2024-01-02"])


def test_range_of_exactly_the_maximum_is_accepted():
    request = parse({"tenant_id": "t", "from": "2024-01-01", "to": "2024-12-31"})
    assert request.days == MAX_DAYS


# ------------------------------------------------------------------------------------------- assembly

REQUEST = ReportRequest("t1", date(2024, 1, 1), date(2024, 1, 4))


def results(**overrides):
    base = {
        "tendencias_diarias": [
            {"tenant_id": "t1", "dia": "2024-01-03", "compras": 1, "unidades": 5, "ingresos": Decimal("20.0000")},
            {"tenant_id": "t1", "dia": "2024-01-01", "compras": 2, "unidades": 3, "ingresos": Decimal("10.0100")},
        ],
        "top_productos": [
            {"tenant_id": "t1", "puesto": 2, "codigo": "B", "nombre": "Pan", "categoria": "panaderia",
             "unidades": 3, "ingresos": Decimal("3.0000"), "compras": 2},
            {"tenant_id": "t1", "puesto": 1, "codigo": "A", "nombre": "Leche", "categoria": "lacteos",
             "unidades": 5, "ingresos": Decimal("27.0100"), "compras": 2},
        ],
        "top_categorias": [
            {"tenant_id": "t1", "puesto": 1, "categoria": "lacteos", "unidades": 5, "ingresos": Decimal("27.0100"),
             "compras": 2, "productos": 1},
        ],
        "pares_productos": [
            {"tenant_id": "t1", "puesto": 1, "producto_a": "A", "producto_b": "B", "nombre_a": "Leche",
             "nombre_b": "Pan", "n_juntos": 2, "n_compras": 3,
             "soporte": 0.6667, "confianza_a_b": 1.0, "confianza_b_a": 1.0, "lift": 1.5},
        ],
    }  # fmt: skip
    base.update(overrides)
    return base


def test_report_totals_come_from_the_daily_rows():
    doc = report.build_report(REQUEST, results(), generated_at=NOW)
    assert doc["totals"] == {
        "purchases": 3,
        "units": 8,
        "revenue": Decimal("30.0100"),
        "average_basket": Decimal("10.00"),
        "average_units_per_purchase": 2.67,
        "days_with_purchases": 2,
    }
    assert (doc["tenant_id"], doc["from"], doc["to"], doc["days"]) == ("t1", "2024-01-01", "2024-01-04", 4)
    assert doc["generated_at"] == "2024-03-01T12:00:05.123456Z"


def test_daily_series_covers_every_day_of_the_range():
    doc = report.build_report(REQUEST, results(), generated_at=NOW)
    assert [(d["date"], d["purchases"], d["units"], d["revenue"], d["average_basket"]) for d in doc["daily"]] == [
        ("2024-01-01", 2, 3, Decimal("10.0100"), Decimal("5.01")),
        ("2024-01-02", 0, 0, Decimal(0), None),
        ("2024-01-03", 1, 5, Decimal("20.0000"), Decimal("20.00")),
        ("2024-01-04", 0, 0, Decimal(0), None),
    ]


def test_rankings_follow_the_query_rank_and_pairs_get_product_names():
    doc = report.build_report(REQUEST, results(), generated_at=NOW)
    assert [(p["rank"], p["codigo"], p["units"]) for p in doc["top_products"]] == [(1, "A", 5), (2, "B", 3)]
    assert doc["top_categories"] == [
        {"rank": 1, "categoria": "lacteos", "units": 5, "revenue": Decimal("27.0100"), "purchases": 2, "products": 1}
    ]
    (pair,) = doc["top_pairs"]
    assert (pair["nombre_a"], pair["nombre_b"], pair["purchases_together"], pair["lift"]) == ("Leche", "Pan", 2, 1.5)


def test_empty_period_is_a_report_of_zeros():
    empty = {name: [] for name in report.REPORT_QUERIES}
    doc = report.build_report(REQUEST, empty, generated_at=NOW)
    assert doc["totals"]["purchases"] == 0
    assert doc["totals"]["average_basket"] is None
    assert len(doc["daily"]) == 4
    assert doc["top_products"] == doc["top_pairs"] == doc["top_categories"] == []


def test_values_as_athena_strings_or_duckdb_numbers_give_the_same_report():
    as_text = results(
        tendencias_diarias=[
            {"tenant_id": "t1", "dia": "2024-01-01", "compras": "2", "unidades": "3", "ingresos": "10.0100"},
            {"tenant_id": "t1", "dia": date(2024, 1, 3), "compras": 1, "unidades": 5.0, "ingresos": 20.0},
        ]
    )
    assert (
        report.build_report(REQUEST, as_text, generated_at=NOW)["totals"]
        == report.build_report(REQUEST, results(), generated_at=NOW)["totals"]
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"tendencias_diarias": [{"tenant_id": "t2", "dia": "2024-01-01", "compras": 1}]}, "tenant_id 't2'"),
        ({"tendencias_diarias": [{"tenant_id": "t1", "dia": "2024-02-01", "compras": 1}]}, "outside 2024-01-01"),
        ({"tendencias_diarias": [{"tenant_id": "t1", "dia": "ayer", "compras": 1}]}, "column dia: expected a day"),
        ({"tendencias_diarias": [{"tenant_id": "t1", "dia": "2024-01-01", "compras": 1.5}]}, "whole number"),
        (
            {
                "tendencias_diarias": [
                    {"tenant_id": "t1", "dia": "2024-01-01"},
                    {"tenant_id": "t1", "dia": "2024-01-01"},
                ]
            },
            "appears twice",
        ),
    ],
)
def test_unusable_query_rows_are_clear_errors(overrides, message):
    with pytest.raises(ReportDataError, match="query tendencias_diarias") as raised:
        report.build_report(REQUEST, results(**overrides), generated_at=NOW)
    assert message in str(raised.value)


def test_missing_query_results_are_named():
    partial = results()
    del partial["top_categorias"]
    with pytest.raises(ReportDataError, match="top_categorias are missing"):
        report.build_report(REQUEST, partial, generated_at=NOW)


class RecordingRunner:
    """A QueryRunner over fixed rows that records what it was asked (the real runners are tested in
    tests/lambdas/adapters/test_athena.py and tests/local/test_report.py)."""

    def __init__(self, rows):
        self.rows = rows
        self.calls = []

    def run(self, name, params):
        self.calls.append((name, dict(params)))
        return self.rows[name]


def test_generate_report_runs_each_report_query_bound_to_the_request():
    runner = RecordingRunner(results())
    doc = report.generate_report(REQUEST, runner, generated_at=NOW)
    assert [name for name, _ in runner.calls] == list(report.REPORT_QUERIES)
    assert all(params == REQUEST.query_params() for _, params in runner.calls)
    assert doc["totals"]["purchases"] == 3


# ------------------------------------------------------------------------------------------- output


class ConcurrentRunner(RecordingRunner):
    """Offers run_all; proves the queries are in flight together: every query waits at a barrier sized to the
    number of queries, which only opens when all of them have been started (a one-by-one run times out)."""

    def run_all(self, names, params):
        barrier = threading.Barrier(len(names), timeout=5)

        def one(name):
            barrier.wait()
            return name, self.run(name, params)

        with ThreadPoolExecutor(max_workers=len(names)) as pool:
            return dict(pool.map(one, names))


def test_generate_report_runs_the_independent_queries_together_when_the_runner_can():
    runner = ConcurrentRunner(results())
    doc = report.generate_report(REQUEST, runner, generated_at=NOW)
    assert sorted(name for name, _ in runner.calls) == sorted(report.REPORT_QUERIES)
    assert doc == report.build_report(REQUEST, results(), generated_at=NOW)


# ------------------------------------------------------------------------------------------- output

REPORT_ID = "2024-01-01_2024-01-04_20240301T120005123456Z_0a1b2c3d"


def test_report_id_and_keys():
    assert report.new_report_id(REQUEST, NOW, token="0a1b2c3d") == REPORT_ID
    fresh = {report.new_report_id(REQUEST, NOW) for _ in range(50)}
    assert len(fresh) == 50 and all(report.check_report_id(i) == i for i in fresh)
    assert report.report_key("reports/", "tienda~2F1", REPORT_ID) == f"reports/tienda~2F1/{REPORT_ID}.json"
    assert report.status_key("reports/", "tienda~2F1", REPORT_ID) == f"reports/tienda~2F1/{REPORT_ID}.status.json"


@pytest.mark.parametrize("segment", ["", "a/b", "..", "."])
def test_report_key_refuses_unsafe_segments(segment):
    with pytest.raises(ValueError, match="not a safe key segment"):
        report.report_key("reports/", segment, REPORT_ID)


@pytest.mark.parametrize(
    "value", [None, "", "latest", "../" + REPORT_ID, REPORT_ID + ".json", REPORT_ID.upper(), REPORT_ID + "0", 7]
)
def test_report_ids_from_callers_must_have_the_exact_shape(value):
    with pytest.raises(ReportParameterError, match="is not a report id"):
        report.check_report_id(value)


# ------------------------------------------------------------------------------------------- HTTP and jobs


def test_http_request_reads_the_tenant_from_the_path_only():
    query = {"from": "2024-01-01", "to": "2024-01-04"}
    assert report.parse_http_request("tienda 1", query, max_range_days=MAX_DAYS) == ReportRequest(
        "tienda 1", date(2024, 1, 1), date(2024, 1, 4)
    )
    with pytest.raises(ReportParameterError) as refused:
        report.parse_http_request("tienda-1", {**query, "tenant_id": "tienda-2"}, max_range_days=MAX_DAYS)
    assert refused.value.problems == [
        "'tenant_id' goes in the path (GET /reports/{tenant_id}?from=…&to=…), not in the query string"
    ]
    with pytest.raises(ReportParameterError) as missing:
        report.parse_http_request(None, {"tenant_id": "tienda-2", "from": "x"}, max_range_days=MAX_DAYS)
    assert missing.value.problems[0].startswith("'tenant_id' goes in the path")
    assert "'tenant_id' is required" in missing.value.problems
    assert any("'to' is required" in p for p in missing.value.problems)


def test_job_payload_round_trips_and_bad_jobs_are_refused():
    request, report_id = report.parse_job(report.job_payload(REQUEST, REPORT_ID), max_range_days=MAX_DAYS)
    assert (request, report_id) == (REQUEST, REPORT_ID)
    with pytest.raises(ReportParameterError, match="is not a report id"):
        report.parse_job({"report_job": {**report.request_parameters(REQUEST)}}, max_range_days=MAX_DAYS)
    with pytest.raises(ReportParameterError, match="'report_job' must be an object"):
        report.parse_job({"report_job": "x"}, max_range_days=MAX_DAYS)


def test_job_statuses_and_expiry():
    pending = report.pending_status(REQUEST, REPORT_ID, requested_at=NOW)
    assert pending == {
        "report_id": REPORT_ID,
        "tenant_id": REQUEST.tenant_id,
        "from": "2024-01-01",
        "to": "2024-01-04",
        "status": "pending",
        "requested_at": "2024-03-01T12:00:05.123456Z",
    }
    later = NOW + timedelta(seconds=100)
    assert report.done_status(pending, location="s3://b/k", finished_at=later)["status"] == "done"
    failed = report.failed_status(pending, reason="boom", finished_at=later)
    assert (failed["status"], failed["reason"]) == ("failed", "boom")
    assert report.effective_status(pending, now=later, expiry_seconds=100) == pending
    expired = report.effective_status(pending, now=later + timedelta(microseconds=1), expiry_seconds=100)
    assert expired["status"] == "failed" and "did not finish within 100 s" in expired["reason"]
    assert report.effective_status(failed, now=later + timedelta(days=9), expiry_seconds=100) == failed


def test_json_writes_money_as_numbers_with_exact_digits():
    doc = report.build_report(REQUEST, results(), generated_at=NOW)
    text = report.to_json(doc)
    parsed = json.loads(text, parse_float=Decimal)
    assert parsed["totals"]["revenue"] == Decimal("30.01")
    assert '"revenue": 30.01' in text
    assert '"average_basket": 10' in text
    assert parsed["daily"][1]["revenue"] == 0


def test_tenant_ids_whose_report_keys_cannot_fit_are_refused():
    from lambdas.domain import keys, limits

    fits = "ñ" * ((limits.ID_BUDGET - 1) // 6)  # ñ is 2 UTF-8 bytes -> 6 characters encoded
    request = parse({"tenant_id": fits, "from": "2024-01-01", "to": "2024-01-04"})
    report_id = report.new_report_id(request, NOW)
    assert len(report.status_key("reports/", keys.encode_id(fits), report_id).encode()) <= limits.S3_MAX_KEY_BYTES
    with pytest.raises(ReportParameterError, match="once encoded for S3 keys"):
        parse({"tenant_id": "ñ" * 200, "from": "2024-01-01", "to": "2024-01-04"})
