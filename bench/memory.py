"""Peak memory, CPU and writes per purchase of the ingestion's grouping, by row order (issue 11, points 1-2).

    python -m bench.memory --rows 1000000 --orders sorted,interleaved,shuffled

For each order a CSV of ``--rows`` valid rows (local.sample_data, cached under bench/out/data/) is ingested by
``lambdas.domain.purchases.ingest`` in a fresh process, with the configured memory budget
(functions.ingestion.groupingMemoryMB) and a sink that only counts its puts, so the figures are those of our
code alone (parse, validate, group/spill, build), not of a DynamoDB stand-in. Reported per order: peak RSS of
that process (ru_maxrss), CPU seconds per 100k rows, items put ÷ distinct purchases, whether it spilled.

Orders: ``sorted`` (each basket's lines together), ``interleaved`` (time order across tills: 2,000 baskets
open at once, lines drawn among them), ``shuffled`` (a random permutation of the lines).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import pipeline_config as config
from bench.data import ORDERS, OUT, csv_path, facts


def csv_for(rows: int, order: str, seed: int = 11) -> Path:
    return csv_path(rows, seed, OUT, order)


def peak_rss_kb() -> int:
    """This process's peak RSS (VmHWM). Not ru_maxrss: Linux keeps that across execve, so a child would
    report its parent's peak when the parent was bigger."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class CountingSink:
    def __init__(self) -> None:
        self.puts = 0

    def put(self, item: dict) -> None:
        self.puts += 1

    def flush(self):
        from lambdas.domain.purchases import WriteOutcome

        return WriteOutcome()


def child(path: str, budget_mb: int) -> None:
    """Ingest one file in this (fresh) process and print the figures as JSON."""
    from lambdas.domain.purchases import SourceInfo, ingest

    def chunks():
        with open(path, "rb") as source:
            while chunk := source.read(1024 * 1024):
                yield chunk

    sink = CountingSink()
    source = SourceInfo(bucket="bench", key="uploads/bench.csv", etag="-", ingested_at="2026-01-01T00:00:00Z")
    cpu = time.process_time()
    max_listed = int(config.function_settings("ingestion")["maxReportedRejections"])
    report = ingest(chunks(), source, sink, max_listed=max_listed, memory_budget_bytes=budget_mb * 1024 * 1024)
    cpu = time.process_time() - cpu
    peak_kb = peak_rss_kb()
    print(
        json.dumps(
            {
                "rows": report.rows_read,
                "puts": sink.puts,
                "written": report.purchases_written,
                "spilled": bool(report.spilled_partitions),
                "cpu_s": cpu,
                "peak_rss_mb": peak_kb / 1024,
            }
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--orders", type=lambda t: t.split(","), default=list(ORDERS))
    parser.add_argument("--budget-mb", type=int, default=config.function_settings("ingestion")["groupingMemoryMB"])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.budget_mb)
        return 0
    print("| order | rows | peak RSS | CPU per 100k rows | items put ÷ purchases | spilled |")
    print("|---|---|---|---|---|---|")
    for order in args.orders:
        path = csv_for(args.rows, order)
        expected = facts(path)
        done = subprocess.run(
            [sys.executable, "-m", "bench.memory", "--child", str(path), "--budget-mb", str(args.budget_mb)],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"| {order} | {r['rows']:,} | {r['peak_rss_mb']:.0f} MB | {r['cpu_s'] / r['rows'] * 100_000:.1f} s "
            f"| {r['puts'] / expected.purchases:.2f} | {'yes' if r['spilled'] else 'no'} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
