"""The benchmark harness at its smallest size: it runs, every load is complete, the report is written.

No timing asserts: only that each contender loaded exactly what the input implies.
"""

from __future__ import annotations

import csv
import json

import pytest

from bench import run

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROWS = 500
PER_ROW = 200
STREAM_RECORDS = 120


def test_smallest_configuration_loads_everything_and_writes_the_report(tmp_path):
    report = tmp_path / "benchmarks.md"
    work = tmp_path / "work"
    status = run.main(
        [
            "--sizes", str(ROWS), "--reps", "1", "--latency-ms", "0,10", "--big-rows", "0",
            "--ingestion", "ours,put_item,batch_writer", "--per-row-max-rows", str(PER_ROW),
            "--stream-records", str(STREAM_RECORDS), "--stream-batches", "50,100",
            "--out", str(report), "--work-dir", str(work),
        ]
    )  # fmt: skip

    assert status == 0
    results = json.loads((work / "results.json").read_text(encoding="utf-8"))["results"]

    # What the CSV implies, computed here independently of the harness.
    with next((work / "data").glob(f"tickets_{ROWS}_*.csv")).open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == ROWS
    purchases = len({(r["store"], r["basket_id"]) for r in rows})
    expected = {"ingestion:ours": purchases, "ingestion:batch_writer": ROWS, "ingestion:put_item": PER_ROW}

    ingestion = [r for r in results if r["kind"] == "ingestion"]
    assert sorted((r["contender"], r["latency_ms"]) for r in ingestion) == sorted(
        (c, latency) for c in expected for latency in (0.0, 10.0)
    )
    for r in ingestion:
        assert r["error"] is None, r
        assert r["found"] == r["expected"] == expected[r["contender"]], r
        assert r["peak_rss_mb"] > 0 and r["cpu_s"] >= 0 and r["wall_s"] > 0

    stream = [r for r in results if r["kind"] == "stream"]
    assert sorted((r["contender"], r["batch"], r["latency_ms"]) for r in stream) == sorted(
        (c, b, latency)
        for c, b in (("stream:ours", 50), ("stream:ours", 100), ("stream:sequential_puts", 50))
        for latency in (0.0, 10.0)
    )
    for r in stream:
        assert r["error"] is None, r
        assert r["found"] == r["expected"] == STREAM_RECORDS, r

    text = report.read_text(encoding="utf-8")
    assert "## Ingestion" in text and "## Stream export" in text and "## Targets" in text
    assert "| 10 ms | 500 | ours (ingestion handler) | 1/1 |" in text
    assert f"put_item per row (first {PER_ROW} rows)" in text
    assert "ours (stream handler), batch 100" in text
    assert "USD per 1M purchases" in text

    # The report can be re-rendered from results.json alone.
    again = tmp_path / "again.md"
    assert run.main(["--report-only", "--work-dir", str(work), "--out", str(again)]) == 0
    assert again.read_text(encoding="utf-8") == text
