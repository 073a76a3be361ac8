"""An embedded AWS stand-in: moto in server mode, a real HTTP endpoint boto3 talks to.

Code reaches it through ``LocalAws.clients`` (lambdas.adapters.clients.AwsClients with this endpoint, region and
moto's fake credentials), passed explicitly to the functions' composition roots and to the local tools: nothing
is pointed at the stand-in through the process environment. moto's state is process-wide, so ``reset()``
(POST /moto-api/reset) is how tests start clean.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests

from lambdas.adapters.clients import AwsClients, Credentials

FAKE_CREDENTIALS = Credentials("testing", "testing", "testing")  # moto's well-known fake credentials
MOTO_ACCOUNT_ID = "123456789012"


def serialize_stream_appends() -> None:
    """Make moto number DynamoDB stream records atomically (idempotent; patches this process's moto).

    moto gives a stream record the sequence number ``len(items) + start`` and appends it without a lock.
    Under concurrent writes (the ingestion's parallel BatchWriteItem calls) two records can get the same
    number or land out of order, and moto's shard iterators, which are index arithmetic on those numbers,
    then replay or skip records (measured: a record read again after a later one, and the local stream
    poller looping). Real DynamoDB orders a shard's records strictly; with one lock around the append so
    does the stand-in.
    """
    from moto.dynamodb.models.table import StreamShard

    if getattr(StreamShard.add, "serialized", False):
        return
    original = StreamShard.add
    lock = threading.Lock()

    def add(self: StreamShard, old: Any, new: Any) -> None:
        with lock:
            original(self, old, new)

    add.serialized = True  # type: ignore[attr-defined]
    StreamShard.add = add  # type: ignore[method-assign]


def quiet_cloudformation_skips() -> None:
    """moto's CloudFormation warns (log + UserWarning) for every resource type it skips; local/stack.py lists
    those types itself (GAPS, each with why) and tests/local/test_stack.py keeps that list true."""
    logging.getLogger("moto").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=r"Tried to parse AWS::.* but it's not supported by moto")


def notify_like_s3() -> None:
    """Give moto's S3 event notifications the ``versionId`` and ``sequencer`` that S3 puts in every record
    (idempotent; patches this process's moto).

    S3 announces the version of a versioned bucket's object that an event is about, and a ``sequencer``
    (hex, to be compared after left-padding with zeros) that orders the events of one key. moto sends
    neither, so the ingestion's exact-version read and its source order would never be exercised locally.
    """
    from moto.s3 import notifications

    if getattr(notifications._get_s3_event, "like_s3", False):
        return
    original = notifications._get_s3_event
    lock = threading.Lock()
    counter = [0x5F0000000000]

    def get_s3_event(event_name: str, bucket: Any, key: Any, notification_id: str) -> dict[str, Any]:
        event = original(event_name, bucket, key, notification_id)
        with lock:
            counter[0] += 1
            sequencer = f"{counter[0]:016X}"
        for record in event["Records"]:
            obj = record["s3"]["object"]
            version = getattr(key, "version_id", None)
            if version and version != "null":
                obj["versionId"] = version
            obj["sequencer"] = sequencer
        return event

    get_s3_event.like_s3 = True  # type: ignore[attr-defined]
    notifications._get_s3_event = get_s3_event  # type: ignore[assignment]


def transactions_like_dynamodb() -> None:
    """Make moto's TransactWriteItems all-or-nothing, isolated and O(items) (idempotent; patches this process).

    moto applies a transaction's writes one by one and, when one fails, restores a deep copy of the whole
    table taken before it (one copy per action: O(table size x actions) per request, minutes for a
    few thousand items). Writes of concurrent requests made meanwhile are lost with the restore, and the
    stream keeps records of writes that were rolled back. DynamoDB checks every condition first, writes
    nothing when one fails, and isolates transactions from each other: so does the stand-in, checking all
    conditions under one lock before the first write.
    """
    from moto.dynamodb import models
    from moto.dynamodb.exceptions import (
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )
    from moto.dynamodb.models.dynamo_type import DynamoType, Item

    backend = models.DynamoDBBackend
    if getattr(backend.transact_write_items, "like_dynamodb", False):
        return
    lock = threading.Lock()

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        if len(transact_items) > 100:
            raise TooManyTransactionsException()
        with lock:
            seen: set[tuple[str, str]] = set()
            errors: list[tuple[Any, Any, Any]] = []
            plan: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
            for action in transact_items:
                if len(action) > 1:
                    raise TransactWriteSingleOpException
                op_type, op = next(iter(action.items()))
                table = self.get_table(op["TableName"])
                if op_type == "Put":
                    attrs = op["Item"]
                    key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                    if table.range_key_attr is not None:
                        key[table.range_key_attr] = attrs[table.range_key_attr]
                    table._validate_item_types(attrs)
                    table._validate_key_sizes(attrs)
                    range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
                    Item(DynamoType(key[table.hash_key_attr]), range_value, attrs)  # raises ItemSizeTooLarge
                else:
                    key = op["Key"]
                identity = (table.name, str(sorted(key.items())))
                if identity in seen:
                    raise MultipleTransactionsException()
                seen.add(identity)
                current = self.get_item(op["TableName"], key)
                condition = op.get("ConditionExpression")
                names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
                if condition is not None and not models.get_filter_expression(condition, names, values).expr(current):
                    old = None
                    if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current is not None:
                        old = current.to_json()["Attributes"]
                    errors.append(("ConditionalCheckFailed", "The conditional request failed", old))
                else:
                    errors.append((None, None, None))
                plan.append((op_type, op, key))
            if any(code is not None for code, _, _ in errors):
                raise TransactionCanceledException(errors)
            for op_type, op, key in plan:
                names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
                if op_type == "Put":
                    self.put_item(op["TableName"], op["Item"])
                elif op_type == "Delete":
                    self.delete_item(op["TableName"], key)
                elif op_type == "Update":
                    self.update_item(
                        op["TableName"],
                        key,
                        update_expression=op["UpdateExpression"],
                        expression_attribute_names=names,
                        expression_attribute_values=values,
                    )

    transact_write_items.like_dynamodb = True  # type: ignore[attr-defined]
    backend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def reset_moto(endpoint_url: str, timeout: float = 60) -> None:
    """Clear every backend of the moto server at `endpoint_url` (POST /moto-api/reset)."""
    response = requests.post(f"{endpoint_url}/moto-api/reset", timeout=timeout)
    response.raise_for_status()


class LocalAws:
    """A running moto server and the clients that talk to it (``clients``)."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1", region: str = "us-east-1") -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        quiet_cloudformation_skips()
        serialize_stream_appends()
        notify_like_s3()
        transactions_like_dynamodb()
        self.region = region
        self._server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        self._server.start()
        bound_host, bound_port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{bound_host}:{bound_port}"
        self.port = bound_port
        self.clients = self.new_clients()

    def new_clients(self) -> AwsClients:
        """Clients of this server (new boto3 clients: nothing registered on earlier ones carries over)."""
        return AwsClients(endpoint_url=self.endpoint_url, region=self.region, credentials=FAKE_CREDENTIALS)

    def reset(self) -> None:
        """Clear the server's state and start on new clients."""
        reset_moto(self.endpoint_url)
        self.clients = self.new_clients()

    def stop(self) -> None:
        self._server.stop()


@contextmanager
def local_aws(port: int = 0, region: str = "us-east-1") -> Iterator[LocalAws]:
    """A moto server for the duration of the block (stopped after it)."""
    aws = LocalAws(port=port, region=region)
    try:
        yield aws
    finally:
        aws.stop()
