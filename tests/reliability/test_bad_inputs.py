"""The bad-input corpus (tests/data/bad_inputs/, expected outcomes in expected.yml) through the real path:
upload to S3 → moto's notification to SQS → local SQS poller → ingestion handler → table and report,
then the table's stream → local stream poller → stream handler → objects in compras/.

For every file: no unhandled exception and the message is done (not retried: a bad file is a permanent
problem), a clear reason for the file or for each rejected row in the report, the file's outcome logged,
exactly the valid purchases in the table, and every exported object inside its own partition.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from lambdas.domain import keys
from local.pipeline import build_function
from local.sqs_poller import SqsPoller
from local.stack import INGESTION, STREAM
from local.stream_poller import StreamPoller
from tests.data.bad_inputs import build
from tests.resources import purchases_table

pytestmark = pytest.mark.integration

EXPECTED: dict[str, dict] = yaml.safe_load((Path(build.__file__).parent / "expected.yml").read_text(encoding="utf-8"))
CORPUS = build.corpus()


def test_the_corpus_is_complete():
    assert len(CORPUS) >= 30
    assert set(CORPUS) == set(EXPECTED), "every corpus file needs an expected outcome, and vice versa"
    assert build.small() == {name: CORPUS[name] for name in build.small()}, "run python -m tests.data.bad_inputs.build"


def purchase_key(text: str) -> tuple[str, str]:
    tenant, compra = text.split("|", 1)
    return tenant, compra


def ingest(stack, key: str, data: bytes):
    SqsPoller(stack.event_source(INGESTION), build_function(stack, INGESTION), aws=stack.aws).run_until_idle()
    stack.aws.client("s3").put_object(Bucket=stack.names.bucket, Key=key, Body=data)
    return SqsPoller(stack.event_source(INGESTION), build_function(stack, INGESTION), aws=stack.aws).run_until_idle()


def report(stack, key: str) -> dict:
    name = key[len("uploads/") :]
    obj = stack.aws.client("s3").get_object(Bucket=stack.names.bucket, Key=f"ingest-reports/{name}.report.json")
    return json.loads(obj["Body"].read())


def table_items(stack) -> dict[tuple[str, str], dict]:
    table = purchases_table(stack)
    response = table.scan()
    items = list(response["Items"])
    while "LastEvaluatedKey" in response:
        response = table.scan(ExclusiveStartKey=response["LastEvaluatedKey"])
        items.extend(response["Items"])
    return {(i["tenant_id"], i["compra_id"]): i for i in items}


def matches(pattern, text: str | None) -> bool:
    return text is not None and re.search(str(pattern), text, re.IGNORECASE | re.DOTALL) is not None


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_input(stack, ingestion_logs, name):
    expected = EXPECTED[name]
    key = expected.get("key", f"uploads/bad_inputs/{name}")
    stats = ingest(stack, key, CORPUS[name])

    # No unhandled exception: the message was processed and deleted, never retried.
    assert (stats.handler_errors, stats.messages_failed, stats.messages_deleted) == (0, 0, 1), stats.last_error
    got = report(stack, key)
    items = table_items(stack)
    logged = ingestion_logs.records
    file_lines = [r for r in logged if r.get("key") == key]
    assert file_lines, f"nothing logged about {key}"

    if "file_rejected" in expected:
        assert got["status"] == "rejected"
        assert matches(expected["file_rejected"], got["file_rejection_reason"]), got["file_rejection_reason"]
        assert any(got["file_rejection_reason"] in r["message"] for r in file_lines), "reason not logged"
        assert items == {}
        return

    assert got["file_rejection_reason"] is None
    # A reason for every rejected row, at the line where its record starts; no other row rejected.
    rejected = {r["line"]: r["reason"] for r in got["rejected_rows"]}
    want = {int(line): pattern for line, pattern in (expected.get("rejected") or {}).items()}
    assert set(rejected) == set(want), rejected
    for line, pattern in want.items():
        assert matches(pattern, rejected[line]), (line, rejected[line])
    rejected_purchases = {(p["tenant_id"], p["compra_id"]): p["reason"] for p in got["rejected_purchases"]}
    want_purchases = {purchase_key(k): v for k, v in (expected.get("rejected_purchases") or {}).items()}
    assert set(rejected_purchases) == set(want_purchases), rejected_purchases
    for k, pattern in want_purchases.items():
        assert matches(pattern, rejected_purchases[k]), rejected_purchases[k]
    assert got["counts"]["rows_rejected"] >= len(want)
    # The outcome and where to find the reasons are logged.
    assert any(r.get("report") and r.get("status") == got["status"] for r in file_lines)

    # Every valid row loaded: exactly the expected purchases, with all their lines.
    want_items = {purchase_key(k): v for k, v in expected["purchases"].items()}
    assert set(items) == set(want_items)
    for k, spec in want_items.items():
        assert len(items[k]["productos"]) == spec["productos"], k
        if "fecha" in spec:
            assert items[k]["fecha"] == spec["fecha"], k
    assert got["counts"]["purchases_written"] == len(want_items)

    # Stream side: one object per change, each in its own partition, ids decoded back exactly.
    stream_stats = StreamPoller(
        stack.event_source(STREAM), build_function(stack, STREAM), aws=stack.aws
    ).run_until_idle()
    assert stream_stats.records_discarded == 0
    listed = stack.aws.client("s3").list_objects_v2(Bucket=stack.names.bucket, Prefix="compras/").get("Contents", [])
    assert len(listed) == stream_stats.records_read
    exported = set()
    for obj in listed:
        parsed = keys.parse_object_key(obj["Key"])
        item = items[(parsed.tenant_id, parsed.compra_id)]
        fecha = item["fecha"]
        assert parsed.partition == (item["tenant_id"], fecha[:4], fecha[5:7], fecha[8:10])
        assert obj["Key"].startswith(keys.partition_prefix(*parsed.partition))
        document = json.loads(
            stack.aws.client("s3").get_object(Bucket=stack.names.bucket, Key=obj["Key"])["Body"].read()
        )
        assert (document["tenant_id"], document["compra_id"]) == (parsed.tenant_id, parsed.compra_id)
        exported.add((parsed.tenant_id, parsed.compra_id))
    assert exported == set(items)
