"""bench.standin driven by real boto3 clients: what it answers, what it counts, what it forwards to moto.

No tight timing asserts: the latency test only checks that N concurrent requests do not queue behind each other
(far less than N × latency), with a wide margin for a loaded machine.
"""

from __future__ import annotations

import hashlib
import io
import socket
import threading
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from bench.standin import StandinProcess, decode_aws_chunked

pytestmark = pytest.mark.integration

LATENCY_MS = 200.0
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}


@pytest.fixture(scope="module")
def standin(moto_server, tmp_path_factory):
    log = tmp_path_factory.mktemp("standin") / "standin.log"
    with StandinProcess(latency_ms=LATENCY_MS, forward=moto_server.endpoint_url, log_path=log) as process:
        yield process


@pytest.fixture
def fresh(standin, moto_server):
    moto_server.reset()
    standin.reset()
    return standin


def client(service: str, endpoint: str, **config):
    return boto3.session.Session().client(
        service, endpoint_url=endpoint, config=Config(retries={"max_attempts": 1}, **config), **CREDENTIALS
    )


def item(n: int, tenant: str = "t1") -> dict:
    return {
        "tenant_id": {"S": tenant},
        "compra_id": {"S": f"c{n}"},
        "productos": {"L": [{"M": {"codigo": {"S": "PAN-001"}, "cantidad": {"N": "2"}}}]},
    }


def test_answers_each_write_operation_itself_and_counts_it(fresh):
    ddb = client("dynamodb", fresh.endpoint)
    s3 = client("s3", fresh.endpoint)

    batch = ddb.batch_write_item(RequestItems={"purchases": [{"PutRequest": {"Item": item(n)}} for n in range(25)]})
    assert batch["UnprocessedItems"] == {}
    assert batch["ResponseMetadata"]["HTTPHeaders"]["content-type"] == "application/x-amz-json-1.0"
    assert batch["ResponseMetadata"]["RequestId"]
    put = ddb.put_item(TableName="purchases", Item=item(100), ConditionExpression="attribute_not_exists(tenant_id)")
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 200
    actions = [
        {"Put": {"TableName": "purchases", "Item": item(200 + n), "ConditionExpression": "attribute_not_exists(x)"}}
        for n in range(100)
    ]
    assert ddb.transact_write_items(TransactItems=actions)["ResponseMetadata"]["HTTPStatusCode"] == 200
    # The same purchase written again (another transaction): counted as an item, not as a new key.
    ddb.transact_write_items(TransactItems=actions[:3])

    body = b'{"compra_id": "c1"}\n'
    response = s3.put_object(Bucket="out", Key="compras/t1/2026/01/02/INSERT_c1.json", Body=body)
    assert response["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    assert response["ResponseMetadata"]["RequestId"]
    s3.put_object(Bucket="out", Key="reports/r.json", Body=b"{}")

    stats = fresh.stats()
    operations = stats["operations"]
    assert operations["DynamoDB.BatchWriteItem"]["requests"] == 1
    assert operations["DynamoDB.BatchWriteItem"]["items"] == 25
    assert operations["DynamoDB.PutItem"] == {
        "requests": 1,
        "items": 1,
        "bytes": operations["DynamoDB.PutItem"]["bytes"],
    }
    assert operations["DynamoDB.TransactWriteItems"]["requests"] == 2
    assert operations["DynamoDB.TransactWriteItems"]["items"] == 103
    assert operations["S3.PutObject"]["requests"] == 2
    assert operations["S3.PutObject"]["bytes"] == len(body) + 2
    assert stats["dynamodb_items_put"] == 25 + 1 + 103
    assert stats["dynamodb_keys"] == 25 + 1 + 100
    assert stats["s3_objects"] == 2
    assert stats["s3_objects_by_prefix"] == {"out/compras/": 1, "out/reports/": 1}
    assert stats["forwarded"] == 0 and stats["rejected"] == 0
    assert stats["latency_ms"] == LATENCY_MS

    fresh.reset()
    cleared = fresh.stats()
    assert cleared["operations"] == {} and cleared["dynamodb_keys"] == 0 and cleared["s3_objects"] == 0


def test_boto3_batch_writer_and_file_bodies_work_against_it(fresh):
    table = boto3.session.Session(**CREDENTIALS).resource("dynamodb", endpoint_url=fresh.endpoint).Table("purchases")
    with table.batch_writer() as writer:
        for n in range(60):
            writer.put_item(Item={"tenant_id": "t2", "compra_id": f"c{n}", "total": n})
    # A file-like body: botocore sends `Expect: 100-continue` and waits for the interim response.
    payload = b"x" * 300_000
    response = client("s3", fresh.endpoint).put_object(Bucket="out", Key="big/one.bin", Body=io.BytesIO(payload))
    assert response["ETag"] == f'"{hashlib.md5(payload).hexdigest()}"'

    stats = fresh.stats()
    assert stats["operations"]["DynamoDB.BatchWriteItem"]["requests"] == 3  # 25 + 25 + 10
    assert stats["operations"]["DynamoDB.BatchWriteItem"]["items"] == 60
    assert stats["dynamodb_keys"] == 60
    assert stats["operations"]["S3.PutObject"]["bytes"] == len(payload)


def test_concurrent_requests_wait_the_latency_in_parallel(fresh):
    s3 = client("s3", fresh.endpoint, max_pool_connections=32)
    requests = 16
    barrier = threading.Barrier(requests)

    def put(n: int) -> None:
        barrier.wait()
        s3.put_object(Bucket="out", Key=f"parallel/{n}.json", Body=b"{}")

    s3.put_object(Bucket="out", Key="warm.json", Body=b"{}")  # credentials, endpoint and first connection
    threads = [threading.Thread(target=put, args=(n,)) for n in range(requests)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started

    assert elapsed >= LATENCY_MS / 1000  # each request did wait the latency
    assert elapsed < requests * LATENCY_MS / 1000 / 2  # ... but not one after the other
    stats = fresh.stats()
    assert stats["operations"]["S3.PutObject"]["requests"] == requests + 1
    assert stats["max_in_flight"] > 1


def test_everything_else_is_forwarded_to_moto_after_the_latency(fresh, moto_server):
    direct_s3 = client("s3", moto_server.endpoint_url)
    direct_s3.create_bucket(Bucket="uploads-bucket")
    csv = b"ticket_id,store\n1,s1\n" * 150_000  # 3 MB: relayed in several pieces
    direct_s3.put_object(Bucket="uploads-bucket", Key="uploads/tickets.csv", Body=csv)

    s3 = client("s3", fresh.endpoint)
    started = time.perf_counter()
    assert s3.get_object(Bucket="uploads-bucket", Key="uploads/tickets.csv")["Body"].read() == csv
    assert time.perf_counter() - started >= LATENCY_MS / 1000
    assert s3.head_object(Bucket="uploads-bucket", Key="uploads/tickets.csv")["ContentLength"] == len(csv)
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="uploads-bucket")["Contents"]] == ["uploads/tickets.csv"]
    with pytest.raises(ClientError) as missing:
        s3.get_object(Bucket="uploads-bucket", Key="uploads/none.csv")
    assert missing.value.response["Error"]["Code"] == "NoSuchKey"
    # A bucket-level PUT is not a PutObject: it reaches moto.
    s3.create_bucket(Bucket="made-through-standin")
    assert "made-through-standin" in {b["Name"] for b in direct_s3.list_buckets()["Buckets"]}

    ddb = client("dynamodb", fresh.endpoint)
    ddb.create_table(
        TableName="forwarded",
        KeySchema=[{"AttributeName": "tenant_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "tenant_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    assert client("dynamodb", moto_server.endpoint_url).describe_table(TableName="forwarded")["Table"]["TableName"]
    assert ddb.describe_table(TableName="forwarded")["Table"]["KeySchema"][0]["AttributeName"] == "tenant_id"

    stats = fresh.stats()
    assert stats["forwarded"] == 7
    assert stats["operations"] == {}  # nothing was answered by the stand-in itself


def test_refuses_what_dynamodb_refuses(fresh):
    ddb = client("dynamodb", fresh.endpoint, parameter_validation=False)
    cases = [
        ("batch of 26", lambda: ddb.batch_write_item(
            RequestItems={"purchases": [{"PutRequest": {"Item": item(n)}} for n in range(26)]})),
        ("transaction of 101", lambda: ddb.transact_write_items(
            TransactItems=[{"Put": {"TableName": "purchases", "Item": item(n)}} for n in range(101)])),
        ("same item twice", lambda: ddb.transact_write_items(
            TransactItems=[{"Put": {"TableName": "purchases", "Item": item(1)}}] * 2)),
        ("no sort key", lambda: ddb.put_item(TableName="purchases", Item={"tenant_id": {"S": "t1"}})),
    ]  # fmt: skip
    for name, call in cases:
        with pytest.raises(ClientError) as refused:
            call()
        assert refused.value.response["Error"]["Code"] == "ValidationException", name
    stats = fresh.stats()
    assert stats["rejected"] == len(cases)
    assert stats["operations"] == {} and stats["dynamodb_keys"] == 0


def _http(sock: socket.socket, until: bytes = b"\r\n\r\n") -> bytes:
    data = b""
    while until not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_expect_continue_chunked_bodies_and_keep_alive_on_one_connection(fresh):
    """Raw HTTP/1.1 on one socket: the interim 100 Continue comes before the body is sent, an aws-chunked
    body in chunked transfer coding is decoded for the ETag, and the connection stays open between requests."""
    host, port = fresh.endpoint.removeprefix("http://").split(":")
    auth = "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0"
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        body = b"hello continue"
        sock.sendall(
            f"PUT /out/a/first.json HTTP/1.1\r\nHost: {host}\r\nAuthorization: {auth}\r\n"
            f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n".encode()
        )
        assert _http(sock).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(body)
        first = _http(sock)
        assert first.startswith(b"HTTP/1.1 200 ")
        assert f'ETag: "{hashlib.md5(body).hexdigest()}"'.encode() in first

        payload = b"chunked payload " * 10
        framed = b"%x;chunk-signature=abc\r\n%s\r\n0;chunk-signature=def\r\n\r\n" % (len(payload), payload)
        half = len(framed) // 2
        sock.sendall(
            f"PUT /out/a/second.json HTTP/1.1\r\nHost: {host}\r\nAuthorization: {auth}\r\n"
            "Content-Encoding: aws-chunked\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
            + b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (half, framed[:half], len(framed) - half, framed[half:])
        )
        second = _http(sock)
        assert second.startswith(b"HTTP/1.1 200 ")
        assert f'ETag: "{hashlib.md5(payload).hexdigest()}"'.encode() in second
    assert fresh.stats()["s3_objects_by_prefix"] == {"out/a/": 2}


def test_decode_aws_chunked():
    framed = (
        b"5;chunk-signature=x\r\nhello\r\n6;chunk-signature=y\r\n world\r\n"
        b"0;chunk-signature=z\r\nx-amz-checksum-crc32:AAAA\r\n\r\n"
    )
    assert decode_aws_chunked(framed) == b"hello world"


def test_without_key_accounting_it_still_counts_requests_and_items(moto_server):
    with StandinProcess(latency_ms=1, forward=moto_server.endpoint_url, keys=False) as standin:
        ddb = client("dynamodb", standin.endpoint)
        ddb.batch_write_item(RequestItems={"purchases": [{"PutRequest": {"Item": item(n)}} for n in range(10)]})
        client("s3", standin.endpoint).put_object(Bucket="out", Key="k.json", Body=b"{}")
        stats = standin.stats()
    assert stats["operations"]["DynamoDB.BatchWriteItem"]["items"] == 10
    assert stats["operations"]["S3.PutObject"]["requests"] == 1
    assert stats["keys_counted"] is False and stats["dynamodb_keys"] is None and stats["s3_objects"] is None
