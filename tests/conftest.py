"""Shared fixtures: one moto server per test session (a real HTTP endpoint), reset per test."""

from __future__ import annotations

import os
import sys

import pytest

from local.moto_server import LocalAws


@pytest.fixture(scope="session")
def moto_server():
    aws = LocalAws()
    yield aws
    aws.stop()


@pytest.fixture
def aws(moto_server, monkeypatch):
    """A clean moto server with boto3 pointed at it through the environment."""
    moto_server.reset()
    for key, value in moto_server.environment().items():
        monkeypatch.setenv(key, value)
    yield moto_server
    moto_server.reset()


@pytest.fixture
def stack(aws, monkeypatch):
    """The stage 'test': its packaged template deployed into moto (local/stack.py), and the deployed ingestion
    function's environment set."""
    from local.stack import create_stack

    created = create_stack(stage="test")
    for key, value in created.lambda_environment().items():
        monkeypatch.setenv(key, value)
    yield created


@pytest.fixture(autouse=True)
def fresh_lambda_containers(monkeypatch):
    """Every test starts on fresh Lambda containers: each function's entry point (``handler``) builds its function
    again from the test's environment on the first event (what a cold start does)."""
    for name in ("lambdas.ingestion.handler", "lambdas.stream.handler"):
        module = sys.modules.get(name)
        if module is not None:
            monkeypatch.setattr(module, "_handler", None)


def pytest_configure(config):
    # Before any handler module is imported: Powertools reads these when a Logger/Metrics is created.
    import pipeline_config

    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", pipeline_config.raw_config()["service"])
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", pipeline_config.observability()["metricsNamespace"])
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
