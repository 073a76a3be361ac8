"""The benchmark harness at its smallest size: it runs, every load is complete, the report is written.

No timing asserts: only that each contender loaded exactly what the input implies, on the stand-in (its counts)
and on moto (the table and the bucket), and that the report carries the figures the targets are judged on.
"""

from __future__ import annotations

import csv
import json

import pytest

from bench import data, run

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROWS = 500
BIG = 1500
PER_ROW = 200
STREAM_RECORDS = 120


def _purchases(path) -> tuple[int, list[tuple[str, str]]]:
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return len({(r["store"], r["basket_id"]) for r in rows}), [(r["store"], r["ticket_id"]) for r in rows]


def test_smallest_configuration_loads_everything_and_writes_the_report(tmp_path):
    report = tmp_path / "benchmarks.md"
    work = tmp_path / "work"
    status = run.main(
        [
            "--sizes", str(ROWS), "--reps", "1", "--standin-ms", "10", "--latency-ms", "0", "--moto-sizes", str(ROWS),
            "--big-rows", str(BIG), "--ingestion", "ours,put_item,batch_writer", "--per-row-max-rows", str(PER_ROW),
            "--stream-records", str(STREAM_RECORDS), "--stream-batches", "50,100",
            "--out", str(report), "--work-dir", str(work),
        ]
    )  # fmt: skip

    assert status == 0
    results = json.loads((work / "results.json").read_text(encoding="utf-8"))["results"]

    # What the CSVs imply, computed here independently of the harness.
    interleaved = work / "data" / f"tickets_{ROWS}_interleaved_seed42.csv"
    purchases, lines = _purchases(interleaved)
    assert len(lines) == ROWS
    expected = {"ingestion:ours": purchases, "ingestion:batch_writer": ROWS, "ingestion:put_item": PER_ROW}
    big = {order: _purchases(work / "data" / f"tickets_{BIG}_{order}_seed42.csv") for order in data.ORDERS}
    # The three orders hold the same lines: only the order differs.
    assert len({p for p, _ in big.values()}) == 1
    assert sorted(big["sorted"][1]) == sorted(big["interleaved"][1]) == sorted(big["shuffled"][1])
    assert big["sorted"][1] != big["interleaved"][1] != big["shuffled"][1]

    ingestion = [r for r in results if r["kind"] == "ingestion"]
    compared = [r for r in ingestion if r["size"] == ROWS]
    # Ours again as a function of 3538 MB (--ours-memory-mb default), on the stand-in only.
    variants = [r for r in compared if r["label"] == "ours (ingestion handler), 3538 MB"]
    assert [(r["endpoint"], r["found"], r["error"]) for r in variants] == [("standin", purchases, None)]
    compared = [r for r in compared if r not in variants]
    assert sorted((r["contender"], r["endpoint"]) for r in compared) == sorted(
        (c, e) for c in expected for e in ("standin", "moto")
    )
    for r in compared:
        assert r["error"] is None, r
        assert r["order"] == "interleaved"
        assert r["found"] == r["expected"] == expected[r["contender"]], r
        assert r["peak_rss_mb"] > 0 and r["cpu_s"] >= 0 and r["wall_s"] > 0
        if r["endpoint"] == "standin":
            stats = r["extra"]["standin"]
            assert stats["dynamodb_keys"] == expected[r["contender"]]
    ours = [r for r in ingestion if r["contender"] == "ingestion:ours" and r["endpoint"] == "standin"]
    for r in ours:
        stats = r["extra"]["standin"]
        assert stats["dynamodb_items_put"] == r["extra"]["purchases"]  # each purchase written once
        assert stats["operations"]["DynamoDB.TransactWriteItems"]["requests"] > 0
        assert stats["operations"]["S3.PutObject"]["requests"] == 1  # the ingest report
        assert stats["forwarded"] > 0  # the CSV's GetObject reached moto
    assert sorted(r["order"] for r in ours if r["size"] == BIG) == sorted(data.ORDERS)
    assert all(r["found"] == big[r["order"]][0] for r in ours if r["size"] == BIG)

    stream = [r for r in results if r["kind"] == "stream"]
    assert sorted((r["contender"], r["batch"], r["endpoint"]) for r in stream) == sorted(
        (c, b, e)
        for c, b in (("stream:ours", 50), ("stream:ours", 100), ("stream:sequential_puts", 50))
        for e in ("standin", "moto")
    )
    for r in stream:
        assert r["error"] is None, r
        assert r["found"] == r["expected"] == STREAM_RECORDS, r

    text = report.read_text(encoding="utf-8")
    for heading in ("## Targets", "## Ingestion against the stand-in", "## Ours by row order", "## Stream export",
                    "### The ceilings", "## End to end against moto"):  # fmt: skip
        assert heading in text, heading
    assert f"| 10 ms | {ROWS} | interleaved | ours (ingestion handler) | 1/1 |" in text
    assert f"put_item per row (first {PER_ROW} rows)" in text
    assert "ours (stream handler), batch 100" in text
    assert (
        "items written ÷ purchases = 1.00, shuffled (stand-in counts, every run) | 1.00 over 1 run(s) | **PASS**"
        in (text)
    )
    assert "USD per 1M purchases" in text

    # The report can be re-rendered from results.json alone.
    again = tmp_path / "again.md"
    assert run.main(["--report-only", "--work-dir", str(work), "--out", str(again)]) == 0
    assert again.read_text(encoding="utf-8") == text
