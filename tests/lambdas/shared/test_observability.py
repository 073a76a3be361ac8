"""lambdas/shared/observability.py: the Logger and Metrics of a function are configured from its settings, not from
the process environment."""

from __future__ import annotations

import json
import logging

from aws_lambda_powertools.metrics import MetricUnit

from lambdas.shared.observability import logger_for, metrics_for
from lambdas.shared.settings import Observability

OBSERVABILITY = Observability(service_name="svc-explicit", metrics_namespace="ns-explicit", log_level="WARNING")


def test_the_logger_takes_service_and_level_from_the_settings(monkeypatch):
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "from-the-environment")
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "DEBUG")
    logger = logger_for(OBSERVABILITY)
    assert logger.service == "svc-explicit"
    assert logging.getLogger("svc-explicit").level == logging.WARNING


def test_the_metrics_take_namespace_and_service_from_the_settings(monkeypatch, capsys):
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "from-the-environment")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "from-the-environment")
    metrics = metrics_for("someFunction", OBSERVABILITY)
    metrics.add_metric(name="Things", unit=MetricUnit.Count, value=2)
    metrics.flush_metrics()
    (line,) = [json.loads(text) for text in capsys.readouterr().out.splitlines() if text.strip()]
    (declared,) = line["_aws"]["CloudWatchMetrics"]
    assert declared["Namespace"] == "ns-explicit"
    assert (line["service"], line["function"], line["Things"]) == ("svc-explicit", "someFunction", [2.0])


def test_a_missing_powertools_variable_fails_naming_it():
    import pytest

    from lambdas.shared.settings import MissingSettingError

    with pytest.raises(MissingSettingError, match="POWERTOOLS_METRICS_NAMESPACE"):
        Observability.from_env({"POWERTOOLS_SERVICE_NAME": "s", "POWERTOOLS_LOG_LEVEL": "INFO"})


def test_the_logger_writes_where_print_writes_when_it_logs():
    """The service's handler is made with the first Logger (when a function is built); a later redirect of
    sys.stdout (the local demo's log file, a test's capture) still receives the lines."""
    import contextlib
    import io

    logger = logger_for(Observability(service_name="svc-stdout", metrics_namespace="ns", log_level="INFO"))
    with contextlib.redirect_stdout(io.StringIO()) as redirected:
        logger.info("hello from the function")
    assert json.loads(redirected.getvalue())["message"] == "hello from the function"
