"""A fixed-latency stand-in for the AWS write endpoints, so that a benchmark measures the client, not moto.

    python -m bench.standin --port P --latency-ms 10 --forward http://127.0.0.1:<moto port> [--no-keys]

It answers these requests ITSELF, after ``--latency-ms``, with the response the service would give on success:

* DynamoDB ``BatchWriteItem`` (no ``UnprocessedItems``), ``PutItem`` and ``TransactWriteItems`` (every condition
  holds, as on an empty table); JSON 1.0 with ``x-amzn-RequestId`` and ``x-amz-crc32``;
* S3 ``PutObject`` (path-style: ``PUT /bucket/key``, no sub-resource, not a copy): ``ETag`` = MD5 of the body
  (aws-chunked bodies decoded), the request's ``x-amz-checksum-*`` and encryption headers echoed.

Every other request (the CSV's GetObject, Glue, SQS, DescribeTable, ...) is forwarded to ``--forward`` (moto) after
the same latency, its response relayed as it is. So nothing the stand-in answers is stored: a benchmark checks the
load from the stand-in's counts (``GET /standin/stats``; ``POST /standin/reset`` clears them), not from moto.

What it still enforces, as DynamoDB does (a ValidationException, 400): at most 25 requests per BatchWriteItem and
100 actions per TransactWriteItems, every Put item carries the table's key attributes (``--key-attributes``,
default the purchases table's), and one request never touches the same item twice. It does not check item sizes,
credentials or signatures, and never throttles.

Counts per operation: requests and items (Put/Delete requests, transaction actions, objects), and with key
accounting on (the default; ``--no-keys`` turns it off) the distinct DynamoDB keys and S3 objects written, so that
"items written ÷ distinct purchases" can be read off a run. ``max_in_flight`` is the most requests it held at once
(the client's real concurrency) and ``cpu_s`` its own CPU time, to show it is not the bottleneck.

Cost: one asyncio event loop with a minimal HTTP/1.1 implementation (keep-alive, ``Expect: 100-continue``, chunked
bodies), no thread per request; a request costs well under a millisecond of its CPU (a 100-action transaction is
mostly the ``json.loads`` of its body), and any number of connections wait their latency in parallel.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import itertools
import json
import os
import socket
import time
import urllib.request
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.server import _Process, free_port

DYNAMODB_PREFIX = "DynamoDB_20120810."
ANSWERED_DYNAMODB = ("BatchWriteItem", "PutItem", "TransactWriteItems")
MAX_BATCH_WRITE = 25
MAX_TRANSACT = 100
HEAD_LIMIT = 1024 * 1024  # request/response head (huge headers are legal)
STREAM_CHUNK = 1024 * 1024  # forwarded response bodies are relayed in pieces of this size
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
    "content-length",
}
_ECHOED_S3 = ("x-amz-server-side-encryption", "x-amz-server-side-encryption-aws-kms-key-id", "x-amz-version-id")
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 431: "Request Header Fields Too Large", 502: "Bad Gateway"}


class BadRequest(Exception):
    """A DynamoDB request DynamoDB itself would refuse (ValidationException)."""


class Stats:
    """What the stand-in answered since the last reset."""

    def __init__(self, key_attributes: tuple[str, ...], keys: bool) -> None:
        self.key_attributes = key_attributes
        self.keys = keys
        self.reset()

    def reset(self) -> None:
        self.operations: dict[str, dict[str, int]] = {}
        self.items_put = 0  # DynamoDB items written by Put requests/actions, all operations
        self.forwarded = 0
        self.rejected = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.dynamodb_keys: set[tuple[str, tuple[Any, ...]]] = set()
        self.s3_objects: set[tuple[str, str]] = set()
        self.cpu_at_reset = time.process_time()

    def count(self, operation: str, items: int, size: int = 0) -> None:
        entry = self.operations.get(operation)
        if entry is None:
            entry = self.operations[operation] = {"requests": 0, "items": 0, "bytes": 0}
        entry["requests"] += 1
        entry["items"] += items
        entry["bytes"] += size

    def as_json(self) -> dict[str, Any]:
        prefixes: dict[str, int] = {}
        for bucket, key in self.s3_objects:
            top = f"{bucket}/{key.split('/', 1)[0]}/" if "/" in key else f"{bucket}/"
            prefixes[top] = prefixes.get(top, 0) + 1
        return {
            "operations": self.operations,
            "dynamodb_items_put": self.items_put,
            "forwarded": self.forwarded,
            "rejected": self.rejected,
            "max_in_flight": self.max_in_flight,
            "keys_counted": self.keys,
            "dynamodb_keys": len(self.dynamodb_keys) if self.keys else None,
            "s3_objects": len(self.s3_objects) if self.keys else None,
            "s3_objects_by_prefix": prefixes if self.keys else None,
            "cpu_s": time.process_time() - self.cpu_at_reset,
        }


class Request:
    __slots__ = ("body", "headers", "method", "raw_headers", "target")

    def __init__(self, method: str, target: str, raw_headers: list[tuple[str, str]], body: bytes) -> None:
        self.method = method
        self.target = target
        self.raw_headers = raw_headers
        self.headers = {name.lower(): value for name, value in raw_headers}
        self.body = body


def _parse_head(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    return lines[0], headers


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while True:
        line = await reader.readuntil(b"\r\n")
        size = int(line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailer fields, then the empty line
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


def decode_aws_chunked(body: bytes) -> bytes:
    """The payload of an ``aws-chunked`` body (``size;chunk-signature=...`` framing, optional trailers)."""
    parts, pos = [], 0
    while True:
        end = body.index(b"\r\n", pos)
        size = int(body[pos:end].split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            return b"".join(parts)
        parts.append(body[end + 2 : end + 2 + size])
        pos = end + 2 + size + 2


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return await _read_chunked(reader)
    length = int(headers.get("content-length") or 0)
    return await reader.readexactly(length) if length else b""


def _response(
    status: int, headers: list[tuple[str, str]], body: bytes = b"", *, length: str | None = None, reason: str = ""
) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason or _REASONS.get(status, 'Status')}"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines.append(f"Content-Length: {len(body) if length is None else length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Standin:
    def __init__(
        self,
        latency_ms: float,
        forward: str | None,
        key_attributes: tuple[str, ...],
        keys: bool = True,
    ) -> None:
        self.delay = latency_ms / 1000.0
        self.latency_ms = latency_ms
        self.forward = urlsplit(forward) if forward else None
        self.stats = Stats(key_attributes, keys)
        self._ids = itertools.count(1)
        self._id_prefix = f"{os.getpid():08X}"

    # ---- connection loop ---------------------------------------------------------------------------
    async def serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                except asyncio.LimitOverrunError:
                    writer.write(_response(431, [("Connection", "close")]))
                    await writer.drain()
                    return
                request_line, raw_headers = _parse_head(head)
                method, target, _version = request_line.split(" ", 2)
                headers = {name.lower(): value for name, value in raw_headers}
                if headers.get("expect", "").lower() == "100-continue":
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                body = await _read_body(reader, headers)
                request = Request(method, target, raw_headers, body)
                await self.respond(request, writer)
                if headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def respond(self, request: Request, writer: asyncio.StreamWriter) -> None:
        if request.target.startswith("/standin/"):
            writer.write(self.control(request))
            return
        stats = self.stats
        stats.in_flight += 1
        if stats.in_flight > stats.max_in_flight:
            stats.max_in_flight = stats.in_flight
        try:
            answer = self.answer(request)
            await asyncio.sleep(self.delay)
            if answer is None:
                stats.forwarded += 1
                await self.forwarded(request, writer)
                return
        finally:
            stats.in_flight -= 1
        writer.write(answer)

    def control(self, request: Request) -> bytes:
        path = request.target.split("?", 1)[0]
        if path == "/standin/stats" and request.method == "GET":
            body = json.dumps({"latency_ms": self.latency_ms, **self.stats.as_json()}).encode()
            return _response(200, [("Content-Type", "application/json")], body)
        if path == "/standin/reset" and request.method == "POST":
            self.stats.reset()
            return _response(200, [("Content-Type", "application/json")], b"{}")
        return _response(404, [("Content-Type", "text/plain")], b"unknown stand-in control path\n")

    # ---- what it answers itself ----------------------------------------------------------------------
    def answer(self, request: Request) -> bytes | None:
        """The response to a request the stand-in answers itself, or None to forward it."""
        target = request.headers.get("x-amz-target", "")
        if target.startswith(DYNAMODB_PREFIX):
            operation = target[len(DYNAMODB_PREFIX) :]
            if operation in ANSWERED_DYNAMODB:
                try:
                    return self.dynamodb(operation, json.loads(request.body), len(request.body))
                except (BadRequest, ValueError, KeyError, TypeError, AttributeError) as exc:
                    self.stats.rejected += 1
                    return self._dynamodb_reply(
                        400, {"__type": "com.amazon.coral.validate#ValidationException", "message": str(exc)}
                    )
            return None
        if request.method == "PUT":
            return self.put_object(request)
        return None

    def dynamodb(self, operation: str, params: dict[str, Any], size: int) -> bytes:
        stats = self.stats
        puts: list[tuple[str, dict[str, Any]]] = []  # (table, item) written
        touched: list[tuple[str, dict[str, Any]]] = []  # (table, key) of every action, for the duplicate rule
        if operation == "BatchWriteItem":
            requests = 0
            for table, writes in params["RequestItems"].items():
                for write in writes:
                    requests += 1
                    if "PutRequest" in write:
                        item = write["PutRequest"]["Item"]
                        puts.append((table, item))
                        touched.append((table, item))
                    else:
                        touched.append((table, write["DeleteRequest"]["Key"]))
            if not 0 < requests <= MAX_BATCH_WRITE:
                raise BadRequest(f"Too many items requested for the BatchWriteItem call ({requests}; 1-25)")
            items, reply = requests, {"UnprocessedItems": {}}
        elif operation == "TransactWriteItems":
            actions = params["TransactItems"]
            if not 0 < len(actions) <= MAX_TRANSACT:
                raise BadRequest(f"TransactItems must have 1-{MAX_TRANSACT} members, got {len(actions)}")
            for action in actions:
                ((kind, body),) = action.items()
                if kind == "Put":
                    puts.append((body["TableName"], body["Item"]))
                    touched.append((body["TableName"], body["Item"]))
                else:  # Update, Delete, ConditionCheck
                    touched.append((body["TableName"], body["Key"]))
            items, reply = len(actions), {}
        else:  # PutItem
            puts.append((params["TableName"], params["Item"]))
            items, reply = 1, {}
        if stats.keys:
            keys = [self._key(table, item) for table, item in touched]
            if len(set(keys)) != len(keys):
                raise BadRequest("Transaction request cannot include multiple operations on one item")
            stats.dynamodb_keys.update(self._key(table, item) for table, item in puts)
        stats.count(f"DynamoDB.{operation}", items, size)
        stats.items_put += len(puts)
        return self._dynamodb_reply(200, reply)

    def _key(self, table: str, item: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
        try:
            return table, tuple(next(iter(item[name].values())) for name in self.stats.key_attributes)
        except KeyError as missing:
            raise BadRequest(f"One of the required keys was not given a value: {missing}") from None

    def _dynamodb_reply(self, status: int, document: dict[str, Any]) -> bytes:
        body = json.dumps(document).encode()
        headers = [
            ("x-amzn-RequestId", f"{self._id_prefix}{next(self._ids):024X}"),
            ("x-amz-crc32", str(zlib.crc32(body))),
            ("Content-Type", "application/x-amz-json-1.0"),
        ]
        return _response(status, headers, body)

    def put_object(self, request: Request) -> bytes | None:
        """PutObject in path style (``PUT /bucket/key``), or None for another PUT (bucket-level calls,
        sub-resources such as ?tagging or ?uploadId, CopyObject) which goes to moto."""
        path, _, query = request.target.partition("?")
        if query and query != "x-id=PutObject":
            return None
        bucket, _, key = path.lstrip("/").partition("/")
        headers = request.headers
        if not key or "x-amz-copy-source" in headers or "/s3/aws4_request" not in headers.get("authorization", ""):
            return None
        body = request.body
        if "aws-chunked" in headers.get("content-encoding", ""):
            body = decode_aws_chunked(body)
        stats = self.stats
        stats.count("S3.PutObject", 1, len(body))
        if stats.keys:
            stats.s3_objects.add((bucket, key))
        request_id = f"{self._id_prefix}{next(self._ids):08X}"
        reply = [
            ("x-amz-id-2", request_id),
            ("x-amz-request-id", request_id),
            ("ETag", f'"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"'),
        ]
        reply += [(name, value) for name, value in request.raw_headers if name.lower().startswith("x-amz-checksum-")]
        reply += [(name, headers[name]) for name in _ECHOED_S3 if name in headers]
        return _response(200, reply)

    # ---- forwarded to moto -----------------------------------------------------------------------------
    async def forwarded(self, request: Request, client: asyncio.StreamWriter) -> None:
        """Send `request` to --forward and relay the response to `client`; a body with a length is streamed
        through (the CSV's GetObject reaches the handler as moto sends it), others are read whole first."""
        if self.forward is None:
            client.write(_response(502, [("Content-Type", "text/plain")], b"the stand-in has no --forward endpoint\n"))
            return
        host, port = self.forward.hostname or "127.0.0.1", self.forward.port or 80
        reader, writer = await asyncio.open_connection(host, port, limit=HEAD_LIMIT)
        try:
            lines = [f"{request.method} {request.target} HTTP/1.1"]
            lines += [f"{n}: {v}" for n, v in request.raw_headers if n.lower() not in _HOP_BY_HOP]
            lines += [f"Content-Length: {len(request.body)}", "Connection: close"]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + request.body)
            await writer.drain()
            while True:
                status_line, raw_headers = _parse_head(await reader.readuntil(b"\r\n\r\n"))
                status = int(status_line.split(" ", 2)[1])
                if status >= 200:
                    break
            headers = {name.lower(): value for name, value in raw_headers}
            reason = status_line.split(" ", 2)[2] if status_line.count(" ") >= 2 else ""
            kept = [(n, v) for n, v in raw_headers if n.lower() not in _HOP_BY_HOP]
            if request.method == "HEAD" or status in (204, 304):
                client.write(_response(status, kept, length=headers.get("content-length", "0"), reason=reason))
                return
            if "chunked" not in headers.get("transfer-encoding", "").lower() and "content-length" in headers:
                remaining = int(headers["content-length"])
                client.write(_response(status, kept, length=str(remaining), reason=reason))
                while remaining:
                    chunk = await reader.read(min(remaining, STREAM_CHUNK))
                    if not chunk:
                        raise ConnectionError("the forwarded response ended before its Content-Length")
                    remaining -= len(chunk)
                    client.write(chunk)
                    await client.drain()
                return
            if "chunked" in headers.get("transfer-encoding", "").lower():
                body = await _read_chunked(reader)
            else:
                body = await reader.read()
            client.write(_response(status, kept, body, reason=reason))
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def serve(standin: Standin, host: str, port: int, ready: asyncio.Future | None = None) -> None:
    server = await asyncio.start_server(standin.serve_connection, host, port, limit=HEAD_LIMIT, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    print(f"stand-in listening on http://{host}:{bound} latency {standin.latency_ms:g} ms", flush=True)
    if ready is not None:
        ready.set_result(bound)
    async with server:
        await server.serve_forever()


class StandinProcess(_Process):
    """``python -m bench.standin`` in a child process on a free port (context manager): ``.endpoint``,
    ``.stats()``, ``.reset()``, ``.stop()``."""

    def __init__(
        self,
        latency_ms: float = 10.0,
        forward: str | None = None,
        *,
        keys: bool = True,
        log_path: Path | None = None,
        key_attributes: tuple[str, ...] | None = None,
    ) -> None:
        self.latency_ms = latency_ms
        port = free_port()
        args = ["-m", "bench.standin", "--port", str(port), "--latency-ms", str(latency_ms)]
        if forward:
            args += ["--forward", forward]
        if not keys:
            args.append("--no-keys")
        if key_attributes:
            args += ["--key-attributes", ",".join(key_attributes)]
        super().__init__(args, port, log_path, ready_path="/standin/stats")
        self.endpoint = self.endpoint_url

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.endpoint}/standin/stats", timeout=30) as response:
            return json.loads(response.read())

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.endpoint}/standin/reset", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()


def default_key_attributes() -> tuple[str, ...]:
    import pipeline_config as config

    keys = config.table_keys()
    return tuple(k for k in (keys.get("partitionKey"), keys.get("sortKey")) if k)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.standin", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=10.0)
    parser.add_argument("--forward", help="endpoint for every other request (moto), e.g. http://127.0.0.1:5000")
    parser.add_argument("--no-keys", action="store_true", help="count requests and items only, not distinct keys")
    parser.add_argument(
        "--key-attributes",
        type=lambda text: tuple(text.split(",")),
        default=None,
        help="DynamoDB key attribute names (default: the purchases table's, config/pipeline.yml)",
    )
    args = parser.parse_args(argv)
    standin = Standin(args.latency_ms, args.forward, args.key_attributes or default_key_attributes(), not args.no_keys)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(standin, args.host, args.port))


if __name__ == "__main__":
    main()
