"""The whole local pipeline on generated data, with a correction file and a removal: every query of
athena-queries.sql, run locally on what the pipeline exported, is checked against values computed here
in plain Python straight from the input CSV files (not from the table or the documents)."""

from __future__ import annotations

import csv
import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pytest

from local import sample_data
from local.pipeline import LocalPipeline

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Line:
    ticket_id: str
    codigo: str
    nombre: str
    categoria: str
    cantidad: int
    precio: Decimal | None
    when: str  # YYYY-MM-DD HH:MM:SS, UTC


def _when(text: str) -> str | None:
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def read_purchases(path: Path) -> tuple[dict[tuple[str, str], list[Line]], int, int]:
    """Purchases of one file by (store, basket_id), valid rows, rejected rows: the CSV contract's rules."""
    purchases: dict[tuple[str, str], list[Line]] = defaultdict(list)
    valid = rejected = 0
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            when = _when(row["timestamp"])
            try:
                quantity = int(row["quantity"])
                price = Decimal(row["unit_price"]) if row.get("unit_price") else None
            except (ValueError, InvalidOperation):
                quantity, price = 0, None
            ids_ok = all(row[c].strip() for c in ("ticket_id", "store", "basket_id", "product"))
            if not ids_ok or when is None or quantity <= 0 or (price is not None and price < 0):
                rejected += 1
                continue
            valid += 1
            code = row.get("product_code") or row["product"]
            line = Line(row["ticket_id"], code, row["product"], row["category"], quantity, price, when)
            purchases[(row["store"], row["basket_id"])].append(line)
    return dict(purchases), valid, rejected


def day(lines: list[Line]) -> str:
    return min(line.when for line in lines)[:10]


def revenue(lines: list[Line]) -> Decimal:
    return sum((line.precio * line.cantidad for line in lines if line.precio is not None), Decimal(0))


def expect_tendencias(purchases):
    groups = defaultdict(list)
    for (tenant, _), lines in purchases.items():
        groups[(tenant, day(lines))].append(lines)
    return [
        (
            tenant,
            d,
            len(ps),
            sum(x.cantidad for p in ps for x in p),
            sum((revenue(p) for p in ps), Decimal(0)),
            float(sum((revenue(p) for p in ps), Decimal(0))) / len(ps),
        )
        for (tenant, d), ps in sorted(groups.items())
    ]


def _ranked(groups, order, limit):
    rows = []
    for tenant in sorted({key[0] for key in groups}):
        entries = sorted((v for k, v in groups.items() if k[0] == tenant), key=order)
        rows += [(tenant, rank, *entry) for rank, entry in enumerate(entries[:limit], start=1)]
    return rows


def expect_top_productos(purchases):
    acc = {}
    for (tenant, compra), lines in purchases.items():
        for line in lines:
            name, cat, units, money, compras = acc.get((tenant, line.codigo), ("", "", 0, Decimal(0), set()))
            acc[(tenant, line.codigo)] = (
                max(name, line.nombre),
                max(cat, line.categoria),
                units + line.cantidad,
                money + (line.precio * line.cantidad if line.precio else 0),
                compras | {compra},
            )
    groups = {k: (k[1], v[0], v[1], v[2], v[3], len(v[4])) for k, v in acc.items()}
    return _ranked(groups, lambda e: (-e[3], -e[4], e[0]), 10)


def expect_top_categorias(purchases):
    acc = {}
    for (tenant, compra), lines in purchases.items():
        for line in lines:
            units, money, compras, codes = acc.get((tenant, line.categoria), (0, Decimal(0), set(), set()))
            acc[(tenant, line.categoria)] = (
                units + line.cantidad,
                money + (line.precio * line.cantidad if line.precio else 0),
                compras | {compra},
                codes | {line.codigo},
            )
    groups = {k: (k[1], v[0], v[1], len(v[2]), len(v[3])) for k, v in acc.items()}
    return _ranked(groups, lambda e: (-e[1], -e[2], e[0]), 10)


def expect_pares(purchases):
    baskets = defaultdict(list)
    names = {}
    for (tenant, _), lines in purchases.items():
        baskets[tenant].append({line.codigo for line in lines})
        for line in lines:
            names[(tenant, line.codigo)] = max(line.nombre, names.get((tenant, line.codigo), line.nombre))
    groups = {}
    for tenant, sets in baskets.items():
        n = len(sets)
        count = defaultdict(int)
        for codes in sets:
            for code in codes:
                count[code] += 1
        pairs = defaultdict(int)
        for codes in sets:
            ordered = sorted(codes)
            for i, a in enumerate(ordered):
                for b in ordered[i + 1 :]:
                    pairs[(a, b)] += 1
        for (a, b), together in pairs.items():
            if together >= 2:
                lift = together * n / (count[a] * count[b])
                groups[(tenant, a, b)] = (
                    a,
                    b,
                    together,
                    n,
                    together / n,
                    together / count[a],
                    together / count[b],
                    lift,
                    names[(tenant, a)],
                    names[(tenant, b)],
                )
    return _ranked(groups, lambda e: (-e[2], -e[7], e[0], e[1]), 20)


def expect_recientes(purchases):
    latest = sorted(
        purchases.items(), key=lambda kv: (min(x.when for x in kv[1]), _neg(kv[0][0]), _neg(kv[0][1])), reverse=True
    )[:20]
    rows = []
    for (tenant, compra), lines in latest:
        fecha = min(line.when for line in lines)
        priced = [line for line in lines if line.precio is not None]
        total = revenue(lines) if priced else None
        for line in sorted(lines, key=lambda x: (x.codigo, x.ticket_id)):
            rows.append(
                (
                    tenant,
                    compra,
                    fecha,
                    len(lines),
                    sum(x.cantidad for x in lines),
                    total,
                    line.codigo,
                    line.nombre,
                    line.categoria,
                    line.cantidad,
                    line.precio,
                )
            )
    return rows


def _neg(text: str) -> tuple[int, ...]:
    """Sort key that reverses string order (for ascending tie-breaks inside a descending sort)."""
    return (*(-ord(ch) for ch in text), 1)


EXPECTED = {
    "tendencias_diarias": expect_tendencias,
    "top_productos": expect_top_productos,
    "top_categorias": expect_top_categorias,
    "pares_productos": expect_pares,
    "compras_recientes": expect_recientes,
}


def comparable(name: str, columns: list[str], row: tuple) -> tuple:
    """The columns the Python side computes, with rounded ratios compared approximately."""
    values = dict(zip(columns, row, strict=True))
    if name == "tendencias_diarias":
        return tuple(values[c] for c in ("tenant_id", "dia", "compras", "unidades", "ingresos", "ticket_medio"))
    if name == "top_productos":
        return tuple(
            values[c]
            for c in ("tenant_id", "puesto", "codigo", "nombre", "categoria", "unidades", "ingresos", "compras")
        )
    if name == "top_categorias":
        return tuple(
            values[c] for c in ("tenant_id", "puesto", "categoria", "unidades", "ingresos", "compras", "productos")
        )
    if name == "pares_productos":
        return tuple(
            values[c]
            for c in (
                "tenant_id",
                "puesto",
                "producto_a",
                "producto_b",
                "n_juntos",
                "n_compras",
                "soporte",
                "confianza_a_b",
                "confianza_b_a",
                "lift",
                "nombre_a",
                "nombre_b",
            )
        )
    return tuple(
        values[c]
        for c in (
            "tenant_id",
            "compra_id",
            "fecha",
            "total_productos",
            "total_cantidad",
            "total_precio",
            "codigo",
            "nombre",
            "categoria",
            "cantidad",
            "precio_unitario",
        )
    )


def assert_rows_equal(name: str, actual: list[tuple], expected: list[tuple]) -> None:
    assert len(actual) == len(expected), f"{name}: {len(actual)} rows, expected {len(expected)}"
    for index, (got, want) in enumerate(zip(actual, expected, strict=True)):
        assert len(got) == len(want), f"{name} row {index}: {got} vs {want}"
        for g, w in zip(got, want, strict=True):
            if isinstance(w, float):
                assert g == pytest.approx(w, abs=0.006), f"{name} row {index}: {got} != {want}"
            else:
                assert g == w, f"{name} row {index}: {got} != {want}"


def test_pipeline_results_match_python_computed_from_the_csv(stack, tmp_path):
    config = sample_data.SampleConfig(rows=220, seed=11, stores=3, days=5, bad_rows=3)
    rows = list(sample_data.generate_rows(config))
    tickets = tmp_path / "tickets.csv"
    corrections = tmp_path / "correcciones.csv"
    sample_data.write_csv(rows, tickets)
    sample_data.write_csv(sample_data.correction_rows(rows, baskets=4, seed=5), corrections)

    first, valid1, rejected1 = read_purchases(tickets)
    fixes, valid2, rejected2 = read_purchases(corrections)
    purchases = {**first, **fixes}  # a later file with the same basket replaces it
    removed = sorted(purchases)[0]
    del purchases[removed]

    pipeline = LocalPipeline(stack)
    pipeline.upload(tickets)
    pipeline.run_until_idle()
    pipeline.upload(corrections)
    pipeline.run_until_idle()
    pipeline.delete_purchase(*removed)
    pipeline.run_until_idle()
    pipeline.compact()  # compactarCompras' first run: the queries read the compacted table

    summary = pipeline.summary()
    by_key = {f.key: f for f in summary.files}
    assert (by_key["uploads/tickets.csv"].rows_loaded, by_key["uploads/tickets.csv"].rows_rejected) == (
        valid1,
        rejected1,
    )
    assert (by_key["uploads/correcciones.csv"].rows_loaded, by_key["uploads/correcciones.csv"].rows_rejected) == (
        valid2,
        rejected2,
    )
    assert rejected1 == 3
    assert summary.purchases_in_table == len(purchases)
    assert summary.ingest_dlq_messages == 0 and summary.stream_failure_messages == 0
    assert summary.partitions_in_glue == summary.partitions_in_s3 > 0

    with pipeline.athena() as athena:
        current = athena.run_sql("SELECT tenant_id, compra_id FROM compras_actuales").rows
        assert sorted(current) == sorted(purchases)
        selects = athena.query_file.selects()
        assert {q.name for q in selects} <= set(EXPECTED), "a query has no independent check here: add one"
        for query in selects:
            for state in ("compras_vigentes", "compras_actuales"):  # the compacted table and the JSON view
                result = athena.run(query.name, read_from=state)
                actual = [comparable(query.name, result.columns, row) for row in result.rows]
                assert_rows_equal(f"{query.name} over {state}", actual, EXPECTED[query.name](purchases))

        # parameters: one tenant, one day
        tenant, some_day = sorted((t, day(lines)) for (t, _), lines in purchases.items())[0]
        subset = {k: v for k, v in purchases.items() if k[0] == tenant and day(v) == some_day}
        result = athena.run("tendencias_diarias", tenant_id=tenant, date_from=some_day, date_to=some_day)
        actual = [comparable("tendencias_diarias", result.columns, row) for row in result.rows]
        assert_rows_equal("tendencias_diarias(tenant, day)", actual, expect_tendencias(subset))
