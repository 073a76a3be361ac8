"""Purchases from ticket lines: grouping, duplicates and conflicts, the 400 KB item check, the report.

Pure Python (no AWS): the object is given as a stream of byte chunks, read once, and the table as a
:class:`PurchaseSink`; lambdas/ingestion wires them to S3 (the exact object version the notification
announced) and DynamoDB (conditional writes on ``source_order``). docs/ingestion-design.md is the design:

1. Read and validate the whole object once, grouping the valid lines by (store, basket_id) in memory up to
   a budget (``memory_budget_bytes``); past it every line goes to ``/tmp`` in partitions by a stable hash of
   its key (:class:`SpillGrouper`). Memory is bounded whatever the row order; nothing is written yet.
2. Then build each purchase from ALL its lines (partition by partition when spilled) and hand it to the sink
   once. No fragment is ever written, rewritten or deleted.

The item schema is documented in docs/item-schema.md, the report in docs/csv-contract.md.
"""

from __future__ import annotations

import errno
import os
import pickle
import shutil
import struct
import tempfile
import time
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from datetime import UTC, datetime
from decimal import Decimal
from operator import attrgetter
from typing import Any, Protocol

from lambdas.domain import limits
from lambdas.domain.items import Producto, PurchaseItem
from lambdas.domain.tickets import FileRejected, RowRejection, TicketLine, parse_tickets

MAX_ITEM_BYTES = limits.DYNAMODB_MAX_ITEM_BYTES

Key = tuple[str, str]


SEQUENCER_WIDTH = 32  # S3 sequencers are hex strings compared after left-padding with zeros


@dataclass(frozen=True)
class SourceInfo:
    """The S3 object version a file's purchases come from.

    ``ingested_at`` is its LastModified (ISO 8601 UTC, ``YYYY-MM-DDTHH:MM:SSZ``); ``version_id`` is None for
    an unversioned bucket; ``sequencer`` and ``event_time`` are the S3 event's (None when the event had none).
    """

    bucket: str
    key: str
    etag: str
    ingested_at: str
    version_id: str | None = None
    sequencer: str | None = None
    event_time: str | None = None

    @property
    def order_time(self) -> str:
        """When the source was created, ``YYYY-MM-DDTHH:MM:SS.mmmZ``: the S3 event's eventTime (milliseconds)
        when known, else LastModified (whole seconds, ``.000``). LastModified alone cannot order two uploads
        of the same second (a correction uploaded right after the original would lose to it by key)."""
        if self.event_time:
            try:
                moment = datetime.fromisoformat(self.event_time)
            except ValueError:
                moment = None
            if moment is not None and moment.tzinfo is not None:
                moment = moment.astimezone(UTC)
                return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
        return self.ingested_at.removesuffix("Z") + ".000Z"

    @property
    def order(self) -> str:
        """``source_order``: a string whose byte order (DynamoDB compares strings as UTF-8 bytes) is the order
        of sources. The creation time first (:attr:`order_time`), then the key, then the S3 sequencer (orders
        the events of one key), then the version id (a deterministic last tie-break). The key is written in
        hex so that the byte order of the whole string is the order of the (time, key, sequencer, version)
        tuple: hex digits sort like the key's bytes and the space after it sorts below every hex digit, so a
        key that is a prefix of another sorts first. docs/operations.md documents the encoding and its tie-breaks."""
        sequencer = (self.sequencer or "").upper().rjust(SEQUENCER_WIDTH, "0")
        return f"{self.order_time} {self.key.encode('utf-8').hex()} {sequencer} {self.version_id or 'null'}"

    def item_attributes(self) -> dict[str, str]:
        """The source attributes every item of this source carries (docs/item-schema.md)."""
        attributes = {
            "source_bucket": self.bucket,
            "source_key": self.key,
            "source_etag": self.etag,
            "ingested_at": self.ingested_at,
            "source_order": self.order,
        }
        if self.version_id:
            attributes["source_version_id"] = self.version_id
        return attributes


@dataclass
class PurchaseResult:
    """What became of one (store, basket_id) group."""

    key: Key
    item: dict[str, Any] | None  # None: nothing to write (rejected, or every line rejected)
    lines: list[int]  # physical line numbers of all its rows
    duplicate_lines: list[int] = field(default_factory=list)  # exact repeats, counted once
    rejected_rows: list[RowRejection] = field(default_factory=list)  # conflicting ticket_id versions
    rejection: str | None = None  # the purchase as a whole was rejected

    @property
    def lines_of_rejection(self) -> list[int]:
        """The lines rejected together with the purchase (not the duplicates nor the conflicting ones)."""
        if self.rejection is None:
            return []
        individually = set(self.duplicate_lines) | {r.line for r in self.rejected_rows}
        return sorted(set(self.lines) - individually)

    @property
    def notable(self) -> bool:
        return self.item is None or bool(self.duplicate_lines or self.rejected_rows)


@dataclass
class WriteOutcome:
    """What became of the items handed to a sink, besides those written."""

    refused: list[tuple[dict[str, Any], str]] = field(default_factory=list)  # (item, reason), refused for good
    superseded: int = 0  # purchases not written: the table holds them from a newer source
    superseded_lines: int = 0  # their product lines


class PurchaseSink(Protocol):
    """Where purchase items go (lambdas/adapters/dynamodb.py: conditional writes on ``source_order``)."""

    def put(self, item: dict[str, Any]) -> None: ...

    def flush(self) -> WriteOutcome:
        """Wait for every write. Retriable failures that outlast the retries raise."""
        ...


# --------------------------------------------------------------------------------------------------
# One purchase
# --------------------------------------------------------------------------------------------------


def build_purchase(key: Key, lines: Iterable[TicketLine], source: SourceInfo) -> PurchaseResult:
    """The item of one (store, basket_id) group; the result does not depend on the order of ``lines``."""
    by_ticket: dict[str, list[TicketLine]] = defaultdict(list)
    all_lines: list[int] = []
    for line in lines:
        by_ticket[line.ticket_id].append(line)
        all_lines.append(line.line)
    result = PurchaseResult(key=key, item=None, lines=sorted(all_lines))

    kept: list[TicketLine] = []
    for ticket_id, versions in by_ticket.items():
        versions.sort(key=lambda v: v.line)
        if len({v.content() for v in versions}) == 1:
            kept.append(versions[0])
            result.duplicate_lines.extend(v.line for v in versions[1:])
        else:
            numbers = ", ".join(str(v.line) for v in versions)
            reason = (
                f"ticket_id {_short(ticket_id)} of basket {_short(key[1])} appears with different content "
                f"on lines {numbers}: every version is rejected"
            )
            result.rejected_rows.extend(RowRejection(v.line, reason) for v in versions)
    result.duplicate_lines.sort()
    result.rejected_rows.sort(key=lambda r: r.line)
    if not kept:
        return result

    user_ids = sorted({line.user_id for line in kept if line.user_id is not None})
    currencies = sorted({line.currency for line in kept if line.currency is not None})
    if len(user_ids) > 1:
        result.rejection = f"the lines of the purchase give different user_id values ({len(user_ids)} distinct)"
        return result
    if len(currencies) > 1:
        result.rejection = f"the lines of the purchase give different currencies ({', '.join(currencies)})"
        return result
    kept.sort(key=lambda line: (line.ticket_id, line.product_code))
    purchase = PurchaseItem(
        tenant_id=key[0],
        compra_id=key[1],
        fecha=min(line.timestamp for line in kept),
        productos=tuple(
            Producto(
                codigo=line.product_code,
                cantidad=line.quantity,
                nombre=line.product,
                categoria=line.category,
                precio_unitario=line.unit_price,
                ticket_id=line.ticket_id,
            )
            for line in kept
        ),
        user_id=user_ids[0] if user_ids else None,
        moneda=currencies[0] if currencies else None,
        source=_source_attributes(source),
    )
    problems = purchase.problems()
    if problems:
        result.rejection = "the purchase cannot reach the Glue table: " + "; ".join(problems)
        return result
    item = purchase.to_item()
    size = _size_upper_bound(item, kept)
    if size > MAX_ITEM_BYTES:
        size = item_size(item)
    if size > MAX_ITEM_BYTES:
        result.rejection = (
            f"the purchase ({len(kept)} lines) would be a {size:,}-byte DynamoDB item, over the "
            f"{MAX_ITEM_BYTES:,}-byte (400 KB) limit"
        )
        return result
    result.item = item
    return result


def _source_attributes(source: SourceInfo) -> dict[str, str]:
    """The attributes that tell which object version an ingested purchase comes from, and its order
    (docs/item-schema.md)."""
    return source.item_attributes()


_LINE_OVERHEAD = 160  # names, map/list overheads and numbers of one product map, generously
_ITEM_OVERHEAD = 400


def _size_upper_bound(item: dict[str, Any], lines: list[TicketLine]) -> int:
    """A cheap bound >= item_size (4 bytes per character at most in UTF-8): the exact walk is only needed
    for purchases near the limit."""
    chars = sum(len(v) for v in item.values() if isinstance(v, str))
    chars += sum(len(ln.product_code) + len(ln.product) + len(ln.category) + len(ln.ticket_id) for ln in lines)
    return _ITEM_OVERHEAD + _LINE_OVERHEAD * len(lines) + 4 * chars


def item_size(item: dict[str, Any]) -> int:
    """DynamoDB's size of an item (attribute names + values), by its documented rules, rounded up."""
    return sum(len(name.encode("utf-8")) + _value_size(value) for name, value in item.items())


def _value_size(value: Any) -> int:
    if value is None or isinstance(value, bool):
        return 1
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if isinstance(value, int | Decimal):
        digits = len(str(abs(value)).replace(".", "").strip("0")) or 1
        return (digits + 1) // 2 + 1
    if isinstance(value, list):
        return 3 + sum(1 + _value_size(v) for v in value)
    if isinstance(value, dict):
        return 3 + sum(1 + len(k.encode("utf-8")) + _value_size(v) for k, v in value.items())
    raise TypeError(f"unsupported item value type {type(value).__name__}")


# --------------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------------


class ReportBuilder:
    """Counts and lists what happened to a file; ``to_dict()`` is the report object's JSON.

    Accounting: rows_read = rows_loaded + rows_rejected + duplicate_rows + rows_superseded (blank lines are
    not rows); purchases_written counts the items the table took, purchases_superseded the purchases it
    already held from a newer source (docs/operations.md, "Never stale").
    """

    def __init__(self, source: SourceInfo, *, max_listed: int) -> None:
        self.source = source
        self.max_listed = max_listed
        self.file_rejection: str | None = None
        self.rows_read = 0
        self.rows_rejected = 0
        self.duplicate_rows = 0
        self.rows_superseded = 0
        self.purchases_written = 0
        self.purchases_rejected = 0
        self.purchases_superseded = 0
        self.rejected_rows: list[dict[str, Any]] = []
        self.rejected_purchases: list[dict[str, Any]] = []
        self.rows_not_listed = 0  # rejected rows counted but left out of the list (max_listed)
        self.purchases_not_listed = 0
        self.spilled_partitions = 0
        self.worker_processes = 1  # processes that built and wrote the purchases (not in the report object)
        self.duration_seconds = 0.0

    @property
    def rows_loaded(self) -> int:
        return self.rows_read - self.rows_rejected - self.duplicate_rows - self.rows_superseded

    def reject_row(self, rejection: RowRejection) -> None:
        self.rows_rejected += 1
        if len(self.rejected_rows) < self.max_listed:
            self.rejected_rows.append({"line": rejection.line, "reason": rejection.reason})
        else:
            self.rows_not_listed += 1

    def add_purchase(self, result: PurchaseResult) -> None:
        for rejection in result.rejected_rows:
            self.reject_row(rejection)
        self.duplicate_rows += len(result.duplicate_lines)
        if result.item is not None:
            self.purchases_written += 1
        elif result.rejection is not None:
            lines = result.lines_of_rejection
            self._reject_purchase(result.key, result.rejection, lines)
            self.rows_rejected += len(lines)

    def add_write_outcome(self, outcome: WriteOutcome) -> None:
        """What the table did with the items counted as written by add_purchase."""
        for item, reason in outcome.refused:
            self.purchases_written -= 1
            self.rows_rejected += len(item["productos"])
            key = (item["tenant_id"], item["compra_id"])
            self._reject_purchase(key, f"DynamoDB refused the item: {reason}", None)
        self.purchases_written -= outcome.superseded
        self.purchases_superseded += outcome.superseded
        self.rows_superseded += outcome.superseded_lines

    def merge(self, part: ReportBuilder) -> None:
        """Add what a worker process counted for its share of the purchases (:func:`ingest`): the counts are
        those the calling process would have counted alone; the lists keep ``max_listed`` entries each."""
        for name in _MERGED_COUNTS:
            setattr(self, name, getattr(self, name) + getattr(part, name))
        for entries, mine, overflow in (
            (part.rejected_rows, self.rejected_rows, "rows_not_listed"),
            (part.rejected_purchases, self.rejected_purchases, "purchases_not_listed"),
        ):
            kept = entries[: max(0, self.max_listed - len(mine))]
            mine.extend(kept)
            setattr(self, overflow, getattr(self, overflow) + len(entries) - len(kept))

    def _reject_purchase(self, key: Key, reason: str, lines: list[int] | None) -> None:
        self.purchases_rejected += 1
        if len(self.rejected_purchases) < self.max_listed:
            self.rejected_purchases.append({"tenant_id": key[0], "compra_id": key[1], "lines": lines, "reason": reason})
        else:
            self.purchases_not_listed += 1

    @property
    def status(self) -> str:
        if self.file_rejection is not None:
            return "rejected"
        if self.rows_rejected or self.purchases_rejected:
            return "loaded_with_rejections"
        return "loaded"

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": {
                "bucket": self.source.bucket,
                "key": self.source.key,
                "version_id": self.source.version_id,
                "etag": self.source.etag,
                "last_modified": self.source.ingested_at,
                "source_order": self.source.order,
            },
            "status": self.status,
            "file_rejection_reason": self.file_rejection,
            "counts": {
                "rows_read": self.rows_read,
                "rows_loaded": self.rows_loaded,
                "rows_rejected": self.rows_rejected,
                "duplicate_rows": self.duplicate_rows,
                "rows_superseded": self.rows_superseded,
                "purchases_written": self.purchases_written,
                "purchases_rejected": self.purchases_rejected,
                "purchases_superseded": self.purchases_superseded,
            },
            "rejected_rows": sorted(self.rejected_rows, key=lambda r: r["line"]),
            "rejected_rows_truncated": self.rows_not_listed > 0,
            "rejected_purchases": sorted(self.rejected_purchases, key=lambda p: (p["tenant_id"], p["compra_id"])),
            "rejected_purchases_truncated": self.purchases_not_listed > 0,
            "duration_seconds": round(self.duration_seconds, 3),
        }


_MERGED_COUNTS = (
    "rows_read",
    "rows_rejected",
    "duplicate_rows",
    "rows_superseded",
    "purchases_written",
    "purchases_rejected",
    "purchases_superseded",
    "rows_not_listed",
    "purchases_not_listed",
)


# --------------------------------------------------------------------------------------------------
# Grouping in bounded memory
# --------------------------------------------------------------------------------------------------

SPILL_PARTITIONS = 64  # partitions of a spill (and of each re-partitioning of a partition over budget)
_SPILL_BATCH_ROWS = 8192  # rows buffered across all partitions before they are appended to their files
_ROW_OVERHEAD_BYTES = 800  # a TicketLine in memory: the object, its str/Decimal objects, the list slot (tracemalloc)
_FIELDS = tuple(f.name for f in dataclass_fields(TicketLine))
_as_tuple = attrgetter(*_FIELDS)


def line_cost(line: TicketLine) -> int:
    """An estimate of the memory one grouped line takes (bytes; ASCII text, measured with tracemalloc)."""
    return (
        _ROW_OVERHEAD_BYTES
        + len(line.store)
        + len(line.basket_id)
        + len(line.ticket_id)
        + len(line.product_code)
        + len(line.product)
        + len(line.category)
    )


def _partition(key: Key, seed: int, partitions: int) -> int:
    """A stable hash of the key (crc32, the same in every process and run; ``seed`` = spill depth)."""
    return zlib.crc32(f"{key[0]}\x00{key[1]}".encode("utf-8", "surrogatepass"), seed) % partitions


class SpillTooLarge(Exception):
    """The spill directory is full: the file needs more ephemeral storage than the function has."""


class SpillGrouper:
    """Groups lines by (store, basket_id) within ``budget_bytes`` of estimated memory, whatever their order.

    Lines stay in a dict until the budget is reached; then every line (those held and all later ones) is
    appended to one of ``SPILL_PARTITIONS`` files under ``directory`` chosen by a stable hash of its key, and
    :meth:`groups` reads the partitions back one by one. A partition whose lines would not fit the budget
    is partitioned again with another hash seed. Peak memory: the budget, plus the largest single basket
    when one basket alone exceeds it, plus 8,192 lines of write buffer.
    """

    def __init__(self, budget_bytes: int, directory: str) -> None:
        self.budget = budget_bytes
        self.directory = directory
        self.used = 0
        self.groups_in_memory: dict[Key, list[TicketLine]] = {}
        self.spilled = False
        self.partition_files = 0
        self._pending: list[list[tuple]] = []
        self._pending_rows = 0
        self._costs: list[int] = []

    def add(self, line: TicketLine) -> None:
        if self.spilled:
            self._spill_one(line)
            return
        group = self.groups_in_memory.get(line.key)
        if group is None:
            self.groups_in_memory[line.key] = [line]
        else:
            group.append(line)
        self.used += line_cost(line)
        if self.used > self.budget:
            self._start_spilling()

    def finish(self) -> None:
        """After the last add(): the spill's last lines go to their files."""
        if self.spilled:
            self._write_pending()

    def groups(self, share: int = 0, of: int = 1) -> Iterator[tuple[Key, list[TicketLine]]]:
        """Every (key, all its lines) exactly once; call after finish().

        ``share``/``of``: only the groups of share ``share`` of ``of`` disjoint shares, whose union is every
        group: those whose first-level partition (``_partition(key, 0, SPILL_PARTITIONS)``) is ``share``
        modulo ``of`` -- whole spill partitions when spilled, the same rule for groups held in memory. Worker
        processes each take one share (:func:`ingest`)."""
        if not self.spilled:
            groups, self.groups_in_memory = self.groups_in_memory, {}
            keys = list(groups)
            if of > 1:
                keys = [key for key in keys if _partition(key, 0, SPILL_PARTITIONS) % of == share]
            yield from _released(groups, keys)
            return
        paths = [(self._path(0, p), self._costs[p]) for p in range(SPILL_PARTITIONS) if p % of == share]
        yield from self._read_partitions(paths, depth=0)

    # -- internals ------------------------------------------------------------------------------------

    def _path(self, depth: int, partition: int, parent: str = "") -> str:
        return os.path.join(self.directory, f"{parent}d{depth}p{partition:02d}.bin")

    def _start_spilling(self) -> None:
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        self.spilled = True
        self._pending = [[] for _ in range(SPILL_PARTITIONS)]
        self._costs = [0] * SPILL_PARTITIONS
        held, self.groups_in_memory = self.groups_in_memory, {}
        for lines in held.values():
            for line in lines:
                self._spill_one(line)
        self.used = 0

    def _spill_one(self, line: TicketLine) -> None:
        p = _partition(line.key, 0, SPILL_PARTITIONS)
        self._pending[p].append(_as_tuple(line))
        self._costs[p] += line_cost(line)
        self._pending_rows += 1
        if self._pending_rows >= _SPILL_BATCH_ROWS:
            self._write_pending()

    def _write_pending(self) -> None:
        for p, rows in enumerate(self._pending):
            if rows:
                _append_blob(self._path(0, p), rows)
                self._pending[p] = []
        self._pending_rows = 0

    def _read_partitions(self, paths: list[tuple[str, int]], depth: int) -> Iterator[tuple[Key, list[TicketLine]]]:
        for path, cost in paths:
            if not os.path.exists(path):
                continue
            self.partition_files += 1
            if cost > self.budget and depth < 4:
                yield from self._read_partitions(self._repartition(path, depth + 1), depth + 1)
                continue
            groups: dict[Key, list[TicketLine]] = defaultdict(list)
            for row in _read_blobs(path):
                line = TicketLine(*row)
                groups[line.key].append(line)
            os.remove(path)
            yield from _released(groups, list(groups))

    def _repartition(self, path: str, depth: int) -> list[tuple[str, int]]:
        """Split one partition over budget into SPILL_PARTITIONS files by a hash with another seed."""
        parent = os.path.basename(path)[: -len(".bin")] + "-"
        targets = [self._path(depth, p, parent) for p in range(SPILL_PARTITIONS)]
        costs = [0] * SPILL_PARTITIONS
        for rows in _read_blob_lists(path):
            split: list[list[tuple]] = [[] for _ in range(SPILL_PARTITIONS)]
            for row in rows:
                line = TicketLine(*row)
                p = _partition(line.key, depth, SPILL_PARTITIONS)
                split[p].append(row)
                costs[p] += line_cost(line)
            for p, part in enumerate(split):
                if part:
                    _append_blob(targets[p], part)
        os.remove(path)
        return list(zip(targets, costs, strict=True))


def _released(groups: dict[Key, list[TicketLine]], keys: list[Key]) -> Iterator[tuple[Key, list[TicketLine]]]:
    """``(key, lines)`` for ``keys`` in order, each dropped from ``groups`` as it is handed out (memory is released
    as purchases are built). Not ``groups.pop(next(iter(groups)))``: a dict iterates over the slots of the keys
    already popped, so that loop was quadratic (measured: 0.14 s for 31k groups, 35 s for 300k)."""
    for key in keys:
        yield key, groups.pop(key)


_LENGTH = struct.Struct("<I")


def _append_blob(path: str, rows: list[tuple]) -> None:
    data = pickle.dumps(rows, protocol=pickle.HIGHEST_PROTOCOL)
    try:
        with open(path, "ab") as out:
            out.write(_LENGTH.pack(len(data)))
            out.write(data)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise SpillTooLarge(str(exc)) from exc
        raise


def _read_blob_lists(path: str) -> Iterator[list[tuple]]:
    with open(path, "rb") as source:
        while header := source.read(_LENGTH.size):
            (size,) = _LENGTH.unpack(header)
            # Our own file: written just before by this process, in its own 0700 directory (spill_directory).
            yield pickle.loads(source.read(size))  # noqa: S301  # nosec B301


def _read_blobs(path: str) -> Iterator[tuple]:
    for rows in _read_blob_lists(path):
        yield from rows


def spill_directory(root: str | None = None) -> str:
    """This process's spill directory under /tmp (``root``); directories left by processes that no longer
    exist (a crashed or timed-out invocation: /tmp outlives it) are removed first."""
    root = root or tempfile.gettempdir()
    for name in os.listdir(root):
        if name.startswith("compras-spill-"):
            pid = name.rsplit("-", 1)[-1]
            if pid.isdigit() and (int(pid) == os.getpid() or not _alive(int(pid))):
                shutil.rmtree(os.path.join(root, name), ignore_errors=True)
    return os.path.join(root, f"compras-spill-{os.getpid()}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --------------------------------------------------------------------------------------------------
# A whole file
# --------------------------------------------------------------------------------------------------


def ingest(
    chunks: Iterable[bytes],
    source: SourceInfo,
    sink: PurchaseSink,
    *,
    max_listed: int,
    memory_budget_bytes: int,
    spill_root: str | None = None,
    clock: Callable[[], float] = time.monotonic,
    workers: WorkerPlan | None = None,
) -> ReportBuilder:
    """Ingest one file, read once from ``chunks``: every valid purchase goes to ``sink``, once; returns the
    report. ``max_listed`` (rejected rows / purchases listed one by one in the report) and ``memory_budget_bytes``
    (grouping in memory, then spilled to ``spill_root``) are the function's settings (config/pipeline.yml
    functions.ingestion maxReportedRejections, groupingMemoryMB): no default here.

    Nothing reaches the sink before the whole file has been read and validated: a failure while reading
    (a dropped connection, the version vanishing) raises and writes nothing. A file rejected as a whole
    writes nothing. Retriable sink failures propagate (the caller lets the message be redelivered).

    ``workers``: when the plan gives more than one process for the file's valid rows, the purchases are
    built and written by that many forked worker processes instead (lambdas.shared.processes), each taking
    a disjoint share of the groups (whole spill partitions, :meth:`SpillGrouper.groups`) into its own sink
    (``workers.make_sink()``, called in the worker); each purchase is still written once, and the workers'
    reports are merged into the same counts. A worker that raises or dies makes this call raise (the
    others are stopped): the file fails as a whole, like a sink failure in this process.
    """
    started = clock()
    report = ReportBuilder(source, max_listed=max_listed)
    directory = spill_directory(spill_root)
    try:
        try:
            grouper = _read_all(chunks, report, memory_budget_bytes, directory)
        except FileRejected as exc:
            report.file_rejection = exc.reason
            return report
        except SpillTooLarge as exc:
            report.file_rejection = (
                f"the file does not fit the function's ephemeral storage (/tmp) while its lines are grouped "
                f"({exc}): raise functions.ingestion.ephemeralStorageMB in config/pipeline.yml or split the file"
            )
            return report
        report.spilled_partitions = SPILL_PARTITIONS if grouper.spilled else 0
        count = workers.count(report.rows_read - report.rows_rejected) if workers is not None else 1
        if workers is None or count <= 1:
            _write_groups(grouper.groups(), source, sink, report)
            return report
        make_sink = workers.make_sink

        def write_share(index: int) -> ReportBuilder:  # runs in worker process ``index`` (forked)
            part = ReportBuilder(source, max_listed=max_listed)
            share_sink = make_sink()
            try:
                _write_groups(grouper.groups(share=index, of=count), source, share_sink, part)
            finally:
                close = getattr(share_sink, "close", None)
                if close is not None:
                    close()
            return part

        for part in workers.run(count, write_share):
            report.merge(part)
        report.worker_processes = count
        return report
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        report.duration_seconds = clock() - started


@dataclass(frozen=True)
class WorkerPlan:
    """How the writes of one file may be spread over worker processes (:func:`ingest`).

    ``processes``: at most this many (lambdas.shared.processes.worker_count: the function's vCPUs);
    ``rows_per_process``: at least this many valid rows per process, so that a small file (where forking
    would cost more than it saves) stays in the calling process; ``make_sink``: called once in each worker
    process, returns that worker's sink (its own clients: a client never crosses processes); ``run``: runs
    ``work(i)`` for ``i`` in ``range(count)`` each in its own process and returns the results in order, raising
    when one fails (lambdas.shared.processes.run_in_processes — injected, so the domain starts no process).
    """

    processes: int
    rows_per_process: int
    make_sink: Callable[[], PurchaseSink]
    run: Callable[[int, Callable[[int], ReportBuilder]], list[ReportBuilder]]

    def count(self, valid_rows: int) -> int:
        """The worker processes for a file of ``valid_rows`` valid rows (1: write in the calling process)."""
        return max(1, min(self.processes, valid_rows // max(1, self.rows_per_process)))


def _write_groups(
    groups: Iterable[tuple[Key, list[TicketLine]]], source: SourceInfo, sink: PurchaseSink, report: ReportBuilder
) -> None:
    """Build every group's purchase, hand the valid ones to ``sink`` and count everything in ``report``: the
    same code whether one process writes all the groups or each worker process its share."""
    for key, lines in groups:
        result = build_purchase(key, lines, source)
        if result.item is not None:
            sink.put(result.item)
        report.add_purchase(result)
    report.add_write_outcome(sink.flush())


def _read_all(chunks: Iterable[bytes], report: ReportBuilder, budget: int, directory: str) -> SpillGrouper:
    rows = parse_tickets(chunks)  # FileRejected before any row when the file is unusable as a whole
    grouper = SpillGrouper(budget, directory)
    add = grouper.add
    for row in rows:
        report.rows_read += 1
        if type(row) is RowRejection:
            report.reject_row(row)
        else:
            add(row)
    grouper.finish()
    return grouper


def _short(value: str, limit: int = 60) -> str:
    return repr(value if len(value) <= limit else value[: limit - 1] + "…")
