"""Shared fixtures: one moto server per test session (a real HTTP endpoint), reset per test."""

from __future__ import annotations

import sys

import pytest

from local.moto_server import LocalAws


@pytest.fixture(scope="session")
def moto_server():
    aws = LocalAws()
    yield aws
    aws.stop()


@pytest.fixture
def aws(moto_server):
    """A clean moto server; ``aws.clients`` (new for each test) talks to it. Nothing is set in the environment."""
    moto_server.reset()
    yield moto_server
    moto_server.reset()


@pytest.fixture
def stack(aws):
    """The stage 'test': its packaged template deployed into moto (local/stack.py); ``stack.aws`` are the clients
    its functions are built with (local.pipeline.build_function)."""
    from local.stack import create_stack

    return create_stack(aws.clients, stage="test")


@pytest.fixture(autouse=True)
def fresh_lambda_containers(monkeypatch):
    """Every test starts on fresh Lambda containers: each function's entry point (``handler``) builds its function
    again from the environment on the first event (what a cold start does)."""
    for name in (
        "lambdas.ingestion.handler",
        "lambdas.stream.handler",
        "lambdas.report.handler",
        "lambdas.compaction.handler",
    ):
        module = sys.modules.get(name)
        if module is not None:
            monkeypatch.setattr(module, "_handler", None)
