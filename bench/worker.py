"""One contender run, in its own process: ``python -m bench.worker SPEC.json RESULT.json``.

The parent (bench.run) prepares the server state and the inputs, then starts this process with the benchmark
endpoint (moto directly, or the latency proxy) in the spec (``endpoint_url``: our functions get it through their
AwsClients) and in the process environment (for the third-party baselines). Only the contender's work is
timed; imports and client creation happen first, as in a warm Lambda container. The result holds
wall time, process CPU time (user + system, all threads) of the timed part, and the process's peak
RSS (VmHWM: includes the interpreter and the imports, like a Lambda's "Max Memory Used").
"""

from __future__ import annotations

import contextlib
import csv
import json
import resource
import sys
import threading
import time
from pathlib import Path
from typing import Any

# Contenders that load the CSV one item per row key the item like this (a purchases-table key).
ROW_KEY_COLUMNS = {"store": "tenant_id", "ticket_id": "compra_id"}


def _context(function: str):
    """The Lambda context of the function as configured in config/pipeline.yml."""
    import pipeline_config as config
    from local.lambda_context import LocalLambdaContext

    settings = config.function_settings(function)
    return LocalLambdaContext(settings["name"], int(settings["memorySize"]), int(settings["timeout"]))


def _row_items(csv_path: str, max_rows: int | None = None):
    with open(csv_path, newline="", encoding="utf-8-sig") as fh:
        for number, row in enumerate(csv.DictReader(fh), start=1):
            if max_rows is not None and number > max_rows:
                return
            yield {ROW_KEY_COLUMNS.get(k, k): v for k, v in row.items()}


# ---- ingestion contenders: prepare() untimed, then run() timed -------------------------------------


def _clients(spec: dict[str, Any]):
    from lambdas.adapters.clients import AwsClients

    return AwsClients(endpoint_url=spec["endpoint_url"])  # region and credentials: this process's environment


def ingestion_ours(spec: dict[str, Any]):
    import os

    from lambdas.ingestion import handler as ingestion
    from lambdas.shared.settings import IngestionSettings

    aws = _clients(spec)
    aws.client("s3")
    aws.hot_client("dynamodb")  # the TransactWriteItems client (a warm container has it already)
    handler = ingestion.build_handler(IngestionSettings.from_env(os.environ), aws)
    event = json.loads(Path(spec["event_path"]).read_text(encoding="utf-8"))
    context = _context("ingestion")

    def run() -> dict[str, Any]:
        response = handler(event, context)
        failures = (response or {}).get("batchItemFailures", [])
        if failures:
            raise RuntimeError(f"ingestion handler reported failed messages: {failures}")
        return {"response": response}

    return run


def ingestion_put_item(spec: dict[str, Any]):
    import boto3

    table = boto3.resource("dynamodb").Table(spec["table"])

    def run() -> dict[str, Any]:
        for item in _row_items(spec["csv_path"], spec.get("max_rows")):
            table.put_item(Item=item)
        return {}

    return run


def ingestion_batch_writer(spec: dict[str, Any]):
    import boto3

    table = boto3.resource("dynamodb").Table(spec["table"])

    def run() -> dict[str, Any]:
        with table.batch_writer() as writer:
            for item in _row_items(spec["csv_path"]):
                writer.put_item(Item=item)
        return {}

    return run


def ingestion_wrangler(spec: dict[str, Any]):
    import awswrangler as wr

    with open(spec["csv_path"], encoding="utf-8-sig") as fh:
        header = next(csv.reader(fh))
    names = [ROW_KEY_COLUMNS.get(h, h) for h in header]
    wr.dynamodb.put_items(items=[], table_name=spec["table"])  # creates and caches its client

    def run() -> dict[str, Any]:
        # Strings as strings (no float prices, which DynamoDB rejects), keys renamed by header names.
        wr.dynamodb.put_csv(
            path=spec["csv_path"], table_name=spec["table"], header=0, names=names, dtype=str, keep_default_na=False
        )
        return {}

    return run


# ---- stream export contenders ----------------------------------------------------------------------


def stream_ours(spec: dict[str, Any]):
    import os

    from lambdas.shared.settings import StreamSettings
    from lambdas.stream import handler as stream

    aws = _clients(spec)
    for service in ("s3", "glue"):
        aws.client(service)
    aws.hot_client("s3")  # the PutObject client (a warm container has it already)
    handler = stream.build_handler(StreamSettings.from_env(os.environ), aws)
    events = json.loads(Path(spec["events_path"]).read_text(encoding="utf-8"))
    context = _context("stream")

    def run() -> dict[str, Any]:
        for event in events:
            response = handler(event, context)
            failures = (response or {}).get("batchItemFailures", [])
            if failures:
                raise RuntimeError(f"stream handler reported {len(failures)} failed records: {failures[:3]}")
        return {}

    return run


def stream_sequential_puts(spec: dict[str, Any]):
    """What most samples do: for each record, deserialize the image, json.dumps, one put_object."""
    from datetime import UTC, datetime

    import boto3
    from boto3.dynamodb.types import TypeDeserializer

    s3 = boto3.client("s3")
    deserializer = TypeDeserializer()
    events = json.loads(Path(spec["events_path"]).read_text(encoding="utf-8"))
    bucket, prefix = spec["bucket"], spec["prefix"]

    def run() -> dict[str, Any]:
        for event in events:
            for record in event["Records"]:
                change = record["dynamodb"]
                image = change.get("NewImage") or change["OldImage"]
                doc = {k: deserializer.deserialize(v) for k, v in image.items()}
                when = datetime.fromtimestamp(change["ApproximateCreationDateTime"], UTC).strftime("%Y%m%d_%H%M%S")
                day = str(doc["fecha"])[:10].replace("-", "/")
                key = (
                    f"{prefix}{doc['tenant_id']}/{day}/{record['eventName']}_{doc['compra_id']}_{when}_"
                    f"{change['SequenceNumber']}.json"
                )
                body = json.dumps(doc, default=str, ensure_ascii=False) + "\n"
                s3.put_object(Bucket=bucket, Key=key, Body=body.encode("utf-8"), ContentType="application/json")
        return {}

    return run


CONTENDERS = {
    "ingestion:ours": ingestion_ours,
    "ingestion:put_item": ingestion_put_item,
    "ingestion:batch_writer": ingestion_batch_writer,
    "ingestion:wrangler": ingestion_wrangler,
    "stream:ours": stream_ours,
    "stream:sequential_puts": stream_sequential_puts,
}


def _rss_mb(field: str) -> float:
    """VmHWM (peak) or VmRSS (current) of this process image, in MB. ru_maxrss is not usable: Linux
    carries it across exec, so a child would report its parent's peak from before the exec."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not found in /proc/self/status")


def _cpu_seconds() -> float:
    """CPU time of this process and of its children that have ended and been waited for (the handler's
    worker processes are joined before it returns)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


class TreeMemory:
    """Peak of the summed RSS of this process and its live children (the handler's forked worker processes),
    sampled every `interval` s in a daemon thread: what Lambda's *Max Memory Used* counts for a function that
    forks. Pages a child shares copy-on-write with the parent count twice, so it is an upper bound; a peak
    shorter than the interval can be missed (the parent's own VmHWM is exact and reported too)."""

    def __init__(self, interval: float = 0.02) -> None:
        import psutil

        self._me = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self.peak_bytes = 0
        self.max_children = 0
        self._thread = threading.Thread(target=self._run, name="tree-rss", daemon=True)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import psutil

        while True:
            total = self._me.memory_info().rss
            children = self._me.children(recursive=True)
            for child in children:
                with contextlib.suppress(psutil.Error):  # ended between the listing and the read
                    total += child.memory_info().rss
            self.peak_bytes = max(self.peak_bytes, total)
            self.max_children = max(self.max_children, len(children))
            if self._stop.wait(self._interval):
                return


def _start_profile() -> None:
    """CPU-time profile of EVERY thread (the handlers' work runs in thread pools, which a main-thread
    sampler such as pyinstrument does not see): yappi with the CPU clock, threads started later included."""
    import yappi

    yappi.set_clock_type("cpu")
    yappi.start(builtins=True, profile_threads=True)


def _stop_profile(wall: float, cpu: float, top: int = 45) -> str:
    """Text report: the functions with the most own CPU time (tsub) and with the most inclusive time
    (ttot), summed over all threads. Profiling slows the run: compare shares, not absolute seconds."""
    import yappi

    yappi.stop()
    stats = yappi.get_func_stats()
    threads = yappi.get_thread_stats()
    total = sum(t.ttot for t in threads) or 1.0

    def rows(sort: str) -> list[str]:
        stats.sort(sort, "desc")
        lines = []
        for f in list(stats)[:top]:
            where = f"{Path(f.module).name}:{f.lineno}" if f.module else "builtin"
            lines.append(f"{f.tsub:9.3f} {f.ttot:9.3f} {f.tsub / total:6.1%} {f.ncall:>9} {f.name} ({where})")
        return lines

    header = "    tsub s    ttot s  tsub%     calls function"
    out = [
        f"yappi CPU profile, all threads: wall {wall:.2f} s, process CPU {cpu:.2f} s (profiled: slower than a "
        f"normal run), thread CPU total {total:.2f} s over {len(threads)} threads",
        "",
        "## by own time (tsub)",
        header,
        *rows("tsub"),
        "",
        "## by inclusive time (ttot)",
        header,
        *rows("ttot"),
    ]
    yappi.clear_stats()
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> None:
    spec_path, result_path = (argv or sys.argv[1:])[:2]
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    run = CONTENDERS[spec["contender"]](spec)
    rss_before = _rss_mb("VmRSS")
    profiling = bool(spec.get("profile_path"))
    if profiling:
        _start_profile()
    with TreeMemory() as tree:
        cpu0, t0 = _cpu_seconds(), time.perf_counter()
        extra = run()
        wall, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
    if profiling:
        Path(spec["profile_path"]).write_text(_stop_profile(wall, cpu), encoding="utf-8")
    result = {
        "wall_s": wall,
        "cpu_s": cpu,
        "rss_before_mb": rss_before,
        "peak_rss_mb": _rss_mb("VmHWM"),
        "tree_peak_rss_mb": max(tree.peak_bytes / 1024 / 1024, _rss_mb("VmHWM")),
        "max_child_processes": tree.max_children,
        **{k: v for k, v in extra.items() if k != "response"},
    }
    Path(result_path).write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    main()
