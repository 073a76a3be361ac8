"""The benchmark run: every contender against the fixed-latency stand-in and against moto, alternating.

    python -m bench                      # default matrix (see bench/README.md), writes docs/benchmarks.md
    python -m bench --full               # adds 1M rows for every contender that can do it in reasonable time
    python -m bench --sizes 500 --reps 1 --stream-records 200 --big-rows 0   # smoke size

The headline figures run against bench.standin (DynamoDB/S3 writes answered after a fixed latency, the rest
forwarded to moto), so they measure our code rather than moto's CPU; moto keeps the end-to-end runs (every item
and object checked in the server). Every run starts from an identical, empty server state (POST /moto-api/reset,
then the stage's resources created from config/pipeline.yml; the stand-in's counts reset), and runs its
contender in a fresh subprocess (bench.worker) so time, CPU and peak RSS belong to that contender only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import data
from bench.server import ROOT, LatencyProxyProcess, MotoProcess
from bench.standin import StandinProcess

OUT = ROOT / "bench" / "out"
DEFAULT_REPORT = ROOT / "docs" / "benchmarks.md"
STAGE = "bench"

INGESTION = ["ingestion:ours", "ingestion:put_item", "ingestion:batch_writer", "ingestion:wrangler"]
STREAM_BASELINE = "stream:sequential_puts"
STANDIN, MOTO = "standin", "moto"


@dataclass
class RunResult:
    kind: str  # ingestion | stream
    contender: str
    label: str
    size: int  # CSV rows of the file (ingestion) or stream records (stream)
    batch: int | None  # records per stream event (stream)
    latency_ms: float
    rep: int
    expected: int
    found: int
    wall_s: float | None = None
    cpu_s: float | None = None
    peak_rss_mb: float | None = None
    rss_before_mb: float | None = None
    server_cpu_s: float | None = None  # CPU time of the moto server process during the run
    rows: int | None = None  # rows actually loaded, when fewer than `size` (per-row put_item)
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    endpoint: str = MOTO  # moto (directly or behind the latency proxy) | standin (bench.standin)
    order: str = "sorted"  # row order of the ingested CSV (bench.data.ORDERS)

    @property
    def ok(self) -> bool:
        return self.error is None and self.found == self.expected


def wrangler_available() -> bool:
    try:
        import awswrangler  # noqa: F401
    except ImportError:
        return False
    return True


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out = Path(args.work_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.results: list[RunResult] = []
        self.moto: MotoProcess | None = None
        self.proxies: dict[float, LatencyProxyProcess] = {}
        self.standins: dict[float, StandinProcess] = {}
        self.stack = None
        self._counter = 0
        self.extra: dict[str, Any] = {}  # measured facts the paper estimate needs

    # ---- servers ---------------------------------------------------------------------------------
    def start(self) -> None:
        self.moto = MotoProcess(self.out / "logs" / "moto.log")
        for latency in self.args.latencies:
            if latency > 0:
                self.proxies[latency] = LatencyProxyProcess(
                    self.moto.endpoint_url, latency, self.out / "logs" / f"proxy-{latency:g}ms.log"
                )
        for latency in self.args.standin_ms:
            self.standins[latency] = StandinProcess(
                latency, forward=self.moto.endpoint_url, log_path=self.out / "logs" / f"standin-{latency:g}ms.log"
            )
        from lambdas.adapters.clients import AwsClients
        from local.moto_server import FAKE_CREDENTIALS

        # The orchestrator itself (setup, checks) talks to moto directly, through explicit clients.
        self.aws = AwsClients(endpoint_url=self.moto.endpoint_url, region="us-east-1", credentials=FAKE_CREDENTIALS)
        # The environment each worker process starts with (a Lambda-like environment of its own).
        self.base_env = {
            "AWS_ACCESS_KEY_ID": FAKE_CREDENTIALS.access_key_id,
            "AWS_SECRET_ACCESS_KEY": FAKE_CREDENTIALS.secret_access_key,
            "AWS_SESSION_TOKEN": FAKE_CREDENTIALS.session_token or "",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",
        }

    def stop(self) -> None:
        for process in [*self.standins.values(), *self.proxies.values()]:
            process.stop()
        if self.moto:
            self.moto.stop()

    def endpoint(self, endpoint: str, latency_ms: float) -> str:
        if endpoint == STANDIN:
            return self.standins[latency_ms].endpoint
        return self.proxies[latency_ms].endpoint_url if latency_ms > 0 else self.moto.endpoint_url

    def fresh_stack(self):
        from local.stack import create_stack

        self.moto.reset()
        self.stack = create_stack(self.aws, stage=STAGE)
        return self.stack

    # ---- one contender run in its own process ----------------------------------------------------
    def run_worker(self, spec: dict[str, Any], endpoint: str, latency_ms: float) -> dict[str, Any]:
        self._counter += 1
        name = f"{self._counter:04d}-{spec['contender'].replace(':', '-')}"
        spec_path = self.out / "runs" / f"{name}.spec.json"
        result_path = self.out / "runs" / f"{name}.result.json"
        spec_path.parent.mkdir(parents=True, exist_ok=True)
        spec_path.write_text(
            json.dumps({**spec, "endpoint_url": self.endpoint(endpoint, latency_ms)}), encoding="utf-8"
        )
        function = spec["contender"].split(":")[0]
        env = {
            **os.environ,
            **self.base_env,
            **self.stack.lambda_environment(stack_function(function)),
            # What Lambda sets from the function's memorySize (the ingestion sizes its worker processes by it).
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.get("memory_mb") or self.memory_mb(function)),
            "AWS_ENDPOINT_URL": self.endpoint(endpoint, latency_ms),  # the third-party baselines (boto3, awswrangler)
            "PYTHONPATH": str(ROOT),
        }
        with (self.out / "logs" / f"{name}.log").open("wb") as log:
            proc = subprocess.run(
                [sys.executable, "-m", "bench.worker", str(spec_path), str(result_path)],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if proc.returncode != 0:
            tail = (self.out / "logs" / f"{name}.log").read_text(encoding="utf-8", errors="replace")[-1500:]
            raise RuntimeError(f"worker exited with {proc.returncode} (log {name}.log): ...{tail}")
        return json.loads(result_path.read_text(encoding="utf-8"))

    def memory_mb(self, function: str) -> int:
        import pipeline_config as config

        return self.args.lambda_memory_mb or int(config.function_settings(function)["memorySize"])

    def server_cpu_s(self) -> float:
        """CPU seconds used so far by the moto server process (all its threads)."""
        import psutil

        times = psutil.Process(self.moto.process.pid).cpu_times()
        return times.user + times.system

    def record(self, result: RunResult, spec: dict[str, Any], count) -> None:
        """Run the contender and check its load: `count()` returns what reached the server (moto's table or
        bucket, or the stand-in's distinct keys) and may add figures to ``result.extra``."""
        if result.endpoint == STANDIN:
            self.standins[result.latency_ms].reset()
        try:
            server_cpu = self.server_cpu_s()
            measured = self.run_worker(spec, result.endpoint, result.latency_ms)
            # Includes the worker's start-up, which sends no requests: the server's cost of the run.
            result.server_cpu_s = self.server_cpu_s() - server_cpu
            for key in ("wall_s", "cpu_s", "peak_rss_mb", "rss_before_mb"):
                setattr(result, key, measured.pop(key))
            result.extra.update(measured)
            result.found = count(result)
            if result.found != result.expected:
                result.error = f"expected {result.expected} items/objects, found {result.found}"
        except Exception as exc:
            result.error = str(exc)
        self.results.append(result)
        status = "ok" if result.ok else f"FAILED: {result.error}"
        wall = f"{result.wall_s:8.2f} s" if result.wall_s is not None else "      -  "
        where = f"{result.endpoint}:{result.latency_ms:g}ms"
        print(
            f"  {result.kind:9} {result.label:32} {result.order if result.kind == 'ingestion' else '':11} "
            f"n={result.size:>8} {where:>14} rep={result.rep} "
            f"{wall} cpu={result.cpu_s or 0:6.1f} s rss={result.extra.get('tree_peak_rss_mb') or 0:5.0f} MB  {status}",
            flush=True,
        )

    def standin_counts(self, result: RunResult) -> dict[str, Any]:
        """The stand-in's counts for the run just finished, kept with the result."""
        stats = self.standins[result.latency_ms].stats()
        result.extra["standin"] = stats
        return stats

    # ---- ingestion ---------------------------------------------------------------------------------
    def ingestion_run(
        self,
        contender: str,
        facts: data.CsvFacts,
        endpoint: str,
        latency_ms: float,
        rep: int,
        order: str,
        memory_mb: int | None = None,
    ) -> None:
        stack = self.fresh_stack()
        spec: dict[str, Any] = {"contender": contender, "table": stack.names.table, "csv_path": str(facts.path)}
        label = LABELS[contender]
        if memory_mb:  # ours as a function of another memorySize (its vCPU share sizes its worker processes)
            spec["memory_mb"] = memory_mb
            label = f"{label}, {memory_mb} MB"
        rows = facts.rows
        if contender == "ingestion:ours":
            spec["event_path"] = str(self.ingestion_event(stack, facts))
            expected = facts.purchases
        elif contender == "ingestion:put_item" and facts.rows > self.args.per_row_max_rows:
            # One request per row: measured on the first rows of the same file (ticket ids are unique).
            rows = spec["max_rows"] = self.args.per_row_max_rows
            expected = rows
        else:
            expected = facts.row_keys
        if self.args.profile and contender == "ingestion:ours":
            spec["profile_path"] = str(
                self.out / f"profile-ingestion-{endpoint}-{order}-{facts.rows}-{latency_ms:g}ms.txt"
            )
        result = RunResult(
            "ingestion", contender, label, facts.rows, None, latency_ms, rep, expected, 0,
            endpoint=endpoint, order=order,
        )  # fmt: skip
        result.rows = rows
        result.extra["purchases"] = facts.purchases
        if endpoint == STANDIN:

            def count(result: RunResult) -> int:
                # Distinct (tenant_id, compra_id) keys the stand-in was asked to write.
                return self.standin_counts(result)["dynamodb_keys"]

        else:
            ddb = self.aws.client("dynamodb")

            def count(result: RunResult) -> int:
                return ddb.describe_table(TableName=stack.names.table)["Table"]["ItemCount"]

        self.record(result, spec, count)

    def ingestion_event(self, stack, facts: data.CsvFacts) -> Path:
        """Upload the CSV to uploads/ and collect what S3 sent to the ingest queue, as the SQS event
        Lambda would deliver (moto sends the notification on put_object)."""
        import pipeline_config as config

        key = f"{config.prefixes()['uploads']}bench/{facts.path.name}"
        with facts.path.open("rb") as body:
            self.aws.client("s3").put_object(Bucket=stack.names.bucket, Key=key, Body=body)
        event = sqs_event(stack, expect_key=key)
        path = self.out / "runs" / f"sqs-event-{facts.path.stem}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(event), encoding="utf-8")
        return path

    # ---- stream export -----------------------------------------------------------------------------
    def stream_events(self, records: int) -> list[dict[str, Any]]:
        """Real stream records: ingest a CSV with our handler into moto, read the table's stream from moto."""
        rows = records * 5 + 1000
        facts = data.tickets_csv(rows, self.args.seed + 1, self.out / "data")
        stack = self.fresh_stack()
        spec = {"contender": "ingestion:ours", "event_path": str(self.ingestion_event(stack, facts))}
        self.run_worker(spec, MOTO, 0)
        out = read_stream_records(stack)
        if len(out) < records:
            raise RuntimeError(f"stream has {len(out)} records, wanted {records}: make the CSV larger")
        return out[:records]

    def stream_run(
        self, contender: str, events_path: Path, records: int, batch: int, endpoint: str, latency_ms: float, rep: int
    ) -> None:
        import pipeline_config as config

        stack = self.fresh_stack()
        prefix = config.prefixes()["compras"]
        spec = {"contender": contender, "events_path": str(events_path), "bucket": stack.names.bucket, "prefix": prefix}
        if self.args.profile and contender == "stream:ours":
            spec["profile_path"] = str(self.out / f"profile-stream-{endpoint}-{batch}-{latency_ms:g}ms.txt")
        label = LABELS[contender] + (f", batch {batch}" if contender == "stream:ours" else "")
        result = RunResult("stream", contender, label, records, batch, latency_ms, rep, records, 0, endpoint=endpoint)
        if endpoint == STANDIN:

            def count(result: RunResult) -> int:
                by_prefix = self.standin_counts(result)["s3_objects_by_prefix"]
                return by_prefix.get(f"{stack.names.bucket}/{prefix}", 0)

        else:
            s3 = self.aws.client("s3")

            def count(result: RunResult) -> int:
                pages = s3.get_paginator("list_objects_v2").paginate(Bucket=stack.names.bucket, Prefix=prefix)
                return sum(page.get("KeyCount", 0) for page in pages)

        self.record(result, spec, count)

    # ---- the matrix --------------------------------------------------------------------------------
    def ingestion_contenders(self) -> list[str]:
        chosen = [c for c in INGESTION if c.split(":")[1] in self.args.ingestion]
        if "ingestion:wrangler" in chosen and not wrangler_available():
            print("awswrangler is not installed (pip install -r requirements-bench.txt): skipping it", flush=True)
            chosen.remove("ingestion:wrangler")
        return chosen

    def compare(self, contenders: list[str], sizes: list[int], endpoint: str, latency: float, reps: int) -> None:
        """Every contender on the comparison file of each size, alternating (order rotated every repetition)."""
        order = self.args.compare_order
        for size in sizes:
            facts = data.tickets_csv(size, self.args.seed, self.out / "data", order)
            self.extra["rows_per_purchase"] = facts.rows / facts.purchases
            print(
                f"ingestion on {endpoint} {latency:g} ms: {size} rows, {order} ({facts.purchases} purchases, "
                f"{facts.size_bytes / 1e6:.1f} MB)",
                flush=True,
            )
            plan: list[tuple[str, int | None]] = [(c, None) for c in contenders]
            if endpoint == STANDIN and "ingestion:ours" in contenders:
                plan += [("ingestion:ours", mb) for mb in self.args.ours_memory_mb]
            for rep in range(reps if size <= self.args.reps_max_rows else self.args.large_reps):
                shift = rep % len(plan)
                for contender, memory_mb in plan[shift:] + plan[:shift]:
                    self.ingestion_run(contender, facts, endpoint, latency, rep, order, memory_mb)

    def run(self) -> None:
        args = self.args
        contenders = self.ingestion_contenders()
        print(
            f"moto_server at {self.moto.endpoint_url}; stand-in latencies {args.standin_ms} ms; moto latencies "
            f"{args.latencies} ms; reps {args.reps}",
            flush=True,
        )
        for latency in args.standin_ms:
            self.compare(contenders, args.sizes, STANDIN, latency, args.reps)
        if args.big_rows and args.standin_ms:
            # Ours on a big file in every row order (peak RSS, CPU, writes per purchase, share of the ceiling).
            latency = args.standin_ms[0]
            for order in args.big_orders:
                facts = data.tickets_csv(args.big_rows, args.seed, self.out / "data", order)
                print(f"ingestion on the stand-in {latency:g} ms: {args.big_rows} rows, {order}", flush=True)
                self.ingestion_run("ingestion:ours", facts, STANDIN, latency, 0, order)
            if args.full:
                facts = data.tickets_csv(args.big_rows, args.seed, self.out / "data", args.compare_order)
                for contender in [c for c in contenders if c not in ("ingestion:ours", "ingestion:put_item")]:
                    self.ingestion_run(contender, facts, STANDIN, latency, 0, args.compare_order)
        for latency in args.latencies:
            self.compare(contenders, args.moto_sizes, MOTO, latency, args.moto_reps)
        if args.stream_records:
            self.run_stream()

    def run_stream(self) -> None:
        args = self.args
        records = args.stream_records
        print(f"stream export, {records} records", flush=True)
        all_records = self.stream_events(records)
        from bench.costs import item_size

        images = [r["dynamodb"].get("NewImage") or r["dynamodb"]["OldImage"] for r in all_records]
        self.extra["item_bytes"] = statistics.mean(item_size(image) for image in images)
        paths = {}
        for batch in args.stream_batches:
            events = [{"Records": all_records[i : i + batch]} for i in range(0, len(all_records), batch)]
            paths[batch] = self.out / "runs" / f"stream-events-{records}-b{batch}.json"
            paths[batch].write_text(json.dumps(events), encoding="utf-8")
        plan = [("stream:ours", b) for b in args.stream_batches] + [(STREAM_BASELINE, min(args.stream_batches))]
        targets = [(STANDIN, lat, args.reps) for lat in args.standin_ms] + [
            (MOTO, lat, args.moto_reps) for lat in args.latencies
        ]
        for endpoint, latency, reps in targets:
            for rep in range(reps):
                shift = rep % len(plan)
                for contender, batch in plan[shift:] + plan[:shift]:
                    self.stream_run(contender, paths[batch], records, batch, endpoint, latency, rep)


def stack_function(function: str) -> str:
    """The deployed function (local.stack key) whose environment a contender of `function` runs with."""
    from local.stack import INGESTION as INGESTION_FUNCTION
    from local.stack import STREAM as STREAM_FUNCTION

    return {"ingestion": INGESTION_FUNCTION, "stream": STREAM_FUNCTION}[function]


LABELS = {
    "ingestion:ours": "ours (ingestion handler)",
    "ingestion:put_item": "put_item per row",
    "ingestion:batch_writer": "batch_writer, 1 thread",
    "ingestion:wrangler": "awswrangler put_csv",
    "stream:ours": "ours (stream handler)",
    "stream:sequential_puts": "sequential put_object",
}


def sqs_event(stack, expect_key: str, timeout_s: float = 30.0) -> dict[str, Any]:
    """What S3 sent to the ingest queue for `expect_key` (and the s3:TestEvent before it), as the SQS
    event Lambda delivers (local.sqs_poller shapes it)."""
    from local.sqs_poller import SqsPoller

    poller = SqsPoller(stack.event_source("ingestarTickets"), handler=None, aws=stack.aws)
    name = expect_key.rsplit("/", 1)[-1]
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    while not any(name in m["Body"] for m in messages):
        if time.monotonic() > deadline:
            raise RuntimeError(f"no S3 notification for {expect_key} arrived on {stack.ingest_queue_url}")
        messages.extend(poller.receive_batch() or [])
        time.sleep(0.05)
    return poller.build_event(messages)


def read_stream_records(stack) -> list[dict[str, Any]]:
    """All records of the table's stream, shaped as in the Lambda DynamoDB Streams event."""
    from local.stream_poller import read_lambda_records

    return read_lambda_records(stack.aws, stack.table_stream_arn)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ints = lambda text: [int(x) for x in text.split(",") if x]  # noqa: E731
    floats = lambda text: [float(x) for x in text.split(",") if x]  # noqa: E731
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=ints,
        default=[10_000, 100_000],
        help="CSV rows per ingestion run against the stand-in (every contender, the --compare-order file)",
    )
    parser.add_argument("--reps", type=int, default=3, help="repetitions per cell (median reported)")
    parser.add_argument(
        "--standin-ms",
        dest="standin_ms",
        type=floats,
        default=[10.0],
        help="comma list of stand-in latencies (bench.standin answers the writes); empty to skip",
    )
    parser.add_argument(
        "--latency-ms",
        dest="latencies",
        type=floats,
        default=[0.0],
        help="comma list of latencies for the end-to-end runs against moto (0 = moto directly, else through "
        "the latency proxy); empty to skip",
    )
    parser.add_argument("--moto-sizes", type=ints, default=[10_000], help="CSV rows per end-to-end run on moto")
    parser.add_argument("--moto-reps", type=int, default=1, help="repetitions per end-to-end cell on moto")
    parser.add_argument(
        "--compare-order",
        choices=data.ORDERS,
        default="interleaved",
        help="row order of the file every ingestion contender loads",
    )
    parser.add_argument(
        "--big-orders",
        type=lambda t: [o for o in t.split(",") if o],
        default=list(data.ORDERS),
        help="row orders of the --big-rows runs (ours only, on the stand-in)",
    )
    parser.add_argument(
        "--ours-memory-mb",
        type=ints,
        default=[3538],
        help="extra runs of ours on the stand-in comparison files as a function of this memorySize (3538 MB = 2 "
        "vCPUs on Lambda: two worker processes); empty to skip",
    )
    parser.add_argument(
        "--lambda-memory-mb",
        type=int,
        default=None,
        help="AWS_LAMBDA_FUNCTION_MEMORY_SIZE given to the contenders (default: each function's memorySize)",
    )
    parser.add_argument(
        "--ingestion",
        type=lambda t: t.split(","),
        default=["ours", "put_item", "batch_writer", "wrangler"],
        help="ingestion contenders: ours,put_item,batch_writer,wrangler",
    )
    parser.add_argument(
        "--reps-max-rows", type=int, default=10_000, help="sizes above this get --large-reps repetitions"
    )
    parser.add_argument("--large-reps", type=int, default=1, help="repetitions for sizes above --reps-max-rows")
    parser.add_argument(
        "--per-row-max-rows",
        type=int,
        default=1_000,
        help="per-row put_item (~1 request per row) loads at most this many rows of each file",
    )
    parser.add_argument(
        "--big-rows",
        type=int,
        default=1_000_000,
        help="ours on a file this big in every --big-orders order, on the stand-in (peak RSS target); 0 to skip",
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="also run every contender but per-row put_item on --big-rows (adds tens of minutes)",
    )
    parser.add_argument("--stream-records", type=int, default=1_000, help="stream records per stream run; 0 skips")
    parser.add_argument("--stream-batches", type=ints, default=[100, 1000], help="records per stream event")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--profile", action="store_true", help="yappi CPU profiles (all threads) of our handlers, in --work-dir"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_REPORT, help="markdown report to write")
    parser.add_argument(
        "--report-only", action="store_true", help="re-render --out from --work-dir/results.json, run nothing"
    )
    parser.add_argument("--work-dir", type=Path, default=OUT, help="logs, raw results, generated data")
    return parser.parse_args(argv)


def machine_facts() -> dict[str, Any]:
    import boto3
    import moto

    return {
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "load_avg": os.getloadavg(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "moto": moto.__version__,
        "boto3": boto3.__version__,
        "commit": _git("rev-parse", "--short", "HEAD"),
        "uncommitted_code": _git("status", "--porcelain", "--", "lambdas", "local", "bench") != "",
    }


def design_facts(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the ceilings are computed from (config/pipeline.yml and the API limits)."""
    import pipeline_config as config

    ingestion, stream = config.function_settings("ingestion"), config.function_settings("stream")
    try:
        from lambdas.adapters.dynamodb import MAX_ACTIONS as transaction_items
    except ImportError:
        transaction_items = 100  # the TransactWriteItems limit
    return {
        "write_concurrency": int(ingestion["writeConcurrency"]),
        "transaction_items": transaction_items,
        "max_worker_processes": int(ingestion.get("maxWorkerProcesses", 1)),
        "ingestion_memory_mb": args.lambda_memory_mb or int(ingestion["memorySize"]),
        "put_concurrency": int(stream["putConcurrency"]),
        "stream_memory_mb": args.lambda_memory_mb or int(stream["memorySize"]),
        "batch_write_items": 25,
        "wrangler_threads": os.cpu_count() or 1,  # put_csv's default (use_threads=True: one per CPU)
    }


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report_only:
        return report_only(args)
    bench = Bench(args)
    started = time.perf_counter()
    conditions = {
        "start": machine_facts(),
        "design": design_facts(args),
        "argv": sys.argv[1:] if argv is None else argv,
    }
    try:
        bench.start()
        bench.run()
    finally:
        bench.stop()
    conditions["end_load_avg"] = os.getloadavg()
    conditions["duration_s"] = time.perf_counter() - started
    raw = {
        "conditions": conditions,
        "args": {k: str(v) for k, v in vars(args).items()},
        "extra": bench.extra,
        "results": [asdict(r) for r in bench.results],
    }
    (Path(args.work_dir) / "results.json").write_text(json.dumps(raw, indent=1), encoding="utf-8")
    return write_report(bench.results, conditions, args, bench.extra)


def write_report(results: list[RunResult], conditions: dict[str, Any], args: argparse.Namespace, extra) -> int:
    from bench import compaction, report

    text, targets = report.render(results, conditions, args, extra)
    text = compaction.keep_section(args.out, text)  # the section python -m bench.compaction writes
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"\nreport written to {args.out}")
    for line in targets:
        print(line)
    failed = [r for r in results if not r.ok]
    for r in failed:
        print(f"FAILED RUN: {r.kind} {r.label} n={r.size} latency={r.latency_ms:g}ms: {r.error}")
    return 1 if failed else 0


def report_only(args: argparse.Namespace) -> int:
    """Re-render the report from the last run's results.json (e.g. after editing bench/analysis.md)."""
    raw = json.loads((Path(args.work_dir) / "results.json").read_text(encoding="utf-8"))
    results = [RunResult(**r) for r in raw["results"]]
    run_args = parse_args(raw["conditions"]["argv"])
    run_args.out = args.out
    extra = raw.get("extra") or {}
    return write_report(results, raw["conditions"], run_args, extra)
