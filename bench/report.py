"""docs/benchmarks.md from the run's results: medians, ratios, rows/s, CPU, RSS, ceilings, targets, paper costs."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench import costs

ANALYSIS = Path(__file__).resolve().parent / "analysis.md"  # profiling notes, written by hand after a run
TARGET_LATENCY_MS = 10.0
OURS_INGEST = "ours (ingestion handler)"
OURS_STREAM = "ours (stream handler), batch {}"
PUT_CSV = "awswrangler put_csv"
PER_ROW = "put_item per row"
SEQUENTIAL = "sequential put_object"


class Cell:
    """The runs of one contender on one input and endpoint: medians and the stand-in's counts."""

    def __init__(self, runs: list[Any]) -> None:
        ok = [r for r in runs if r.ok]
        self.runs, self.ok = runs, ok
        first = runs[0]
        self.kind, self.contender, self.label = first.kind, first.contender, first.label
        self.size, self.order, self.endpoint, self.latency = first.size, first.order, first.endpoint, first.latency_ms
        self.batch = first.batch
        self.rows = first.rows or first.size  # rows actually loaded
        self.wall = statistics.median(r.wall_s for r in ok) if ok else None
        self.cpu = statistics.median(r.cpu_s for r in ok) if ok else None
        server = [r.server_cpu_s for r in ok if r.server_cpu_s is not None]
        self.server_cpu = statistics.median(server) if server else None
        self.rss = max(r.peak_rss_mb for r in ok) if ok else None
        trees = [r.extra.get("tree_peak_rss_mb") for r in ok if r.extra.get("tree_peak_rss_mb")]
        self.tree_rss = max(trees) if trees else self.rss
        self.rss_before = max(r.rss_before_mb for r in ok) if ok else None
        self.processes = max((r.extra.get("max_child_processes") or 0 for r in ok), default=0)
        self.rate = self.rows / self.wall if self.wall else None
        self.spread = (min(r.wall_s for r in ok), max(r.wall_s for r in ok)) if ok else None
        self.purchases = first.extra.get("purchases")
        stats = [r.extra["standin"] for r in ok if r.extra.get("standin")]
        self.standin = stats[0] if stats else None
        self.max_in_flight = max((s["max_in_flight"] for s in stats), default=None)
        cpus = [s["cpu_s"] for s in stats]
        self.standin_cpu = statistics.median(cpus) if cpus else None

    # ---- what the stand-in saw ---------------------------------------------------------------------
    def write_ops(self) -> tuple[int, int]:
        """(requests, items) of the write operations the stand-in answered (DynamoDB or S3, by kind)."""
        if not self.standin:
            return 0, 0
        prefix = "S3." if self.kind == "stream" else "DynamoDB."
        ops = [v for k, v in self.standin["operations"].items() if k.startswith(prefix)]
        return sum(o["requests"] for o in ops), sum(o["items"] for o in ops)

    @property
    def items_put(self) -> int | None:
        if not self.standin:
            return None
        return self.standin["dynamodb_items_put"] if self.kind == "ingestion" else self.write_ops()[1]

    @property
    def items_per_s(self) -> float | None:
        return self.items_put / self.wall if self.items_put is not None and self.wall else None


def _fmt(value: float | None, spec: str = ",.0f", none: str = "–") -> str:
    return none if value is None else format(value, spec)


def _times(value: float | None, spec: str = ".1f") -> str:
    return "–" if value is None else f"{value:{spec}}×"


def _cells(results: list[Any]) -> list[Cell]:
    groups: dict[tuple, list[Any]] = defaultdict(list)
    for r in results:
        groups[(r.kind, r.endpoint, r.latency_ms, r.size, r.order, r.label)].append(r)
    return sorted(
        (Cell(runs) for runs in groups.values()),
        key=lambda c: (c.kind, c.endpoint != "standin", c.latency, c.size, c.order, _rank(c.label)),
    )


def _find(cells: list[Cell], **match: Any) -> Cell | None:
    for cell in cells:
        if all(getattr(cell, k) == v for k, v in match.items()):
            return cell
    return None


def _ratio(ours: Cell | None, other: Cell | None) -> float | None:
    if ours is None or other is None or not ours.rate or not other.rate:
        return None
    return ours.rate / other.rate


def _rank(label: str) -> int:
    for i, prefix in enumerate(["ours", "put_item", "batch_writer", "awswrangler", "sequential"]):
        if label.startswith(prefix):
            return i
    return 99


def ceiling(cell: Cell, design: dict[str, Any]) -> tuple[float, str] | None:
    """(items/s, formula) the contender could reach if the client cost nothing: requests in flight x items per
    request / latency. None without latency (moto directly)."""
    if not cell.latency:
        return None
    seconds = cell.latency / 1000
    lat = f"{cell.latency:g} ms"
    if cell.contender == "ingestion:ours":
        # writeConcurrency is the function's requests in flight, shared among its n worker processes
        # (ceil(writeConcurrency / n) each; docs/ingestion-design.md).
        processes = max(1, cell.processes)
        items, conc = design["transaction_items"], design["write_concurrency"]
        in_flight = processes * -(-conc // processes)
        return (
            in_flight * items / seconds,
            f"{in_flight} requests in flight (writeConcurrency {conc} over {processes} process(es)) × {items} items "
            f"per TransactWriteItems ÷ {lat}",
        )
    if cell.contender == "ingestion:batch_writer":
        return design["batch_write_items"] / seconds, f"1 thread × 25 items per BatchWriteItem ÷ {lat}"
    if cell.contender == "ingestion:wrangler":
        threads = design["wrangler_threads"]
        return threads * 25 / seconds, f"{threads} threads × 25 items per BatchWriteItem ÷ {lat}"
    if cell.contender == "ingestion:put_item":
        return 1 / seconds, f"1 item per PutItem ÷ {lat}"
    if cell.contender == "stream:ours":
        conc = design["put_concurrency"]
        return conc / seconds, f"putConcurrency {conc} objects in flight ÷ {lat}"
    if cell.contender == "stream:sequential_puts":
        return 1 / seconds, f"1 PutObject at a time ÷ {lat}"
    return None


def _verdict(value: float | None, threshold: float, higher_is_better: bool = True) -> str:
    if value is None:
        return "NOT MEASURED"
    return "PASS" if (value >= threshold if higher_is_better else value <= threshold) else "MISS"


def render(results: list[Any], conditions: dict[str, Any], args: Any, extra: dict[str, Any] | None = None):
    extra = extra or {}
    design = conditions.get("design") or {}
    cells = _cells(results)
    lines: list[str] = []
    add = lines.append
    standin = [c for c in cells if c.endpoint == "standin"]
    moto = [c for c in cells if c.endpoint != "standin"]

    add("# Benchmarks")
    add("")
    add("Generated by `python -m bench` (`make bench`); do not edit by hand: bench/README.md explains the")
    add("harness, docs/benchmarks.md is rewritten by every run. The headline figures run against `bench.standin`,")
    add("a local endpoint that answers the DynamoDB and S3 writes itself after a fixed latency (and forwards")
    add("everything else to moto), so they measure the contenders' own cost; the end-to-end runs against moto")
    add("check every item and object in the server but mostly measure moto's CPU. Both compare contenders")
    add("side by side under identical conditions on one machine: they are not AWS service figures.")
    add("")
    _conditions(add, conditions, args, design)

    verdicts = _targets(cells)
    add("## Targets (issue 11)")
    add("")
    add("| target | measured | verdict |")
    add("|---|---|---|")
    for name, measured, verdict in verdicts:
        add(f"| {name} | {measured} | **{verdict}** |")
    add("")

    if standin:
        ingestion = [c for c in standin if c.kind == "ingestion"]
        # The comparison: inputs that more than one contender loaded (ours alone on the big files is below).
        contenders = defaultdict(set)
        for c in ingestion:
            contenders[(c.latency, c.size, c.order)].add(c.contender)
        _standin_ingestion(
            add, [c for c in ingestion if len(contenders[(c.latency, c.size, c.order)]) > 1], design, args
        )
        _by_order(add, [c for c in standin if c.kind == "ingestion" and c.contender == "ingestion:ours"], design)
        _standin_stream(add, [c for c in standin if c.kind == "stream"], design)
        _ceilings(add, design)
    if moto:
        _moto(add, moto, args)
    if ANALYSIS.exists():
        add("## What bounds the figures (hand-written notes, bench/analysis.md)")
        add("")
        add(ANALYSIS.read_text(encoding="utf-8").strip())
        add("")
    _paper(add, cells, extra)
    targets = [f"{verdict:4} {name}: {measured}" for name, measured, verdict in verdicts]
    return "\n".join(lines).rstrip() + "\n", targets


def _conditions(add, conditions: dict[str, Any], args: Any, design: dict[str, Any]) -> None:
    start = conditions["start"]
    add("## Run conditions")
    add("")
    add(f"- date: {start['date_utc']}; command: `python -m bench {' '.join(conditions['argv'])}`")
    add(
        f"- machine: {start['cpus']} CPUs, load average at start {', '.join(f'{x:.2f}' for x in start['load_avg'])}"
        f", at end {', '.join(f'{x:.2f}' for x in conditions['end_load_avg'])} "
        "(the machine was shared with other work: expect noise; ratios measured side by side are what count)"
    )
    add(f"- Python {start['python']}, moto {start['moto']}, boto3 {start['boto3']}; {start['platform']}")
    dirty = " plus uncommitted changes under lambdas/, local/ or bench/" if start.get("uncommitted_code") else ""
    add(f"- code: commit {start.get('commit', 'unknown')}{dirty}")
    add(
        f"- {args.reps} repetition(s) per stand-in cell up to {args.reps_max_rows:,} rows ({args.large_reps} above),"
        f" {getattr(args, 'moto_reps', 1)} per moto cell; contenders alternated (order rotated every repetition);"
        f" total run time {conditions['duration_s'] / 60:.1f} min"
    )
    standin_ms = getattr(args, "standin_ms", [])
    if standin_ms:
        add(
            f"- stand-in: `python -m bench.standin` at {', '.join(f'{x:g}' for x in standin_ms)} ms per request, "
            "one asyncio process (it answers BatchWriteItem/PutItem/TransactWriteItems/PutObject itself and "
            "forwards the rest, e.g. the CSV's GetObject and Glue, to moto after the same latency)"
        )
    add(
        "- one `moto_server` process for the end-to-end runs"
        + (" (latency > 0: a threaded reverse proxy in front of it sleeps that long per request)" if any(
            x > 0 for x in getattr(args, "latencies", [])
        ) else "")
    )  # fmt: skip
    if design:
        add(
            f"- design (config/pipeline.yml): ingestion memorySize {design['ingestion_memory_mb']} MB "
            f"(AWS_LAMBDA_FUNCTION_MEMORY_SIZE given to the handler), writeConcurrency {design['write_concurrency']}"
            f", up to {design['transaction_items']} conditional Puts per TransactWriteItems, maxWorkerProcesses "
            f"{design['max_worker_processes']}; stream memorySize {design['stream_memory_mb']} MB, putConcurrency "
            f"{design['put_concurrency']}"
        )
    add("")


def _standin_ingestion(add, cells: list[Cell], design: dict[str, Any], args: Any) -> None:
    if not cells:
        return
    add("## Ingestion against the stand-in: the same CSV, side by side")
    add("")
    add("Median wall time of the contender's work (imports and client creation excluded, as in a warm Lambda);")
    add("rows/s = CSV rows ÷ median; `ours ÷ this` = our rows/s ÷ the contender's on the same file and latency;")
    add("CPU = process CPU time, user + system, all threads and worker processes; requests and items as the")
    add("stand-in counted them; `share of ceiling` = items written per second ÷ the contender's ceiling (below).")
    add("Peak RSS: the summed RSS of the process and its worker processes, sampled every 20 ms (an upper bound:")
    add("pages shared copy-on-write count twice), the RSS after imports in brackets.")
    add("")
    add(
        "| latency | rows | order | contender | runs ok | median s (min–max) | rows/s | ours ÷ this | CPU s "
        "(per 100k rows) | requests × items each | max in flight | share of ceiling | peak RSS MB |"
    )
    add("|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for cell in cells:
        ours = _find(cells, label=OURS_INGEST, size=cell.size, order=cell.order, latency=cell.latency)
        ratio = _ratio(ours, cell) if cell.contender != "ingestion:ours" else None
        label = cell.label if cell.rows == cell.size else f"{cell.label} (first {cell.rows:,} rows)"
        add(
            f"| {cell.latency:g} ms | {cell.size:,} | {cell.order} | {label} | {len(cell.ok)}/{len(cell.runs)} | "
            f"{_wall(cell)} | {_fmt(cell.rate)} | {_times(ratio)} | {_cpu(cell)} | {_requests(cell)} | "
            f"{_fmt(cell.max_in_flight)} | {_share(cell, design)} | {_fmt(cell.tree_rss)} [{_fmt(cell.rss_before)}] |"
        )
    add("")
    per_row = getattr(args, "per_row_max_rows", None)
    if per_row:
        add(f"Per-row `put_item` loads only the first {per_row:,} rows of each file (one request per row; its rows/s")
        add("does not depend on the file size).")
        add("")
    add("What each contender does:")
    add("")
    add("- **ours**: the real path. The CSV is uploaded to moto's `uploads/`, moto's S3 notification is taken from")
    add("  the ingest queue and handed to `lambdas.ingestion.handler.handler` as the SQS event Lambda delivers; the")
    add("  handler streams the object (GetObject, forwarded to moto), validates every row, groups the lines into")
    add("  purchases in bounded memory (spilling to /tmp), and writes each purchase once with conditional Puts")
    add("  (`source_order`) in TransactWriteItems calls, then its ingest report (PutObject). Guarantees on.")
    add("- **per-row put_item** / **batch_writer** / **awswrangler put_csv**: what a user would write instead:")
    add("  one item per CSV row (`store` → `tenant_id`, `ticket_id` → `compra_id`, other columns as strings),")
    add("  read from the local file, no validation, no grouping, no conditions, no report. They do less work")
    add("  than ours and write more, smaller items (rows vs purchases); the comparison is time to get the file")
    add("  into the table. `put_csv` gets `dtype=str` and its default thread count (one per CPU).")
    add("")


def _wall(cell: Cell) -> str:
    spread = f" ({cell.spread[0]:.2f}–{cell.spread[1]:.2f})" if cell.spread and len(cell.ok) > 1 else ""
    return f"{_fmt(cell.wall, '.2f')}{spread}"


def _cpu(cell: Cell) -> str:
    if cell.cpu is None:
        return "–"
    if cell.kind == "stream":
        return f"{cell.cpu:.1f} ({cell.cpu / cell.rows * 1000:.1f} ms/record)"
    return f"{cell.cpu:.1f} ({cell.cpu / cell.rows * 100_000:.1f})"


def _requests(cell: Cell) -> str:
    requests, items = cell.write_ops()
    return f"{requests:,} × {items / requests:.1f}" if requests else "–"


def _share(cell: Cell, design: dict[str, Any]) -> str:
    top = ceiling(cell, design) if design else None
    if top is None or cell.items_per_s is None:
        return "–"
    return f"{cell.items_per_s / top[0]:.1%} of {top[0]:,.0f}/s"


def _by_order(add, cells: list[Cell], design: dict[str, Any]) -> None:
    if not cells:
        return
    add("## Ours by row order: memory, CPU, writes per purchase, share of the ceiling (stand-in)")
    add("")
    add("Every run of our handler against the stand-in. `items ÷ purchases` = items the stand-in was asked to")
    add("write ÷ distinct (store, basket) in the file (1.00: each purchase written once); `keys` = distinct")
    add("(tenant_id, compra_id) written = purchases (nothing lost). Peak RSS as above (all processes, sampled)")
    add("and, in brackets, the parent process's exact VmHWM.")
    add("")
    add(
        "| rows | order | purchases | median s | rows/s | CPU s per 100k rows | peak RSS MB [parent] | worker "
        "processes | items ÷ purchases | keys = purchases | TransactWriteItems × items each | items/s | share of "
        "ceiling |"
    )
    add("|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|")
    for cell in sorted(cells, key=lambda c: (c.latency, c.size, c.order, c.label)):
        keys = cell.standin["dynamodb_keys"] if cell.standin else None
        per = cell.items_put / cell.purchases if cell.items_put is not None and cell.purchases else None
        tx = (cell.standin or {}).get("operations", {}).get("DynamoDB.TransactWriteItems")
        tx_text = f"{tx['requests']:,} × {tx['items'] / tx['requests']:.1f}" if tx else "–"
        add(
            f"| {cell.size:,} | {cell.order}{cell.label.removeprefix(OURS_INGEST)} | {_fmt(cell.purchases)} | "
            f"{_wall(cell)} | {_fmt(cell.rate)} | "
            f"{_fmt(cell.cpu / cell.size * 100_000 if cell.cpu is not None else None, '.1f')} | "
            f"{_fmt(cell.tree_rss)} [{_fmt(cell.rss)}] | {max(1, cell.processes)} | {_fmt(per, '.2f')} | "
            f"{'yes' if keys == cell.purchases else f'no ({keys})'} | {tx_text} | {_fmt(cell.items_per_s)} | "
            f"{_share(cell, design)} |"
        )
    add("")


def _standin_stream(add, cells: list[Cell], design: dict[str, Any]) -> None:
    if not cells:
        return
    add("## Stream export against the stand-in: stream records to JSON objects")
    add("")
    add("Records are real: a CSV is ingested by our handler into moto and the table's stream is read back")
    add("(INSERT records, NEW_AND_OLD_IMAGES), shaped as the Lambda event and cut into events of the batch size.")
    add("**ours** calls `lambdas.stream.handler.handler` once per event (parallel PUTs, Glue partitions through")
    add("the stand-in to moto); **sequential put_object** deserializes each image, `json.dumps` it and does one")
    add("`put_object` per record, one after the other (what most samples do).")
    add("")
    add(
        "| latency | records | contender | runs ok | median s (min–max) | records/s | this ÷ sequential | CPU s "
        "(per record) | PutObject | max in flight | share of ceiling | peak RSS MB |"
    )
    add("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for cell in cells:
        base = _find(cells, label=SEQUENTIAL, size=cell.size, latency=cell.latency)
        ratio = _ratio(cell, base) if cell.contender == "stream:ours" else None
        add(
            f"| {cell.latency:g} ms | {cell.size:,} | {cell.label} | {len(cell.ok)}/{len(cell.runs)} | {_wall(cell)} | "
            f"{_fmt(cell.rate)} | {_times(ratio)} | {_cpu(cell)} | {_fmt(cell.write_ops()[0])} | "
            f"{_fmt(cell.max_in_flight)} | {_share(cell, design)} | {_fmt(cell.tree_rss)} [{_fmt(cell.rss_before)}] |"
        )
    add("")


def _ceilings(add, design: dict[str, Any]) -> None:
    if not design:
        return
    add("### The ceilings")
    add("")
    add("What a contender would reach if its own CPU cost nothing: requests in flight × items per request ÷")
    add("latency. For ours, **writeConcurrency × items per TransactWriteItems ÷ latency** (writeConcurrency is")
    add("the function's requests in flight, shared among its worker processes: n × ⌈writeConcurrency ÷ n⌉; with")
    add(
        f"writeConcurrency {design['write_concurrency']} and {design['transaction_items']} items per transaction at "
        f"10 ms: {design['write_concurrency'] * design['transaction_items'] / 0.01:,.0f} purchases/s),"
    )
    add(
        f"and for the stream export **putConcurrency ÷ latency** ({design['put_concurrency']} ÷ 10 ms = "
        f"{design['put_concurrency'] / 0.01:,.0f} PUT/s); batch_writer 25 ÷ latency, put_csv threads × 25 ÷ latency,"
    )
    add("per-row put_item and sequential PUTs 1 ÷ latency. `processes` is the number of worker processes the")
    add("handler ran (observed), `max in flight` is the most requests the stand-in held at once (measured): the")
    add("share of the ceiling that is missing is the client's CPU per request (and the parts of the run that")
    add("send nothing: reading and parsing the CSV, grouping, the report).")
    add("")


def _moto(add, cells: list[Cell], args: Any) -> None:
    add("## End to end against moto (every item and object checked in the server)")
    add("")
    add("The same contenders against the `moto_server` process: the load is checked in moto (the table's")
    add("`ItemCount`, the objects under `compras/`). `moto CPU s` is the server's CPU during the run: when it is")
    add("close to the wall time, moto (one Python process, ~1.2 ms of CPU per item, ~4.6 ms per PutObject) is")
    add("the bottleneck, not the contender — why the targets are judged on the stand-in above.")
    add("")
    add(
        "| kind | latency | size | order | contender | runs ok | median s (min–max) | per s | ours ÷ this | CPU s "
        "| moto CPU s | peak RSS MB |"
    )
    add("|---|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for cell in cells:
        if cell.kind == "ingestion":
            ours = _find(cells, kind="ingestion", label=OURS_INGEST, size=cell.size, latency=cell.latency)
            ratio = _ratio(ours, cell) if cell.contender != "ingestion:ours" else None
        else:
            base = _find(cells, label=SEQUENTIAL, size=cell.size, latency=cell.latency)
            ratio = _ratio(cell, base) if cell.contender == "stream:ours" else None
        label = cell.label if cell.rows == cell.size else f"{cell.label} (first {cell.rows:,} rows)"
        order = cell.order if cell.kind == "ingestion" else "–"
        add(
            f"| {cell.kind} | {cell.latency:g} ms | {cell.size:,} | {order} | {label} | {len(cell.ok)}/{len(cell.runs)}"
            f" | {_wall(cell)} | {_fmt(cell.rate)} | {_times(ratio)} | {_fmt(cell.cpu, '.1f')} | "
            f"{_fmt(cell.server_cpu, '.1f')} | {_fmt(cell.tree_rss)} [{_fmt(cell.rss_before)}] |"
        )
    add("")


def _targets(cells: list[Cell]) -> list[tuple[str, str, str]]:
    at = [c for c in cells if c.endpoint == "standin" and c.latency == TARGET_LATENCY_MS]
    ingest = [c for c in at if c.kind == "ingestion"]
    out = []
    for baseline, threshold in ((PUT_CSV, 3.0), (PER_ROW, 50.0)):
        pairs = [
            (c.size, _ratio(_find(ingest, label=OURS_INGEST, size=c.size, order=c.order), c), c.order)
            for c in ingest
            if c.label == baseline and c.order == "interleaved"
        ]
        pairs = [p for p in pairs if p[1] is not None]
        size, ratio, _ = max(pairs) if pairs else (None, None, None)
        measured = f"{ratio:.1f}× at {size:,} interleaved rows" if ratio else "not measured"
        out.append(
            (f"ingestion ≥ {threshold:g}× {baseline} rows/s (stand-in 10 ms, interleaved)", measured,
             _verdict(ratio, threshold))
        )  # fmt: skip
    ours = [c for c in ingest if c.contender == "ingestion:ours" and c.cpu is not None and c.size >= 100_000]
    worst = max(ours, key=lambda c: c.cpu / c.size, default=None)
    cpu = worst.cpu / worst.size * 100_000 if worst else None
    out.append(
        (
            "ingestion CPU ≤ 5 s per 100k rows (worst of our runs ≥ 100k rows)",
            f"{cpu:.1f} s ({worst.order}, {worst.size:,} rows)" if worst else "not measured",
            _verdict(cpu, 5.0, higher_is_better=False),
        )
    )
    big = [c for c in cells if c.endpoint == "standin" and c.contender == "ingestion:ours" and c.size >= 1_000_000]
    for order in ("sorted", "interleaved", "shuffled"):
        cell = max((c for c in big if c.order == order), key=lambda c: c.size, default=None)
        rss = cell.tree_rss if cell else None
        out.append(
            (
                f"peak RSS ≤ 300 MB, 1M rows {order} (all processes)",
                f"{rss:.0f} MB ({cell.size:,} rows)" if rss else "not measured",
                _verdict(rss, 300, higher_is_better=False),
            )
        )
    ours_all = [c for c in cells if c.endpoint == "standin" and c.contender == "ingestion:ours" and c.ok]
    for order in ("sorted", "interleaved", "shuffled"):
        mine = [c for c in ours_all if c.order == order and c.items_put is not None and c.purchases]
        worst_ratio = max((c.items_put / c.purchases for c in mine), default=None)
        lost = [c for c in mine if c.standin["dynamodb_keys"] != c.purchases]
        verdict = "NOT MEASURED" if worst_ratio is None else ("PASS" if worst_ratio == 1 and not lost else "MISS")
        out.append(
            (
                f"items written ÷ purchases = 1.00, {order} (stand-in counts, every run)",
                f"{worst_ratio:.2f} over {len(mine)} run(s)" if worst_ratio is not None else "not measured",
                verdict,
            )
        )
    stream = [c for c in at if c.kind == "stream"]
    pairs = [
        (c.size, _ratio(c, _find(stream, label=SEQUENTIAL, size=c.size)))
        for c in stream
        if c.label == OURS_STREAM.format(100)
    ]
    pairs = [p for p in pairs if p[1] is not None]
    size, ratio = max(pairs) if pairs else (None, None)
    out.append(
        (
            "stream batch 100 ≥ 8× sequential put_object (stand-in 10 ms)",
            f"{ratio:.1f}× on {size:,} records" if ratio else "not measured",
            _verdict(ratio, 8.0),
        )
    )
    return out


def _paper(add, cells: list[Cell], extra: dict[str, Any]) -> None:
    inputs = _cost_inputs(cells, extra)
    add("## Paper estimate on real AWS: throughput and cost per million purchases")
    add("")
    if inputs is None:
        add("Not computed: it needs our ingestion and stream runs against the stand-in at 10 ms.")
        add("")
        return
    add(f"Prices: us-east-1 on-demand list prices as known in {costs.PRICES_AS_OF}; not re-checked from")
    add(
        "this machine (no internet): verify at https://aws.amazon.com/pricing/. Lambda x86 "
        f"${costs.LAMBDA_GB_SECOND:.10f}/GB-s and $0.20 per million requests; DynamoDB on-demand $0.625 per"
    )
    add("million WRU; S3 Standard $0.005 per 1,000 PUT and $0.0004 per 1,000 GET; SQS $0.40 per million")
    add("requests; Glue Data Catalog $1 per million requests beyond the free million.")
    add("")
    add("Assumptions:")
    add("")
    add(
        f"- {inputs.rows_per_purchase:.2f} CSV rows per purchase and ~{inputs.item_bytes:,.0f} B per purchase"
        " item (measured on the generated data; item size by DynamoDB's sizing rules from the stream images)"
    )
    add(
        f"- files of {inputs.rows_per_file:,} rows; ingestion at {inputs.ingestion_memory_mb} MB, stream "
        f"export at {inputs.stream_memory_mb} MB, batch {inputs.stream_batch} (config/pipeline.yml)"
    )
    add("- Lambda duration = the larger of the wall time measured here against the stand-in at 10 ms per request")
    add("  (real AWS round trips inside a region are ~5–20 ms) and the measured CPU time scaled to the vCPU share")
    add(f"  Lambda gives at that memory (1 vCPU at {costs.LAMBDA_MB_PER_VCPU} MB)")
    add(
        f"- every purchase written with {'a transactional' if inputs.transactional_writes else 'a standard'} Put"
        f" ({2 if inputs.transactional_writes else 1} WRU per started KB)"
    )
    add("- one INSERT per purchase (a correction adds a MODIFY: another stream record, S3 PUT and write)")
    add("- not included: storage (S3, DynamoDB), CloudWatch Logs ingestion, Athena scans, free tiers")
    add("")
    add("| item | how | USD per 1M purchases |")
    add("|---|---|---:|")
    rows = costs.estimate(inputs)
    for name, how, usd in rows:
        add(f"| {name} | {how} | {usd:,.4f} |")
    add(f"| **total** | | **{sum(u for _, _, u in rows):,.2f}** |")
    add("")
    add("| throughput | estimate |")
    add("|---|---|")
    for name, value in costs.throughput(inputs):
        add(f"| {name} | {value} |")
    add("")


def _cost_inputs(cells: list[Cell], extra: dict[str, Any]) -> costs.Inputs | None:
    import pipeline_config as config

    at = [c for c in cells if c.endpoint == "standin" and c.latency == TARGET_LATENCY_MS and c.rate]
    ours = sorted((c for c in at if c.contender == "ingestion:ours"), key=lambda c: (c.order == "interleaved", c.size))
    sb = sorted((c for c in at if c.label == OURS_STREAM.format(100)), key=lambda c: c.size)
    if not ours or not sb or not extra.get("item_bytes") or not extra.get("rows_per_purchase"):
        return None
    cell, s_cell = ours[-1], sb[-1]
    batches = s_cell.size / 100
    ingestion, stream_cfg = config.function_settings("ingestion"), config.function_settings("stream")
    transactional = bool((cell.standin or {}).get("operations", {}).get("DynamoDB.TransactWriteItems"))
    return costs.Inputs(
        rows_per_purchase=extra["rows_per_purchase"],
        item_bytes=extra["item_bytes"],
        ingestion_rows_per_s=cell.rate,
        ingestion_cpu_s_per_row=cell.cpu / cell.size,
        ingestion_memory_mb=int(ingestion["memorySize"]),
        rows_per_file=100_000,
        stream_batch=100,
        stream_batch_s=s_cell.wall / batches,
        stream_cpu_s_per_batch=s_cell.cpu / batches,
        stream_memory_mb=int(stream_cfg["memorySize"]),
        transactional_writes=transactional,
    )
