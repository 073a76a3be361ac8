"""No full row of customer data is logged at INFO (or above): logs say what happened and where the report
is; the data stays in the table, the JSON documents and the access-controlled report."""

from __future__ import annotations

import pytest

from local.pipeline import build_function
from local.sqs_poller import SqsPoller
from local.stack import INGESTION, STREAM
from local.stream_poller import StreamPoller
from tests.data.bad_inputs import build
from tests.resources import purchases_table

pytestmark = pytest.mark.integration

# Distinctive values: none of them may show up in a log line at INFO or above.
ROWS = [
    dict(ticket="TK-7c1e4f", product="Zapatilla-Unica-77f31", basket="CESTA-9d1e02", user_id="cliente-8f3a91b"),
    dict(ticket="TK-51aa9e", product="Perfume-Raro-0c4d5", basket="CESTA-9d1e02", user_id="cliente-8f3a91b"),
    dict(ticket="TK-e20b77", product="Reloj-Dorado-a93e1", basket="CESTA-44f0c7", user_id="cliente-2b7d0ce"),
]
BAD_ROW = dict(ticket="TK-bad5e1", product="Bolso-Piel-6d2f8", basket="CESTA-b0b0b0", user_id="cliente-ffee11a")
STORE = "Tienda-Secreta-4271"
PRIVATE = ("user_id", "product")  # personal / commercial detail: never at INFO


def csv_bytes() -> bytes:
    lines = [
        build.row(r["ticket"], r["product"], r["basket"], store=STORE, user_id=r["user_id"], unit_price="19.95")
        for r in ROWS
    ]
    lines.append(
        build.row(
            BAD_ROW["ticket"],
            BAD_ROW["product"],
            BAD_ROW["basket"],
            quantity="-4",
            store=STORE,
            user_id=BAD_ROW["user_id"],
        )
    )
    return build.lines(*lines).encode()


def test_no_customer_row_is_logged_at_info(stack, ingestion_logs):
    key = "uploads/logging/tickets.csv"
    SqsPoller(stack.event_source(INGESTION), build_function(stack, INGESTION), aws=stack.aws).run_until_idle()
    data = csv_bytes()
    stack.aws.client("s3").put_object(Bucket=stack.names.bucket, Key=key, Body=data)
    stats = SqsPoller(stack.event_source(INGESTION), build_function(stack, INGESTION), aws=stack.aws).run_until_idle()
    StreamPoller(stack.event_source(STREAM), build_function(stack, STREAM), aws=stack.aws).run_until_idle()

    assert stats.messages_deleted == 1
    table = purchases_table(stack)
    assert table.scan()["Count"] == 2  # the data was really ingested (and the bad row rejected)
    lines = ingestion_logs.at_or_above("INFO")
    assert any(key in line for line in lines), "the ingestion is logged at all"
    assert any("Stream batch exported" in line for line in lines), "the export is logged at all"

    raw_lines = data.decode().splitlines()[1:]
    for line in lines:
        for raw in raw_lines:
            assert raw not in line, f"a CSV row was logged: {line}"
        for row in [*ROWS, BAD_ROW]:
            for field in PRIVATE:
                assert row[field] not in line, f"{field} {row[field]!r} logged at INFO+: {line}"
            shown = [value for value in row.values() if value in line]
            assert len(shown) <= 1, f"several values of one row logged together: {shown} in {line}"
