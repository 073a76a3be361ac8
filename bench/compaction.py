"""Bench: the named queries over the JSON view vs over the compacted table, files opened and bytes read on DuckDB.

    python -m bench.compaction                       # 1,000,000 changes, 90 days, 5 tenants (docs/benchmarks.md)
    python -m bench.compaction --changes 20000       # a quick run
    python -m bench.compaction --keep                # keep bench/out/compaction/ (the generated files) for reruns

What it does, in one run, side by side:

1. writes ``--changes`` change documents as JSON files in the layout the stream export writes
   (``compras/{tenant}/{yyyy}/{mm}/{dd}/{event}_{compra}_{stamp}_{seq}.json``, keys from lambdas.domain.keys):
   purchases over ``--days`` days and ``--tenants`` tenants, each an INSERT, some corrected (MODIFY, a fifth of
   them moved to another day) and some deleted (REMOVE), sequence numbers growing; seeded, so reruns are equal;
2. builds the compacted table with the maintenance SQL itself — lambdas.domain.compaction.merge_sql (a first,
   full run), transpiled to DuckDB — and writes it as Parquet (ZSTD) partitioned by tenant_id/dia, like the
   local engine (local/compaction.py);
3. runs every named query of athena-queries.sql twice per parameter set — over the JSON view
   (``read_from="compras_actuales"``: DuckDB ``read_json`` over the files, partition columns from the path)
   and over the compacted table (``compras_vigentes``: ``read_parquet`` with hive partitions) — with DuckDB's
   profiler on, and records the files opened ("Total Files Read" of every scan) and the bytes read (the
   profiler's ``total_bytes_read``), and checks that both give identical rows.

The section of docs/benchmarks.md between the ``compaction`` markers is replaced (bench/run.py keeps it when
it rewrites the rest), with the ratios and a paper estimate of the monthly AWS cost (bench/costs.py prices).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

import pipeline_config as config
from lambdas.domain import compaction, keys, queries
from local import athena_duckdb

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "docs" / "benchmarks.md"
WORK = Path(__file__).resolve().parent / "out" / "compaction"
BEGIN, END = "<!-- compaction:begin -->", "<!-- compaction:end -->"
TARGET_FILES, TARGET_BYTES = 20.0, 10.0
ATHENA_PER_TB = 5.0  # USD per TB scanned (us-east-1), 10 MB minimum per query
CATEGORIES = ["Lácteos", "Frutas", "Bebidas", "Limpieza", "Higiene", "Panadería", "Snacks", "Carnicería"]


# ------------------------------------------------------------------------------------------------ data


def _document(tenant, compra, fecha, lines, event, seq, at: datetime) -> str:
    """One change document as the export writes it (docs/json-contract.md), one line."""
    stamp = at.isoformat(timespec="microseconds")
    document = {
        "compra_id": compra,
        "user_id": f"U{int(compra[1:]) % 50_000:06d}",
        "tenant_id": tenant,
        "fecha": fecha,
        "productos": [
            {
                "codigo": code,
                "nombre": f"Producto {code}",
                "categoria": CATEGORIES[int(code[1:]) % len(CATEGORIES)],
                "precio_unitario": float(price),
                "cantidad": qty,
                "ticket_id": f"T-{compra}-{n}",
            }
            for n, (code, price, qty) in enumerate(lines)
        ],
        "resumen": {
            "total_productos": len(lines),
            "total_cantidad": sum(q for _, _, q in lines),
            "total_precio": round(sum(float(price) * qty for _, price, qty in lines), 2),
            "moneda": "EUR",
        },
        "metadata": {
            "event_name": event,
            "event_source": "aws:dynamodb",
            "aws_region": "us-east-1",
            "processed_at": stamp,
            "processed_by": "compras-bench-actualizarComprasStream",
            "stage": "bench",
            "event_id": f"e{seq}",
            "sequence_number": str(seq),
            "approximate_creation_time": stamp,
        },
    }
    return json.dumps(document, ensure_ascii=False) + "\n"


def generate(directory: Path, changes: int, days: int, tenants: int, seed: int = 42) -> dict[str, Any]:
    """Write `changes` JSON change documents under directory/compras/; a summary."""
    rng = random.Random(seed)
    prefix = config.prefixes()["compras"]
    end = datetime(2026, 3, 31, 23, 0, tzinfo=UTC)
    start = end - timedelta(days=days)
    seq = 10**20
    written = total_bytes = 0
    counts = {"INSERT": 0, "MODIFY": 0, "REMOVE": 0}
    purchase = 0
    made_dirs: set[Path] = set()
    while written < changes:
        purchase += 1
        tenant = f"tienda-{rng.randrange(tenants) + 1}"
        compra = f"B{purchase:08d}"
        moment = start + timedelta(seconds=rng.randrange(days * 86400))
        events = ["INSERT"]
        if rng.random() < 0.2:
            events.append("MODIFY")
        if rng.random() < 0.08:
            events.append("REMOVE")
        lines = [(f"P{rng.randrange(400):03d}", f"{rng.randrange(50, 2000) / 100:.2f}", rng.randint(1, 4))
                 for _ in range(rng.randint(1, 6))]  # fmt: skip
        fecha = moment.strftime(keys.FECHA_FORMAT)
        for number, event in enumerate(events):
            if written >= changes:
                break
            if event == "MODIFY":
                lines = [*lines[:-1], (f"P{rng.randrange(400):03d}", "1.99", 2)]
                if rng.random() < 0.2:  # a correction of the date moves the purchase to another partition
                    fecha = (moment - timedelta(days=rng.randint(1, 3))).strftime(keys.FECHA_FORMAT)
            seq += rng.randint(1, 50)
            at = moment + timedelta(minutes=5 * number, seconds=rng.randrange(60))
            key = keys.object_key(
                event_name=event,
                tenant_id=tenant,
                compra_id=compra,
                fecha=fecha,
                approximate_creation_time=at,
                sequence_number=str(seq),
                prefix=prefix,
            )
            path = directory / key
            if path.parent not in made_dirs:
                path.parent.mkdir(parents=True, exist_ok=True)
                made_dirs.add(path.parent)
            body = _document(tenant, compra, fecha, lines, event, seq, at)
            path.write_text(body, encoding="utf-8")
            written += 1
            total_bytes += len(body.encode("utf-8"))
            counts[event] += 1
    return {"changes": written, "purchases": purchase, "bytes": total_bytes, "events": counts, "days": days}


# ------------------------------------------------------------------------------------------------ DuckDB


def _json_struct() -> str:
    """json_transform's structure argument: {column: DuckDB type} of the Glue schema (unknown keys ignored)."""
    columns = {c["Name"]: athena_duckdb.duckdb_type(c["Type"]) for c in config.catalog()["columns"]}
    return "'" + json.dumps(columns).replace("'", "''") + "'"


def connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET integer_division = true")
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    return con


def json_table_view(con: duckdb.DuckDBPyConnection, directory: Path) -> None:
    """compras_json over the files, typed by the Glue schema, partition columns from the path (like Glue's).

    ``read_text`` + ``from_json`` rather than ``read_json``: the same rows, but DuckDB's read_json spends
    ~1.6 ms per small file here (schema work per file), read_text ~0.07 ms, and the bench opens a million.
    """
    prefix = config.prefixes()["compras"]
    glob = str(directory / prefix) + "/*/*/*/*/*.json"
    names = ", ".join(f'j.doc."{c["Name"]}" AS "{c["Name"]}"' for c in config.catalog()["columns"])
    path = r"'/" + prefix.rstrip("/") + r"/([^/]+)/(\d{4})/(\d{2})/(\d{2})/'"
    con.execute(
        f"CREATE OR REPLACE VIEW compras_json AS SELECT {names}, "  # nosec B608 - config names
        f"regexp_extract(j.filename, {path}, 1) AS tenant_id, regexp_extract(j.filename, {path}, 2) AS year, "
        f"regexp_extract(j.filename, {path}, 3) AS month, regexp_extract(j.filename, {path}, 4) AS day "
        f"FROM (SELECT filename, json_transform(content, {_json_struct()}) AS doc FROM read_text('{glob}')) AS j"
    )


def build_compacted(directory: Path, out: Path) -> dict[str, Any]:
    """The first (full) compactarCompras run over the files, with the maintenance SQL, written as Parquet."""
    started = time.monotonic()
    con = connect()
    json_table_view(con, directory)
    columns = athena_duckdb.iceberg_columns()
    table = athena_duckdb.ICEBERG_TABLE
    declared = ", ".join(f'"{name}" {kind}' for name, kind in columns)
    con.execute(f"CREATE TABLE {table} ({declared})")
    plan = compaction.RunPlan(datetime.now(UTC), "full", None, None, False, False, None)
    merge = compaction.merge_sql(compaction.TableNames(table, "s3://bench/iceberg/"), plan)
    changed = con.execute(athena_duckdb.transpile(merge)).fetchone()[0]
    shutil.rmtree(out, ignore_errors=True)
    partition = ", ".join(compaction.PARTITION_COLUMNS)
    con.execute(
        f"COPY (SELECT * FROM {table} ORDER BY {partition}, compra_id) TO '{out}' "  # nosec B608
        f"(FORMAT parquet, COMPRESSION zstd, PARTITION_BY ({partition}))"
    )
    rows = con.execute(f"SELECT count(*), count(*) FILTER (WHERE eliminada) FROM {table}").fetchone()  # nosec B608
    con.close()
    files = list(out.rglob("*.parquet"))
    return {
        "merged_rows": int(changed),
        "rows": int(rows[0]),
        "tombstones": int(rows[1]),
        "files": len(files),
        "bytes": sum(f.stat().st_size for f in files),
        "seconds": time.monotonic() - started,
    }


def iceberg_view(con: duckdb.DuckDBPyConnection, out: Path) -> None:
    selected = ", ".join(f'"{name}"' for name, _ in athena_duckdb.iceberg_columns())
    con.execute(
        f"CREATE OR REPLACE VIEW {athena_duckdb.ICEBERG_TABLE} AS SELECT {selected} "  # nosec B608
        f"FROM read_parquet('{out}/**/*.parquet', hive_partitioning = true, "
        "hive_types = {'tenant_id': VARCHAR, 'dia': VARCHAR})"
    )


@dataclass
class Measure:
    files: int
    bytes: int
    seconds: float
    rows: list[tuple[Any, ...]]


def _scans(node: dict[str, Any]) -> int:
    info = node.get("extra_info") or {}
    files = int(info.get("Total Files Read", 0) or 0) if isinstance(info, dict) else 0
    return files + sum(_scans(child) for child in node.get("children", []))


def measure(con: duckdb.DuckDBPyConnection, sql: str, profile: Path) -> Measure:
    con.execute("PRAGMA enable_profiling = 'json'")
    con.execute(f"PRAGMA profiling_output = '{profile}'")
    started = time.monotonic()
    rows = [tuple(r) for r in con.execute(sql).fetchall()]
    seconds = time.monotonic() - started
    con.execute("PRAGMA disable_profiling")
    data = json.loads(profile.read_text(encoding="utf-8"))
    files = sum(_scans(op) for op in data.get("operator", data.get("children", [])))
    return Measure(files=files, bytes=int(data.get("io", {}).get("total_bytes_read", 0)), seconds=seconds, rows=rows)


def run_queries(directory: Path, out: Path, params_sets: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    query_file = queries.load()
    con = connect()
    json_table_view(con, directory)
    iceberg_view(con, out)
    for view in query_file.views():
        con.execute(athena_duckdb.transpile(view.sql))
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-compaction-") as tmp:
        profile = Path(tmp) / "profile.json"
        for label, params in params_sets:
            bound = queries.QueryParams.of(**params)
            for query in query_file.selects():
                row: dict[str, Any] = {"query": query.name, "params": label}
                for side, view in (("json", "compras_actuales"), ("compacted", queries.STATE_VIEW)):
                    tree = query_file.bind_expression(query.name, bound, read_from=view)
                    m = measure(con, athena_duckdb.to_duckdb(tree), profile)
                    row[side] = m
                    print(
                        f"  {query.name:<18} {label:<22} {side:<9} files {m.files:>9,} bytes {m.bytes:>14,} "
                        f"{m.seconds:7.2f} s",
                        flush=True,
                    )
                row["identical"] = row["json"].rows == row["compacted"].rows
                results.append(row)
    con.close()
    return results


# ------------------------------------------------------------------------------------------------ report


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("inf")


def monthly_cost(data: dict[str, Any], compacted: dict[str, Any], per_month: int = 10_000_000) -> list[str]:
    """A paper estimate of the monthly AWS bill of analytics for `per_month` changes, both ways."""
    from bench import costs

    athena_tb, get_k, put_k, list_k = ATHENA_PER_TB, costs.S3_GET * 1000, costs.S3_PUT * 1000, costs.S3_PUT * 1000
    doc_bytes = data["bytes"] / data["changes"]
    row_bytes = compacted["bytes"] / max(compacted["rows"], 1)
    live_per_change = compacted["rows"] / data["changes"]
    months = 12  # history kept: the estimate is for month 12 (history grows; the JSON view reads all of it)
    history_changes = per_month * months
    queries_per_month = 3_000  # ~100 report/query runs a day
    lines = [
        f"Assumptions (month {months} of history, {per_month:,} changes/month, {queries_per_month:,} queries/month; "
        f"prices of bench/costs.py: Athena ${athena_tb}/TB scanned with 10 MB minimum per query, S3 GET "
        f"${get_k}/1000, PUT ${put_k}/1000, LIST ${list_k}/1000). Sizes measured in this run: "
        f"{doc_bytes:,.0f} B per JSON change, {row_bytes:,.0f} B of Parquet per compacted row, "
        f"{live_per_change:.2f} compacted rows per change. Athena reads every JSON object with one GET (one "
        "file = one split); scans are of whole files (JSON) or of the columns used (Parquet).",
        "",
        "| | JSON view (`compras_actuales`) | compacted table (`compras_vigentes`) |",
        "|---|---:|---:|",
    ]
    json_bytes = history_changes * doc_bytes
    json_get = history_changes / 1000 * get_k
    json_scan = json_bytes / 1e12 * athena_tb
    json_query = json_get + json_scan
    table_rows = history_changes * live_per_change
    table_bytes = table_rows * row_bytes
    table_files = compacted["files"] * months * 30 / max(data["days"], 1)  # partitions after OPTIMIZE
    table_scan = max(table_bytes * 0.6, 10e6) / 1e12 * athena_tb  # ~60% of the columns: productos+resumen+keys
    table_get = table_files / 1000 * get_k
    table_query = table_scan + table_get
    runs = 24 * 30  # hourly recent runs (1 day of partitions + today)
    recent_files = per_month / 30 * 2
    merge_recent = recent_files / 1000 * get_k + recent_files * doc_bytes / 1e12 * athena_tb
    full_runs = 30 * 24 / int(config.function_settings("compaction")["fullMergeEveryHours"])
    merge_full = json_get + json_scan
    target_rw = runs * (table_bytes / 1e12 * athena_tb)  # MERGE reads the target (no partition pruning on ON)
    writes = runs * (recent_files * live_per_change / 20_000) / 1000 * put_k  # new data files per run
    maintenance = runs * merge_recent + full_runs * merge_full + target_rw + writes
    lines += [
        f"| bytes scanned per query (all tenants, all days) | {json_bytes / 1e9:,.1f} GB | "
        f"{table_bytes * 0.6 / 1e9:,.2f} GB |",
        f"| S3 GETs per query | {history_changes:,.0f} | {table_files:,.0f} |",
        f"| cost per query | ${json_query:,.2f} | ${table_query:,.4f} |",
        f"| queries: {queries_per_month:,}/month | ${json_query * queries_per_month:,.0f} | "
        f"${table_query * queries_per_month:,.0f} |",
        f"| maintenance: {runs} hourly MERGEs (2 days of JSON partitions + the table), {full_runs:.1f} full "
        f"MERGEs, OPTIMIZE/VACUUM | – | ${maintenance:,.0f} |",
        f"| **total per month** | **${json_query * queries_per_month:,.0f}** | "
        f"**${table_query * queries_per_month + maintenance:,.0f}** |",
        "",
        "The JSON view's cost grows with the whole history on every query; the compacted table's queries grow with "
        "the live state only, and its maintenance is dominated by the S3 GETs of the per-change JSON objects the "
        "MERGE reads (the full runs read every one of them: the weekly cadence of `fullMergeEveryHours` bounds "
        "that term; docs/compaction.md). Storage (S3 Standard, both ways) is not included: it is the same JSON "
        "history either way plus the (smaller) Parquet state.",
    ]
    return lines


def render(data: dict[str, Any], compacted: dict[str, Any], results: list[dict[str, Any]], seconds: float) -> str:
    lines = [
        BEGIN,
        "## Compacted table vs JSON view (python -m bench.compaction)",
        "",
        f"Written by `python -m bench.compaction` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC in {seconds / 60:.1f} min "
        "(2 shared cores). The same named queries of athena-queries.sql, bound with the same parameters, run on "
        "DuckDB over the JSON change files (view `compras_actuales`) and over the compacted Parquet table "
        "(view `compras_vigentes`) built by the maintenance MERGE itself. Files opened = the profiler's "
        '"Total Files Read" summed over every scan of the query; bytes = its `total_bytes_read`.',
        "",
        f"Data: {data['changes']:,} changes ({data['events']['INSERT']:,} INSERT, {data['events']['MODIFY']:,} "
        f"MODIFY, {data['events']['REMOVE']:,} REMOVE) of {data['purchases']:,} purchases over {data['days']} days "
        f"and the tenants of the run: {data['bytes'] / 1e6:,.0f} MB of JSON in {data['changes']:,} files. "
        f"Compacted: {compacted['rows']:,} rows ({compacted['tombstones']:,} tombstones) in {compacted['files']:,} "
        f"Parquet files, {compacted['bytes'] / 1e6:,.1f} MB (MERGE + write: {compacted['seconds']:.0f} s).",
        "",
        "| query | parameters | files JSON | files compacted | fewer files | bytes JSON | bytes compacted "
        "| fewer bytes | identical |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    worst_files = worst_bytes = float("inf")
    all_identical = True
    for row in results:
        j, c = row["json"], row["compacted"]
        files, bytes_ = _ratio(j.files, c.files), _ratio(j.bytes, c.bytes)
        worst_files, worst_bytes = min(worst_files, files), min(worst_bytes, bytes_)
        all_identical &= row["identical"]
        lines.append(
            f"| {row['query']} | {row['params']} | {j.files:,} | {c.files:,} | {files:,.0f}× | {j.bytes / 1e6:,.1f} MB "
            f"| {c.bytes / 1e6:,.2f} MB | {bytes_:,.0f}× | {'yes' if row['identical'] else '**NO**'} |"
        )
    verdict = lambda ok: "PASS" if ok else "MISS"  # noqa: E731
    lines += [
        "",
        f"Targets: ≥ {TARGET_FILES:.0f}× fewer files — worst query {worst_files:,.0f}× "
        f"**{verdict(worst_files >= TARGET_FILES)}**; ≥ {TARGET_BYTES:.0f}× fewer bytes — worst query "
        f"{worst_bytes:,.0f}× **{verdict(worst_bytes >= TARGET_BYTES)}**; identical results "
        f"**{verdict(all_identical)}**.",
        "",
        "### Monthly AWS cost, on paper (10M changes per month)",
        "",
        *monthly_cost(data, compacted),
        END,
    ]
    return "\n".join(lines) + "\n"


def splice(existing: str, section: str) -> str:
    """`existing` with its compaction section replaced by `section` (appended when absent)."""
    if BEGIN in existing and END in existing:
        head, rest = existing.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        return head + section.rstrip("\n") + tail
    return existing.rstrip("\n") + "\n\n" + section


def keep_section(path: Path, text: str) -> str:
    """For bench/run.py: keep the compaction section of the report it is about to overwrite."""
    if not path.exists():
        return text
    old = path.read_text(encoding="utf-8")
    if BEGIN not in old or END not in old:
        return text
    section = BEGIN + old.split(BEGIN, 1)[1].split(END, 1)[0] + END + "\n"
    return splice(text, section)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compaction", description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--tenants", type=int, default=5)
    parser.add_argument("--work-dir", type=Path, default=WORK)
    parser.add_argument("--keep", action="store_true", help="keep the generated files (and reuse them next time)")
    parser.add_argument("--out", type=Path, default=REPORT, help="markdown report whose compaction section to write")
    args = parser.parse_args(argv)
    started = time.monotonic()
    data_dir, out = args.work_dir / "data", args.work_dir / "iceberg"
    summary = args.work_dir / "data.json"
    wanted = {"changes": args.changes, "days": args.days, "tenants": args.tenants}
    if summary.exists() and json.loads(summary.read_text()).get("wanted") == wanted:
        data = json.loads(summary.read_text())["data"]
        print(f"reusing {data['changes']:,} generated changes in {data_dir}", flush=True)
    else:
        shutil.rmtree(args.work_dir, ignore_errors=True)
        print(f"generating {args.changes:,} changes in {data_dir} ...", flush=True)
        data = generate(data_dir, args.changes, args.days, args.tenants)
        summary.write_text(json.dumps({"wanted": wanted, "data": data}))
    print("compacting (the maintenance MERGE, transpiled) ...", flush=True)
    compacted = build_compacted(data_dir, out)
    print(f"  {compacted}", flush=True)
    last = datetime(2026, 3, 31, tzinfo=UTC).date()
    params_sets = [
        ("all tenants, all days", {}),
        ("1 tenant, last 7 days", {"tenant_id": "tienda-1", "date_from": last - timedelta(days=6), "date_to": last}),
    ]
    results = run_queries(data_dir, out, params_sets)
    section = render(data, compacted, results, time.monotonic() - started)
    existing = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
    args.out.write_text(splice(existing, section), encoding="utf-8")
    print(f"\nsection written to {args.out}")
    if not args.keep:
        shutil.rmtree(args.work_dir, ignore_errors=True)
    return 0 if all(r["identical"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
