"""The purchase report on the local pipeline: generated tickets -> real handlers -> JSON in S3 -> the queries of
athena-queries.sql on DuckDB -> lambdas/domain/report.py, checked against numbers computed here directly from
the input CSV files (a correction file replaces whole baskets; one purchase is deleted from the table)."""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from itertools import combinations
from pathlib import Path

import pytest

from lambdas.domain import report
from local import report as report_cli
from local import sample_data

START = date(2024, 5, 1)


def write_inputs(tmp_path: Path) -> list[Path]:
    cfg = sample_data.SampleConfig(rows=360, seed=23, stores=3, days=10, start=START)
    rows = list(sample_data.generate_rows(cfg))
    tickets = tmp_path / "tickets.csv"
    corrections = tmp_path / "tickets-correcciones.csv"
    sample_data.write_csv(rows, tickets)
    sample_data.write_csv(sample_data.correction_rows(rows, baskets=12, seed=5), corrections)
    return [tickets, corrections]


def purchases_from_csv(paths: list[Path]) -> dict[tuple[str, str], dict]:
    """(store, basket_id) -> purchase; a later file restates a basket in full, so it replaces it."""
    current: dict[tuple[str, str], dict] = {}
    for path in paths:
        baskets: dict[tuple[str, str], list[dict]] = defaultdict(list)
        with path.open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                baskets[(row["store"], row["basket_id"])].append(row)
        for key, rows in baskets.items():
            current[key] = {
                "day": date.fromisoformat(min(r["timestamp"] for r in rows)[:10]),
                "lines": [
                    (r["product_code"], r["category"], int(r["quantity"]), Decimal(r["unit_price"])) for r in rows
                ],
            }
    return current


def expected_report(purchases: dict, tenant: str, first: date, last: date) -> dict:
    chosen = [p for (store, _), p in purchases.items() if store == tenant and first <= p["day"] <= last]
    daily = defaultdict(lambda: [0, 0, Decimal(0)])
    products = defaultdict(lambda: [0, Decimal(0), 0])
    categories = defaultdict(lambda: [0, Decimal(0), 0])
    with_product: Counter = Counter()
    together: Counter = Counter()
    for purchase in chosen:
        day = daily[purchase["day"]]
        day[0] += 1
        for code, category, quantity, price in purchase["lines"]:
            day[1] += quantity
            day[2] += quantity * price
            products[code][0] += quantity
            products[code][1] += quantity * price
            categories[category][0] += quantity
            categories[category][1] += quantity * price
        codes = sorted({line[0] for line in purchase["lines"]})
        for code in codes:
            products[code][2] += 1
            with_product[code] += 1
        for category in {line[1] for line in purchase["lines"]}:
            categories[category][2] += 1
        together.update(combinations(codes, 2))

    def ranking(groups):
        ordered = sorted(groups.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))
        return [(name, units, revenue, count) for name, (units, revenue, count) in ordered[:10]]

    n = len(chosen)
    pairs = [(a, b, k, Fraction(k * n, with_product[a] * with_product[b])) for (a, b), k in together.items() if k >= 2]
    pairs.sort(key=lambda p: (-p[2], -p[3], p[0], p[1]))
    return {
        "purchases": n,
        "units": sum(d[1] for d in daily.values()),
        "revenue": sum((d[2] for d in daily.values()), Decimal(0)),
        "daily": {day: tuple(values) for day, values in daily.items()},
        "products": ranking(products),
        "categories": ranking(categories),
        "pairs": [(a, b, k, round(float(lift), 4)) for a, b, k, lift in pairs[:20]],
    }


def check(doc: dict, expected: dict, first: date, last: date) -> None:
    totals = doc["totals"]
    assert (totals["purchases"], totals["units"]) == (expected["purchases"], expected["units"])
    assert Decimal(str(totals["revenue"])) == expected["revenue"]
    assert Decimal(str(totals["average_basket"])) == (expected["revenue"] / expected["purchases"]).quantize(
        Decimal("0.01")
    )
    assert [d["date"] for d in doc["daily"]] == [
        (first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)
    ]
    for entry in doc["daily"]:
        purchases, units, revenue = expected["daily"].get(date.fromisoformat(entry["date"]), (0, 0, Decimal(0)))
        assert (entry["purchases"], entry["units"]) == (purchases, units), entry["date"]
        assert Decimal(str(entry["revenue"])) == revenue, entry["date"]
    assert [
        (p["codigo"], p["units"], Decimal(str(p["revenue"])), p["purchases"]) for p in doc["top_products"]
    ] == expected["products"]
    assert [
        (c["categoria"], c["units"], Decimal(str(c["revenue"])), c["purchases"]) for c in doc["top_categories"]
    ] == expected["categories"]
    assert [(p["producto_a"], p["producto_b"], p["purchases_together"]) for p in doc["top_pairs"]] == [
        p[:3] for p in expected["pairs"]
    ]
    assert [p["lift"] for p in doc["top_pairs"]] == pytest.approx([p[3] for p in expected["pairs"]], abs=1e-4)


@pytest.mark.integration
@pytest.mark.slow
def test_report_numbers_match_the_input_csv(stack, aws, tmp_path, monkeypatch):
    from local.pipeline import LocalPipeline

    # The CLI below takes its credentials from boto3's usual chain (moto's fake ones); its endpoint is an option.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")

    inputs = write_inputs(tmp_path)
    pipeline = LocalPipeline(stack)
    for path in inputs:
        pipeline.upload(path)
        pipeline.run_until_idle()

    purchases = purchases_from_csv(inputs)
    first, last = START + timedelta(days=2), START + timedelta(days=7)
    by_store = Counter(store for (store, _), p in purchases.items() if first <= p["day"] <= last)
    tenant = by_store.most_common(1)[0][0]
    removed = sorted(k for k, p in purchases.items() if k[0] == tenant and first <= p["day"] <= last)[0]
    pipeline.delete_purchase(*removed)
    pipeline.run_until_idle()
    pipeline.compact()  # the report reads the compacted table (compactarCompras' first run)
    del purchases[removed]
    expected = expected_report(purchases, tenant, first, last)
    assert expected["purchases"] > 10 and expected["pairs"], "the generated data should exercise every section"

    request = report.ReportRequest(tenant, first, last)
    with pipeline.athena() as athena:
        doc = report.generate_report(request, report_cli.LocalRunner(athena), generated_at=report_cli.datetime.now())
    check(doc, expected, first, last)

    # The CLI against the same running stack (DuckDB over its bucket): same numbers, JSON and PNG written.
    out_json, out_png = tmp_path / "report.json", tmp_path / "daily.png"
    argv = ["--tenant", tenant, "--from", first.isoformat(), "--to", last.isoformat(), "--endpoint-url"]
    argv += [aws.endpoint_url, "--stage", stack.names.stage, "--json", str(out_json), "--png", str(out_png)]
    assert report_cli.main(argv) == 0
    check(json.loads(out_json.read_text(encoding="utf-8")), expected, first, last)
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_rejects_bad_parameters_with_the_reason(capsys):
    assert report_cli.main(["--tenant", "t", "--from", "2024-05-10", "--to", "2024-05-01"]) == 2
    assert "'from' (2024-05-10) is after 'to' (2024-05-01)" in capsys.readouterr().err


def test_render_prints_every_section():
    request = report.ReportRequest("t1", date(2024, 5, 1), date(2024, 5, 2))
    rows = {name: [] for name in report.REPORT_QUERIES}
    rows[report.DAILY_QUERY] = [{"tenant_id": "t1", "dia": "2024-05-02", "compras": 2, "unidades": 3, "ingresos": 5}]
    text = report_cli.render(report.build_report(request, rows, generated_at=report_cli.datetime.now()))
    for title in ("Purchase report: tenant 't1'", "Top products", "Top categories", "Products bought together"):
        assert title in text
    assert "2024-05-02          2      3" in text
