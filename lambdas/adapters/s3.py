"""S3 adapter: small plain functions; each takes the composition's clients (lambdas.adapters.clients.AwsClients)
first."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from lambdas.adapters.clients import AwsClients
from lambdas.adapters.s3_put import lean_put_object
from lambdas.domain import keys
from lambdas.shared.threads import run_each


class NotStarted(RuntimeError):
    """A PUT that was not started because ``may_start`` said no."""


def put_objects_parallel(
    aws: AwsClients,
    bucket: str,
    objects: Sequence[tuple[str, bytes]],
    *,
    concurrency: int,
    content_type: str = "application/json",
    may_start: Callable[[], bool] | None = None,
) -> list[Exception | None]:
    """PUT many objects with up to `concurrency` requests in flight (stream export).

    Returns one entry per object, in the order given: None when written, else the exception that
    stopped it (after botocore's own retries). Never raises for a single object's failure, so the
    caller can report exactly which ones failed. ``may_start`` is asked before each PUT starts; once it
    says no (e.g. the invocation is near its deadline) the objects not started get :class:`NotStarted`.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    for key, body in objects:  # what botocore's (disabled) parameter validation would have refused
        if not isinstance(key, str) or not key or not isinstance(body, bytes | bytearray):
            raise TypeError(
                f"object to put must be (non-empty str key, bytes body), got ({key!r}, {type(body).__name__})"
            )
    # no botocore parameter validation (lambdas.adapters.clients); PutObject through the lean path (s3_put)
    lean = lean_put_object(aws.hot_client("s3"))

    def put(item: tuple[str, bytes]) -> Exception | None:
        key, body = item
        if may_start is not None and not may_start():
            return NotStarted(f"s3://{bucket}/{key} was not written: no time left to start it in this invocation")
        try:
            lean.put(bucket, key, body, content_type=content_type)
        except Exception as exc:  # reported per object: the caller decides what failed
            return exc
        return None

    return run_each(put, objects, concurrency=concurrency)  # on the process's kept threads (lambdas.shared.threads)


# -- ingestion: streaming reads, JSON reports ---------------------------------------------------------

READ_CHUNK_BYTES = 1024 * 1024


class ObjectNotFound(Exception):
    """The object version (or its key, or its bucket) does not exist (any more): deleted, or a delete marker.
    Permanent: the ingestion reports it and does not retry."""


@dataclass(frozen=True)
class ObjectInfo:
    bucket: str
    key: str
    etag: str  # without quotes
    last_modified: datetime
    size: int
    version_id: str | None  # None for an object of an unversioned bucket ("null" version)


_GONE = frozenset({"NoSuchKey", "NoSuchVersion", "NoSuchBucket", "404", "MethodNotAllowed", "405"})


def open_object(
    aws: AwsClients, bucket: str, key: str, *, version_id: str | None = None, chunk_size: int = READ_CHUNK_BYTES
) -> tuple[ObjectInfo, Iterator[bytes]]:
    """GET one version of an object as a stream of byte chunks (nothing is downloaded up front, nothing
    goes to /tmp). ``version_id`` is the version the S3 notification announced: that exact version is read,
    whatever happened to the key since; None reads the current object (unversioned buckets).

    :class:`ObjectNotFound` when the version (or key, or bucket) no longer exists or is a delete marker
    (S3 answers 405 to a GET of a delete marker's version id). The body is closed when the iterator is
    exhausted or garbage-collected.
    """
    params: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if version_id and version_id != "null":
        params["VersionId"] = version_id
    try:
        response = aws.client("s3").get_object(**params)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        if code in _GONE or status in ("404", "405"):
            what = f"version {version_id} of " if version_id else ""
            raise ObjectNotFound(f"{what}s3://{bucket}/{key} does not exist ({code or status})") from exc
        raise
    version = response.get("VersionId")
    info = ObjectInfo(
        bucket=bucket,
        key=key,
        etag=response["ETag"].strip('"'),
        last_modified=response["LastModified"],
        size=int(response.get("ContentLength", 0)),
        version_id=None if not version or version == "null" else version,
    )
    return info, _chunks(response["Body"], chunk_size)


def _chunks(body: Any, chunk_size: int) -> Iterator[bytes]:
    try:
        yield from body.iter_chunks(chunk_size)
    finally:
        body.close()


def put_object(aws: AwsClients, bucket: str, key: str, body: bytes, *, content_type: str = "application/json") -> None:
    """PUT one object (raises on failure, after botocore's retries)."""
    aws.client("s3").put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)


def put_json(aws: AwsClients, bucket: str, key: str, document: Any) -> None:
    """PUT a JSON document (UTF-8, non-ASCII kept; Decimal and datetime written as strings)."""
    body = json.dumps(document, ensure_ascii=False, indent=2, default=str).encode("utf-8")
    aws.client("s3").put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")


def get_json(aws: AwsClients, bucket: str, key: str) -> Any | None:
    """A JSON object's content, or None when the object does not exist."""
    try:
        response = aws.client("s3").get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
            return None
        raise
    return json.loads(response["Body"].read())


def presigned_get_url(aws: AwsClients, bucket: str, key: str, *, expires_in: int) -> str:
    """A URL that GETs the object without AWS credentials for `expires_in` seconds (signed, SigV4, with the
    caller's credentials: it stops working earlier if those temporary credentials expire first)."""
    return aws.presigning_client("s3").generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_in
    )


# -- reads of the exported documents (verify_datacatalog.py, the local summary) --------------------------------


@dataclass
class DocumentPartitions:
    """Partitions found under the documents prefix: values -> number of objects; plus keys off the layout."""

    partitions: dict[tuple[str, str, str, str], int] = field(default_factory=dict)
    unexpected_keys: list[str] = field(default_factory=list)


def bucket_exists(aws: AwsClients, bucket: str) -> bool:
    try:
        aws.client("s3").head_bucket(Bucket=bucket)
        return True
    except ClientError:
        return False


def document_partitions(aws: AwsClients, bucket: str, prefix: str) -> DocumentPartitions:
    """Every object under ``prefix``, grouped by the partition its key names (ids decoded)."""
    found = DocumentPartitions()
    paginator = aws.client("s3").get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            try:
                parsed = keys.parse_object_key(item["Key"], prefix)
            except keys.InvalidObjectKeyError:
                found.unexpected_keys.append(item["Key"])
                continue
            found.partitions[parsed.partition] = found.partitions.get(parsed.partition, 0) + 1
    return found


def put_bytes(
    aws: AwsClients, bucket: str, key: str, body: bytes, *, content_type: str = "application/octet-stream"
) -> None:
    """PUT one small object as it is."""
    aws.client("s3").put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
