"""lambdas/adapters/athena.py: value conversion, result pages, and the calls against moto's Athena.

moto executes no SQL (every query SUCCEEDED with no rows), but it does keep executions, workgroups and
contexts, stops queries, lets a test queue the rows the next query returns (/moto-api/static/athena/
query-results) and lets a test hold executions in QUEUED/RUNNING for a number of polls (state manager).
What moto cannot produce (a FAILED query with a reason, several result pages) is served by botocore's Stubber
on the same client, so the requests are still validated against the Athena API model.
"""

from __future__ import annotations

import json
import urllib.request
from datetime import date, datetime
from decimal import Decimal

import pytest
from botocore.stub import Stubber

from lambdas.adapters import athena
from lambdas.domain import queries

# ------------------------------------------------------------------------------------------- pure parts


@pytest.mark.parametrize(
    ("kind", "text", "expected"),
    [
        ("bigint", "42", 42),
        ("integer", "-7", -7),
        ("decimal(38,4)", "199.9800", Decimal("199.9800")),
        ("double", "0.125", 0.125),
        ("boolean", "true", True),
        ("boolean", "FALSE", False),
        ("date", "2024-02-29", date(2024, 2, 29)),
        ("timestamp", "2024-01-15 10:30:00.000", datetime(2024, 1, 15, 10, 30)),
        ("varchar", "ñandú", "ñandú"),
        ("varchar", "", ""),
        ("array", "[a, b]", "[a, b]"),
        ("bigint", None, None),
    ],
)
def test_convert_value(kind, text, expected):
    assert athena.convert_value(kind, text) == expected
    assert type(athena.convert_value(kind, text)) is type(expected)


def test_convert_value_names_the_type_and_value_when_it_cannot():
    with pytest.raises(ValueError, match=r"'12x' for a column of type bigint"):
        athena.convert_value("bigint", "12x")
    with pytest.raises(ValueError, match=r"'yes' for a column of type boolean"):
        athena.convert_value("boolean", "yes")


def athena_column(name, kind):
    return {"Name": name, "Label": name, "Type": kind}


def athena_row(*values):
    return {"Data": [{} if v is None else {"VarCharValue": v} for v in values]}


COLUMNS = [athena_column("dia", "varchar"), athena_column("compras", "bigint"), athena_column("ingresos", "decimal")]


def test_rows_from_pages_drops_the_header_of_the_first_page_only():
    pages = [
        {
            "ResultSet": {
                "ResultSetMetadata": {"ColumnInfo": COLUMNS},
                "Rows": [athena_row("dia", "compras", "ingresos")],
            }
        },
        # A data row equal to the labels on a later page is data, not a header.
        {"ResultSet": {"ResultSetMetadata": {"ColumnInfo": COLUMNS}, "Rows": [athena_row("2024-01-01", "3", None)]}},
    ]
    columns, types, rows = athena.rows_from_pages(pages, has_header=True)
    assert columns == ["dia", "compras", "ingresos"]
    assert types == ["varchar", "bigint", "decimal"]
    assert rows == [{"dia": "2024-01-01", "compras": 3, "ingresos": None}]


def test_rows_from_pages_keeps_the_first_row_when_there_is_no_header():
    pages = [{"ResultSet": {"ResultSetMetadata": {"ColumnInfo": COLUMNS}, "Rows": [athena_row("d", "1", "2.5")]}}]
    _, _, rows = athena.rows_from_pages(pages, has_header=False)
    assert rows == [{"dia": "d", "compras": 1, "ingresos": Decimal("2.5")}]


def test_rows_from_pages_rejects_a_row_of_the_wrong_width():
    pages = [{"ResultSet": {"ResultSetMetadata": {"ColumnInfo": COLUMNS}, "Rows": [athena_row("d", "1")]}}]
    with pytest.raises(ValueError, match="2 values for 3 columns"):
        athena.rows_from_pages(pages, has_header=False)


def test_backoff_doubles_up_to_the_cap():
    delays = athena.Backoff(initial=0.5, maximum=3).delays()
    assert [next(delays) for _ in range(5)] == [0.5, 1.0, 2.0, 3, 3]


# ------------------------------------------------------------------------------------------- moto


def moto_api(aws, path: str, body: dict) -> None:
    request = urllib.request.Request(
        f"{aws.endpoint_url}/moto-api/{path}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def queue_results(aws, rows, column_info) -> None:
    moto_api(aws, "static/athena/query-results", {"results": [{"rows": rows, "column_info": column_info}]})


@pytest.fixture
def slow_queries(aws):
    """Executions stay in each state for `times` polls (QUEUED -> RUNNING -> SUCCEEDED)."""

    def hold(times: int) -> None:
        moto_api(
            aws,
            "state-manager/set-transition",
            {"model_name": "athena::execution", "transition": {"progression": "manual", "times": times}},
        )

    yield hold
    moto_api(aws, "state-manager/unset-transition", {"model_name": "athena::execution"})


class FakeClock:
    """time.monotonic / time.sleep stand-ins: sleeping advances the clock, and every sleep is recorded."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.mark.integration
def test_run_query_in_the_stage_workgroup_with_typed_rows(stack, aws):
    names = stack.names
    queue_results(
        aws,
        [
            athena_row("dia", "compras", "ingresos"),
            athena_row("2024-01-01", "3", "10.5000"),
            athena_row("2024-01-02", "1", None),
        ],
        COLUMNS,
    )
    result = athena.run_query(
        stack.aws, "SELECT 1", workgroup=names.athena_workgroup, database=names.glue_database, timeout_seconds=30
    )
    assert result.columns == ["dia", "compras", "ingresos"]
    assert result.rows == [
        {"dia": "2024-01-01", "compras": 3, "ingresos": Decimal("10.5000")},
        {"dia": "2024-01-02", "compras": 1, "ingresos": None},
    ]
    execution = stack.aws.client("athena").get_query_execution(QueryExecutionId=result.query_execution_id)[
        "QueryExecution"
    ]
    assert execution["WorkGroup"] == names.athena_workgroup
    assert execution["QueryExecutionContext"]["Database"] == names.glue_database
    assert execution["Query"] == "SELECT 1"


@pytest.mark.integration
def test_enforced_workgroup_location_is_left_to_the_workgroup(stack):
    names = stack.names
    query_id = athena.start_query(
        stack.aws,
        "SELECT 1",
        workgroup=names.athena_workgroup,
        database=names.glue_database,
        fallback_output_location="s3://elsewhere/results/",
    )
    execution = stack.aws.client("athena").get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
    assert "OutputLocation" not in execution.get("ResultConfiguration", {})


@pytest.mark.integration
def test_fallback_location_is_sent_when_the_workgroup_has_none(aws):
    aws.clients.client("athena").create_work_group(Name="bare", Configuration={})
    query_id = athena.start_query(
        aws.clients, "SELECT 1", workgroup="bare", database="db", fallback_output_location="s3://bucket/athena-results/"
    )
    execution = aws.clients.client("athena").get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
    assert execution["ResultConfiguration"]["OutputLocation"].startswith("s3://bucket/athena-results/")


@pytest.mark.integration
def test_polls_with_exponential_backoff_until_succeeded(stack, slow_queries):
    slow_queries(3)  # moves on every 3rd poll: polls 1-2 QUEUED, 3-5 RUNNING, 6 SUCCEEDED
    clock = FakeClock()
    query_id = athena.start_query(stack.aws, "SELECT 1", workgroup=stack.names.athena_workgroup, database="db")
    execution = athena.wait_for_query(
        stack.aws,
        query_id,
        timeout_seconds=60,
        backoff=athena.Backoff(initial=0.25, maximum=1.0),
        sleep=clock.sleep,
        monotonic=clock.monotonic,
    )
    assert execution["Status"]["State"] == "SUCCEEDED"
    assert clock.sleeps == [0.25, 0.5, 1.0, 1.0, 1.0]


@pytest.mark.integration
def test_deadline_stops_the_query_and_says_so(stack, slow_queries):
    slow_queries(1000)
    clock = FakeClock()
    query_id = athena.start_query(stack.aws, "SELECT 1", workgroup=stack.names.athena_workgroup, database="db")
    with pytest.raises(athena.AthenaQueryTimeout, match=r"still QUEUED after 3 s: stopped it") as raised:
        athena.wait_for_query(
            stack.aws,
            query_id,
            timeout_seconds=3,
            backoff=athena.Backoff(initial=1, maximum=1),
            sleep=clock.sleep,
            monotonic=clock.monotonic,
            label="query tendencias_diarias",
        )
    assert "query tendencias_diarias" in str(raised.value)
    assert sum(clock.sleeps) == pytest.approx(3)
    state = stack.aws.client("athena").get_query_execution(QueryExecutionId=query_id)["QueryExecution"]["Status"][
        "State"
    ]
    assert state == "CANCELLED"


@pytest.mark.integration
def test_cancelled_query_is_a_clear_error(stack):
    query_id = athena.start_query(stack.aws, "SELECT 1", workgroup=stack.names.athena_workgroup, database="db")
    stack.aws.client("athena").stop_query_execution(QueryExecutionId=query_id)
    with pytest.raises(athena.AthenaQueryError, match=rf"{query_id} ended CANCELLED") as raised:
        athena.wait_for_query(stack.aws, query_id, timeout_seconds=5)
    assert raised.value.state == "CANCELLED"


@pytest.mark.integration
def test_failed_query_carries_athenas_reason(aws):
    athena_client = aws.clients.client("athena")
    with Stubber(athena_client) as stub:
        stub.add_response(
            "get_query_execution",
            {
                "QueryExecution": {
                    "QueryExecutionId": "q-1",
                    "Status": {
                        "State": "FAILED",
                        "StateChangeReason": "COLUMN_NOT_FOUND: line 3:8: Column 'dia' cannot be resolved",
                        "AthenaError": {"ErrorCategory": 2, "ErrorType": 1006},
                    },
                }
            },
            {"QueryExecutionId": "q-1"},
        )
        with pytest.raises(athena.AthenaQueryError) as raised:
            athena.wait_for_query(aws.clients, "q-1", timeout_seconds=5, label="query top_productos")
    message = str(raised.value)
    assert "query top_productos q-1 ended FAILED" in message
    assert "Column 'dia' cannot be resolved" in message
    assert "user error" in message
    assert raised.value.reason.startswith("COLUMN_NOT_FOUND")


@pytest.mark.integration
def test_fetch_results_follows_next_token_across_pages(aws):
    athena_client = aws.clients.client("athena")
    with Stubber(athena_client) as stub:
        stub.add_response(
            "get_query_results",
            {
                "ResultSet": {
                    "ResultSetMetadata": {"ColumnInfo": COLUMNS},
                    "Rows": [athena_row("dia", "compras", "ingresos"), athena_row("2024-01-01", "1", "1.0000")],
                },
                "NextToken": "page-2",
            },
            {"QueryExecutionId": "q-2", "MaxResults": 2},
        )
        stub.add_response(
            "get_query_results",
            {
                "ResultSet": {
                    "ResultSetMetadata": {"ColumnInfo": COLUMNS},
                    "Rows": [athena_row("2024-01-02", "2", "2.0000"), athena_row("2024-01-03", "3", "3.0000")],
                }
            },
            {"QueryExecutionId": "q-2", "MaxResults": 2, "NextToken": "page-2"},
        )
        _, _, rows = athena.fetch_results(aws.clients, "q-2", page_size=2)
        stub.assert_no_pending_responses()
    assert [r["compras"] for r in rows] == [1, 2, 3]
    assert rows[2]["ingresos"] == Decimal("3.0000")


@pytest.mark.integration
def test_runner_binds_the_named_query_with_views_inlined(stack, aws):
    names = stack.names
    query_file = queries.load()
    clock = FakeClock()
    runner = athena.AthenaRunner(
        stack.aws,
        query_file=query_file,
        workgroup=names.athena_workgroup,
        database=names.glue_database,
        deadline=clock.now + 60,
        monotonic=clock.monotonic,
        sleep=clock.sleep,
    )
    queue_results(aws, [athena_row("dia", "compras", "ingresos"), athena_row("2024-01-01", "3", "9.0000")], COLUMNS)
    params = {"tenant_id": "tienda'; DROP TABLE x; --", "date_from": "2024-01-01", "date_to": "2024-01-31"}
    rows = runner.run("tendencias_diarias", params)
    assert rows == [{"dia": "2024-01-01", "compras": 3, "ingresos": Decimal("9.0000")}]
    (execution,) = runner.executions
    sent = stack.aws.client("athena").get_query_execution(QueryExecutionId=execution.query_execution_id)[
        "QueryExecution"
    ]
    sql = sent["Query"]
    # The user's text is one escaped string literal, and the view the query reads travels with it.
    assert "'tienda''; DROP TABLE x; --'" in sql
    assert "'2024-01-01'" in sql and "'2024-01-31'" in sql
    assert "compras_vigentes AS (" in sql and "FROM compras_iceberg" in sql
    assert sent["WorkGroup"] == names.athena_workgroup


@pytest.mark.integration
def test_runner_refuses_to_start_after_the_deadline(stack):
    clock = FakeClock()
    runner = athena.AthenaRunner(
        stack.aws,
        query_file=queries.load(),
        workgroup=stack.names.athena_workgroup,
        database=stack.names.glue_database,
        deadline=clock.now - 1,
        monotonic=clock.monotonic,
    )
    params = {"tenant_id": "t", "date_from": "2024-01-01", "date_to": "2024-01-02"}
    with pytest.raises(athena.AthenaQueryTimeout, match="no time left to start Athena query top_productos"):
        runner.run("top_productos", params)


class AthenaCalls:
    """Records the Athena operations the composition's client sends, in order (botocore's before-call event)."""

    def __init__(self, aws) -> None:
        self.operations: list[str] = []
        self._client = aws.client("athena")

    def _record(self, model, **_):
        self.operations.append(model.name)

    def __enter__(self):
        self._client.meta.events.register("before-call.athena", self._record)
        return self

    def __exit__(self, *exc):
        self._client.meta.events.unregister("before-call.athena", self._record)


def _runner(stack, clock, seconds=600):
    return athena.AthenaRunner(
        stack.aws,
        query_file=queries.load(),
        workgroup=stack.names.athena_workgroup,
        database=stack.names.glue_database,
        deadline=clock.now + seconds,
        monotonic=clock.monotonic,
        sleep=clock.sleep,
        backoff=athena.Backoff(initial=1, maximum=1),
    )


REPORT_PARAMS = {"tenant_id": "t", "date_from": "2024-01-01", "date_to": "2024-01-31"}
NAMES = ("tendencias_diarias", "top_productos", "top_categorias", "pares_productos")


@pytest.mark.integration
def test_run_all_starts_every_query_before_waiting_for_any(stack, aws, slow_queries):
    """Independent queries run at the same time on Athena: all four are started, then waited for, so the wall
    time is the slowest query's, not the sum. (moto advances a query per poll, not per second, so the proof is
    the order of the calls: every StartQueryExecution precedes the first GetQueryExecution.)"""
    slow_queries(2)  # each execution: 2 polls QUEUED, 2 RUNNING, then SUCCEEDED
    for day in ("2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"):
        queue_results(aws, [athena_row("dia"), athena_row(day)], [athena_column("dia", "varchar")])
    clock = FakeClock()
    runner = _runner(stack, clock)
    with AthenaCalls(stack.aws) as calls:
        results = runner.run_all(NAMES, REPORT_PARAMS)
    starts = [i for i, op in enumerate(calls.operations) if op == "StartQueryExecution"]
    assert len(starts) == 4 and max(starts) < calls.operations.index("GetQueryExecution")
    # Results belong to their own query (moto hands queued results out in start order).
    assert {name: rows[0]["dia"] for name, rows in results.items()} == dict(
        zip(NAMES, ("2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"), strict=True)
    )
    assert len(runner.executions) == 4


@pytest.mark.integration
def test_run_all_stops_the_other_queries_when_one_fails(stack, slow_queries):
    slow_queries(1000)  # nothing finishes: the first wait hits the deadline
    clock = FakeClock()
    runner = _runner(stack, clock, seconds=3)
    with pytest.raises(athena.AthenaQueryTimeout, match="query tendencias_diarias"):
        runner.run_all(NAMES, REPORT_PARAMS)
    athena_client = stack.aws.client("athena")
    ids = athena_client.list_query_executions(WorkGroup=stack.names.athena_workgroup)["QueryExecutionIds"]
    states = {athena_client.get_query_execution(QueryExecutionId=i)["QueryExecution"]["Status"]["State"] for i in ids}
    assert len(ids) == 4 and states == {"CANCELLED"}
