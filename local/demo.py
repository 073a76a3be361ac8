"""`make demo` / `make serve`: the whole pipeline on an embedded AWS stand-in (moto), no account, no Docker.

    python -m local.demo                      # sample in, summary and every Athena query's result out
    python -m local.demo --serve --port 4566  # keep the stack up for your own uploads (Ctrl-C stops)

Demo: starts moto in server mode in this process, deploys the packaged serverless.yml of stage "local" into
moto's CloudFormation (local/stack.py; the template is packaged offline and cached, local/template.py),
uploads data/sample/tickets.csv to uploads/, lets S3 notify SQS and drives the real handlers through the
local pollers until idle; then uploads the correction file and deletes one purchase
(a removal), runs again, and prints files ingested, rows accepted/rejected (and where each report is),
purchases, JSON documents, partitions, the result table of every query of athena-queries.sql
(run locally on DuckDB) and the generarReporteCompras report of the busiest tenant.

Serve: the same stack on a fixed port with the pollers running continuously; it prints the exact
commands to upload a CSV and to look at the results, and a summary whenever something happened.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import pipeline_config as config
from local.moto_server import local_aws
from local.tables import format_table

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample" / "tickets.csv"
CORRECTIONS = ROOT / "data" / "sample" / "tickets-correcciones.csv"
STAGE = "local"


def print_summary(pipeline: Any, summary: Any = None) -> None:
    summary = summary or pipeline.summary()
    bucket = pipeline.names.bucket
    print("\n== Files ingested ==")
    for report in summary.files:
        print(
            f"  {report.key}: {report.status}; rows read {report.rows_read}, accepted {report.rows_loaded}, "
            f"rejected {report.rows_rejected}; purchases written {report.purchases_written}"
        )
        if report.reason:
            print(f"    file rejected: {report.reason}")
        for row in report.rejected_rows[:5]:
            print(f"    line {row.get('line')}: {row.get('reason')}")
        if len(report.rejected_rows) > 5:
            print(f"    ... {len(report.rejected_rows) - 5} more rejected rows in the report")
        print(f"    report: s3://{bucket}/{report.report_key}")
    print(f"  total rows accepted {summary.rows_loaded}, rejected {summary.rows_rejected}")
    print("\n== Results ==")
    print(f"  purchases in table {pipeline.names.table}: {summary.purchases_in_table}")
    print(f"  JSON documents under s3://{bucket}/compras/: {summary.documents}")
    print(f"  partitions: {summary.partitions_in_s3} in S3, {summary.partitions_in_glue} registered in Glue")
    print(f"  ingest DLQ messages: {summary.ingest_dlq_messages}; stream failures: {summary.stream_failure_messages}")


def print_queries(pipeline: Any) -> None:
    """The named queries over the compacted table, each checked against the same query over the JSON view."""
    with pipeline.athena() as athena:
        differ = []
        for query in athena.query_file.selects():
            result = athena.run(query.name)
            if athena.run(query.name, read_from="compras_actuales") != result:
                differ.append(query.name)
            print(f"\n== {query.name} ({len(result.rows)} rows) ==")
            print(f"   {query.description[:200]}")
            print(format_table(result.columns, result.rows))
        checked = len(athena.query_file.selects())
        if differ:
            print(f"\n!! compacted table and JSON view differ for: {', '.join(differ)} (changes not merged yet)")
        else:
            print(f"\n(all {checked} queries: compacted table compras_vigentes == JSON view compras_actuales)")


def print_report(pipeline: Any) -> None:
    """generarReporteCompras for the busiest tenant over its whole date range, on the same DuckDB runner."""
    from lambdas.domain import report
    from local.report import LocalRunner, render  # imported when used: it pulls in the report's query code

    with pipeline.athena() as athena:
        busiest = athena.run_sql(
            "SELECT tenant_id, min(dia), max(dia) FROM compras_vigentes GROUP BY tenant_id "
            "ORDER BY count(*) DESC, tenant_id LIMIT 1"
        ).rows
        if not busiest:
            return
        tenant, first, last = busiest[0]
        request = report.parse_request(
            {"tenant_id": tenant, "from": str(first), "to": str(last)},
            max_range_days=config.function_settings("report")["maxRangeDays"],
        )
        document = report.generate_report(request, LocalRunner(athena), generated_at=dt.datetime.now(dt.UTC))
    print(f"\n== generarReporteCompras: tenant {tenant}, {first} .. {last} ==")
    print(render(document))
    print(f"   (any tenant and range: python -m local.report --tenant {tenant} --from {first} --to {last})")


def _stack(aws: Any, progress: Any, lambda_log: Any) -> Any:
    from local.pipeline import LocalPipeline
    from local.stack import create_stack

    progress(f"deploying the packaged serverless.yml (stage {STAGE!r}) into moto's CloudFormation ...")
    stack = create_stack(aws.clients, STAGE, progress=progress)
    progress(f"Lambda logs and EMF metrics (JSON, as in CloudWatch) go to {lambda_log.name}")
    return LocalPipeline(stack, progress=progress, lambda_log=lambda_log)


def _lambda_log() -> Any:
    directory = Path(tempfile.mkdtemp(prefix="compras-local-"))
    return (directory / "lambda-logs.jsonl").open("a", encoding="utf-8")


def _quiet_warnings() -> None:
    # Powertools warns when a handler re-adds its default dimension on every invocation; not for the demo user.
    warnings.filterwarnings("ignore", message="Dimension 'function' has already been added")


def run_demo(sample: Path, corrections: Path | None, port: int = 0) -> int:
    out = sys.stdout  # the handlers' output is redirected while they run; progress is not

    def progress(message: str) -> None:
        print(f"  · {message}", file=out, flush=True)

    started = time.monotonic()
    with local_aws(port=port) as aws, _lambda_log() as lambda_log:
        print(f"local AWS (moto) listening on {aws.endpoint_url}")
        pipeline = _stack(aws, progress, lambda_log)
        pipeline.upload(sample)
        pipeline.run_until_idle()
        pipeline.compact()  # the first scheduled compactarCompras run: a full MERGE
        if corrections is not None and corrections.exists():
            pipeline.upload(corrections)
            pipeline.run_until_idle()
        with pipeline.athena() as athena:
            first = athena.run_sql("SELECT tenant_id, compra_id FROM compras_vigentes ORDER BY fecha LIMIT 1").rows
        if first:
            pipeline.delete_purchase(*first[0])
            pipeline.run_until_idle()
        # The sample's purchases are older than recentDays: the daily full run (forced here) merges their changes.
        pipeline.compact(full=True)
        print_summary(pipeline)
        print_queries(pipeline)
        print_report(pipeline)
    print(f"\ndone in {time.monotonic() - started:.1f} s")
    return 0


def serve(port: int, sample: Path | None, poll_seconds: float = 1.0) -> int:
    out = sys.stdout  # the handlers' output is redirected while they run; progress is not

    def progress(message: str) -> None:
        print(f"[{dt.datetime.now():%H:%M:%S}] {message}", file=out, flush=True)

    with local_aws(port=port) as aws, _lambda_log() as lambda_log:
        pipeline = _stack(aws, progress, lambda_log)
        bucket = pipeline.names.bucket
        prefixes = pipeline.prefixes
        endpoint = aws.endpoint_url
        print(
            f"""
The local stack (stage {STAGE!r}) is up at {endpoint}. In another terminal:

  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION={aws.region}
  aws --endpoint-url {endpoint} s3 cp tickets.csv s3://{bucket}/{prefixes["uploads"]}
  aws --endpoint-url {endpoint} s3 ls --recursive s3://{bucket}/{prefixes["ingestReports"]}
  aws --endpoint-url {endpoint} s3 ls --recursive s3://{bucket}/{prefixes["compras"]}
  aws --endpoint-url {endpoint} dynamodb scan --table-name {pipeline.names.table} --select COUNT
  .venv/bin/python verify_datacatalog.py --stage {STAGE} --endpoint-url {endpoint}

(no aws CLI? .venv/bin/python -c "import boto3; boto3.client('s3', endpoint_url='{endpoint}')
  .upload_file('tickets.csv', '{bucket}', '{prefixes["uploads"]}tickets.csv')")
Files are ingested as they arrive; a summary and the query results follow each change. Ctrl-C stops.
""",
            flush=True,
        )
        if sample is not None:
            pipeline.upload(sample)
        shown: tuple[int, ...] = (0, 0, 0)
        try:
            while True:
                if pipeline.run_until_idle():
                    summary = pipeline.summary()
                    state = (len(summary.files), summary.documents, summary.purchases_in_table)
                    if state != shown:  # not for messages that change nothing (e.g. S3's TestEvent)
                        shown = state
                        pipeline.compact(full=True)  # stands in for the schedule: the queries read the table
                        print_summary(pipeline, summary)
                        print_queries(pipeline)
                time.sleep(poll_seconds)
        except KeyboardInterrupt:
            print("\nstopping the local stack (its data is discarded)", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", action="store_true", help="keep the stack running for your own uploads")
    parser.add_argument("--port", type=int, default=None, help="port of the local endpoint (serve: 4566)")
    parser.add_argument("--sample", type=Path, default=SAMPLE, help=f"CSV to upload (default {SAMPLE})")
    parser.add_argument("--corrections", type=Path, default=CORRECTIONS, help="correction CSV uploaded second")
    parser.add_argument("--no-sample", action="store_true", help="serve: start empty")
    args = parser.parse_args(argv)
    _quiet_warnings()
    if args.serve:
        return serve(args.port if args.port is not None else 4566, None if args.no_sample else args.sample)
    return run_demo(args.sample, args.corrections, port=args.port or 0)


if __name__ == "__main__":
    sys.exit(main())
