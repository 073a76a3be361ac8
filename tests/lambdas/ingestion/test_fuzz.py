"""Fuzzing (issue 15, point 5): randomised garbage in the header and the rows never makes ingestion raise.

Every permanent problem of a file must end in a report (file rejected, or rows rejected) and a processed
message — never an exception, SQS retries and the DLQ. The domain is fuzzed with many examples (the whole
of purchases.ingest over an in-memory table); the handler with fewer, on moto, through S3 -> SQS -> handler.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambdas.domain import limits
from lambdas.domain.purchases import SourceInfo, WriteOutcome, ingest
from local.pipeline import build_function
from local.sqs_poller import SqsPoller
from local.stack import INGESTION
from tests.factories import INGEST_LIMITS

HEADER = "ticket_id,product,basket_id,timestamp,category,quantity,store,unit_price,user_id,product_code,currency"
GOOD_ROW = "T1,Pan,B1,2024-03-01 10:00:00,bakery,1,S1,1.50,u1,P1,EUR"
PIECES = [
    '"', '""', ",", ";", "\n", "\r", "\r\n", "\t", " ", "\x00", "\x7f", "\ufeff", "ñ", "🛒", "\udc80", "\\",
    "Z", "+01:00", "-01", "0001-01-01T00:30:00+01:00", "9999-12-31T23:59:59-01:00", "999-06-01 10:00:00",
    "2147483648", "99999999999999.99999", "1e308", "NaN", "-0", "x" * 300, "~", "/", "..", "=SUM(A1)",
]  # fmt: skip


@st.composite
def garbage_csv(draw) -> bytes:
    """A header and rows mutated by splicing, deleting and duplicating pieces; sometimes raw random bytes."""
    rnd = random.Random(draw(st.integers(0, 2**32 - 1)))
    header = HEADER
    if draw(st.booleans()):
        header = _mutate(header, rnd, draw(st.integers(1, 6)))
    if draw(st.integers(0, 9)) == 0:
        header = header + "," + ",".join(f"c{i}" for i in range(rnd.choice([10, 5_000, 20_000])))
    rows = []
    for _ in range(draw(st.integers(0, 25))):
        row = GOOD_ROW if rnd.random() < 0.3 else _mutate(GOOD_ROW, rnd, rnd.randint(1, 8))
        if rnd.random() < 0.05:
            row = row + ("," + "y" * rnd.randint(0, 3)) * rnd.randint(1, 50_000)  # huge field counts
        if rnd.random() < 0.03:
            row = row.replace("Pan", "P" * rnd.randint(100_000, 500_000))  # huge fields/rows
        rows.append(row)
    newline = rnd.choice(["\n", "\r\n", "\r"])
    text = newline.join([header, *rows]) + rnd.choice(["", newline])
    data = text.encode("utf-8", errors="surrogateescape")
    if draw(st.integers(0, 14)) == 0:
        data = draw(st.binary(max_size=3000))
    elif draw(st.integers(0, 9)) == 0:
        cut = rnd.randint(0, len(data))
        data = data[:cut] + bytes(rnd.randint(0, 255) for _ in range(rnd.randint(1, 40))) + data[cut:]
    return data


def _mutate(text: str, rnd: random.Random, times: int) -> str:
    for _ in range(times):
        position = rnd.randint(0, len(text))
        action = rnd.random()
        if action < 0.3:  # a whole field replaced by a piece
            fields = text.split(",")
            fields[rnd.randrange(len(fields))] = rnd.choice(PIECES)
            text = ",".join(fields)
        elif action < 0.6:
            text = text[:position] + rnd.choice(PIECES) + text[position:]
        elif action < 0.8:
            text = text[:position] + text[position + rnd.randint(1, 10) :]
        else:
            text = text[:position] + text[position : position + rnd.randint(1, 30)] * 2 + text[position:]
    return text


class MemoryTable:
    """An in-memory PurchaseSink: keeps what it is given."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}

    def put(self, item: dict[str, Any]) -> None:
        self.items[(item["tenant_id"], item["compra_id"])] = item

    def flush(self) -> WriteOutcome:
        return WriteOutcome()


SOURCE = SourceInfo(bucket="b", key="uploads/fuzz.csv", etag="e", ingested_at="2026-01-01T00:00:00Z")


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=garbage_csv(), chunk=st.sampled_from([1, 7, 1024, 1 << 20]))
def test_ingest_never_raises_for_garbage_and_accounts_for_every_row(tmp_path_factory, data, chunk):
    tmp = tmp_path_factory.getbasetemp()
    if len(data) > 20_000:
        chunk = max(chunk, 4096)  # byte-by-byte only for small files (the chunk logic is the same)
    table = MemoryTable()
    report = ingest(
        (data[i : i + chunk] for i in range(0, len(data), chunk)), SOURCE, table, spill_root=str(tmp), **INGEST_LIMITS
    )
    document = report.to_dict()
    json.dumps(document)  # the report itself is always writable
    counts = document["counts"]
    if document["status"] == "rejected":
        assert document["file_rejection_reason"] and table.items == {}
        return
    assert counts["rows_read"] == counts["rows_loaded"] + counts["rows_rejected"] + counts["duplicate_rows"]
    assert counts["purchases_written"] == len(table.items)
    for (tenant, compra), item in table.items.items():  # what was accepted fits where it is going
        assert limits.id_problems(tenant, compra) == []
        assert 1000 <= int(item["fecha"][:4]) <= 9999 and len(item["fecha"]) == 19
    for rejection in document["rejected_rows"]:
        assert rejection["reason"] and isinstance(rejection["line"], int)


@pytest.mark.integration
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=garbage_csv())
def test_the_ingestion_handler_never_fails_a_message_for_garbage(stack, data):
    function = build_function(stack, INGESTION)
    poll = SqsPoller(stack.event_source(INGESTION), function, retry_visibility_seconds=0, aws=stack.aws)
    poll.run_until_idle()  # s3:TestEvent or what an earlier example left
    stack.aws.client("s3").put_object(Bucket=stack.names.bucket, Key="uploads/fuzz/garbage.csv", Body=data)
    stats = poll.run_until_idle()
    assert (stats.handler_errors, stats.messages_failed, stats.messages_deleted) == (0, 0, 1), stats.last_error
    report = stack.aws.client("s3").get_object(
        Bucket=stack.names.bucket, Key="ingest-reports/fuzz/garbage.csv.report.json"
    )
    document = json.loads(report["Body"].read())
    assert document["status"] in ("loaded", "loaded_with_rejections", "rejected")
