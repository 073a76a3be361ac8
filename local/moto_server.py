"""An embedded AWS stand-in: moto in server mode, a real HTTP endpoint boto3 talks to.

The handlers need no endpoint logic: boto3 honours AWS_ENDPOINT_URL, which `environment()` sets.
moto's state is process-wide, so `reset()` (POST /moto-api/reset) is how tests start clean.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # moto's well-known fake credentials
    "AWS_SESSION_TOKEN": "testing",
}
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


def reset_moto(endpoint_url: str, timeout: float = 60) -> None:
    """Clear every backend of the moto server at `endpoint_url` (POST /moto-api/reset)."""
    response = requests.post(f"{endpoint_url}/moto-api/reset", timeout=timeout)
    response.raise_for_status()


class LocalAws:
    """A running moto server and the environment that points boto3 at it."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1", region: str = "us-east-1") -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        quiet_cloudformation_skips()
        serialize_stream_appends()
        self.region = region
        self._server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        self._server.start()
        bound_host, bound_port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{bound_host}:{bound_port}"
        self.port = bound_port

    def environment(self) -> dict[str, str]:
        return {
            **FAKE_CREDENTIALS,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def apply_environment(self) -> None:
        os.environ.update(self.environment())

    def reset(self) -> None:
        reset_moto(self.endpoint_url)

    def stop(self) -> None:
        self._server.stop()


@contextmanager
def local_aws(port: int = 0, region: str = "us-east-1") -> Iterator[LocalAws]:
    aws = LocalAws(port=port, region=region)
    saved = {k: os.environ.get(k) for k in aws.environment()}
    aws.apply_environment()
    try:
        yield aws
    finally:
        aws.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
