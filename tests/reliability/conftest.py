"""Fixtures of the reliability tests."""

from __future__ import annotations

import pytest
from botocore.retries import standard


@pytest.fixture
def fast_botocore_retries(monkeypatch):
    """botocore's standard retry mode still retries exactly as configured, without sleeping between
    attempts (throttling backoff is up to 1 s, 2 s, 4 s … otherwise): the tests stay fast, the retry
    decisions stay real."""
    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0.0)
