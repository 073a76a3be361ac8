"""Purchases from ticket lines: grouping, duplicates and conflicts, the 400 KB item check, the report.

Pure Python (no AWS): the object is given as a function that opens a fresh stream of byte chunks and
the table as a :class:`PurchaseSink`; lambdas/ingestion wires them to S3 and DynamoDB.

Memory stays bounded for files ordered by basket (the usual export order) while the result does not
depend on row order:

1. Stream the rows; when the (store, basket_id) group ends, build its purchase and hand it to the sink.
   Only a hash of each flushed key is remembered.
2. A key that shows up again after its group was flushed (a basket split across the file) is noted.
   After the pass the object is streamed again and just those purchases are rebuilt from all their lines
   and rewritten (or deleted again when, complete, they turn out to be invalid).

The item schema is documented in docs/item-schema.md, the report in docs/csv-contract.md.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from lambdas.domain import limits
from lambdas.domain.items import Producto, PurchaseItem
from lambdas.domain.tickets import FileRejected, RowRejection, TicketLine, parse_tickets

MAX_ITEM_BYTES = limits.DYNAMODB_MAX_ITEM_BYTES
DEFAULT_MAX_LISTED = 1000  # rejected rows / purchases listed one by one in a report

Key = tuple[str, str]


@dataclass(frozen=True)
class SourceInfo:
    """The S3 object a file's purchases come from (ingested_at = its LastModified, ISO 8601 UTC)."""

    bucket: str
    key: str
    etag: str
    ingested_at: str


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


class PurchaseSink(Protocol):
    """Where purchase items go (lambdas/adapters/dynamodb.py: parallel BatchWriteItem)."""

    def put(self, item: dict[str, Any]) -> None: ...

    def delete(self, key: Key) -> None: ...

    def flush(self) -> list[tuple[dict[str, Any], str]]:
        """Wait for every write; return the items the table refused for good (item, reason).
        Retriable failures that outlast the retries raise."""
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
    """The attributes that tell which object an ingested purchase comes from (docs/item-schema.md)."""
    return {
        "source_bucket": source.bucket,
        "source_key": source.key,
        "source_etag": source.etag,
        "ingested_at": source.ingested_at,
    }


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

    Accounting: rows_read = rows_loaded + rows_rejected + duplicate_rows (blank lines are not rows).
    """

    def __init__(self, source: SourceInfo, *, max_listed: int = DEFAULT_MAX_LISTED) -> None:
        self.source = source
        self.max_listed = max_listed
        self.file_rejection: str | None = None
        self.rows_read = 0
        self.rows_rejected = 0
        self.duplicate_rows = 0
        self.purchases_written = 0
        self.purchases_rejected = 0
        self.purchases_deleted = 0
        self.split_purchases = 0
        self.rejected_rows: list[dict[str, Any]] = []
        self.rejected_purchases: list[dict[str, Any]] = []
        self.duration_seconds = 0.0

    @property
    def rows_loaded(self) -> int:
        return self.rows_read - self.rows_rejected - self.duplicate_rows

    def reject_row(self, rejection: RowRejection) -> None:
        self.rows_rejected += 1
        if len(self.rejected_rows) < self.max_listed:
            self.rejected_rows.append({"line": rejection.line, "reason": rejection.reason})

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

    def remove_purchase(self, result: PurchaseResult | None) -> None:
        """Undo add_purchase of a fragment (a split basket is accounted for once, when rebuilt)."""
        if result is None:  # a fragment without anything notable: one purchase, its lines loaded
            self.purchases_written -= 1
            return
        self.duplicate_rows -= len(result.duplicate_lines)
        self.rows_rejected -= len(result.rejected_rows)
        drop = {(r.line, r.reason) for r in result.rejected_rows}
        self.rejected_rows = [r for r in self.rejected_rows if (r["line"], r["reason"]) not in drop]
        if result.item is not None:
            self.purchases_written -= 1
        elif result.rejection is not None:
            self.purchases_rejected -= 1
            self.rows_rejected -= len(result.lines_of_rejection)
            self.rejected_purchases = [
                p for p in self.rejected_purchases if (p["tenant_id"], p["compra_id"]) != result.key
            ]

    def table_refused(self, item: dict[str, Any], reason: str) -> None:
        """The table refused an item for good (e.g. a DynamoDB validation error): its lines are rejected."""
        self.purchases_written -= 1
        self.rows_rejected += len(item["productos"])
        key = (item["tenant_id"], item["compra_id"])
        self._reject_purchase(key, f"DynamoDB refused the item: {reason}", None)

    def _reject_purchase(self, key: Key, reason: str, lines: list[int] | None) -> None:
        self.purchases_rejected += 1
        if len(self.rejected_purchases) < self.max_listed:
            self.rejected_purchases.append({"tenant_id": key[0], "compra_id": key[1], "lines": lines, "reason": reason})

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
                "etag": self.source.etag,
                "last_modified": self.source.ingested_at,
            },
            "status": self.status,
            "file_rejection_reason": self.file_rejection,
            "counts": {
                "rows_read": self.rows_read,
                "rows_loaded": self.rows_loaded,
                "rows_rejected": self.rows_rejected,
                "duplicate_rows": self.duplicate_rows,
                "purchases_written": self.purchases_written,
                "purchases_rejected": self.purchases_rejected,
                "split_purchases_rebuilt": self.split_purchases,
            },
            "rejected_rows": sorted(self.rejected_rows, key=lambda r: r["line"]),
            "rejected_rows_truncated": self.rows_rejected > len(self.rejected_rows),
            "rejected_purchases": sorted(self.rejected_purchases, key=lambda p: (p["tenant_id"], p["compra_id"])),
            "rejected_purchases_truncated": self.purchases_rejected > len(self.rejected_purchases),
            "duration_seconds": round(self.duration_seconds, 3),
        }


# --------------------------------------------------------------------------------------------------
# A whole file
# --------------------------------------------------------------------------------------------------


def ingest(
    open_chunks: Callable[[], Iterable[bytes]],
    source: SourceInfo,
    sink: PurchaseSink,
    *,
    max_listed: int = DEFAULT_MAX_LISTED,
    clock: Callable[[], float] = time.monotonic,
) -> ReportBuilder:
    """Ingest one file: every valid purchase goes to ``sink``; returns the report.

    ``open_chunks()`` must return a fresh stream of the SAME object version each time (it is called a
    second time only when a basket is split across the file). A file rejected as a whole writes nothing.
    Retriable sink failures propagate (the caller lets the message be redelivered).
    """
    started = clock()
    report = ReportBuilder(source, max_listed=max_listed)
    try:
        rows = parse_tickets(open_chunks())
    except FileRejected as exc:
        report.file_rejection = exc.reason
        report.duration_seconds = clock() - started
        return report

    flushed: set[int] = set()  # hash((store, basket_id)) of every group already flushed
    split: set[Key] = set()
    notable: dict[Key, PurchaseResult] = {}  # first-pass results worth remembering (rare)

    def finish(key: Key, lines: list[TicketLine]) -> None:
        if key in split:
            return  # rebuilt completely in the second pass
        flushed.add(hash(key))
        result = build_purchase(key, lines, source)
        if result.item is not None:
            sink.put(result.item)
        if result.notable:
            notable[key] = result
        report.add_purchase(result)

    current_key: Key | None = None
    current: list[TicketLine] = []
    try:
        for row in rows:
            report.rows_read += 1
            if isinstance(row, RowRejection):
                report.reject_row(row)
                continue
            key = row.key
            if key != current_key:
                if current_key is not None:
                    finish(current_key, current)
                current_key, current = key, []
                if hash(key) in flushed:
                    split.add(key)
            current.append(row)
    except FileRejected as exc:  # raised only before any row was yielded ("no data rows")
        report.file_rejection = exc.reason
        report.duration_seconds = clock() - started
        return report
    if current_key is not None:
        finish(current_key, current)
    _refused(report, sink.flush())

    if split:
        _rebuild_split(open_chunks, source, sink, report, split, notable)
    report.duration_seconds = clock() - started
    return report


def _rebuild_split(
    open_chunks: Callable[[], Iterable[bytes]],
    source: SourceInfo,
    sink: PurchaseSink,
    report: ReportBuilder,
    split: set[Key],
    notable: dict[Key, PurchaseResult],
) -> None:
    groups: dict[Key, list[TicketLine]] = defaultdict(list)
    for row in parse_tickets(open_chunks()):
        if isinstance(row, TicketLine) and row.key in split:
            groups[row.key].append(row)
    for key in sorted(groups):
        first_pass = notable.pop(key, None)
        fragment_written = first_pass is None or first_pass.item is not None
        report.remove_purchase(first_pass)
        result = build_purchase(key, groups[key], source)
        if result.item is not None:
            sink.put(result.item)
        elif fragment_written:
            sink.delete(key)  # the fragment written in the first pass must not stay as a purchase
        report.add_purchase(result)
        report.split_purchases += 1
    _refused(report, sink.flush())


def _refused(report: ReportBuilder, failures: list[tuple[dict[str, Any], str]]) -> None:
    for item, reason in failures:
        report.table_refused(item, reason)


def _short(value: str, limit: int = 60) -> str:
    return repr(value if len(value) <= limit else value[: limit - 1] + "…")
