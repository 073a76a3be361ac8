"""DynamoDB adapter: purchase items written with parallel BatchWriteItem calls and bounded retries.

* Items are serialised with boto3's TypeSerializer and sent in requests of 25 (the API maximum), up to
  ``concurrency`` requests in flight (a thread pool; the shared client is thread-safe).
* UnprocessedItems are resent with exponential backoff and full jitter, at most ``max_attempts`` calls
  per batch. Throttling, 5xx and connection errors are retried the same way (on top of botocore's own
  standard retries). When they outlast the attempts, :class:`WriteRetriesExhausted` is raised: the
  caller lets the SQS message fail so it is redelivered (and reaches the DLQ after maxReceiveCount).
* A ValidationException (a permanent problem of one item) splits the batch into single-item calls so
  only the offending items are refused; ``flush()`` returns them with DynamoDB's message.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

from lambdas.adapters.clients import hot_client

MAX_BATCH = 25  # BatchWriteItem limit
RETRIABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "LimitExceededException",
    }
)

Key = tuple[str, str]


class WriteRetriesExhausted(RuntimeError):
    """Retriable write failures (throttling, 5xx, unprocessed items) outlasted the bounded retries."""


@dataclass(frozen=True)
class WritePolicy:
    """Tuning of the writes. The ingestion builds it from its settings (lambdas.ingestion.service.write_policy:
    config/pipeline.yml `functions.ingestion`, passed as environment); the defaults serve tests only."""

    concurrency: int = 8
    max_attempts: int = 8
    backoff_base_seconds: float = 0.05
    backoff_cap_seconds: float = 5.0

    def backoff(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt))."""
        return rand() * min(self.backoff_cap_seconds, self.backoff_base_seconds * (2**attempt))


class ParallelBatchWriter:
    """put()/delete() buffer requests; full batches go to a thread pool; flush() waits for all of them.

    Implements lambdas.domain.purchases.PurchaseSink. Use as a context manager (the pool is shut down).
    """

    def __init__(
        self,
        table_name: str,
        policy: WritePolicy | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.table_name = table_name
        self.policy = policy or WritePolicy()
        self._sleep = sleep
        self._rand = rand
        self._serializer = TypeSerializer()
        self._buffer: list[tuple[dict[str, Any], dict[str, Any]]] = []  # (request, python item)
        self._pool = ThreadPoolExecutor(max_workers=self.policy.concurrency, thread_name_prefix="ddb-write")
        self._slots = threading.BoundedSemaphore(self.policy.concurrency * 2)  # bounded memory in flight
        self._futures: list[Future] = []
        self._lock = threading.Lock()
        self.items_written = 0
        self.requests_sent = 0
        self.retries = 0

    # -- PurchaseSink ---------------------------------------------------------------------------------

    def put(self, item: dict[str, Any]) -> None:
        serialized = {name: self._attribute_value(value) for name, value in item.items()}
        self._add({"PutRequest": {"Item": serialized}}, item)

    def _attribute_value(self, value: Any) -> dict[str, Any]:
        """TypeSerializer's result, with a fast path for the types purchase items use (str, int, Decimal,
        None, list, dict): TypeSerializer's generic type probing was half of the ingestion CPU time."""
        kind = type(value)
        if kind is str:
            return {"S": value}
        if kind is int:
            return {"N": str(value)}
        if kind is Decimal and value.is_finite():
            return {"N": str(value)}
        if value is None:
            return {"NULL": True}
        if kind is list:
            return {"L": [self._attribute_value(v) for v in value]}
        if kind is dict:
            return {"M": {k: self._attribute_value(v) for k, v in value.items()}}
        return self._serializer.serialize(value)

    def delete(self, key: Key) -> None:
        request = {"DeleteRequest": {"Key": {"tenant_id": {"S": key[0]}, "compra_id": {"S": key[1]}}}}
        self._add(request, {"tenant_id": key[0], "compra_id": key[1], "productos": []})

    def flush(self) -> list[tuple[dict[str, Any], str]]:
        if self._buffer:
            self._submit()
        futures, self._futures = self._futures, []
        refused: list[tuple[dict[str, Any], str]] = []
        error: BaseException | None = None
        for future in futures:
            exc = future.exception()
            if exc is not None:
                error = error or exc
            else:
                refused.extend(future.result())
        if error is not None:
            raise error
        return refused

    # -- lifecycle ------------------------------------------------------------------------------------

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ParallelBatchWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------------------

    def _add(self, request: dict[str, Any], item: dict[str, Any]) -> None:
        self._buffer.append((request, item))
        if len(self._buffer) >= MAX_BATCH:
            self._submit()

    def _submit(self) -> None:
        batch, self._buffer = self._buffer, []
        failed = next((f for f in self._futures if f.done() and f.exception() is not None), None)
        if failed is not None:
            raise failed.exception()  # type: ignore[misc]  # fail fast: the message will be redelivered
        self._slots.acquire()
        future = self._pool.submit(self._write, batch)
        future.add_done_callback(lambda _: self._slots.release())
        self._futures.append(future)
        if len(self._futures) > 4 * self.policy.concurrency:
            self._futures = [f for f in self._futures if not f.done() or f.exception() is not None or f.result()]

    def _write(self, batch: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[tuple[dict[str, Any], str]]:
        """Write one batch until nothing is unprocessed; return the items refused for good."""
        ddb = hot_client("dynamodb")  # no botocore parameter validation: see lambdas.adapters.clients
        by_key = {_request_key(request): item for request, item in batch}
        pending = [request for request, _ in batch]
        attempt = 0
        while pending:
            attempt += 1
            try:
                with self._lock:
                    self.requests_sent += 1
                response = ddb.batch_write_item(RequestItems={self.table_name: pending})
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                if code == "ValidationException":
                    return self._write_singly(pending, by_key, exc)
                if code not in RETRIABLE_CODES and status < 500:
                    raise
                self._retry_or_give_up(attempt, f"{code or status}: {exc}", len(pending))
                continue
            except (ConnectionError, HTTPClientError) as exc:
                self._retry_or_give_up(attempt, f"{type(exc).__name__}: {exc}", len(pending))
                continue
            pending = response.get("UnprocessedItems", {}).get(self.table_name, [])
            if pending:
                self._retry_or_give_up(attempt, "UnprocessedItems", len(pending))
        with self._lock:
            self.items_written += len(batch)
        return []

    def _write_singly(
        self, pending: list[dict[str, Any]], by_key: dict[Key, dict[str, Any]], batch_error: ClientError
    ) -> list[tuple[dict[str, Any], str]]:
        if len(pending) == 1:
            message = batch_error.response.get("Error", {}).get("Message", str(batch_error))
            return [(by_key[_request_key(pending[0])], message)]
        refused: list[tuple[dict[str, Any], str]] = []
        for request in pending:
            key = _request_key(request)
            refused.extend(self._write([(request, by_key[key])]))
        return refused

    def _retry_or_give_up(self, attempt: int, what: str, count: int) -> None:
        if attempt >= self.policy.max_attempts:
            raise WriteRetriesExhausted(
                f"BatchWriteItem on table {self.table_name}: {count} request(s) still failing after "
                f"{attempt} attempts (last: {what}); the message will be retried"
            )
        with self._lock:
            self.retries += 1
        self._sleep(self.policy.backoff(attempt, self._rand))


def _request_key(request: dict[str, Any]) -> Key:
    item = request["PutRequest"]["Item"] if "PutRequest" in request else request["DeleteRequest"]["Key"]
    return (item["tenant_id"]["S"], item["compra_id"]["S"])
