"""lambdas/adapters/s3.py (ingestion part) on moto: streaming reads of one version, missing versions, JSON puts."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from lambdas.adapters import s3

pytestmark = pytest.mark.integration


@pytest.fixture
def bucket(stack):
    return stack.names.bucket


def test_open_object_streams_chunks_and_metadata(bucket, aws):
    body = "".join(f"línea {i}\n" for i in range(5000)).encode("utf-8")
    aws.clients.client("s3").put_object(Bucket=bucket, Key="uploads/a b/ñ.csv", Body=body)
    info, chunks = s3.open_object(aws.clients, bucket, "uploads/a b/ñ.csv", chunk_size=4096)
    pieces = list(chunks)
    assert len(pieces) == -(-len(body) // 4096) and max(map(len, pieces)) == 4096
    assert b"".join(pieces) == body
    assert info.size == len(body) and len(info.etag) == 32 and '"' not in info.etag
    assert info.last_modified.tzinfo is not None


def test_missing_object_raises_object_not_found(bucket, aws):
    with pytest.raises(s3.ObjectNotFound, match="does not exist"):
        s3.open_object(aws.clients, bucket, "uploads/gone.csv")


def test_open_object_reads_the_version_asked_for(bucket, aws):
    s3_client = aws.clients.client("s3")
    v1 = s3_client.put_object(Bucket=bucket, Key="uploads/x.csv", Body=b"v1")["VersionId"]
    v2 = s3_client.put_object(Bucket=bucket, Key="uploads/x.csv", Body=b"v2")["VersionId"]
    info, chunks = s3.open_object(aws.clients, bucket, "uploads/x.csv", version_id=v1)
    assert b"".join(chunks) == b"v1" and info.version_id == v1
    current, chunks = s3.open_object(aws.clients, bucket, "uploads/x.csv")
    assert b"".join(chunks) == b"v2" and current.version_id == v2


def test_a_deleted_version_or_a_delete_marker_is_object_not_found(bucket, aws):
    s3_client = aws.clients.client("s3")
    v1 = s3_client.put_object(Bucket=bucket, Key="uploads/y.csv", Body=b"v1")["VersionId"]
    marker = s3_client.delete_object(Bucket=bucket, Key="uploads/y.csv")["VersionId"]
    with pytest.raises(s3.ObjectNotFound, match=f"version {marker} of"):
        s3.open_object(aws.clients, bucket, "uploads/y.csv", version_id=marker)
    _, chunks = s3.open_object(aws.clients, bucket, "uploads/y.csv", version_id=v1)  # still there behind the marker
    assert b"".join(chunks) == b"v1"
    s3_client.delete_object(Bucket=bucket, Key="uploads/y.csv", VersionId=v1)
    with pytest.raises(s3.ObjectNotFound, match="does not exist"):
        s3.open_object(aws.clients, bucket, "uploads/y.csv", version_id=v1)


def test_put_json_writes_utf8_json(bucket, aws):
    s3.put_json(aws.clients, bucket, "ingest-reports/ñ.csv.report.json", {"name": "Ñandú", "price": Decimal("1.50")})
    obj = aws.clients.client("s3").get_object(Bucket=bucket, Key="ingest-reports/ñ.csv.report.json")
    assert obj["ContentType"] == "application/json"
    assert json.loads(obj["Body"].read().decode("utf-8")) == {"name": "Ñandú", "price": "1.50"}


def test_put_objects_parallel_starts_no_put_once_may_start_says_no(bucket, aws):
    answers = iter([True, True, False, True])  # asked before each PUT (a deadline never says yes again)
    objects = [(f"k{i}", b"x") for i in range(4)]
    results = s3.put_objects_parallel(aws.clients, bucket, objects, concurrency=1, may_start=lambda: next(answers))
    assert [r is None for r in results] == [True, True, False, True]
    assert isinstance(results[2], s3.NotStarted) and "no time left" in str(results[2])
    listed = aws.clients.client("s3").list_objects_v2(Bucket=bucket).get("Contents", [])
    assert sorted(o["Key"] for o in listed) == ["k0", "k1", "k3"]
