"""Building the local functions reads the deployed configuration and leaves this process's environment alone."""

from __future__ import annotations

import os

import pytest

from local.pipeline import FUNCTIONS, LocalPipeline, build_function, function_settings

pytestmark = pytest.mark.integration


def test_building_the_functions_leaves_the_process_environment_alone(stack, monkeypatch):
    for name in [k for k in os.environ if k.startswith(("POWERTOOLS_", "AWS_"))]:
        monkeypatch.delenv(name)
    before = dict(os.environ)
    pipeline = LocalPipeline(stack)
    for key in FUNCTIONS:
        build_function(stack, key)
    assert dict(os.environ) == before
    deployed = stack.lambda_environment("ingestarTickets")
    observability = function_settings(stack, "ingestarTickets").observability
    assert pipeline.service_name == observability.service_name == deployed["POWERTOOLS_SERVICE_NAME"]
    assert observability.metrics_namespace == deployed["POWERTOOLS_METRICS_NAMESPACE"]
