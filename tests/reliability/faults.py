"""Fault injection at the boto3 HTTP layer, for the reliability tests.

A fault is a botocore ``before-send`` hook on one client: when it fires it returns a crafted HTTP
response (or raises), so botocore never sends the request and everything above the wire — botocore's
own retries, our adapters' retries, the handlers, the local pollers — sees exactly what it would see
from AWS. The request still reaches moto when the fault does not fire.

    ddb = stack.aws.hot_client("dynamodb")  # the ingestion's TransactWriteItems client
    with inject(ddb, "TransactWriteItems", throttle(), times=3) as fault:
        ...
    assert fault.fired == 3

Faults compose: ``inject`` can be nested, and the first hook that answers wins.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.awsrequest import AWSPreparedRequest, AWSResponse

from lambdas.adapters.clients import AwsClients

Responder = Callable[[AWSPreparedRequest], AWSResponse]
Matcher = Callable[[AWSPreparedRequest], bool]

_ids = itertools.count()


class SimulatedCrash(BaseException):
    """The function process dying mid-request (timeout, out of memory, SIGKILL).

    A BaseException so no ``except Exception`` in the code under test can swallow it: it unwinds the
    whole invocation, like a real crash, and the event source sees a failed invocation.
    """


class _Body:
    """The ``raw`` an AWSResponse needs: something with ``stream()``."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data

    def read(self, *_: Any) -> bytes:
        data, self._data = self._data, b""
        return data


def response(request: AWSPreparedRequest, status: int, body: bytes, headers: dict[str, str]) -> AWSResponse:
    return AWSResponse(request.url, status, {"Content-Length": str(len(body)), **headers}, _Body(body))


# --- crafted responses -----------------------------------------------------------------------------


def s3_error(status: int, code: str, message: str) -> Responder:
    """An S3 REST-XML error, e.g. ``s3_error(503, "SlowDown", "Please reduce your request rate.")``."""

    def respond(request: AWSPreparedRequest) -> AWSResponse:
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message>"
            "<RequestId>FAULT</RequestId><HostId>FAULT</HostId></Error>"
        ).encode()
        return response(request, status, body, {"Content-Type": "application/xml"})

    return respond


def slow_down() -> Responder:
    return s3_error(503, "SlowDown", "Please reduce your request rate.")


def internal_error() -> Responder:
    return s3_error(500, "InternalError", "We encountered an internal error. Please try again.")


def json_error(status: int, code: str, message: str) -> Responder:
    """An AWS JSON-protocol error (DynamoDB, DynamoDB Streams, Glue, SQS…)."""

    def respond(request: AWSPreparedRequest) -> AWSResponse:
        body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message}).encode()
        return response(request, status, body, {"Content-Type": "application/x-amz-json-1.0", "x-amzn-ErrorType": code})

    return respond


def throttle() -> Responder:
    """DynamoDB's throttling answer for a table over its capacity."""
    return json_error(
        400,
        "ProvisionedThroughputExceededException",
        "The level of configured provisioned throughput for the table was exceeded.",
    )


def server_error() -> Responder:
    return json_error(500, "InternalServerError", "Internal server error")


def partially_unprocessed(aws: AwsClients, keep: int = 1) -> Responder:
    """BatchWriteItem that really writes only the first ``keep`` requests of each table and returns the
    rest as UnprocessedItems, exactly as DynamoDB does under load.

    The JSON wire format of a BatchWriteItem body is the low-level client's parameter format, so the
    kept part is written through a separate, un-hooked client (over ``aws``'s endpoint and account).
    """
    state: dict[str, Any] = {}
    lock = threading.Lock()

    def writer():
        with lock:
            if "client" not in state:
                state["client"] = boto3.session.Session().client("dynamodb", **aws.connection_options())
            return state["client"]

    def respond(request: AWSPreparedRequest) -> AWSResponse:
        items: dict[str, list[dict]] = json.loads(request.body)["RequestItems"]
        done = {table: requests[:keep] for table, requests in items.items() if requests[:keep]}
        left = {table: requests[keep:] for table, requests in items.items() if requests[keep:]}
        if done:
            result = writer().batch_write_item(RequestItems=done)
            for table, requests in result.get("UnprocessedItems", {}).items():
                left.setdefault(table, []).extend(requests)
        body = json.dumps({"UnprocessedItems": left}).encode()
        return response(request, 200, body, {"Content-Type": "application/x-amz-json-1.0"})

    return respond


def transaction_conflict(conflicting: int = 1) -> Responder:
    """TransactWriteItems cancelled, as DynamoDB does when another request holds some of its items: the
    first ``conflicting`` actions report ``TransactionConflict``, the others ``None``; nothing is written."""

    def respond(request: AWSPreparedRequest) -> AWSResponse:
        actions = len(json.loads(request.body)["TransactItems"])
        codes = ["TransactionConflict" if i < conflicting else "None" for i in range(actions)]
        reasons = [{"Code": c, "Message": "Transaction is ongoing for the item"} if c != "None" else {"Code": c}
                   for c in codes]  # fmt: skip
        body = json.dumps(
            {
                "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                "Message": f"Transaction cancelled, please refer cancellation reasons for specific reasons "
                f"[{', '.join(codes)}]",
                "CancellationReasons": reasons,
            }
        ).encode()
        return response(request, 400, body, {"Content-Type": "application/x-amz-json-1.0"})

    return respond


class _BreakingBody:
    """A response body that delivers ``after`` bytes and then loses the connection."""

    def __init__(self, data: bytes, after: int) -> None:
        self._data = data
        self._left = after
        self._position = 0

    def read(self, amt: int | None = None, *_: Any, **__: Any) -> bytes:
        from urllib3.exceptions import ProtocolError

        if self._left <= 0:
            raise ProtocolError("Connection broken: IncompleteRead (simulated)")
        size = len(self._data) if amt is None else amt
        size = min(size, self._left)
        chunk = self._data[self._position : self._position + size]
        self._position += size
        self._left -= size
        return chunk

    def stream(self, **_: Any) -> Iterator[bytes]:
        while True:
            yield self.read(65536)

    def close(self) -> None:
        return None


def body_breaks_off(after_bytes: int) -> Responder:
    """GetObject answered with the real object's headers whose body breaks off after ``after_bytes`` (a
    dropped connection, or an object deleted while it is read)."""

    def respond(request: AWSPreparedRequest) -> AWSResponse:
        import requests

        real = requests.get(request.url, headers=dict(request.headers), timeout=30)
        headers = {k: v for k, v in real.headers.items() if k.lower() != "transfer-encoding"}
        return AWSResponse(request.url, real.status_code, headers, _BreakingBody(real.content, after_bytes))

    return respond


def crash(message: str = "simulated crash of the function process") -> Responder:
    def respond(request: AWSPreparedRequest) -> AWSResponse:
        raise SimulatedCrash(message)

    return respond


# --- matchers ----------------------------------------------------------------------------------------


def url_contains(text: str) -> Matcher:
    """Matches requests whose URL contains ``text`` (already URL-encoded, e.g. an S3 key)."""
    return lambda request: text in request.url


def body_contains(text: str) -> Matcher:
    def match(request: AWSPreparedRequest) -> bool:
        body = request.body
        if body is None:
            return False
        if isinstance(body, str):
            return text in body
        if isinstance(body, bytes | bytearray):
            return text.encode() in body
        return False  # a stream: not inspected

    return match


# --- injection ----------------------------------------------------------------------------------------


@dataclass
class Fault:
    """One armed fault. ``seen`` counts matching requests, ``fired`` the ones answered by the fault."""

    operation: str
    respond: Responder
    times: int | None
    after: int
    match: Matcher | None
    seen: int = 0
    fired: int = 0
    fired_urls: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse | None:
        if self.match is not None and not self.match(request):
            return None
        with self._lock:
            self.seen += 1
            if self.seen <= self.after or (self.times is not None and self.fired >= self.times):
                return None
            self.fired += 1
            self.fired_urls.append(request.url)
        return self.respond(request)


@contextmanager
def inject(
    client: Any,
    operation: str,
    respond: Responder,
    *,
    times: int | None = 1,
    after: int = 0,
    match: Matcher | None = None,
) -> Iterator[Fault]:
    """Answer ``operation`` calls of ``client`` with ``respond``: the first ``after`` matching calls pass
    through, the next ``times`` (None = all) get the fault, later ones pass through again."""
    fault = Fault(operation=operation, respond=respond, times=times, after=after, match=match)
    service_id = client.meta.service_model.service_id.hyphenize()
    event = f"before-send.{service_id}.{operation}"
    unique_id = f"reliability-fault-{next(_ids)}"
    client.meta.events.register_first(event, fault, unique_id=unique_id)
    try:
        yield fault
    finally:
        client.meta.events.unregister(event, unique_id=unique_id)
