"""Powertools Logger (structured JSON) and Metrics (CloudWatch EMF), one pair per function.

Each deployed function imports only its own handler, but local runs and tests import all of them in one
process. Powertools' ``Metrics`` shares its metric set and dimensions across instances, and a ``Logger``
of the same service shares its handler, so neither may carry per-function state here: the logger adds no
function key (``inject_lambda_context`` adds ``function_name`` to every line) and the metrics are
``EphemeralMetrics``, which keep their own set and their own ``function`` dimension.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics


def logger_for(function: str) -> Logger:
    """The JSON logger; service name from POWERTOOLS_SERVICE_NAME (the function name comes with the context)."""
    del function  # the Lambda context identifies the function on every line
    return Logger()


def metrics_for(function: str) -> EphemeralMetrics:
    """EMF metrics in namespace POWERTOOLS_METRICS_NAMESPACE, dimensioned by function."""
    metrics = EphemeralMetrics()
    metrics.set_default_dimensions(function=function)
    return metrics
