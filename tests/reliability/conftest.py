"""Fixtures of the reliability tests."""

from __future__ import annotations

import io
import json
import logging

import pytest
from botocore.retries import standard


@pytest.fixture
def fast_botocore_retries(monkeypatch):
    """botocore's standard retry mode still retries exactly as configured, without sleeping between
    attempts (throttling backoff is up to 1 s, 2 s, 4 s … otherwise): the tests stay fast, the retry
    decisions stay real."""
    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0.0)


class JsonLogs:
    """The JSON lines a Powertools logger emitted, parsed."""

    def __init__(self, stream: io.StringIO) -> None:
        self._stream = stream

    @property
    def lines(self) -> list[str]:
        return [line for line in self._stream.getvalue().splitlines() if line.strip()]

    @property
    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.lines]

    def at_or_above(self, level: str) -> list[str]:
        order = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
        return [
            line
            for line, r in zip(self.lines, self.records, strict=True)
            if order.index(r["level"]) >= order.index(level)
        ]


@pytest.fixture
def ingestion_logs(stack):
    """Everything the ingestion function logs during the test, formatted by its own Powertools formatter
    exactly as it reaches CloudWatch Logs (a Logger of the same service shares its handler and formatter)."""
    from lambdas.shared.observability import logger_for
    from local.pipeline import function_settings
    from local.stack import INGESTION

    logger = logger_for(function_settings(stack, INGESTION).observability)
    stream = io.StringIO()
    capture = logging.StreamHandler(stream)
    capture.setFormatter(logger.registered_formatter)
    logger.addHandler(capture)
    try:
        yield JsonLogs(stream)
    finally:
        logger.removeHandler(capture)
