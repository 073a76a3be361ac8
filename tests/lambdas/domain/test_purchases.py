"""lambdas/domain/purchases.py: grouping, duplicates/conflicts, item size, split baskets, the report."""

from __future__ import annotations

import os
from collections import Counter
from decimal import Decimal

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lambdas.domain.purchases import (
    MAX_ITEM_BYTES,
    ReportBuilder,
    SourceInfo,
    WriteOutcome,
    build_purchase,
    ingest,
    item_size,
)
from lambdas.domain.tickets import TicketLine
from lambdas.shared.processes import run_in_processes
from tests.factories import INGEST_LIMITS

SOURCE = SourceInfo(bucket="b", key="uploads/f.csv", etag="e1", ingested_at="2026-01-01T00:00:00Z")
HEADER = "ticket_id,product,basket_id,timestamp,category,quantity,store,unit_price,user_id,currency\n"


class MemoryTable:
    """A dict standing in for the table in pure-domain tests (the adapter is tested against moto), with the
    adapter's rule: an item replaces another only when its source_order is not older."""

    def __init__(self, refuse: set[tuple[str, str]] = frozenset()) -> None:
        self.items: dict[tuple[str, str], dict] = {}
        self.operations: list[tuple[str, tuple[str, str]]] = []
        self.refuse = refuse
        self._outcome = WriteOutcome()

    def put(self, item):
        key = (item["tenant_id"], item["compra_id"])
        self.operations.append(("put", key))
        if key in self.refuse:
            self._outcome.refused.append((item, "Item size has exceeded the maximum allowed size"))
        elif key in self.items and self.items[key]["source_order"] > item["source_order"]:
            self._outcome.superseded += 1
            self._outcome.superseded_lines += len(item["productos"])
        else:
            self.items[key] = item

    def flush(self):
        outcome, self._outcome = self._outcome, WriteOutcome()
        return outcome


def chunks_of(text: str, chunk: int = 64):
    data = text.encode("utf-8")
    return (data[i : i + chunk] for i in range(0, len(data), chunk))


class Reads:
    """The object's chunks, read once: a second iteration fails the test."""

    def __init__(self, text: str, chunk: int = 64) -> None:
        self.chunks = chunks_of(text, chunk)
        self.count = 0

    def __iter__(self):
        self.count += 1
        assert self.count == 1, "the object was read twice"
        return self.chunks


def line(n, ticket, *, store="S1", basket="B1", product="Pan", qty=1, price="1.5", fecha="2024-03-01 10:00:00", **kw):
    return TicketLine(
        line=n,
        store=store,
        basket_id=basket,
        ticket_id=ticket,
        product_code=kw.get("codigo", product),
        product=product,
        category="c",
        quantity=qty,
        unit_price=None if price is None else Decimal(price),
        timestamp=fecha,
        user_id=kw.get("user_id"),
        currency=kw.get("moneda"),
    )


def row(ticket, basket="B1", *, store="S1", product="Pan", qty="1", price="1.5", ts="2024-03-01 10:00:00", user=""):
    return f"{ticket},{product},{basket},{ts},c,{qty},{store},{price},{user},\n"


# -- build_purchase -----------------------------------------------------------------------------------


def test_the_report_and_grouping_limits_have_no_defaults_of_their_own():
    """max_listed and memory_budget_bytes are the function's settings (config/pipeline.yml): none is copied here."""
    with pytest.raises(TypeError, match="max_listed"):
        ingest(Reads("ticket_id\n"), SOURCE, MemoryTable(), memory_budget_bytes=INGEST_LIMITS["memory_budget_bytes"])
    with pytest.raises(TypeError, match="memory_budget_bytes"):
        ingest(Reads("ticket_id\n"), SOURCE, MemoryTable(), max_listed=INGEST_LIMITS["max_listed"])
    with pytest.raises(TypeError, match="max_listed"):
        ReportBuilder(SOURCE)


def test_purchase_item_shape():
    result = build_purchase(
        ("S1", "B1"),
        [
            line(3, "T2", product="Leche", fecha="2024-03-01 11:00:00", user_id="u1", moneda="EUR"),
            line(2, "T1", product="Pan", price=None, fecha="2024-03-01 09:30:00"),
        ],
        SOURCE,
    )
    assert result.item == {
        "tenant_id": "S1",
        "compra_id": "B1",
        "fecha": "2024-03-01 09:30:00",
        "user_id": "u1",
        "moneda": "EUR",
        "productos": [
            {
                "codigo": "Pan",
                "nombre": "Pan",
                "categoria": "c",
                "cantidad": 1,
                "precio_unitario": None,
                "ticket_id": "T1",
            },
            {
                "codigo": "Leche",
                "nombre": "Leche",
                "categoria": "c",
                "cantidad": 1,
                "precio_unitario": Decimal("1.5"),
                "ticket_id": "T2",
            },
        ],
        "source_bucket": "b",
        "source_key": "uploads/f.csv",
        "source_etag": "e1",
        "ingested_at": "2026-01-01T00:00:00Z",
        "source_order": SOURCE.order,
    }


def test_user_id_and_moneda_omitted_when_no_line_gives_them():
    item = build_purchase(("S1", "B1"), [line(2, "T1")], SOURCE).item
    assert "user_id" not in item and "moneda" not in item


def test_identical_duplicates_count_once():
    result = build_purchase(("S1", "B1"), [line(4, "T1"), line(2, "T1"), line(3, "T2")], SOURCE)
    assert [p["ticket_id"] for p in result.item["productos"]] == ["T1", "T2"]
    assert result.duplicate_lines == [4]


def test_conflicting_versions_of_a_ticket_are_all_rejected():
    result = build_purchase(("S1", "B1"), [line(2, "T1"), line(5, "T1", qty=2), line(3, "T2")], SOURCE)
    assert [p["ticket_id"] for p in result.item["productos"]] == ["T2"]
    assert [r.line for r in result.rejected_rows] == [2, 5]
    reason = result.rejected_rows[0].reason
    assert "ticket_id 'T1' of basket 'B1' appears with different content on lines 2, 5" in reason


def test_conflicting_user_ids_or_currencies_reject_the_purchase():
    users = build_purchase(("S1", "B1"), [line(2, "T1", user_id="a"), line(3, "T2", user_id="b")], SOURCE)
    assert users.item is None and "different user_id values" in users.rejection
    money = build_purchase(("S1", "B1"), [line(2, "T1", moneda="EUR"), line(3, "T2", moneda="USD")], SOURCE)
    assert money.item is None and "different currencies (EUR, USD)" in money.rejection
    assert money.lines_of_rejection == [2, 3]


def test_purchase_over_400_kb_is_rejected():
    lines = [line(i, f"T{i:05d}", product="p" * 200) for i in range(2, 2000)]
    result = build_purchase(("S1", "BIG"), lines, SOURCE)
    assert result.item is None
    assert "over the 409,600-byte (400 KB) limit" in result.rejection


def test_item_size_follows_dynamodb_rules():
    assert item_size({"a": "xyz"}) == 4
    assert item_size({"n": 12345}) == 1 + 4  # 5 significant digits -> 3 bytes + 1
    assert item_size({"n": Decimal("1.50")}) == 1 + 2
    assert item_size({"z": None}) == 2
    assert item_size({"l": [{"k": "v"}]}) == 1 + 3 + 1 + (3 + 1 + 1 + 1)
    assert item_size({"ñ": "€"}) == 2 + 3
    assert MAX_ITEM_BYTES == 409_600


# -- ingest: a whole file -----------------------------------------------------------------------------


def test_basket_split_across_the_file_is_one_purchase_written_once_from_one_read():
    text = HEADER + row("T1", "B1") + row("T2", "B2") + row("T3", "B1", ts="2024-03-01 08:00:00") + row("T4", "B3")
    table, reads = MemoryTable(), Reads(text)
    report = ingest(reads, SOURCE, table, **INGEST_LIMITS).to_dict()
    assert reads.count == 1
    assert sorted(table.operations) == [("put", ("S1", "B1")), ("put", ("S1", "B2")), ("put", ("S1", "B3"))]
    b1 = table.items[("S1", "B1")]
    assert [p["ticket_id"] for p in b1["productos"]] == ["T1", "T3"] and b1["fecha"] == "2024-03-01 08:00:00"
    assert report["counts"]["purchases_written"] == 3
    assert report["counts"]["rows_loaded"] == 4


def test_split_basket_that_is_invalid_as_a_whole_is_never_written():
    text = HEADER + row("T1", "B1", user="a") + row("T2", "B2") + row("T3", "B1", user="b")
    table = MemoryTable()
    report = ingest(Reads(text), SOURCE, table, **INGEST_LIMITS).to_dict()
    assert table.operations == [("put", ("S1", "B2"))]
    assert report["rejected_purchases"] == [
        {"tenant_id": "S1", "compra_id": "B1", "lines": [2, 4], "reason": report["rejected_purchases"][0]["reason"]}
    ]
    assert report["counts"] == {
        "rows_read": 3,
        "rows_loaded": 1,
        "rows_rejected": 2,
        "duplicate_rows": 0,
        "rows_superseded": 0,
        "purchases_written": 1,
        "purchases_rejected": 1,
        "purchases_superseded": 0,
    }
    assert report["rejected_rows_truncated"] is False and report["rejected_purchases_truncated"] is False


def test_conflict_split_across_the_file_is_reported_once():
    text = HEADER + row("T1", "B1") + row("T1", "B1") + row("T9", "B2") + row("T1", "B1", qty="2") + row("T2", "B1")
    table = MemoryTable()
    report = ingest(Reads(text), SOURCE, table, **INGEST_LIMITS).to_dict()
    assert [r["line"] for r in report["rejected_rows"]] == [2, 3, 5]
    assert [p["ticket_id"] for p in table.items[("S1", "B1")]["productos"]] == ["T2"]
    assert report["counts"]["rows_rejected"] == 3 and report["counts"]["duplicate_rows"] == 0


def test_nothing_is_written_before_the_whole_file_is_read():
    text = HEADER + "".join(row(f"T{i}", f"B{i}") for i in range(50))

    def breaks_off():
        data = text.encode()
        yield data[: len(data) // 2]
        raise ConnectionError("the connection dropped mid-object")

    table = MemoryTable()
    with pytest.raises(ConnectionError):
        ingest(breaks_off(), SOURCE, table, **INGEST_LIMITS)
    assert table.operations == []


def test_a_newer_purchase_in_the_table_is_counted_as_superseded_not_as_an_error():
    text = HEADER + row("T1", "B1") + row("T2", "B1") + row("T3", "B2")
    table = MemoryTable()
    newer = SourceInfo(bucket="b", key="uploads/f.csv", etag="e2", ingested_at="2026-01-02T00:00:00Z")
    ingest(Reads(text), newer, table, **INGEST_LIMITS)
    report = ingest(Reads(text + row("T4", "B3")), SOURCE, table, **INGEST_LIMITS).to_dict()
    assert table.items[("S1", "B1")]["source_etag"] == "e2" and table.items[("S1", "B3")]["source_etag"] == "e1"
    assert report["status"] == "loaded"
    counts = report["counts"]
    assert (counts["purchases_written"], counts["purchases_superseded"]) == (1, 2)
    assert (counts["rows_loaded"], counts["rows_superseded"]) == (1, 3)


# -- grouping in bounded memory: the spill to /tmp ------------------------------------------------------


def shuffled_file(baskets: int, lines: int, seed: int = 7) -> str:
    import random

    rows = [row(f"T{b}-{i}", f"B{b:05d}", store=f"S{b % 3}") for b in range(baskets) for i in range(lines)]
    random.Random(seed).shuffle(rows)
    return HEADER + "".join(rows)


def test_a_file_over_the_memory_budget_spills_and_gives_the_same_purchases(tmp_path):
    text = shuffled_file(baskets=300, lines=4)
    in_memory, spilled = MemoryTable(), MemoryTable()
    first = ingest(Reads(text), SOURCE, in_memory, **INGEST_LIMITS).to_dict()
    builder = ingest(
        Reads(text),
        SOURCE,
        spilled,
        memory_budget_bytes=50_000,
        spill_root=str(tmp_path),
        max_listed=INGEST_LIMITS["max_listed"],
    )
    assert builder.spilled_partitions == 64
    assert spilled.items == in_memory.items and len(spilled.items) == 300
    assert sorted(spilled.operations) == sorted(in_memory.operations)  # each purchase written once
    second = builder.to_dict()
    first.pop("duration_seconds"), second.pop("duration_seconds")
    assert second == first
    assert list(tmp_path.iterdir()) == []  # the spill is removed


def test_a_partition_over_the_budget_is_partitioned_again(tmp_path, monkeypatch):
    from lambdas.domain import purchases

    monkeypatch.setattr(purchases, "SPILL_PARTITIONS", 2)
    text = shuffled_file(baskets=200, lines=3)
    table = MemoryTable()
    builder = ingest(
        Reads(text),
        SOURCE,
        table,
        memory_budget_bytes=20_000,
        spill_root=str(tmp_path),
        max_listed=INGEST_LIMITS["max_listed"],
    )
    assert len(table.items) == 200 and len(table.operations) == 200
    assert builder.rows_loaded == 600
    assert list(tmp_path.iterdir()) == []


def test_spill_directories_of_dead_processes_are_removed(tmp_path):
    from lambdas.domain.purchases import spill_directory

    stale = tmp_path / "compras-spill-999999999"
    stale.mkdir()
    (stale / "d0p00.bin").write_bytes(b"x")
    other = tmp_path / "unrelated"
    other.mkdir()
    mine = spill_directory(str(tmp_path))
    assert not stale.exists() and other.exists() and mine.endswith(f"compras-spill-{os.getpid()}")


def test_a_full_tmp_rejects_the_file_with_a_clear_reason(tmp_path, monkeypatch):
    import errno

    from lambdas.domain import purchases

    def full(path, rows):
        raise purchases.SpillTooLarge(str(OSError(errno.ENOSPC, "No space left on device")))

    monkeypatch.setattr(purchases, "_append_blob", full)
    table = MemoryTable()
    report = ingest(
        Reads(shuffled_file(100, 2)),
        SOURCE,
        table,
        memory_budget_bytes=1000,
        spill_root=str(tmp_path),
        max_listed=INGEST_LIMITS["max_listed"],
    )
    assert report.status == "rejected" and "ephemeral storage" in report.file_rejection
    assert table.operations == []


def test_rejected_file_writes_nothing_and_says_why():
    table = MemoryTable()
    report = ingest(Reads("ticket_id,product\nT1,x\n"), SOURCE, table, **INGEST_LIMITS).to_dict()
    assert report["status"] == "rejected"
    assert "lacks required column" in report["file_rejection_reason"]
    assert table.operations == []


def test_truncated_is_true_only_when_something_was_cut():
    text = HEADER + row("T1", "B1", user="a") + row("T2", "B1", user="b") + row("T3", qty="0")
    exact = ingest(
        Reads(text), SOURCE, MemoryTable(), max_listed=1, memory_budget_bytes=INGEST_LIMITS["memory_budget_bytes"]
    ).to_dict()
    assert exact["counts"]["rows_rejected"] == 3 and len(exact["rejected_rows"]) == 1
    assert exact["rejected_rows_truncated"] is False and exact["rejected_purchases_truncated"] is False
    cut = ingest(
        Reads(text), SOURCE, MemoryTable(), max_listed=0, memory_budget_bytes=INGEST_LIMITS["memory_budget_bytes"]
    ).to_dict()
    assert cut["rejected_rows_truncated"] is True and cut["rejected_purchases_truncated"] is True


def test_report_lists_a_bounded_number_of_rejections_and_counts_all():
    text = HEADER + "".join(row(f"T{i}", qty="0") for i in range(30)) + row("OK", "B9")
    report = ingest(
        Reads(text), SOURCE, MemoryTable(), max_listed=5, memory_budget_bytes=INGEST_LIMITS["memory_budget_bytes"]
    ).to_dict()
    assert report["counts"]["rows_rejected"] == 30
    assert [r["line"] for r in report["rejected_rows"]] == [2, 3, 4, 5, 6]
    assert report["rejected_rows_truncated"] is True
    assert report["status"] == "loaded_with_rejections"


def test_item_refused_by_the_table_is_reported_as_a_rejected_purchase():
    text = HEADER + row("T1", "B1") + row("T2", "B2")
    report = ingest(Reads(text), SOURCE, MemoryTable(refuse={("S1", "B2")}), **INGEST_LIMITS).to_dict()
    assert report["counts"]["purchases_written"] == 1
    assert report["rejected_purchases"][0]["compra_id"] == "B2"
    assert "DynamoDB refused the item" in report["rejected_purchases"][0]["reason"]
    assert report["counts"]["rows_loaded"] == 1


def test_report_never_contains_whole_rows():
    text = HEADER + row("T1", product="SecretProductName", qty="zero", user="customer-4711")
    report = ingest(Reads(text), SOURCE, MemoryTable(), **INGEST_LIMITS).to_dict()
    assert "SecretProductName" not in str(report) and "customer-4711" not in str(report)


# -- properties: order independence and idempotence ---------------------------------------------------

ROW = st.tuples(
    st.sampled_from(["S1", "S2", "tienda/ñ"]),  # store
    st.sampled_from(["B1", "B2", "B3", "../x"]),  # basket
    st.sampled_from(["T1", "T2", "T3", "T4"]),  # ticket
    st.sampled_from(["Pan", "Leche"]),  # product
    st.sampled_from(["1", "2", "0"]),  # quantity ("0" is invalid)
    st.sampled_from(["", "1.5", "1.50", "2"]),  # price
    st.sampled_from(["2024-03-01 10:00:00", "2024-03-01T09:00:00+01:00", "2024-03-02 08:00:00"]),
    st.sampled_from(["", "", "u1", "u2"]),  # user
)


def csv_of(rows) -> str:
    return HEADER + "".join(f"{t},{p},{b},{ts},c,{q},{s},{pr},{u},\n" for s, b, t, p, q, pr, ts, u in rows)


def outcome(rows, budget=None):
    table = MemoryTable()
    options = {**INGEST_LIMITS, **({} if budget is None else {"memory_budget_bytes": budget})}
    report = ingest(Reads(csv_of(rows), chunk=16), SOURCE, table, **options).to_dict()
    # Rejections identified by the content of the row they name (line numbers move with the order).
    rejected = Counter(rows[r["line"] - 2] for r in report["rejected_rows"])
    counts = dict(report["counts"])
    purchases = Counter((p["tenant_id"], p["compra_id"], tuple(p["lines"])) for p in report["rejected_purchases"])
    return table.items, rejected, counts, len(purchases)


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(ROW, min_size=1, max_size=25), data=st.data())
def test_any_permutation_of_rows_gives_the_same_result(rows, data):
    shuffled = data.draw(st.permutations(rows))
    items, rejected, counts, purchases_rejected = outcome(rows)
    items2, rejected2, counts2, purchases_rejected2 = outcome(
        list(shuffled), budget=data.draw(st.sampled_from([1, 2000, None]))
    )
    assert items2 == items
    assert rejected2 == rejected
    assert counts2 == counts
    assert purchases_rejected2 == purchases_rejected
    assert counts["rows_read"] == counts["rows_loaded"] + counts["rows_rejected"] + counts["duplicate_rows"]


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(ROW, min_size=1, max_size=25))
def test_ingesting_twice_gives_the_same_table(rows):
    table = MemoryTable()
    first = ingest(Reads(csv_of(rows)), SOURCE, table, **INGEST_LIMITS).to_dict()
    after_once = {key: dict(item) for key, item in table.items.items()}
    second = ingest(Reads(csv_of(rows)), SOURCE, table, **INGEST_LIMITS).to_dict()
    assert table.items == after_once
    first.pop("duration_seconds"), second.pop("duration_seconds")
    assert first == second


TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=30)


@settings(max_examples=100, deadline=None)
@given(
    names=st.lists(st.tuples(TEXT, TEXT, TEXT), min_size=1, max_size=20),
    qty=st.integers(1, 2**31 - 1),
    price=st.one_of(st.none(), st.decimals(0, 10**14 - 1, places=4)),
)
def test_the_quick_size_bound_is_never_below_the_exact_size(names, qty, price):
    from lambdas.domain.purchases import _size_upper_bound

    lines = [
        line(i + 2, f"{ticket}{i}", product=product, codigo=code, qty=qty, price=None if price is None else str(price))
        for i, (ticket, product, code) in enumerate(names)
    ]
    result = build_purchase(("tienda ñ", "cesta/1"), lines, SOURCE)
    assume(result.item is not None)  # totals beyond the Glue types are rejected (tested elsewhere)
    assert _size_upper_bound(result.item, lines) >= item_size(result.item)


# -- the order of sources ---------------------------------------------------------------------------------


def _source(key: str, last_modified: str, event_time: str | None, sequencer: str | None = None) -> SourceInfo:
    return SourceInfo(
        bucket="b", key=key, etag='"e"', ingested_at=last_modified, event_time=event_time, sequencer=sequencer
    )


def test_a_later_upload_of_the_same_second_is_newer_whatever_its_key():
    """LastModified has whole seconds: the event time (milliseconds) orders two uploads of one second."""
    original = _source("uploads/tickets.csv", "2026-12-02T10:00:00Z", "2026-12-02T10:00:00.120Z")
    correction = _source("uploads/correcciones.csv", "2026-12-02T10:00:00Z", "2026-12-02T10:00:00.870Z")
    assert correction.order > original.order
    # Without event times only the key can break the tie (documented in docs/operations.md).
    assert _source("uploads/b.csv", "2026-12-02T10:00:00Z", None).order > (
        _source("uploads/a.csv", "2026-12-02T10:00:00Z", None).order
    )


def test_the_order_time_has_one_width_and_falls_back_to_last_modified():
    assert _source("k", "2026-12-02T10:00:00Z", None).order_time == "2026-12-02T10:00:00.000Z"
    assert _source("k", "2026-12-02T10:00:00Z", "2026-12-02T11:00:00.5+01:00").order_time == (
        "2026-12-02T10:00:00.500Z"
    )
    for unusable in ("", "yesterday", "2026-12-02T10:00:00"):  # no zone: not an S3 event time
        assert _source("k", "2026-12-02T10:00:00Z", unusable).order_time == "2026-12-02T10:00:00.000Z"
    later = _source("k", "2026-12-02T10:00:01Z", None)
    assert later.order > _source("k", "2026-12-02T10:00:00Z", "2026-12-02T10:00:00.999Z").order


def test_two_versions_of_one_key_in_one_millisecond_are_ordered_by_the_sequencer():
    first = _source("k", "2026-12-02T10:00:00Z", "2026-12-02T10:00:00.100Z", sequencer="0055AED6DCD90281E5")
    second = _source("k", "2026-12-02T10:00:00Z", "2026-12-02T10:00:00.100Z", sequencer="0055AED6DCD90281E6")
    assert second.order > first.order


# -- worker processes (WorkerPlan) --------------------------------------------------------------------


class Throttled(Exception):
    """A retriable sink failure raised in a worker process."""


class RecordingSink:
    """A sink that works across processes: every put is appended to a file of the process that made it, and
    the table's answer depends only on the key (refused for good, or held from a newer source), so one
    process and several give the same outcome when each purchase is put once."""

    def __init__(self, directory, *, refuse=frozenset(), newer=frozenset(), fail=None) -> None:
        self.directory, self.refuse, self.newer, self.fail = directory, refuse, newer, fail
        self._outcome = WriteOutcome()
        self.closed = False

    def put(self, item):
        key = (item["tenant_id"], item["compra_id"])
        if self.fail == "die":
            os._exit(9)
        with open(os.path.join(self.directory, f"puts-{os.getpid()}.txt"), "a") as out:
            out.write(f"{key[0]}|{key[1]}\n")
        if key in self.refuse:
            self._outcome.refused.append((item, "ValidationError: Item size has exceeded the maximum allowed size"))
        elif key in self.newer:
            self._outcome.superseded += 1
            self._outcome.superseded_lines += len(item["productos"])

    def flush(self):
        if self.fail == "raise":
            raise Throttled("ProvisionedThroughputExceeded: still throttled after 8 attempts")
        outcome, self._outcome = self._outcome, WriteOutcome()
        return outcome

    def close(self):
        self.closed = True


def puts_by_process(directory) -> dict[str, list[str]]:
    return {path.name: path.read_text().splitlines() for path in directory.glob("puts-*.txt")}


def messy_file(baskets: int = 400) -> str:
    """Shuffled baskets with repeated lines, conflicting ticket versions, a purchase with two user ids and
    invalid rows: every kind of count and list of the report."""
    import random

    rows = [row(f"T{b}-{i}", f"B{b:05d}", store=f"S{b % 3}") for b in range(baskets) for i in range(3)]
    rows += [row(f"T{b}-0", f"B{b:05d}", store=f"S{b % 3}") for b in range(0, baskets, 7)]  # exact repeats
    rows += [row(f"T{b}-1", f"B{b:05d}", store=f"S{b % 3}", qty="9") for b in range(0, baskets, 11)]  # conflicts
    rows += [row("TU1", "BU", user="u1"), row("TU2", "BU", user="u2")]  # two user ids: rejected purchase
    rows += [row("TX", "BX", qty="many"), row("TY", "BY", ts="yesterday")]  # invalid rows
    random.Random(3).shuffle(rows)
    return HEADER + "".join(rows)


@pytest.mark.parametrize("budget", [64 * 1024 * 1024, 60_000], ids=["in-memory", "spilled"])
def test_worker_processes_write_each_purchase_once_and_count_exactly_like_one_process(tmp_path, budget):
    from lambdas.domain.purchases import WorkerPlan

    text = messy_file()
    refuse, newer = {("S1", "B00004")}, {("S2", "B00005"), ("S0", "B00009")}
    alone_dir, workers_dir = tmp_path / "alone", tmp_path / "workers"
    alone_dir.mkdir(), workers_dir.mkdir()
    spill = str(tmp_path / "spill")
    os.mkdir(spill)

    alone = ingest(
        Reads(text),
        SOURCE,
        RecordingSink(alone_dir, refuse=refuse, newer=newer),
        memory_budget_bytes=budget,
        max_listed=INGEST_LIMITS["max_listed"],
    )
    plan = WorkerPlan(3, 1, lambda: RecordingSink(workers_dir, refuse=refuse, newer=newer), run_in_processes)
    parent_sink = RecordingSink(workers_dir, fail="raise")  # must not be used: the workers write
    together = ingest(
        Reads(text),
        SOURCE,
        parent_sink,
        memory_budget_bytes=budget,
        spill_root=spill,
        workers=plan,
        max_listed=INGEST_LIMITS["max_listed"],
    )

    assert together.worker_processes == 3 and alone.worker_processes == 1
    assert bool(together.spilled_partitions) == (budget == 60_000)
    first, second = alone.to_dict(), together.to_dict()
    first.pop("duration_seconds"), second.pop("duration_seconds")
    assert second == first
    assert first["counts"]["duplicate_rows"] and first["counts"]["purchases_superseded"] == 2
    assert first["rejected_purchases"] and first["rejected_rows"]

    written_alone = [key for keys in puts_by_process(alone_dir).values() for key in keys]
    by_worker = puts_by_process(workers_dir)
    assert len(by_worker) == 3 and f"puts-{os.getpid()}.txt" not in by_worker  # three other processes wrote
    written = [key for keys in by_worker.values() for key in keys]
    assert len(written) == len(set(written)) == first["counts"]["purchases_written"] + 3  # + refused, superseded
    assert sorted(written) == sorted(written_alone)
    assert os.listdir(spill) == []  # the workers' share of the spill is removed with the rest


def test_a_worker_whose_writes_fail_fails_the_file_with_that_error(tmp_path):
    from lambdas.domain.purchases import WorkerPlan

    plan = WorkerPlan(2, 1, lambda: RecordingSink(tmp_path, fail="raise"), run_in_processes)
    spill = tmp_path / "spill"
    spill.mkdir()
    with pytest.raises(Throttled, match="still throttled") as raised:
        ingest(Reads(shuffled_file(50, 2)), SOURCE, MemoryTable(), spill_root=str(spill), workers=plan, **INGEST_LIMITS)
    assert any("worker process" in note for note in raised.value.__notes__)
    assert list(spill.iterdir()) == []


def test_a_worker_that_dies_fails_the_file(tmp_path):
    from lambdas.domain.purchases import WorkerPlan
    from lambdas.shared.processes import WorkerFailed

    plan = WorkerPlan(2, 1, lambda: RecordingSink(tmp_path, fail="die"), run_in_processes)
    with pytest.raises(WorkerFailed, match=r"ended without a result \(exit code 9\)"):
        ingest(
            Reads(shuffled_file(50, 2)), SOURCE, MemoryTable(), spill_root=str(tmp_path), workers=plan, **INGEST_LIMITS
        )


def test_a_small_file_is_written_by_the_calling_process(tmp_path):
    from lambdas.domain.purchases import WorkerPlan

    def no_worker_sink():
        raise AssertionError("no worker process should start for 100 rows")

    table = MemoryTable()
    # 100 valid rows: one process (60 rows per process at least)
    plan = WorkerPlan(4, 60, no_worker_sink, run_in_processes)
    report = ingest(Reads(shuffled_file(50, 2)), SOURCE, table, spill_root=str(tmp_path), workers=plan, **INGEST_LIMITS)
    assert report.worker_processes == 1 and len(table.items) == 50
    assert [plan.count(rows) for rows in (0, 119, 120, 240, 10_000)] == [1, 1, 2, 4, 4]
