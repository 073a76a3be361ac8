"""The local Athena runner: Glue types, dialect fixes, and every query on small hand-written documents."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from lambdas.domain import keys
from local import athena_duckdb
from local import compaction as local_compaction
from local.athena_duckdb import LocalAthena, LocalQueryError

SEQ = iter(range(10**20, 10**21))


def doc(tenant, compra, fecha, productos, event="INSERT", seq=None, user="u1", moneda="EUR", processed_at=None):
    """(key, body) of one exported document, as the stream export writes it."""
    seq = str(seq if seq is not None else next(SEQ))
    priced = [p for p in productos if p[3] is not None]
    total = sum((Decimal(p[3]) * p[2] for p in priced), Decimal(0)) if priced else None
    body = {
        "compra_id": compra,
        "user_id": user,
        "tenant_id": tenant,
        "fecha": fecha,
        "productos": [
            {"codigo": c, "nombre": f"prod {c}", "categoria": "cat", "precio_unitario": p, "cantidad": q,
             "ticket_id": f"t-{compra}-{c}"}
            for c, _, q, p in productos
        ],
        "resumen": {
            "total_productos": len(productos),
            "total_cantidad": sum(p[2] for p in productos),
            "total_precio": None if total is None else str(total),
            "moneda": moneda,
        },
        "metadata": {
            "event_name": event, "event_source": "aws:dynamodb", "aws_region": "us-east-1",
            "processed_at": processed_at or "2024-06-01T00:00:00Z", "processed_by": "test", "stage": "test",
            "event_id": "e", "sequence_number": seq, "approximate_creation_time": "2024-06-01T00:00:00Z",
        },
    }  # fmt: skip
    # money as JSON numbers, like the export (never via float)
    line = json.dumps(body, ensure_ascii=False)
    for p in productos:
        if p[3] is not None:
            line = line.replace(f'"precio_unitario": "{p[3]}"', f'"precio_unitario": {p[3]}')
    if total is not None:
        line = line.replace(f'"total_precio": "{total}"', f'"total_precio": {total}')
    key = keys.object_key(
        event_name=event,
        tenant_id=tenant,
        compra_id=compra,
        fecha=fecha,
        approximate_creation_time=datetime(2024, 6, 1, tzinfo=UTC),
        sequence_number=seq,
    )
    return key, (line + "\n").encode()


# (codigo, _, cantidad, precio)
A, B, C, D = ("A", None, 1, "1.10"), ("B", None, 2, "2.50"), ("C", None, 1, "0.99"), ("D", None, 3, None)

DOCS = [
    doc("t1", "c1", "2024-05-01 10:00:00", [A, B], seq=100),
    doc("t1", "c1", "2024-05-01 10:00:00", [A, B, C], event="MODIFY", seq=200),  # correction: adds C
    doc("t1", "c2", "2024-05-01 12:00:00", [A, B], seq=101),
    doc("t1", "c3", "2024-05-02 09:00:00", [A, C, D], seq=102),
    doc("t1", "c4", "2024-05-02 09:30:00", [B, C], seq=103),
    doc("t1", "c4", "2024-05-02 09:30:00", [B, C], event="REMOVE", seq=300),  # removed purchase
    doc("Tienda Ñ/1", "x/../1", "2024-05-03 23:59:59", [A], seq=104, user=None),
]


@pytest.fixture(scope="module")
def athena():
    runner = LocalAthena(prefix="compras/")
    runner.load_objects([*DOCS, ("compras/not-a-document.txt", b"ignored\n")])
    yield runner
    runner.close()


def test_glue_types_become_duckdb_types():
    assert athena_duckdb.duckdb_type("string") == "VARCHAR"
    assert athena_duckdb.duckdb_type("decimal(18, 4)") == "DECIMAL(18,4)"
    assert (
        athena_duckdb.duckdb_type("array<struct<a:string,b:int,c:array<bigint>>>")
        == 'STRUCT("a" VARCHAR, "b" INTEGER, "c" BIGINT[])[]'
    )
    with pytest.raises(ValueError, match="not supported"):
        athena_duckdb.duckdb_type("map<string,int>")
    with pytest.raises(ValueError, match="unexpected text"):
        athena_duckdb.duckdb_type("int>")


def test_joda_patterns_become_strftime():
    assert athena_duckdb.joda_to_strftime("yyyy-MM-dd HH:mm:ss") == "%Y-%m-%d %H:%M:%S"
    assert athena_duckdb.joda_to_strftime("dd 'de' MMMM, EEE 100%") == "%d de %B, %a 100%%"
    with pytest.raises(LocalQueryError, match="letter 'Q'"):
        athena_duckdb.joda_to_strftime("Q")


def test_partition_columns_come_from_the_decoded_key(athena):
    assert athena.skipped_keys == ["compras/not-a-document.txt"]
    assert athena.object_count == len(DOCS)
    result = athena.run_sql("SELECT DISTINCT tenant_id, year, month, day FROM compras_json ORDER BY 1, 2, 3, 4")
    assert result.rows == [
        ("Tienda Ñ/1", "2024", "05", "03"),
        ("t1", "2024", "05", "01"),
        ("t1", "2024", "05", "02"),
    ]


def test_documents_are_read_with_the_glue_schema(athena):
    result = athena.run_sql(
        "SELECT compra_id, user_id, resumen.total_precio, productos[1].precio_unitario, typeof(fecha) "
        "FROM compras_json WHERE tenant_id = 'Tienda Ñ/1'"
    )
    assert result.rows == [("x/../1", None, Decimal("1.1000"), Decimal("1.1000"), "VARCHAR")]


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT 7 / 2, 7.0 / 2, CAST(7 AS DOUBLE) / 2", (3, Decimal("3.5"), 3.5)),
        ("SELECT date_diff('day', TIMESTAMP '2024-01-01 12:00:00', TIMESTAMP '2024-01-26 11:00:00')", (24,)),
        ("SELECT date_diff('month', DATE '2024-01-15', DATE '2024-03-14')", (1,)),
        ("SELECT format_datetime(TIMESTAMP '2024-05-03 07:08:09', 'yyyy/MM/dd HH:mm:ss')", ("2024/05/03 07:08:09",)),
        ("SELECT any_match(ARRAY[1, 5], x -> x > 4), all_match(ARRAY[1, 5], x -> x > 4)", (True, False)),
        ("SELECT none_match(ARRAY[1, 5], x -> x > 9)", (True,)),
        ("SELECT cardinality(ARRAY[1, 2, 3]), date_add('day', 2, DATE '2024-02-28')", (3, None)),
    ],
)
def test_athena_constructs_give_athena_results(athena, sql, expected):
    row = athena.run_sql(sql).rows[0]
    if expected[-1] is None:  # date_add: compare as date
        assert row[0] == expected[0] and str(row[1])[:10] == "2024-03-01"
    else:
        assert row == expected


def test_unnest_of_rows_into_columns(athena):
    result = athena.run_sql(
        "SELECT c.compra_id, l.codigo, l.cantidad FROM compras_json AS c "
        "CROSS JOIN UNNEST(c.productos) AS l (codigo, nombre, categoria, precio_unitario, cantidad, ticket_id) "
        "WHERE c.compra_id = 'c2' ORDER BY 2"
    )
    assert result.rows == [("c2", "A", 1), ("c2", "B", 2)]


def test_current_state_view_keeps_latest_version_and_drops_removed(athena):
    result = athena.run_sql(
        "SELECT tenant_id, compra_id, metadata.event_name, resumen.total_productos, dia "
        "FROM compras_actuales ORDER BY tenant_id, compra_id"
    )
    assert result.rows == [
        ("Tienda Ñ/1", "x/../1", "INSERT", 1, "2024-05-03"),
        ("t1", "c1", "MODIFY", 3, "2024-05-01"),
        ("t1", "c2", "INSERT", 2, "2024-05-01"),
        ("t1", "c3", "INSERT", 3, "2024-05-02"),
    ]


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        ("9" * 21, "1" + "0" * 21),  # text order alone would pick the 21-digit one
        ("9" * 38, "1" + "0" * 38),  # past DECIMAL(38, 0): a cast would fail every query
        ("1" + "0" * 38, "9" * 40),
        ("12" + "0" * 38, "13" + "0" * 38),  # 40 digits each
    ],
)
def test_current_state_orders_sequence_numbers_of_any_length_exactly(older, newer):
    runner = LocalAthena(prefix="compras/")
    try:
        runner.load_objects(
            [
                doc("t9", "c9", "2024-05-01 10:00:00", [A], seq=newer, event="MODIFY"),
                doc("t9", "c9", "2024-05-01 10:00:00", [A, B], seq=older),
            ]
        )
        result = runner.run_sql("SELECT metadata.sequence_number, resumen.total_productos FROM compras_actuales")
        assert result.rows == [(newer, 1)]
    finally:
        runner.close()


def test_daily_trends(athena):
    result = athena.run("tendencias_diarias", tenant_id="t1")
    assert result.columns == ["tenant_id", "dia", "compras", "unidades", "ingresos", "ticket_medio"]
    # c1: A1 + B2 + C1 = 4 units, 1.10 + 5.00 + 0.99 = 7.09; c2: 3 units, 6.10; c3: A1 + C1 + D3 = 5, 2.09
    assert result.rows == [
        ("t1", "2024-05-01", 2, 7, Decimal("13.1900"), 6.6),
        ("t1", "2024-05-02", 1, 5, Decimal("2.0900"), 2.09),
    ]


def test_date_range_filters_partitions(athena):
    result = athena.run("tendencias_diarias", date_from="2024-05-02", date_to="2024-05-03")
    assert [(r[0], r[1]) for r in result.rows] == [("Tienda Ñ/1", "2024-05-03"), ("t1", "2024-05-02")]
    assert athena.run("tendencias_diarias", tenant_id="nobody").rows == []


def test_top_products(athena):
    result = athena.run("top_productos", tenant_id="t1")
    assert [r[:3] + r[5:] for r in result.rows] == [
        ("t1", 1, "B", 4, Decimal("10.0000"), 2),
        ("t1", 2, "A", 3, Decimal("3.3000"), 3),
        ("t1", 3, "D", 3, Decimal("0"), 1),
        ("t1", 4, "C", 2, Decimal("1.9800"), 2),
    ]


def test_product_pairs(athena):
    result = athena.run("pares_productos", tenant_id="t1")
    # purchases: c1 {A,B,C}, c2 {A,B}, c3 {A,C,D}; pairs seen in >= 2: A-B (2), A-C (2)
    assert result.columns[:8] == [
        "tenant_id", "puesto", "producto_a", "producto_b", "nombre_a", "nombre_b", "n_juntos", "n_compras"
    ]  # fmt: skip
    rows = {(r[2], r[3]): r for r in result.rows}
    assert set(rows) == {("A", "B"), ("A", "C")}
    ab = rows[("A", "B")]
    assert ab[6:] == (2, 3, round(2 / 3, 4), round(2 / 3, 4), 1.0, 1.0)  # lift = (2/3) / (3/3 * 2/3)


def test_recent_purchases_one_row_per_line(athena):
    result = athena.run("compras_recientes", tenant_id="t1", date_from="2024-05-01", date_to="2024-05-01")
    assert [(r[1], r[8]) for r in result.rows] == [("c2", "A"), ("c2", "B"), ("c1", "A"), ("c1", "B"), ("c1", "C")]
    assert result.as_dicts()[0]["total_precio"] == Decimal("6.1000")


def test_run_all_and_errors(athena):
    assert [r.name for r in athena.run_all()] == [q.name for q in athena.query_file.selects()]
    with pytest.raises(LocalQueryError, match="query 'sql' failed on DuckDB"):
        athena.run_sql("SELECT no_such_column FROM compras_json")
    with pytest.raises(LocalQueryError, match="not valid Athena SQL"):
        athena.run_sql("SELECT FROM WHERE (")


def test_empty_bucket_gives_empty_results():
    with LocalAthena() as runner:
        assert all(r.rows == [] for r in runner.run_all())


@pytest.mark.integration
def test_reads_the_documents_from_s3(stack):
    s3 = stack.aws.client("s3")
    for key, body in DOCS[:3]:
        s3.put_object(Bucket=stack.names.bucket, Key=key, Body=body)
    with LocalAthena(stack.names.bucket, "compras/", aws=stack.aws) as runner:
        # Nothing compacted yet: the queries read the (empty) Iceberg table, the JSON view has the documents.
        assert runner.run("tendencias_diarias").rows == []
        expected = [("t1", "2024-05-01", 2, 7, Decimal("13.1900"), 6.6)]
        assert runner.run("tendencias_diarias", read_from="compras_actuales").rows == expected
        local_compaction.run(stack.aws, stack.names.bucket)
        runner.refresh()
        assert runner.run("tendencias_diarias").rows == expected
        # A later export (processed now, as the stream function stamps it) is merged by the next run.
        key, body = doc(
            "t1", "c3", "2024-05-02 09:00:00", [A, C, D], seq=102, processed_at=datetime.now(UTC).isoformat()
        )
        s3.put_object(Bucket=stack.names.bucket, Key=key, Body=body)
        # Its purchase is old (fecha 2024): the frequent runs read only recent partitions, the next full run has it.
        local_compaction.run(stack.aws, stack.names.bucket)
        runner.refresh()
        assert len(runner.run("tendencias_diarias").rows) == 1
        local_compaction.run(
            stack.aws, stack.names.bucket, now=datetime.now(UTC) + local_compaction.settings().full_every
        )
        runner.refresh()
        assert len(runner.run("tendencias_diarias").rows) == 2
