"""The purchase report from the command line: readable tables and an optional PNG of the daily series.

    python -m local.report --tenant valencia-ruzafa --from 2024-05-01 --to 2024-05-31 [--png daily.png]
        [--json report.json]

Where the numbers come from (the same named queries of athena-queries.sql and the same report code as the
generarReporteCompras Lambda, lambdas/domain/report.py, in every case):

* default: runs the local pipeline first (embedded moto, real handlers, as `make demo` does) on the CSV files
  given with --csv (default: the shipped sample and its correction file), then runs the queries on DuckDB
  over the JSON documents the stream export wrote (local/athena_duckdb.py);
* --endpoint-url URL (e.g. a running `make serve`, http://127.0.0.1:4566): DuckDB over the documents already in
  that stack's bucket (--stage, default "local");
* --athena: the queries run on Athena in the stage's workgroup (real AWS with your credentials, --stage, default
  "dev"; --endpoint-url works too, but moto's Athena returns no rows).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pipeline_config as config
from lambdas.adapters.clients import AwsClients
from lambdas.domain import report
from local.tables import format_table

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CSVS = (ROOT / "data" / "sample" / "tickets.csv", ROOT / "data" / "sample" / "tickets-correcciones.csv")
SERVE_ENDPOINT = "http://127.0.0.1:4566"


class LocalRunner:
    """The report's QueryRunner on DuckDB: local.athena_duckdb.LocalAthena, rows as dicts."""

    def __init__(self, athena: Any) -> None:
        self.athena = athena

    def run(self, name: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        return self.athena.run(name, **params).as_dicts()


# ------------------------------------------------------------------------------------------------ output


def render(document: Mapping[str, Any], *, max_days: int = 62) -> str:
    """The report as plain-text tables."""
    totals = document["totals"]
    out = [
        f"Purchase report: tenant {document['tenant_id']!r}, {document['from']} to {document['to']} "
        f"({document['days']} days), generated {document['generated_at']}",
        "",
        format_table(
            ["purchases", "units", "revenue", "average basket", "units/purchase", "days with purchases"],
            [
                (
                    totals["purchases"],
                    totals["units"],
                    totals["revenue"],
                    totals["average_basket"],
                    totals["average_units_per_purchase"],
                    totals["days_with_purchases"],
                )
            ],
        ),
        "",
        "Top products",
        format_table(
            ["#", "codigo", "nombre", "categoria", "units", "revenue", "purchases"],
            [
                (p["rank"], p["codigo"], p["nombre"], p["categoria"], p["units"], p["revenue"], p["purchases"])
                for p in document["top_products"]
            ],
            max_rows=50,
        ),
        "",
        "Top categories",
        format_table(
            ["#", "categoria", "units", "revenue", "purchases", "products"],
            [
                (c["rank"], c["categoria"], c["units"], c["revenue"], c["purchases"], c["products"])
                for c in document["top_categories"]
            ],
            max_rows=50,
        ),
        "",
        "Products bought together",
        format_table(
            ["#", "product a", "product b", "together", "support", "conf a→b", "conf b→a", "lift"],
            [
                (
                    p["rank"],
                    p["nombre_a"] or p["producto_a"],
                    p["nombre_b"] or p["producto_b"],
                    p["purchases_together"],
                    p["support"],
                    p["confidence_a_b"],
                    p["confidence_b_a"],
                    p["lift"],
                )
                for p in document["top_pairs"]
            ],
            max_rows=50,
        ),
        "",
    ]
    daily = document["daily"]
    shown = daily if len(daily) <= max_days else [d for d in daily if d["purchases"]]
    out.append("Daily series" + ("" if shown is daily else " (days with purchases only)"))
    out.append(
        format_table(
            ["date", "purchases", "units", "revenue", "average basket"],
            [(d["date"], d["purchases"], d["units"], d["revenue"], d["average_basket"]) for d in shown],
            max_rows=len(shown),
        )
    )
    return "\n".join(out)


def write_png(document: Mapping[str, Any], path: Path) -> Path:
    """A chart of the daily series: revenue as bars, purchases as a line on a second axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import dates as mdates

    days = [datetime.fromisoformat(d["date"]) for d in document["daily"]]
    revenue = [float(d["revenue"]) for d in document["daily"]]
    purchases = [d["purchases"] for d in document["daily"]]
    figure, left = plt.subplots(figsize=(max(6.0, min(16.0, len(days) * 0.3)), 4.5), dpi=100)
    try:
        left.bar(days, revenue, color="#4C72B0", label="revenue")
        left.set_ylabel("revenue")
        right = left.twinx()
        right.plot(days, purchases, color="#DD8452", marker="o", markersize=3, label="purchases")
        right.set_ylabel("purchases")
        right.set_ylim(bottom=0)
        left.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
        figure.autofmt_xdate()
        left.set_title(f"{document['tenant_id']}: {document['from']} to {document['to']}")
        handles = left.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
        left.legend(handles, ["revenue", "purchases"], loc="upper left")
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, format="png")
    finally:
        plt.close(figure)
    return path


# ------------------------------------------------------------------------------------------------ back ends


def report_from_pipeline(request: report.ReportRequest, csvs: Sequence[Path]) -> dict[str, Any]:
    """Run the local pipeline on `csvs` (embedded moto), then the report on DuckDB over its documents."""
    from local.moto_server import local_aws
    from local.pipeline import LocalPipeline
    from local.stack import create_stack

    def progress(message: str) -> None:
        print(f"  · {message}", file=sys.stderr, flush=True)

    with local_aws() as aws:
        pipeline = LocalPipeline(create_stack(aws.clients, "local"), progress=progress)
        for csv in csvs:
            pipeline.upload(csv)
            pipeline.run_until_idle()
        pipeline.compact(full=True)  # the report reads the compacted table, as on AWS
        with pipeline.athena() as athena:
            return report.generate_report(request, LocalRunner(athena), generated_at=datetime.now(UTC))


def _names(aws: AwsClients, stage: str) -> config.StackNames:
    account_id = aws.client("sts").get_caller_identity()["Account"]
    return config.stack_names(stage, account_id=account_id, region=aws.region or config.raw_config()["region"])


def report_from_bucket(aws: AwsClients, request: report.ReportRequest, stage: str) -> dict[str, Any]:
    """DuckDB over the documents in the stage's bucket (``aws``: the clients of the stack's endpoint)."""
    from local.athena_duckdb import LocalAthena

    names = _names(aws, stage)
    with LocalAthena(names.bucket, config.prefixes()["compras"], aws=aws) as athena:
        return report.generate_report(request, LocalRunner(athena), generated_at=datetime.now(UTC))


def report_from_athena(
    aws: AwsClients, request: report.ReportRequest, stage: str, timeout_seconds: float
) -> dict[str, Any]:
    """Athena in the stage's workgroup, with the stage's Glue database."""
    from lambdas.adapters.athena import AthenaRunner
    from lambdas.domain import queries

    names = _names(aws, stage)
    runner = AthenaRunner(
        aws,
        query_file=queries.load(),
        workgroup=names.athena_workgroup,
        database=names.glue_database,
        deadline=time.monotonic() + timeout_seconds,
    )
    return report.generate_report(request, runner, generated_at=datetime.now(UTC))


# ------------------------------------------------------------------------------------------------ CLI


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m local.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenant", required=True, help="tenant_id (the store)")
    parser.add_argument("--from", dest="date_from", required=True, metavar="YYYY-MM-DD", help="first day")
    parser.add_argument("--to", dest="date_to", required=True, metavar="YYYY-MM-DD", help="last day (inclusive)")
    parser.add_argument("--png", type=Path, help="write a chart of the daily series to this PNG file")
    parser.add_argument("--json", type=Path, help="write the report JSON to this file")
    parser.add_argument(
        "--csv",
        type=Path,
        action="append",
        help="local pipeline mode: CSV file(s) to ingest first, in order (default: the shipped sample + corrections)",
    )
    parser.add_argument("--endpoint-url", help=f"use the stack at this endpoint (e.g. `make serve`: {SERVE_ENDPOINT})")
    parser.add_argument("--athena", action="store_true", help="run the queries on Athena (real AWS by default)")
    parser.add_argument("--stage", help="stage of the stack (default: local, or dev with --athena)")
    parser.add_argument("--timeout", type=float, default=300.0, help="Athena: seconds for all the queries")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    max_days = int(config.function_settings("report")["maxRangeDays"])
    try:
        request = report.parse_request(
            {"tenant_id": args.tenant, "from": args.date_from, "to": args.date_to}, max_range_days=max_days
        )
    except report.ReportParameterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    # The stage's endpoint (None: AWS) and the config's region; credentials from boto3's usual chain.
    aws = AwsClients(endpoint_url=args.endpoint_url, region=config.raw_config()["region"])
    if args.athena:
        document = report_from_athena(aws, request, args.stage or "dev", args.timeout)
    elif args.endpoint_url:
        document = report_from_bucket(aws, request, args.stage or "local")
    else:
        missing = [str(p) for p in (args.csv or []) if not p.is_file()]
        if missing:
            print(f"error: --csv file(s) not found: {', '.join(missing)}", file=sys.stderr)
            return 2
        document = report_from_pipeline(request, args.csv or [p for p in DEFAULT_CSVS if p.is_file()])
    print(render(document))
    if args.json:
        args.json.write_text(report.to_json(document, indent=2) + "\n", encoding="utf-8")
        print(f"\nreport JSON written to {args.json}")
    if args.png:
        write_png(document, args.png)
        print(f"daily chart written to {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
