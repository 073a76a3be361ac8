"""S3 adapter: small plain functions over the shared client (lambdas.adapters.clients)."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from lambdas.adapters.clients import client


def put_objects_parallel(
    bucket: str,
    objects: Sequence[tuple[str, bytes]],
    *,
    concurrency: int,
    content_type: str = "application/json",
) -> list[Exception | None]:
    """PUT many objects with up to `concurrency` requests in flight (stream export).

    Returns one entry per object, in the order given: None when written, else the exception that
    stopped it (after botocore's own retries). Never raises for a single object's failure, so the
    caller can report exactly which ones failed.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    s3 = client("s3")

    def put(item: tuple[str, bytes]) -> Exception | None:
        key, body = item
        try:
            s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
        except Exception as exc:  # reported per object: the caller decides what failed
            return exc
        return None

    if len(objects) <= 1 or concurrency == 1:
        return [put(item) for item in objects]
    with ThreadPoolExecutor(max_workers=min(concurrency, len(objects)), thread_name_prefix="s3-put") as pool:
        return list(pool.map(put, objects))
