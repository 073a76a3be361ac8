"""DynamoDB adapter: purchase items written once each, conditionally on ``source_order``, in parallel.

* Each item goes into a TransactWriteItems request of up to 100 Put actions (and at most 4 MB), every Put
  conditional on ``attribute_not_exists(source_order) OR source_order <= :order``: an item is never
  replaced by one from an older source (docs/operations.md, "Never stale"). BatchWriteItem cannot carry
  conditions; a transaction is the one multi-item write that can (it costs 2 write units per item).
* Up to ``concurrency`` requests are in flight (a thread pool over the composition's thread-safe hot client).
* A cancelled transaction says why per action: ``ConditionalCheckFailed`` means the table holds that
  purchase from a newer source (counted as superseded, not retried); ``ValidationError`` refuses that item
  for good (returned with DynamoDB's message); conflicts, throttling and the actions that were only
  cancelled alongside are sent again. Throttling, 5xx, conflicts and connection errors are retried with
  exponential backoff and full jitter, at most ``max_attempts`` calls per batch, on top of botocore's own
  standard retries; past that :class:`WriteRetriesExhausted` is raised and the caller lets the SQS message
  fail (it is redelivered; re-ingesting a version is idempotent).
* A ValidationException of a whole request (one bad item) splits it into single-item transactions so only
  the offending items are refused.
* Requests are serialised once, by json's C encoder, straight into the wire JSON that botocore's own
  serializer would produce (lambdas.adapters.clients.PreparedList; tested byte for byte); signing,
  credentials, endpoint, retries and error parsing stay botocore's.
"""

from __future__ import annotations

import json
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

from lambdas.adapters.clients import AwsClients, PreparedList
from lambdas.domain.purchases import WriteOutcome

MAX_ACTIONS = 100  # TransactWriteItems limit
MAX_REQUEST_JSON_BYTES = 4 * 1024 * 1024  # aggregate item size limit of a transaction (JSON is larger)
RETRIABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "LimitExceededException",
        "TransactionInProgressException",
        "TransactionConflictException",
    }
)

Key = tuple[str, str]


class WriteRetriesExhausted(RuntimeError):
    """Retriable write failures (throttling, 5xx, unprocessed items) outlasted the bounded retries."""


@dataclass(frozen=True)
class WritePolicy:
    """Tuning of the writes. The ingestion builds it from its settings (lambdas.ingestion.service.write_policy:
    config/pipeline.yml `functions.ingestion`, passed as environment); no defaults here."""

    concurrency: int
    max_attempts: int
    backoff_base_seconds: float
    backoff_cap_seconds: float

    def backoff(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt))."""
        return rand() * min(self.backoff_cap_seconds, self.backoff_base_seconds * (2**attempt))


CONDITION = "attribute_not_exists(source_order) OR source_order <= :order"
RETRIABLE_REASONS = frozenset(
    {"None", "TransactionConflict", "ProvisionedThroughputExceeded", "ThrottlingError", "RequestLimitExceeded"}
)


_escape = json.encoder.encode_basestring_ascii  # json.dumps' own string encoder (C; ensure_ascii=True)
_SERIALIZER = TypeSerializer()


def item_json(item: dict[str, Any]) -> str:
    """``json.dumps({name: TypeSerializer().serialize(value) for name, value in item.items()})``, byte for byte,
    written straight as text for the types purchase items use (str, int, Decimal, None, list, dict of str keys)
    with json's own C string escaper; any other value goes through TypeSerializer and json.dumps. Building the
    typed dicts and walking them again with the encoder cost twice as much (profiled: ~20 % of the ingestion's
    CPU before)."""
    return "{" + ", ".join([_escape(name) + ": " + _value_json(value) for name, value in item.items()]) + "}"


def _value_json(value: Any) -> str:
    kind = type(value)
    if kind is str:
        return '{"S": ' + _escape(value) + "}"
    if kind is int or (kind is Decimal and value.is_finite()):
        return '{"N": "' + str(value) + '"}'
    if value is None:
        return '{"NULL": true}'
    if kind is list:
        return '{"L": [' + ", ".join([_value_json(v) for v in value]) + "]}"
    if kind is dict and all(type(k) is str for k in value):
        return '{"M": {' + ", ".join([_escape(k) + ": " + _value_json(v) for k, v in value.items()]) + "}}"
    return json.dumps(_SERIALIZER.serialize(value))


@dataclass
class _Action:
    text: str  # the Put action's wire JSON
    key: Key
    lines: int  # product lines of the item (for the report)
    item: dict[str, Any]


class ConditionalWriter:
    """put() serialises an item into a conditional Put action; full requests go to a thread pool; flush()
    waits for all of them and returns what was refused or superseded.

    Implements lambdas.domain.purchases.PurchaseSink. Use as a context manager (the pool is shut down).
    """

    def __init__(
        self,
        aws: AwsClients,
        table_name: str,
        policy: WritePolicy,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.aws = aws
        self.table_name = table_name
        self.policy = policy
        self._sleep = sleep
        self._rand = rand
        self._table_json = json.dumps(table_name)
        self._buffer: list[_Action] = []
        self._buffer_bytes = 0
        self._pool = ThreadPoolExecutor(max_workers=self.policy.concurrency, thread_name_prefix="ddb-write")
        self._slots = threading.BoundedSemaphore(self.policy.concurrency * 2)  # bounded memory in flight
        self._futures: list[Future] = []
        self._lock = threading.Lock()
        self._outcome = WriteOutcome()
        self._client: Any = None
        self.items_written = 0
        self.requests_sent = 0
        self.retries = 0

    # -- PurchaseSink ---------------------------------------------------------------------------------

    def put(self, item: dict[str, Any]) -> None:
        order = item["source_order"]
        # Key order = what the action dict below would give; json.dumps(ensure_ascii) = botocore's body.
        text = (
            f'{{"Put": {{"TableName": {self._table_json}, "Item": {item_json(item)}, '
            f'"ConditionExpression": "{CONDITION}", '
            f'"ExpressionAttributeValues": {{":order": {{"S": {json.dumps(order)}}}}}}}}}'
        )
        if self._buffer and (
            len(self._buffer) >= MAX_ACTIONS or self._buffer_bytes + len(text) > MAX_REQUEST_JSON_BYTES
        ):
            self._submit()
        key = (item["tenant_id"], item["compra_id"])
        self._buffer.append(_Action(text, key, len(item.get("productos") or ()), item))
        self._buffer_bytes += len(text)

    @staticmethod
    def action(table_name: str, item: dict[str, Any]) -> dict[str, Any]:
        """The Put action of ``item`` as botocore parameters (what :meth:`put`'s JSON stands for)."""
        serializer = TypeSerializer()
        return {
            "Put": {
                "TableName": table_name,
                "Item": {name: serializer.serialize(value) for name, value in item.items()},
                "ConditionExpression": CONDITION,
                "ExpressionAttributeValues": {":order": {"S": item["source_order"]}},
            }
        }

    def flush(self) -> WriteOutcome:
        if self._buffer:
            self._submit()
        futures, self._futures = self._futures, []
        error: BaseException | None = None
        for future in futures:
            exc = future.exception()
            if exc is not None:
                error = error or exc
        if error is not None:
            raise error
        outcome, self._outcome = self._outcome, WriteOutcome()
        return outcome

    # -- lifecycle ------------------------------------------------------------------------------------

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ConditionalWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------------------

    def _submit(self) -> None:
        batch, self._buffer, self._buffer_bytes = self._buffer, [], 0
        failed = next((f for f in self._futures if f.done() and f.exception() is not None), None)
        if failed is not None:
            raise failed.exception()  # type: ignore[misc]  # fail fast: the message will be redelivered
        if self._client is None:
            # Once, here, before the pool's threads start: on a cold cache each of them would build its own
            # client on its first request, about 0.1 s of CPU each (measured in a fresh worker process).
            self._client = self.aws.hot_client("dynamodb")
        self._slots.acquire()
        future = self._pool.submit(self._write, batch)
        future.add_done_callback(lambda _: self._slots.release())
        self._futures.append(future)
        if len(self._futures) > 4 * self.policy.concurrency:
            self._futures = [f for f in self._futures if not f.done() or f.exception() is not None]

    def _write(self, batch: list[_Action]) -> None:
        """Write one batch until every action is written, superseded or refused."""
        ddb = self._client
        pending = batch
        attempt = 0
        while pending:
            attempt += 1
            try:
                with self._lock:
                    self.requests_sent += 1
                ddb.transact_write_items(TransactItems=PreparedList.of(pending, self.table_name))
            except ClientError as exc:
                error = exc.response.get("Error", {})
                code = error.get("Code", "")
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                if code == "TransactionCanceledException" and "CancellationReasons" in exc.response:
                    pending = self._cancelled(pending, exc.response["CancellationReasons"])
                    if pending:
                        self._retry_or_give_up(attempt, f"{code}: {error.get('Message', '')}", len(pending))
                    continue
                if code == "ValidationException":
                    self._write_singly(pending, error.get("Message", str(exc)))
                    return
                if code not in RETRIABLE_CODES and status < 500:
                    raise
                self._retry_or_give_up(attempt, f"{code or status}: {exc}", len(pending))
                continue
            except (ConnectionError, HTTPClientError) as exc:
                self._retry_or_give_up(attempt, f"{type(exc).__name__}: {exc}", len(pending))
                continue
            with self._lock:
                self.items_written += len(pending)
            pending = []

    def _cancelled(self, pending: list[_Action], reasons: list[dict[str, Any]]) -> list[_Action]:
        """Sort a cancelled transaction's actions by their reason; return those to send again."""
        if len(reasons) != len(pending):
            raise RuntimeError(f"TransactWriteItems cancelled with {len(reasons)} reasons for {len(pending)} actions")
        again: list[_Action] = []
        with self._lock:
            for action, reason in zip(pending, reasons, strict=True):
                code = reason.get("Code") or "None"
                if code == "ConditionalCheckFailed":
                    self._outcome.superseded += 1
                    self._outcome.superseded_lines += action.lines
                elif code in RETRIABLE_REASONS:
                    again.append(action)
                else:  # ValidationError, ItemCollectionSizeLimitExceeded: this item, for good
                    self._outcome.refused.append((action.item, f"{code}: {reason.get('Message', '')}".strip()))
        return again

    def _write_singly(self, pending: list[_Action], message: str) -> None:
        if len(pending) == 1:
            with self._lock:
                self._outcome.refused.append((pending[0].item, message))
            return
        for action in pending:
            self._write([action])

    def _retry_or_give_up(self, attempt: int, what: str, count: int) -> None:
        if attempt >= self.policy.max_attempts:
            raise WriteRetriesExhausted(
                f"TransactWriteItems on table {self.table_name}: {count} item(s) still not written after "
                f"{attempt} attempts (last: {what}); the message will be retried"
            )
        with self._lock:
            self.retries += 1
        self._sleep(self.policy.backoff(attempt, self._rand))
